//! Meta's `params.json` (the LLaMA 1/2/3 reference code) → [`ModelSpec`].

use std::path::Path;

use serde_json::{Map, Value};
use tokenloom_positions::{Llama3Scaling, RopeConfig, RopeLayout, RopeScaling};

use super::arch::Architecture;
use super::json::Config;
use super::{LayerAttention, LayerPositions, LogitTransform, ModelSpec, OutputHead, SpecSource};
use crate::error::DecoderInputError;

/// Every key of Meta's `ModelArgs`; any other is an error.
const META_KEYS: &[&str] = &[
    "dim",
    "ffn_dim_multiplier",
    "max_batch_size",
    "max_seq_len",
    "multiple_of",
    "n_heads",
    "n_kv_heads",
    "n_layers",
    "norm_eps",
    "rope_theta",
    "use_scaled_rope",
    "vocab_size",
];

/// Read: `dim` and `n_heads` (required; `head_dim = dim / n_heads`), `n_kv_heads`,
/// `n_layers`, `vocab_size`, `rope_theta` (default 10000), `use_scaled_rope` (LLaMA 3.1's
/// scaling with Meta's hard-coded 8 / 1 / 4 / 8192), `max_seq_len` (default 2048, as
/// `ModelArgs`). The layout is interleaved, as Meta's `model.py` rotates (complex
/// products of consecutive pairs); the head is untied (`output.weight`).
pub(super) fn from_meta(
    root: &Map<String, Value>,
    path: &Path,
) -> Result<ModelSpec, DecoderInputError> {
    let cfg = Config {
        object: root,
        path,
        prefix: "",
    };
    if let Some(key) = root.keys().find(|k| !META_KEYS.contains(&k.as_str())) {
        return Err(DecoderInputError::UnknownConfigKey {
            path: path.to_path_buf(),
            key: key.clone(),
            architecture: "llama (Meta params.json)",
        });
    }
    let dim = cfg.required_usize("dim")?;
    let n_heads = cfg.required_usize("n_heads")?;
    if n_heads == 0 || !dim.is_multiple_of(n_heads) {
        return Err(DecoderInputError::HeadsDoNotDivide {
            path: path.to_path_buf(),
            n_heads,
            n_embd: dim,
        });
    }
    let n_kv_heads = cfg.usize("n_kv_heads")?.unwrap_or(n_heads);
    let n_layers =
        super::limits::check_layer_count(cfg.usize("n_layers")?, path, "n_layers".to_owned())?;
    let theta = cfg.f64("rope_theta")?.unwrap_or(10000.0);
    let scaling = if cfg.bool("use_scaled_rope")?.unwrap_or(false) {
        RopeScaling::Llama3(Llama3Scaling::llama_3_1())
    } else {
        RopeScaling::None
    };
    let head_dim = dim / n_heads;
    let rope = RopeConfig::new(head_dim, theta, RopeLayout::Interleaved).with_scaling(scaling);
    let vocab_size = match cfg.get("vocab_size") {
        // Meta's ModelArgs default, -1: "set from the tokenizer".
        Some(v) if v.as_i64() == Some(-1) => None,
        _ => cfg.usize("vocab_size")?,
    };
    let mut tensors = Architecture::Llama.tensor_names();
    tensors
        .embedding
        .insert(0, "tok_embeddings.weight".to_owned());
    tensors.head.insert(0, "output.weight".to_owned());
    ModelSpec {
        architecture: Architecture::Llama,
        source: SpecSource::MetaParams(path.to_path_buf()),
        vocab_size,
        n_embd: dim,
        n_layers,
        n_heads,
        n_kv_heads,
        head_dim,
        max_positions: cfg.usize("max_seq_len")?.unwrap_or(2048),
        pad_id: None,
        layers: vec![
            LayerPositions::rotary(LayerAttention::FullAttention, rope);
            n_layers.unwrap_or(1)
        ],
        embedding_scale: None,
        absolute_positions: None,
        embedding_norm: None,
        token_types: None,
        head: OutputHead::Untied,
        logits: LogitTransform::default(),
        tensors,
    }
    .validated()
}
