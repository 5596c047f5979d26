//! HuggingFace `config.json` → [`ModelSpec`], in transformers 4 and 5 spellings.
//!
//! Sources, per architecture: transformers 5.24's `configuration_<arch>.py` (defaults)
//! and `modeling_<arch>.py` (what the numbers are), and `modeling_rope_utils.py` (one
//! table of rope types, parsed by `tokenloom_positions::parse_rope_section`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};
use tokenloom_positions::{RopeConfig, RopeLayout, RopeSection, parse_rope_section};

use super::arch::{Architecture, ModelFamily};
use super::hf_keys::may_stay_unread;
use super::json::Config;
use super::{
    AbsolutePositions, AttentionTemperature, EmbeddingNorm, EmbeddingScale, LayerAttention,
    LayerPositions, LogitTransform, ModelSpec, OutputHead, SpecSource,
};
use crate::error::DecoderInputError;

type Object = Map<String, Value>;

/// A config object whose reads are remembered, so that the keys nobody read can be
/// checked at the end.
struct Reader<'a> {
    cfg: Config<'a>,
    read: RefCell<BTreeSet<&'a str>>,
}

impl<'a> Reader<'a> {
    fn new(cfg: Config<'a>) -> Self {
        Self {
            cfg,
            read: RefCell::new(BTreeSet::new()),
        }
    }

    /// Marks `keys` as read (handled) and returns the config.
    fn mark(&self, keys: &[&str]) -> Config<'a> {
        let mut read = self.read.borrow_mut();
        for key in keys {
            if let Some((k, _)) = self.cfg.object.get_key_value(*key) {
                read.insert(k.as_str());
            }
        }
        self.cfg
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, DecoderInputError> {
        self.mark(&[key]).usize(key)
    }

    fn first_usize(&self, keys: &[&str]) -> Result<Option<usize>, DecoderInputError> {
        self.mark(keys).first_usize(keys)
    }

