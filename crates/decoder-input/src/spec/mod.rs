//! The model spec: everything tokenloom knows about a model, parsed once from its
//! HuggingFace `config.json`, Meta `params.json` or GGUF metadata, and read by the
//! loaders, [`DecoderInput`](crate::DecoderInput) and the CLI.
//!
//! A [`ModelSpec`] says which [`Architecture`] the model is, its sizes and head counts,
//! **per layer** what attention does to q and k ([`LayerPositions`]: a RoPE rotation with
//! its settings, or none, and any position-dependent scale of q), how the looked-up rows
//! are scaled ([`EmbeddingScale`]), whether absolute positions are added
//! ([`AbsolutePositions`]), the output head ([`OutputHead`]) and what is applied to the
//! logits ([`LogitTransform`]), the pad id and the tensor names ([`TensorNames`]).
//!
//! Strictness: an architecture the spec does not know is
//! [`DecoderInputError::UnknownModelType`]; a `config.json` key that the spec neither
//! handles nor lists as a block-internal or bookkeeping key
//! ([`DecoderInputError::UnknownConfigKey`]) is an error naming it, so no setting that
//! changes the numbers is ignored without a word.
//!
//! Adding an architecture: a variant of [`Architecture`] and its answers in `arch.rs`
//! (the compiler lists every question), its keys in `hf_keys.rs`, a fixture from
//! `tests/data/architectures/generate.py`, and a line in the fixture test; see
//! docs/architecture.md.

mod arch;
mod describe;
mod gguf;
mod gguf_rope;
mod hf;
mod hf_keys;
mod hf_layers;
mod hf_rope;
mod json;
mod limits;
mod logit_transform;
mod meta;

use std::path::{Path, PathBuf};

use tokenloom_positions::{RopeConfig, RopeScaling};

pub use arch::{Architecture, ModelFamily};
pub(crate) use describe::describe_layers;
use describe::layer_groups;
pub use gguf_rope::{GgufRopeType, gguf_rope_type};
pub use json::{MAX_CONFIG_BYTES, read_config_text};
pub use limits::MAX_LAYERS;
pub use logit_transform::LogitTransform;

use crate::error::DecoderInputError;

/// Which file a [`ModelSpec`] was read from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecSource {
    /// A HuggingFace `config.json`.
    HfConfig(PathBuf),
    /// A Meta `params.json` (LLaMA reference code).
    MetaParams(PathBuf),
    /// GGUF metadata (llama.cpp).
    Gguf(PathBuf),
}

impl SpecSource {
    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            SpecSource::HfConfig(p) | SpecSource::MetaParams(p) | SpecSource::Gguf(p) => p,
        }
    }
}

/// What kind of attention a layer runs, in HuggingFace's `layer_types` spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LayerAttention {
    /// Attention over the whole context (`full_attention`).
    FullAttention,
    /// Attention over a sliding window (`sliding_attention`).
    SlidingAttention,
    /// Attention within fixed chunks of the context (`chunked_attention`, Llama 4).
    ChunkedAttention,
}

impl LayerAttention {
    /// `full`, `sliding` or `chunked`.
    #[must_use]
    pub fn short_name(self) -> &'static str {
        match self {
            LayerAttention::FullAttention => "full",
            LayerAttention::SlidingAttention => "sliding",
            LayerAttention::ChunkedAttention => "chunked",
        }
    }
}

/// Llama 4's attention-temperature tuning of its NoPE layers: q is multiplied by
/// `log1p(floor((position + 1) / floor_scale)) · attn_scale + 1` (transformers'
/// `Llama4TextAttention`, which takes the position from the cache position, that is the
/// token's index plus the tokens already in the KV cache).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionTemperature {
    /// `floor_scale`.
    pub floor_scale: f64,
    /// `attn_scale`.
    pub attn_scale: f64,
}

