//! [`DecoderInputConfig`]: a serializable description of a decoder input.

use serde::{Deserialize, Serialize};
use tokenloom_embedding::Init;
use tokenloom_tensor::DType;

use crate::error::DecoderInputError;
use crate::scheme::PositionSchemeConfig;

/// Everything needed to build a [`crate::DecoderInput`] from scratch, as data. It
/// round-trips through JSON (serde_json) and bincode.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::{DecoderInputConfig, PositionSchemeConfig};
/// use tokenloom_positions::{RopeConfig, RopeLayout};
///
/// let config = DecoderInputConfig::new(32000, 4096, 4096)
///     .with_position_scheme(PositionSchemeConfig::Rope { rope: RopeConfig::new(128, 10000.0, RopeLayout::HalfSplit) });
/// let json = serde_json::to_string(&config).unwrap();
/// assert_eq!(serde_json::from_str::<DecoderInputConfig>(&json).unwrap(), config);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecoderInputConfig {
    /// The number of token ids.
    pub vocab_size: usize,
    /// The width of each embedding.
    pub n_embd: usize,
    /// The context length: positions must be below it.
    pub max_positions: usize,
    /// The padding token, if any (also the embedding's `padding_idx`, as LLaMA's
    /// `nn.Embedding(vocab_size, n_embd, pad_token_id)`).
    pub pad_id: Option<u32>,
    /// How positions enter the decoder (RoPE by default).
    pub position_scheme: PositionSchemeConfig,
    /// Whether the output head shares the embedding's weight (off by default).
    pub tie_word_embeddings: bool,
    /// The factor applied to tied logits (e.g. `1/√n_embd`); `None` means 1.
    pub logit_scale: Option<f64>,
    /// Multiplies the embeddings before positions are added (e.g. `√n_embd` as in
    /// Vaswani et al. and Gemma); `None` means 1.
    pub embedding_scale: Option<f64>,
    /// The element type of the tables.
    pub dtype: DType,
    /// How fresh tables are initialised.
    pub init: Init,
}

impl DecoderInputConfig {
    /// A LLaMA-style default: RoPE (head_dim 64, theta 10000, half-split), untied, f32,
    /// N(0, 0.02) init, no padding id, no scales.
    #[must_use]
    pub fn new(vocab_size: usize, n_embd: usize, max_positions: usize) -> Self {
        Self {
            vocab_size,
            n_embd,
            max_positions,
            pad_id: None,
            position_scheme: PositionSchemeConfig::Rope {
                rope: tokenloom_positions::RopeConfig::new(
                    64,
                    10000.0,
                    tokenloom_positions::RopeLayout::HalfSplit,
                ),
            },
            tie_word_embeddings: false,
            logit_scale: None,
            embedding_scale: None,
            dtype: DType::F32,
            init: Init::normal(0.02),
        }
    }

    /// Sets the position scheme.
    #[must_use]
    pub fn with_position_scheme(mut self, scheme: PositionSchemeConfig) -> Self {
        self.position_scheme = scheme;
        self
    }

    /// Sets the padding id.
    #[must_use]
    pub fn with_pad_id(mut self, pad_id: u32) -> Self {
        self.pad_id = Some(pad_id);
        self
    }

    /// Ties (or unties) the output head to the embedding.
    #[must_use]
    pub fn with_tied_head(mut self, tie: bool) -> Self {
        self.tie_word_embeddings = tie;
        self
    }

    /// Sets the embedding scale.
    #[must_use]
    pub fn with_embedding_scale(mut self, scale: f64) -> Self {
        self.embedding_scale = Some(scale);
        self
    }

    /// Sets the element type.
    #[must_use]
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = dtype;
        self
    }

    /// Sets the init.
    #[must_use]
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Checks the values that no other constructor checks.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ZeroSize`], [`DecoderInputError::BadScale`] and
    /// [`DecoderInputError::PadIdOutOfRange`].
    pub fn validate(&self) -> Result<(), DecoderInputError> {
        if self.max_positions == 0 {
            return Err(DecoderInputError::ZeroSize {
                name: "max_positions",
            });
        }
        for (field, value) in [
            ("embedding_scale", self.embedding_scale),
            ("logit_scale", self.logit_scale),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(DecoderInputError::BadScale {
                    name: field,
                    value: v,
                });
            }
        }
        if let Some(pad) = self.pad_id
            && pad as usize >= self.vocab_size
        {
            return Err(DecoderInputError::PadIdOutOfRange {
                pad_id: pad,
                vocab_size: self.vocab_size,
            });
        }
        Ok(())
    }
}