    fn required_first_usize(&self, keys: &[&str]) -> Result<usize, DecoderInputError> {
        self.mark(keys).required_first_usize(keys)
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, DecoderInputError> {
        self.mark(&[key]).f64(key)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, DecoderInputError> {
        self.mark(&[key]).bool(key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.mark(&[key]).get(key)
    }

    /// Every key neither read nor allowed to stay unread is an error naming it.
    fn check_unread(&self, arch: Architecture) -> Result<(), DecoderInputError> {
        let read = self.read.borrow();
        match self
            .cfg
            .object
            .keys()
            .find(|k| !read.contains(k.as_str()) && !may_stay_unread(k))
        {
            Some(key) => Err(DecoderInputError::UnknownConfigKey {
                path: self.cfg.path.to_path_buf(),
                key: self.cfg.key_path(key),
                architecture: arch.name(),
            }),
            None => Ok(()),
        }
    }
}

/// Model types whose text model sits in a `text_config` object.
const WRAPPERS: &[&str] = &["gemma3", "qwen2_vl", "qwen2_5_vl", "llama4"];

/// Keys of those wrappers that concern the vision tower or the special tokens around
/// images, not the text model's numbers.
const WRAPPER_KEYS: &[&str] = &[
    "boi_token_index",
    "eoi_token_index",
    "image_token_id",
    "image_token_index",
    "mm_tokens_per_image",
    "text_config",
    "video_token_id",
    "vision_config",
    "vision_end_token_id",
    "vision_start_token_id",
    "vision_token_id",
    "vision_feature_layer",
    "vision_feature_select_strategy",
    "projector_hidden_act",
    "multi_modal_projector_bias",
    "tie_word_embeddings",
    "boi_token_id",
    "eoi_token_id",
];

pub(super) fn from_hf(root: &Object, path: &Path) -> Result<ModelSpec, DecoderInputError> {
    let top = Config {
        object: root,
        path,
        prefix: "",
    };
    let model_type: String = match top.str("model_type")? {
        Some(t) => t.to_owned(),
        None => {
            let class = top
                .list("architectures")?
                .and_then(|a| a.first())
                .and_then(Value::as_str);
            match class.and_then(Architecture::hf_model_type_of_class) {
                Some(t) => t.to_owned(),
                None => {
                    return Err(DecoderInputError::UnknownModelType {
                        path: path.to_path_buf(),
                        architecture: class.map_or_else(
                            || "(no model_type or architectures)".to_owned(),
                            str::to_owned,
                        ),
                    });
                }
            }
        }
    };
    let arch =
        Architecture::from_hf(&model_type).ok_or_else(|| DecoderInputError::UnknownModelType {
            path: path.to_path_buf(),
            architecture: model_type.clone(),
        })?;
    // A multimodal wrapper's text model is in `text_config`; its own keys concern the
    // vision side (and the tying of the head, read below).
    let nested = match top.object("text_config")? {
        Some(text) if WRAPPERS.contains(&model_type.as_str()) => Some(text),
        Some(_) | None => None,
    };
    let cfg = match nested {
        Some(text) => Config {
            object: text,
            path,
            prefix: "text_config.",
        },
        None => top,
    };
    let reader = Reader::new(cfg);
    reader.mark(&["model_type", "architectures"]);
    let spec = read_spec(&reader, arch, nested.is_some().then_some(top))?;
    reader.check_unread(arch)?;
    if nested.is_some()
        && let Some(key) = root
            .keys()
            .find(|k| !WRAPPER_KEYS.contains(&k.as_str()) && !may_stay_unread(k))
    {
        return Err(DecoderInputError::UnknownConfigKey {
            path: path.to_path_buf(),
            key: key.clone(),
            architecture: arch.name(),
        });
    }
    spec.validated()
}

fn read_spec(
    r: &Reader<'_>,
    arch: Architecture,
    wrapper: Option<Config<'_>>,
) -> Result<ModelSpec, DecoderInputError> {
    let path = r.cfg.path;
    let vocab_size = r.usize("vocab_size")?;
    let n_embd = r.required_first_usize(&["hidden_size", "n_embd"])?;
    let n_layers = r.first_usize(&["num_hidden_layers", "n_layer"])?;
    // Heads matter for the rotation of q and k; an absolute-position model needs none.
    let n_heads = match arch.family() {
        ModelFamily::RopeDecoder => r.required_first_usize(&["num_attention_heads", "n_head"])?,
        _ => r
            .first_usize(&["num_attention_heads", "n_head"])?
            .unwrap_or(1),
    };
    let n_kv_heads = kv_heads(r, arch, n_heads)?;
    let explicit_head_dim = r.usize("head_dim")?;
    let head_dim = match explicit_head_dim {
        Some(h) if !matches!(arch, Architecture::DeepseekV2 | Architecture::DeepseekV3) => h,
        _ => {
            if n_heads == 0
                || (arch.family() == ModelFamily::RopeDecoder && !n_embd.is_multiple_of(n_heads))
            {
                return Err(DecoderInputError::HeadsDoNotDivide {
                    path: path.to_path_buf(),
                    n_heads,
                    n_embd,
                });
            }
            n_embd / n_heads
        }
    };
    let max_positions = r.required_first_usize(&["max_position_embeddings", "n_positions"])?;
    let pad_id = r.usize("pad_token_id")?;
    let tie = match wrapper {
        // A wrapper states the tying for the whole model.
        Some(w) => w.bool("tie_word_embeddings")?,
        None => None,
    }
    .or(r.bool("tie_word_embeddings")?)
    .unwrap_or(arch.hf_tie_default());

    let mut spec = ModelSpec {
        architecture: arch,
        source: SpecSource::HfConfig(path.to_path_buf()),
        vocab_size,
        n_embd,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        max_positions,
        pad_id,
        layers: Vec::new(),
        embedding_scale: None,
        absolute_positions: None,
        embedding_norm: None,
        token_types: None,
        head: if tie {
            OutputHead::Tied
        } else {
            OutputHead::Untied
        },
        logits: LogitTransform::default(),
        tensors: arch.tensor_names(),
    };
    match arch.family() {
        ModelFamily::RopeDecoder => rope_decoder(r, &mut spec, n_layers)?,
        ModelFamily::BertEncoder => {
            spec.head = OutputHead::None;
            spec.token_types = Some(r.usize("type_vocab_size")?.unwrap_or(2));
            if let Some(kind) = r.get("position_embedding_type")
                && kind.as_str() != Some("absolute")
            {
                return Err(DecoderInputError::UnsupportedSetting {
                    path: path.to_path_buf(),
                    key: r.cfg.key_path("position_embedding_type"),
                    value: kind.to_string(),
                    reason: "only `absolute` is",
                });
            }
            // RoBERTa reads row `padding_idx + 1 + position` (fairseq's make_positions).
            let offset = match arch {
                Architecture::Roberta => pad_id.map_or(0, |p| p + 1),
                _ => 0,
            };
            if offset >= max_positions {
                return Err(DecoderInputError::BadValue {
                    path: path.to_path_buf(),
                    key: r.cfg.key_path("pad_token_id"),
                    value: pad_id.map_or_else(String::new, |p| p.to_string()),
                    expected: "below max_position_embeddings - 1 (RoBERTa's positions start at pad_token_id + 1)",
                });
            }
            spec.absolute_positions = Some(AbsolutePositions::Learned {
                rows: max_positions,
                offset,
            });
            spec.max_positions = max_positions - offset;
            spec.embedding_norm = Some(EmbeddingNorm {
                eps: r.f64("layer_norm_eps")?.unwrap_or(1e-12),
                bias: true,
            });
            spec.layers =
                vec![LayerPositions::nope(LayerAttention::FullAttention); n_layers.unwrap_or(1)];
        }
        ModelFamily::Gpt2Decoder => {
            spec.head = OutputHead::Tied;
            spec.absolute_positions = Some(AbsolutePositions::Learned {
                rows: max_positions,
                offset: 0,
            });
            spec.layers =
                vec![LayerPositions::nope(LayerAttention::FullAttention); n_layers.unwrap_or(1)];
        }
    }
    Ok(spec)
}

/// Key/value heads: `num_key_value_heads` (absent or null: `n_heads`), or Falcon's
/// `num_kv_heads` / `multi_query`.
fn kv_heads(
    r: &Reader<'_>,
    arch: Architecture,
    n_heads: usize,
) -> Result<usize, DecoderInputError> {
    if arch == Architecture::Falcon {
        let new_arch = r.bool("new_decoder_architecture")?.unwrap_or(false);
        let multi_query = r.bool("multi_query")?.unwrap_or(true);
        let kv = r.usize("num_kv_heads")?;
        return Ok(if new_arch {
            kv.unwrap_or(n_heads)
        } else if multi_query {
            1
        } else {
            n_heads
        });
    }
    Ok(r.usize("num_key_value_heads")?.unwrap_or(n_heads))
}

/// The layer-type names of `layer_types`.
fn layer_types(r: &Reader<'_>) -> Result<Option<Vec<LayerAttention>>, DecoderInputError> {
    let Some(value) = r.get("layer_types") else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .ok_or_else(|| r.cfg.bad("layer_types", value, "a list"))?;
    list.iter()
        .map(|t| match t.as_str() {
            Some("full_attention") => Ok(LayerAttention::FullAttention),
            Some("sliding_attention") => Ok(LayerAttention::SlidingAttention),
            Some("chunked_attention") => Ok(LayerAttention::ChunkedAttention),
            _ => Err(r.cfg.bad(
                "layer_types",
                t,
                "full_attention, sliding_attention or chunked_attention",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// The rope sections of a config: one for every layer, or (Gemma 3, ModernBERT) one per
/// layer type.
struct RopeSections {
    main: RopeConfig,
    sliding: Option<RopeConfig>,
    mrope_section: Option<Vec<usize>>,
}

fn rope_decoder(
    r: &Reader<'_>,
    spec: &mut ModelSpec,
    n_layers: Option<usize>,
) -> Result<(), DecoderInputError> {
    let arch = spec.architecture;
    let path = r.cfg.path;
    let rope_width = match arch {
        Architecture::DeepseekV2 | Architecture::DeepseekV3 => {
            let rope = r.required_first_usize(&["qk_rope_head_dim"])?;
            let nope = r.usize("qk_nope_head_dim")?.unwrap_or(0);
            spec.head_dim = rope + nope;
            rope
        }
        _ => spec.head_dim,
    };
    let sections = rope_sections(r, arch, rope_width, spec.max_positions)?;
    let mut main = sections.main;
    let mut deinterleave = false;
    main.layout = arch.hf_layout();
    if arch == Architecture::DeepseekV3 && r.bool("rope_interleave")?.unwrap_or(true) {
        main.layout = RopeLayout::Interleaved;
        deinterleave = true;
    }
    if arch == Architecture::GptJ {
        main.layout = RopeLayout::Interleaved;
    }
    let types = layer_types(r)?;
    let n = match (n_layers, &types) {
        (Some(n), Some(t)) if t.len() != n => {
            return Err(DecoderInputError::BadValue {
                path: path.to_path_buf(),
                key: r.cfg.key_path("layer_types"),
                value: format!("{} entries", t.len()),
                expected: "one entry per layer (num_hidden_layers)",
            });
        }
        (Some(n), _) => n,
        (None, Some(t)) => t.len(),
        (None, None) => 0,
    };
    let attention = |il: usize| -> LayerAttention {
        types
            .as_ref()
            .map_or(LayerAttention::FullAttention, |t| t[il])
    };
    let rotary = |il: usize, rope: &RopeConfig| {
        let mut layer = LayerPositions::rotary(attention(il), rope.clone());
        layer.deinterleave_output = deinterleave;
        layer.mrope_section.clone_from(&sections.mrope_section);
        layer
    };
    let uniform = |rope: &RopeConfig| -> Vec<LayerPositions> {
        if n == 0 {
            vec![rotary(0, rope)]
        } else {
            (0..n).map(|il| rotary(il, rope)).collect()
        }
    };
    spec.layers = match arch {
        Architecture::ModernBert => {
            // v5: nested rope_parameters and layer_types; v4: global_rope_theta,
            // local_rope_theta and global_attn_every_n_layers (default 3).
            let local = match &sections.sliding {
                Some(local) => local.clone(),
                None => RopeConfig::new(
                    rope_width,
                    r.f64("local_rope_theta")?.unwrap_or(10_000.0),
                    main.layout,
                ),
            };
            let types = match &types {
                Some(t) => t.clone(),
                None => {
                    let every = r.usize("global_attn_every_n_layers")?.unwrap_or(3).max(1);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    pattern_types(n, |il| il % every != 0)
                }
            };
            by_layer_type(&types, &local, &main)
        }
        Architecture::Gemma3 => {
            r.mark(&["sliding_window_pattern", "_sliding_window_pattern"]);
            let sliding = sections.sliding.clone().unwrap_or_else(|| {
                RopeConfig::new(rope_width, 10_000.0, main.layout).with_rotary_dim(main.rotary_dim)
            });
            let types = match &types {
                Some(t) => t.clone(),
                None => {
                    let pattern = r
                        .first_usize(&["sliding_window_pattern", "_sliding_window_pattern"])?
                        .unwrap_or(6);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    pattern_types(n, |il| pattern == 0 || (il + 1) % pattern != 0)
                }
            };
            by_layer_type(&types, &sliding, &main)
        }
        Architecture::SmolLm3 | Architecture::Llama4 => {
            let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
            let uses_rope = no_rope_layers(r, n)?;
            let temperature = if arch == Architecture::Llama4
                && r.bool("attn_temperature_tuning")?.unwrap_or(true)
            {
                Some(AttentionTemperature {
                    floor_scale: r.f64("floor_scale")?.unwrap_or(8192.0),
                    attn_scale: r.f64("attn_scale")?.unwrap_or(0.1),
                })
            } else {
                r.mark(&["attn_temperature_tuning", "floor_scale", "attn_scale"]);
                None
            };
            (0..n)
                .map(|il| {
                    if uses_rope[il] {
                        rotary(il, &main)
                    } else {
                        let mut layer = LayerPositions::nope(attention(il));
                        layer.q_scale = temperature;
                        layer
                    }
                })
                .collect()
        }
        Architecture::Exaone4 => {
            // modeling_exaone4: `if self.sliding_window is None or self.is_sliding`.
            let sliding_window = r.usize("sliding_window")?;
            r.mark(&["sliding_window_pattern"]);
            match (sliding_window, &types) {
                (None, _) => uniform(&main),
                (Some(_), Some(t)) => t
                    .iter()
                    .enumerate()
                    .map(|(il, &kind)| {
                        if kind == LayerAttention::SlidingAttention {
                            rotary(il, &main)
                        } else {
                            LayerPositions::nope(kind)
                        }
                    })
                    .collect(),
                (Some(_), None) => {
                    let pattern = r.cfg.usize("sliding_window_pattern")?.unwrap_or(4);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    (0..n)
                        .map(|il| {
                            if pattern != 0 && (il + 1) % pattern != 0 {
                                rotary(il, &main).with_attention(LayerAttention::SlidingAttention)
                            } else {
                                LayerPositions::nope(LayerAttention::FullAttention)
                            }
                        })
                        .collect()
                }
            }
        }
        _ => uniform(&main),
    };
    if n > 0 {
        spec.n_layers = Some(spec.layers.len());
    }

    // The transforms of the input and output sides.
    if arch.scales_embeddings_by_sqrt_n_embd() {
        spec.embedding_scale = Some(EmbeddingScale::SqrtNEmbd);
    }
    match arch {
        Architecture::Granite => {
            spec.embedding_scale = r
                .f64("embedding_multiplier")?
                .filter(|&m| m != 1.0)
                .map(EmbeddingScale::Multiplier);
            spec.logits.divisor = r.f64("logits_scaling")?.filter(|&d| d != 1.0);
        }
        Architecture::Cohere => {
            spec.logits.multiplier = Some(r.f64("logit_scale")?.unwrap_or(0.0625));
        }
        Architecture::Gemma2 => {
            // Gemma2Config's default is 30; an explicit null turns it off.
            spec.logits.softcap = match r.cfg.object.get("final_logit_softcapping") {
                None => Some(30.0),
                Some(_) => r.f64("final_logit_softcapping")?,
            };
        }
        Architecture::Gemma3 => {
            spec.logits.softcap = r.f64("final_logit_softcapping")?;
        }
        Architecture::ModernBert => {
            spec.embedding_norm = Some(EmbeddingNorm {
                eps: r.f64("norm_eps")?.unwrap_or(1e-5),
                bias: r.bool("norm_bias")?.unwrap_or(false),
            });
            if !r.bool("decoder_bias")?.unwrap_or(true) {
                spec.tensors.head_bias.clear();
            }
        }
        Architecture::Falcon if r.bool("alibi")?.unwrap_or(false) => {
            return Err(DecoderInputError::UnsupportedSetting {
                path: path.to_path_buf(),
                key: r.cfg.key_path("alibi"),
                value: "true".to_owned(),
                reason: "Falcon with ALiBi has no rotary positions; tokenloom builds Falcon with RoPE",
            });
        }
        _ => {}
    }
    Ok(())
}

/// `n` layer types: sliding where `sliding(layer)`, full elsewhere.
pub(super) fn pattern_types(n: usize, sliding: impl Fn(usize) -> bool) -> Vec<LayerAttention> {
    (0..n)
        .map(|il| {
            if sliding(il) {
                LayerAttention::SlidingAttention
            } else {
                LayerAttention::FullAttention
            }
        })
        .collect()
}

/// Every layer rotating with `sliding` or `full` by its type (Gemma 3, ModernBERT).
pub(super) fn by_layer_type(
    types: &[LayerAttention],
    sliding: &RopeConfig,
    full: &RopeConfig,
) -> Vec<LayerPositions> {
    types
        .iter()
        .map(|&t| {
            let rope = if t == LayerAttention::SlidingAttention {
                sliding
            } else {
                full
            };
            LayerPositions::rotary(t, rope.clone())
        })
        .collect()
}

impl LayerPositions {
    fn with_attention(mut self, attention: LayerAttention) -> Self {
        self.attention = attention;
        self
    }
}

/// SmolLM3's and Llama 4's `no_rope_layers`: 1 where the layer rotates, 0 where it does
/// not; absent, every `no_rope_layer_interval`-th layer (default 4) is NoPE.
fn no_rope_layers(r: &Reader<'_>, n: usize) -> Result<Vec<bool>, DecoderInputError> {
    let interval = r.usize("no_rope_layer_interval")?.unwrap_or(4);
    match r.get("no_rope_layers") {
        Some(value) => {
            let list = value
                .as_array()
                .ok_or_else(|| r.cfg.bad("no_rope_layers", value, "a list of 0 and 1"))?;
            if list.len() != n {
                return Err(DecoderInputError::BadValue {
                    path: r.cfg.path.to_path_buf(),
                    key: r.cfg.key_path("no_rope_layers"),
                    value: format!("{} entries", list.len()),
                    expected: "one entry per layer (num_hidden_layers)",
                });
            }
            list.iter()
                .map(|v| match v.as_u64() {
                    Some(0) => Ok(false),
                    Some(1) => Ok(true),
                    _ => Err(r.cfg.bad("no_rope_layers", v, "a list of 0 and 1")),
                })
                .collect()
        }
        None if interval == 0 => {
            Err(r
                .cfg
                .bad("no_rope_layer_interval", &Value::from(0), "at least 1"))
        }
        None => Ok((0..n).map(|il| (il + 1) % interval != 0).collect()),
    }
}

/// Keys inside a rope section that the spec (not the RoPE parser) reads.
const SPEC_SECTION_KEYS: &[&str] = &["mrope_section", "mrope_interleaved"];

fn rope_sections(
    r: &Reader<'_>,
    arch: Architecture,
    rope_width: usize,
    max_positions: usize,
) -> Result<RopeSections, DecoderInputError> {
    let path = r.cfg.path;
    let original = r.usize("original_max_position_embeddings")?;
    let top_theta = r.get("rope_theta").or(match arch {
        Architecture::GptNeoX => r.get("rotary_emb_base"),
        Architecture::ModernBert => r.get("global_rope_theta"),
        _ => None,
    });
    let top_partial = partial_rotary(r, arch, rope_width)?;
    let v5 = r.get("rope_parameters");
    let v4 = r.get("rope_scaling");
    let context = |section: &'static str| RopeSection {
        path: section,
        head_dim: rope_width,
        max_position_embeddings: max_positions,
        original_max_position_embeddings: original,
    };
    // The section objects with the top-level theta and partial factor merged in where
    // the section does not state them (transformers' `setdefault`: the section wins);
    // absent everywhere, the architecture's default theta.
    let merge = |section: &Object| -> Object {
        let mut p = section.clone();
        for (key, top) in [
            ("rope_theta", top_theta.cloned()),
            ("partial_rotary_factor", top_partial.clone()),
        ] {
            if let Some(top) = top
                && p.get(key).is_none_or(Value::is_null)
            {
                p.insert(key.to_owned(), top);
            }
        }
        if p.get("rope_theta").is_none_or(Value::is_null) {
            p.insert("rope_theta".to_owned(), arch.hf_default_theta().into());
        }
        p
    };
    let mut mrope_section = None;
    let mut take_spec_keys = |p: &mut Object, path_name: &str| -> Result<(), DecoderInputError> {
        for key in SPEC_SECTION_KEYS {
            if let Some(v) = p.remove(*key) {
                if arch != Architecture::Qwen2Vl {
                    return Err(DecoderInputError::UnknownConfigKey {
                        path: path.to_path_buf(),
                        key: format!("{}{path_name}.{key}", r.cfg.prefix),
                        architecture: arch.name(),
                    });
                }
                if *key == "mrope_section" {
                    let list = v
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| r.cfg.bad(key, &v, "a list of non-negative integers"))?;
                    mrope_section = Some(list);
                } else if v.as_bool() == Some(true) {
                    return Err(DecoderInputError::UnsupportedSetting {
                        path: path.to_path_buf(),
                        key: format!("{}{path_name}.{key}", r.cfg.prefix),
                        value: v.to_string(),
                        reason: "interleaved M-RoPE sections (Qwen3-VL) are not implemented",
                    });
                }
            }
        }
        // v4's `{"type": "mrope"}` is the default rope with sections (transformers
        // rewrites it so).
        let ty = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(Value::as_str);
        if ty == Some("mrope") && arch == Architecture::Qwen2Vl {
            p.remove("type");
            p.insert("rope_type".to_owned(), "default".into());
        }
        Ok(())
    };
    let section = |p: &Object, name: &'static str| -> Result<RopeConfig, DecoderInputError> {
        Ok(parse_rope_section(p, &context(name))?)
    };
    match (v5, v4) {
        (Some(_), Some(_)) => Err(DecoderInputError::ConflictingSettings {
            path: path.to_path_buf(),
            first: r.cfg.key_path("rope_parameters"),
            second: format!("{} (use one spelling)", r.cfg.key_path("rope_scaling")),
        }),
        (Some(value), None) => {
            let object = value
                .as_object()
                .ok_or_else(|| r.cfg.bad("rope_parameters", value, "an object"))?;
            let nested: Vec<&str> = ["full_attention", "sliding_attention", "chunked_attention"]
                .into_iter()
                .filter(|k| object.get(*k).is_some_and(Value::is_object))
                .collect();
            if nested.is_empty() {
                let mut p = merge(object);
                take_spec_keys(&mut p, "rope_parameters")?;
                let main = section(&p, "rope_parameters")?;
                return Ok(RopeSections {
                    main,
                    sliding: None,
                    mrope_section,
                });
            }
            if let Some(extra) = object.keys().find(|k| !nested.contains(&k.as_str())) {
                return Err(DecoderInputError::UnknownConfigKey {
                    path: path.to_path_buf(),
                    key: format!("{}rope_parameters.{extra}", r.cfg.prefix),
                    architecture: arch.name(),
                });
            }
            let get = |key: &'static str,
                       name: &'static str|
             -> Result<Option<RopeConfig>, DecoderInputError> {
                match object.get(key).and_then(Value::as_object) {
                    Some(o) => section(&merge(o), name).map(Some),
                    None => Ok(None),
                }
            };
            let full = get("full_attention", "rope_parameters.full_attention")?;
            let sliding = get("sliding_attention", "rope_parameters.sliding_attention")?;
            let main = full
                .clone()
                .or_else(|| sliding.clone())
                .ok_or_else(|| r.cfg.missing("rope_parameters.full_attention"))?;
            Ok(RopeSections {
                main,
                sliding,
                mrope_section: None,
            })
        }
        (None, v4) => {
            let scaling = match v4 {
                Some(Value::Object(s)) => s.clone(),
                Some(other) => return Err(r.cfg.bad("rope_scaling", other, "an object or null")),
                None => Object::new(),
            };
            if scaling.contains_key("rope_theta") {
                return Err(DecoderInputError::UnknownConfigKey {
                    path: path.to_path_buf(),
                    key: format!("{}rope_scaling.rope_theta", r.cfg.prefix),
                    architecture: arch.name(),
                });
            }
            let mut p = merge(&scaling);
            take_spec_keys(&mut p, "rope_scaling")?;
            let main = section(&p, "rope_scaling")?;
            // Gemma 3 (v4): the sliding layers' base, default rope type.
            let sliding = match (arch, r.f64("rope_local_base_freq")?) {
                (Architecture::Gemma3, base) => Some(
                    RopeConfig::new(rope_width, base.unwrap_or(10_000.0), main.layout)
                        .with_rotary_dim(main.rotary_dim),
                ),
                (_, Some(_)) => {
                    return Err(DecoderInputError::UnknownConfigKey {
                        path: path.to_path_buf(),
                        key: r.cfg.key_path("rope_local_base_freq"),
                        architecture: arch.name(),
                    });
                }
                (_, None) => None,
            };
            Ok(RopeSections {
                main,
                sliding,
                mrope_section,
            })
        }
    }
}

/// The top-level partial rotary factor, as a JSON number: `partial_rotary_factor`,
/// GPT-NeoX's `rotary_pct`, StableLM's `rope_pct`, GPT-J's `rotary_dim` (as a fraction
/// of the head), or the config class's default (Phi 0.5, GPT-NeoX and StableLM 0.25).
fn partial_rotary(
    r: &Reader<'_>,
    arch: Architecture,
    head_dim: usize,
) -> Result<Option<Value>, DecoderInputError> {
    let explicit = match arch {
        Architecture::GptNeoX => r.get("partial_rotary_factor").or(r.get("rotary_pct")),
        Architecture::StableLm => r.get("partial_rotary_factor").or(r.get("rope_pct")),
        Architecture::GptJ => {
            return match r.usize("rotary_dim")? {
                // rotary_dim / head_dim, exact in f64 for these sizes; the RoPE parser
                // floors head_dim · factor back to rotary_dim.
                #[allow(clippy::cast_precision_loss)]
                Some(d) if d <= head_dim && head_dim > 0 => {
                    Ok(Some(Value::from(d as f64 / head_dim as f64)))
                }
                Some(d) => Err(DecoderInputError::BadValue {
                    path: r.cfg.path.to_path_buf(),
                    key: r.cfg.key_path("rotary_dim"),
                    value: d.to_string(),
                    expected: "at most the head size n_embd / n_head",
                }),
                None => Ok(None),
            };
        }
        _ => r.get("partial_rotary_factor"),
    };
    if let Some(v) = explicit {
        if !v.is_number() {
            return Err(r.cfg.bad("partial_rotary_factor", v, "a number"));
        }
        return Ok(Some(v.clone()));
    }
    // Only when no section states it: the v5 section carries its own.
    let in_section = r
        .cfg
        .get("rope_parameters")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("partial_rotary_factor"));
    Ok(match arch {
        _ if in_section => None,
        Architecture::Phi => Some(0.5.into()),
        Architecture::GptNeoX | Architecture::StableLm => Some(0.25.into()),
        _ => None,
    })
}