impl AttentionTemperature {
    /// The factor that multiplies q at `position`, computed in f32 as transformers does.
    #[must_use]
    pub fn scale(&self, position: usize) -> f32 {
        // positions are far below 2^24 in practice; the f32 arithmetic is transformers'
        #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
        let (p, floor_scale, attn_scale) = (
            position as f32,
            self.floor_scale as f32,
            self.attn_scale as f32,
        );
        ((p + 1.0) / floor_scale).floor().ln_1p() * attn_scale + 1.0
    }
}

/// What attention does to q and k in one layer.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LayerPositions {
    /// The layer's attention kind.
    pub attention: LayerAttention,
    /// The rotation of q and k, or `None` for a layer without positions in attention
    /// (NoPE: SmolLM3's and Llama 4's `no_rope_layers`, EXAONE 4's global layers).
    pub rope: Option<RopeConfig>,
    /// DeepSeek-V3 with `rope_interleave`: the rotated pairs are consecutive
    /// (interleaved), and transformers returns each rotated head de-interleaved (even
    /// elements, then odd ones). A permutation of q and k alike: `q·k` is unchanged.
    pub deinterleave_output: bool,
    /// A position-dependent scale of q (Llama 4's NoPE layers).
    pub q_scale: Option<AttentionTemperature>,
    /// Qwen2-VL's M-RoPE: how many rotated pairs take their position from the temporal,
    /// height and width position ids. Text-only position ids are equal on the three axes,
    /// and the rotation is then the 1-D RoPE of `rope`.
    pub mrope_section: Option<Vec<usize>>,
}

impl LayerPositions {
    fn rotary(attention: LayerAttention, rope: RopeConfig) -> Self {
        Self {
            attention,
            rope: Some(rope),
            deinterleave_output: false,
            q_scale: None,
            mrope_section: None,
        }
    }

    fn nope(attention: LayerAttention) -> Self {
        Self {
            attention,
            rope: None,
            deinterleave_output: false,
            q_scale: None,
            mrope_section: None,
        }
    }
}

/// How the looked-up rows are scaled before the first block.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmbeddingScale {
    /// Gemma: `√n_embd`, rounded to the weights' dtype first (transformers'
    /// `ScaledWordEmbedding` holds it as a tensor cast to the weight dtype; llama.cpp
    /// computes `sqrtf` in f32).
    SqrtNEmbd,
    /// A multiplier from the config (Granite's `embedding_multiplier`).
    Multiplier(f64),
}

/// A LayerNorm over the embedding sum, the last step before the first layer (BERT,
/// RoBERTa, ModernBERT): `(x − mean) / √(var + eps) · weight (+ bias)`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct EmbeddingNorm {
    /// The epsilon added to the variance.
    pub eps: f64,
    /// Whether the norm has a bias (ModernBERT's `norm_bias` can be false).
    pub bias: bool,
}

/// Absolute positions added to the embeddings.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum AbsolutePositions {
    /// A learned table `(rows, n_embd)`; a token at position `p` reads row `p + offset`
    /// (RoBERTa: `padding_idx + 1`, 0 elsewhere).
    Learned {
        /// Rows of the table.
        rows: usize,
        /// Added to every position id.
        offset: usize,
    },
}

/// The output head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum OutputHead {
    /// Shares the token table.
    Tied,
    /// Its own weight (`TensorNames::head`).
    Untied,
    /// No language-model head (an encoder).
    None,
}

impl OutputHead {
    /// `tied`, `untied` or `none`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OutputHead::Tied => "tied",
            OutputHead::Untied => "untied",
            OutputHead::None => "none",
        }
    }
}

