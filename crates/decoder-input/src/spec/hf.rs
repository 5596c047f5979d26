//! HuggingFace `config.json` → [`ModelSpec`], in transformers 4 and 5 spellings.
//!
//! Sources, per architecture: transformers 5.24's `configuration_<arch>.py` (defaults)
//! and `modeling_<arch>.py` (what the numbers are), and `modeling_rope_utils.py` (one
//! table of rope types, parsed by `tokenloom_positions::parse_rope_section`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};
use tokenloom_positions::{RopeConfig, RopeLayout};

use super::arch::{Architecture, ModelFamily};
use super::hf_keys::may_stay_unread;
use super::hf_rope::rope_sections;
use super::json::Config;
use super::{
    AbsolutePositions, AttentionTemperature, EmbeddingNorm, EmbeddingScale, LayerAttention,
    LayerPositions, ModelSpec, OutputHead, SpecSource,
};
use crate::error::DecoderInputError;

type Object = Map<String, Value>;

/// A config object whose reads are remembered, so that the keys nobody read can be
/// checked at the end.
pub(super) struct Reader<'a> {
    pub(super) cfg: Config<'a>,
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
    pub(super) fn mark(&self, keys: &[&str]) -> Config<'a> {
        let mut read = self.read.borrow_mut();
        for key in keys {
            if let Some((k, _)) = self.cfg.object.get_key_value(*key) {
                read.insert(k.as_str());
            }
        }
        self.cfg
    }

    pub(super) fn usize(&self, key: &str) -> Result<Option<usize>, DecoderInputError> {
        self.mark(&[key]).usize(key)
    }

    pub(super) fn first_usize(&self, keys: &[&str]) -> Result<Option<usize>, DecoderInputError> {
        self.mark(keys).first_usize(keys)
    }

    pub(super) fn required_first_usize(&self, keys: &[&str]) -> Result<usize, DecoderInputError> {
        self.mark(keys).required_first_usize(keys)
    }

    pub(super) fn f64(&self, key: &str) -> Result<Option<f64>, DecoderInputError> {
        self.mark(&[key]).f64(key)
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, DecoderInputError> {
        self.mark(&[key]).bool(key)
    }

    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
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
    if nested.is_none() && WRAPPERS.contains(&model_type.as_str()) {
        // A wrapper in the flat v4 spelling (Qwen2-VL's released configs): its vision
        // keys sit beside the text model's.
        reader.mark(WRAPPER_KEYS);
    }
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
    let layers_key = if r.get("num_hidden_layers").is_some() {
        "num_hidden_layers"
    } else {
        "n_layer"
    };
    let n_layers = super::limits::check_layer_count(n_layers, path, r.cfg.key_path(layers_key))?;
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

    let head = if tie {
        OutputHead::Tied
    } else {
        OutputHead::Untied
    };
    let mut spec = ModelSpec::base(
        arch,
        SpecSource::HfConfig(path.to_path_buf()),
        n_embd,
        max_positions,
        pad_id,
        head,
    );
    spec.vocab_size = vocab_size;
    spec.n_layers = n_layers;
    spec.n_heads = n_heads;
    spec.n_kv_heads = n_kv_heads;
    spec.head_dim = head_dim;
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
            // Python truthiness, as transformers tests it: the released Llama 4 configs
            // store an integer (4) here.
            let tuning = match r.get("attn_temperature_tuning") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
                Some(other) => {
                    return Err(r
                        .cfg
                        .bad("attn_temperature_tuning", other, "a bool or a number"));
                }
            };
            let temperature = if arch == Architecture::Llama4 && tuning {
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
            // transformers' Gemma3ForCausalLM applies it, Gemma3ForConditionalGeneration
            // (the multimodal wrapper, whose text model sits in text_config) does not.
            if let (Some(cap), true) = (spec.logits.softcap, r.cfg.prefix == "text_config.") {
                return Err(DecoderInputError::UnsupportedSetting {
                    path: path.to_path_buf(),
                    key: r.cfg.key_path("final_logit_softcapping"),
                    value: cap.to_string(),
                    reason: "transformers' Gemma3ForCausalLM applies it and Gemma3ForConditionalGeneration does not; tokenloom does not guess which model is meant",
                });
            }
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
