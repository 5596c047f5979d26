//! HuggingFace `config.json` → [`ModelSpec`], in transformers 4 and 5 spellings.
//!
//! Sources, per architecture: transformers 5.24's `configuration_<arch>.py` (defaults)
//! and `modeling_<arch>.py` (what the numbers are), and `modeling_rope_utils.py` (one
//! table of rope types, parsed by `tokenloom_positions::parse_rope_section`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Map, Value};

use super::arch::{Architecture, ModelFamily};
use super::hf_keys::may_stay_unread;
use super::hf_layers::rope_decoder;
use super::json::Config;
use super::{
    AbsolutePositions, EmbeddingNorm, LayerAttention, LayerPositions, ModelSpec, OutputHead,
    SpecSource,
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