/// Where a checkpoint keeps the tensors of the input side and the head.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct TensorNames {
    /// The token table, first name found wins.
    pub embedding: Vec<String>,
    /// An untied head's weight.
    pub head: Vec<String>,
    /// The head's bias, when the architecture has one (Phi, GPT-J).
    pub head_bias: Vec<String>,
    /// A learned position table.
    pub positions: Vec<String>,
    /// A token-type table (BERT).
    pub token_types: Vec<String>,
    /// The embedding LayerNorm's weight.
    pub embedding_norm_weight: Vec<String>,
    /// The embedding LayerNorm's bias.
    pub embedding_norm_bias: Vec<String>,
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|&s| s.to_owned()).collect()
}

/// Everything tokenloom knows about a model: see the [module docs](self).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ModelSpec {
    /// The architecture.
    pub architecture: Architecture,
    /// The file it was read from.
    pub source: SpecSource,
    /// The number of token ids.
    pub vocab_size: Option<usize>,
    /// The embedding width.
    pub n_embd: usize,
    /// The number of decoder (or encoder) layers (`None` when the file does not say and
    /// every layer is alike: [`layers`](Self::layers) then holds one entry for all).
    pub n_layers: Option<usize>,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (grouped-query attention).
    pub n_kv_heads: usize,
    /// The size of one attention head.
    pub head_dim: usize,
    /// The context length (`max_position_embeddings`), which the loaders use as the
    /// decoder input's `max_positions`.
    pub max_positions: usize,
    /// The padding id.
    pub pad_id: Option<usize>,
    /// What attention does to q and k, per layer (first layer first).
    pub layers: Vec<LayerPositions>,
    /// How the looked-up rows are scaled.
    pub embedding_scale: Option<EmbeddingScale>,
    /// Absolute positions added to the embeddings.
    pub absolute_positions: Option<AbsolutePositions>,
    /// A LayerNorm applied to the embedding sum before the first layer.
    pub embedding_norm: Option<EmbeddingNorm>,
    /// The number of token types (BERT's segments), when the model adds them.
    pub token_types: Option<usize>,
    /// The output head.
    pub head: OutputHead,
    /// What is applied to the logits.
    pub logits: LogitTransform,
    /// The tensor names.
    pub tensors: TensorNames,
}

impl ModelSpec {
    /// Reads a HuggingFace `config.json`, a Meta `params.json` (recognised by its `dim`
    /// and `n_heads`) from a file.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ConfigRead`] and the errors of [`ModelSpec::from_hf_json`] or
    /// [`ModelSpec::from_meta_json`].
    pub fn read(path: &Path) -> Result<Self, DecoderInputError> {
        let text = json::read_config_text(path)?;
        let object = json::parse_object(&text, path)?;
        if object.contains_key("dim") && object.contains_key("n_heads") {
            meta::from_meta(&object, path)
        } else {
            hf::from_hf(&object, path)
        }
    }

