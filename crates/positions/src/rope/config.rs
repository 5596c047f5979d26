//! [`RopeConfig`] and [`RopeLayout`]: what a rotary embedding is, as plain data.

use serde::{Deserialize, Serialize};

use super::scaling::RopeScaling;
use crate::error::PositionError;

/// Which elements of a head form the pairs that RoPE rotates. Picking the wrong one gives
/// plausible garbage, so it is always explicit.
///
/// Spelled `interleaved` / `half-split` everywhere (messages, the CLI's text and JSON,
/// serialized configs); `half_split`, the spelling of earlier versions, is still read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RopeLayout {
    /// Pairs `(x[2i], x[2i+1])`: Meta's reference `model.py`, GPT-J, ggml `NORMAL`, GGUF
    /// LLaMA checkpoints.
    Interleaved,
    /// Pairs `(x[i], x[i + rotary_dim/2])`: HuggingFace `rotate_half`, GPT-NeoX, ggml
    /// `NEOX`, HF LLaMA checkpoints (whose q/k weights were permuted on conversion).
    #[serde(alias = "half_split")]
    HalfSplit,
}

impl RopeLayout {
    /// The name used in messages: `interleaved` or `half-split`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            RopeLayout::Interleaved => "interleaved",
            RopeLayout::HalfSplit => "half-split",
        }
    }
}

/// The configuration of a rotary position embedding.
///
/// A plain data struct: build it with [`RopeConfig::new`] and the `with_*` setters (or
/// parse it from a model's config file, see [`crate::parse_rope_section`]); it is validated
/// once, when a [`crate::RopeCache`] is built from it.
///
/// - `head_dim`: the size of one attention head.
/// - `rotary_dim`: how many leading elements of each head are rotated (partial rotary,
///   e.g. `head_dim/4` for GPT-NeoX-style models); the rest pass through unchanged. Even,
///   `2 ≤ rotary_dim ≤ head_dim`.
/// - `theta`: the base of the frequencies `inv_freq_i = theta^(−2i/rotary_dim)` (10000
///   for LLaMA 1/2, 500000 for LLaMA 3).
/// - `layout`: which elements pair up, see [`RopeLayout`].
/// - `scaling`: context-extension scaling, see [`RopeScaling`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RopeConfig {
    /// The size of one attention head.
    pub head_dim: usize,
    /// The number of leading elements of each head that are rotated.
    pub rotary_dim: usize,
    /// The frequency base.
    pub theta: f64,
    /// Which elements pair up.
    pub layout: RopeLayout,
    /// Frequency scaling for long contexts.
    pub scaling: RopeScaling,
}

impl RopeConfig {
    /// Full-width RoPE (`rotary_dim = head_dim`) without scaling.
    #[must_use]
    pub fn new(head_dim: usize, theta: f64, layout: RopeLayout) -> Self {
        Self {
            head_dim,
            rotary_dim: head_dim,
            theta,
            layout,
            scaling: RopeScaling::None,
        }
    }

    /// Sets the number of rotated elements per head (partial rotary).
    #[must_use]
    pub fn with_rotary_dim(mut self, rotary_dim: usize) -> Self {
        self.rotary_dim = rotary_dim;
        self
    }

    /// Sets `rotary_dim = floor(head_dim · factor)`, as HuggingFace's
    /// `partial_rotary_factor`.
    #[must_use]
    pub fn with_partial_rotary_factor(mut self, factor: f64) -> Self {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let rotary_dim = (self.head_dim as f64 * factor).floor().max(0.0) as usize;
        self.rotary_dim = rotary_dim;
        self
    }

    /// Sets the frequency scaling.
    #[must_use]
    pub fn with_scaling(mut self, scaling: RopeScaling) -> Self {
        self.scaling = scaling;
        self
    }

    /// Sets the pair layout.
    #[must_use]
    pub fn with_layout(mut self, layout: RopeLayout) -> Self {
        self.layout = layout;
        self
    }

    /// Checks every parameter.
    ///
    /// # Errors
    ///
    /// [`PositionError::ZeroSize`] for `head_dim = 0`, [`PositionError::InvalidRotaryDim`]
    /// for an odd, zero or too-large `rotary_dim`, [`PositionError::InvalidParameter`] for
    /// `theta` not finite and > 1, and the scaling's own errors.
    pub fn validate(&self) -> Result<(), PositionError> {
        if self.head_dim == 0 {
            return Err(PositionError::ZeroSize { name: "head_dim" });
        }
        if self.rotary_dim < 2
            || !self.rotary_dim.is_multiple_of(2)
            || self.rotary_dim > self.head_dim
        {
            return Err(PositionError::InvalidRotaryDim {
                rotary_dim: self.rotary_dim,
                head_dim: self.head_dim,
            });
        }
        if !(self.theta.is_finite() && self.theta > 1.0) {
            return Err(PositionError::InvalidParameter {
                name: "theta",
                value: self.theta,
                requirement: "must be finite and greater than 1",
            });
        }
        self.scaling.validate(self.rotary_dim)
    }

    /// The inverse frequencies in `f64` for sequences of up to `seq_len` tokens (see
    /// [`RopeScaling::inv_freq`]), in a vector reserved fallibly: a `rotary_dim` read
    /// from a file cannot abort the process.
    ///
    /// # Errors
    ///
    /// As [`RopeConfig::validate`], and
    /// [`TensorError::AllocationFailed`](tokenloom_tensor::TensorError::AllocationFailed)
    /// (in [`PositionError::Tensor`]) when `rotary_dim / 2` values do not fit in memory.
    pub fn inv_freq(&self, seq_len: usize) -> Result<Vec<f64>, PositionError> {
        self.validate()?;
        let half = self.rotary_dim / 2;
        let mut out = Vec::new();
        out.try_reserve_exact(half).map_err(|_| {
            tokenloom_tensor::TensorError::AllocationFailed {
                op: "RopeConfig::inv_freq",
                bytes: half.saturating_mul(std::mem::size_of::<f64>()),
            }
        })?;
        self.scaling
            .inv_freq_into(self.theta, self.rotary_dim, seq_len, &mut out);
        Ok(out)
    }

    /// The factor applied to cos and sin (1 except for YaRN and LongRoPE).
    #[must_use]
    pub fn attention_factor(&self) -> f64 {
        self.scaling.attention_factor()
    }
}