    /// Parses the text of a HuggingFace `config.json` (transformers 4 and 5 spellings).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ConfigJson`] for text that is not a JSON object,
    /// [`DecoderInputError::UnknownModelType`] for an architecture the spec does not
    /// know, [`DecoderInputError::UnknownConfigKey`] for a key it would ignore,
    /// [`DecoderInputError::MissingKey`] and [`DecoderInputError::BadValue`] for missing
    /// or malformed values, and the RoPE parser's errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_decoder_input::{Architecture, ModelSpec, OutputHead};
    ///
    /// let spec = ModelSpec::from_hf_json(r#"{
    ///     "model_type": "granite", "vocab_size": 49155, "hidden_size": 2048,
    ///     "num_hidden_layers": 2, "num_attention_heads": 32, "num_key_value_heads": 8,
    ///     "max_position_embeddings": 4096, "rope_theta": 10000.0,
    ///     "embedding_multiplier": 12.0, "logits_scaling": 8.0, "tie_word_embeddings": true
    /// }"#, "config.json".as_ref())?;
    /// assert_eq!(spec.architecture, Architecture::Granite);
    /// assert_eq!((spec.head_dim, spec.n_kv_heads), (64, 8));
    /// assert_eq!(spec.logits.divisor, Some(8.0));
    /// assert_eq!(spec.head, OutputHead::Tied);
    ///
    /// let err = ModelSpec::from_hf_json(r#"{"model_type": "granite", "vocab_size": 8,
    ///     "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
    ///     "max_position_embeddings": 8, "logits_softcap": 30.0}"#, "config.json".as_ref())
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("`logits_softcap`"), "{err}");
    /// # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
    /// ```
    pub fn from_hf_json(text: &str, path: &Path) -> Result<Self, DecoderInputError> {
        hf::from_hf(&json::parse_object(text, path)?, path)
    }

    /// Parses the text of a Meta `params.json`: interleaved RoPE, LLaMA 3.1's scaling
    /// when `use_scaled_rope` is true.
    ///
    /// # Errors
    ///
    /// As [`ModelSpec::from_hf_json`]; any key Meta's reference code does not define is
    /// [`DecoderInputError::UnknownConfigKey`].
    pub fn from_meta_json(text: &str, path: &Path) -> Result<Self, DecoderInputError> {
        meta::from_meta(&json::parse_object(text, path)?, path)
    }

    /// The spec of a GGUF file's metadata (llama.cpp's key names and rules).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::UnknownArchitecture`] for an architecture the spec does not
    /// know, [`DecoderInputError::MissingKey`], [`DecoderInputError::BadValue`] (a key of
    /// the wrong type names key, expected and found type),
    /// [`DecoderInputError::UnsupportedSetting`] and the RoPE validation errors.
    pub fn from_gguf(file: &tokenloom_io::GgufFile) -> Result<Self, DecoderInputError> {
        gguf::from_gguf(file)
    }

    /// A spec of `architecture` with what every reader states first; the rest — head
    /// counts, layers, transforms — at their neutral values for the reader to set.
    fn base(
        architecture: Architecture,
        source: SpecSource,
        n_embd: usize,
        max_positions: usize,
        pad_id: Option<usize>,
        head: OutputHead,
    ) -> Self {
        Self {
            architecture,
            source,
            vocab_size: None,
            n_embd,
            n_layers: None,
            n_heads: 1,
            n_kv_heads: 1,
            head_dim: n_embd,
            max_positions,
            pad_id,
            layers: Vec::new(),
            embedding_scale: None,
            absolute_positions: None,
            embedding_norm: None,
            token_types: None,
            head,
            logits: LogitTransform::default(),
            tensors: architecture.tensor_names(),
        }
    }

    /// The family of the architecture.
    #[must_use]
    pub fn family(&self) -> ModelFamily {
        self.architecture.family()
    }

    /// What attention does to q and k in layer `layer` (0-based), or `None` past the
    /// last layer (when the file states the number of layers).
    #[must_use]
    pub fn layer(&self, layer: usize) -> Option<&LayerPositions> {
        match self.n_layers {
            Some(_) => self.layers.get(layer),
            None => self.layers.first(),
        }
    }

    /// The RoPE settings most layers use: the first rotating full-attention layer's, else
    /// the first rotating layer's (`None` without RoPE).
    #[must_use]
    pub fn main_rope(&self) -> Option<&RopeConfig> {
        self.layers
            .iter()
            .find(|l| l.attention == LayerAttention::FullAttention && l.rope.is_some())
            .or_else(|| self.layers.iter().find(|l| l.rope.is_some()))
            .and_then(|l| l.rope.as_ref())
    }

    /// Whether any layer rotates q and k.
    #[must_use]
    pub fn has_rope(&self) -> bool {
        self.layers.iter().any(|l| l.rope.is_some())
    }

    /// The distinct per-layer pictures, each with the layers that share it, in order of
    /// first appearance.
    #[must_use]
    pub fn layer_groups(&self) -> Vec<(Vec<usize>, &LayerPositions)> {
        layer_groups(&self.layers)
    }

    /// The embedding scale as the loaders apply it to a `T` table: `√n_embd` rounded to
    /// f32 then to `T` (Gemma), or the multiplier rounded to f32 for f32 and half tables
    /// (PyTorch multiplies in f32).
    #[must_use]
    pub fn embedding_scale_for<T: tokenloom_tensor::Element>(&self) -> Option<f64> {
        let round = |x: f64| -> f64 {
            if T::DTYPE == tokenloom_tensor::DType::F64 {
                x
            } else {
                // f32 then T, as torch.tensor(x) (f32) .to(weight.dtype)
                #[allow(clippy::cast_possible_truncation)]
                let x32 = x as f32;
                T::from_f32_lossy(x32).as_f64()
            }
        };
        match self.embedding_scale? {
            // n_embd values are far below 2^53
            #[allow(clippy::cast_precision_loss)]
            EmbeddingScale::SqrtNEmbd => Some(round((self.n_embd as f64).sqrt())),
            EmbeddingScale::Multiplier(m) => Some(round(m)),
        }
    }

    /// One line per group of layers with the same treatment of q and k, for `inspect`:
    /// `layers 0-4, 6-10 (sliding): RoPE half-split head_dim 256 … theta 10000`.
    #[must_use]
    pub fn describe_layers(&self) -> Vec<String> {
        describe_layers(&self.layers)
    }

    fn path(&self) -> &Path {
        self.source.path()
    }

    /// Checks the invariants every reader must leave: sizes, head counts, one entry per
    /// layer, every RoPE valid, the transforms positive.
    fn validated(self) -> Result<Self, DecoderInputError> {
        let path = self.path().to_path_buf();
        for (name, value) in [
            ("n_embd", self.n_embd),
            ("n_heads", self.n_heads),
            ("head_dim", self.head_dim),
            ("max_positions", self.max_positions),
            ("n_layers", self.n_layers.unwrap_or(1)),
        ] {
            if value == 0 {
                return Err(DecoderInputError::BadValue {
                    path,
                    key: name.to_owned(),
                    value: "0".to_owned(),
                    expected: "at least 1",
                });
            }
        }
        if self.vocab_size == Some(0) {
            return Err(DecoderInputError::BadValue {
                path,
                key: "vocab_size".to_owned(),
                value: "0".to_owned(),
                expected: "at least 1",
            });
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return Err(DecoderInputError::BadValue {
                path,
                key: "n_kv_heads".to_owned(),
                value: self.n_kv_heads.to_string(),
                expected: "at least 1 and a divisor of n_heads",
            });
        }
        debug_assert_eq!(self.layers.len(), self.n_layers.unwrap_or(1));
        for layer in &self.layers {
            if let Some(rope) = &layer.rope {
                rope.validate()?;
                if let RopeScaling::LongRope(l) = &rope.scaling
                    && l.original_max_position_embeddings > self.max_positions
                {
                    return Err(DecoderInputError::BadValue {
                        path,
                        key: "original_max_position_embeddings".to_owned(),
                        value: l.original_max_position_embeddings.to_string(),
                        expected: "at most max_position_embeddings",
                    });
                }
            }
        }
        self.logits.validate(&path)?;
        if let Some(EmbeddingScale::Multiplier(m)) = self.embedding_scale
            && !(m.is_finite() && m > 0.0)
        {
            return Err(DecoderInputError::BadValue {
                path,
                key: "embedding multiplier".to_owned(),
                value: m.to_string(),
                expected: "positive and finite",
            });
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama4_temperature_matches_the_formula() {
        let t = AttentionTemperature {
            floor_scale: 8192.0,
            attn_scale: 0.1,
        };
        assert_eq!(t.scale(0), 1.0);
        assert_eq!(t.scale(8190), 1.0);
        let at = (2.0f32).ln() * 0.1 + 1.0;
        assert_eq!(t.scale(8191), at);
    }
}
