//! The options of [`super::linear_cross_entropy`], named as PyTorch and Liger-Kernel
//! name them.

use crate::error::EmbeddingError;

/// How the per-token losses are reduced (PyTorch's `reduction`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reduction {
    /// Every token's loss ([`LinearCrossEntropy::losses`](super::LinearCrossEntropy)),
    /// `0` for ignored tokens; `loss` is their sum.
    None,
    /// The sum over the tokens.
    Sum,
    /// The sum divided by the number of tokens that are not ignored — with token weights,
    /// by the sum of their weights (PyTorch's weighted mean). The default.
    #[default]
    Mean,
}

/// A scale of the raw logits before softcapping and the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum LogitScale {
    /// No scale. The default.
    #[default]
    None,
    /// `logits · m` (Cohere's `logit_scale`).
    Multiply(f64),
    /// `logits / d` (Granite's `logits_scaling`), divided as transformers divides.
    Divide(f64),
}

/// What the loss computes and returns.
///
/// Build it with `CrossEntropyOptions::default()` and set fields; the struct may grow.
///
/// The logit of token `i` and column `j` is `z = cap · tanh(u / cap)` (softcapping, if
/// set) of `u = scale(h_i · w_j)`. The loss of a token with target `t` over `K =
/// vocab_size` columns is `lse − (1 − α) z_t − (α / K) Σ_j z_j + λ · lse²`, with `lse =
/// log Σ_j exp z_j`, `α = label_smoothing` and `λ = z_loss`, times the token's weight.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CrossEntropyOptions {
    /// Tokens with this target count for nothing (PyTorch's `ignore_index`, default
    /// `Some(-100)`).
    pub ignore_index: Option<i64>,
    /// PyTorch's `label_smoothing` α, in `[0, 1]`.
    pub label_smoothing: f64,
    /// The z-loss weight λ (Liger's `lse_square_scale`), `≥ 0`.
    pub z_loss: f64,
    /// A scale of the raw logits.
    pub logit_scale: LogitScale,
    /// Logit softcapping `cap` (Gemma 2's `final_logit_softcapping`), positive.
    pub softcap: Option<f64>,
    /// The reduction.
    pub reduction: Reduction,
    /// Tokens per chunk of logits; `None` takes [`default_chunk_tokens`].
    pub chunk_tokens: Option<usize>,
    /// Return each token's log-sum-exp.
    pub return_lse: bool,
    /// Return each token's argmax (its prediction; with the targets, token accuracy).
    pub return_argmax: bool,
}

impl Default for CrossEntropyOptions {
    fn default() -> Self {
        Self {
            ignore_index: Some(-100),
            label_smoothing: 0.0,
            z_loss: 0.0,
            logit_scale: LogitScale::None,
            softcap: None,
            reduction: Reduction::Mean,
            chunk_tokens: None,
            return_lse: false,
            return_argmax: false,
        }
    }
}

/// The bytes of logits one chunk holds by default: 32 MiB (65 tokens of a 128,256-token
/// vocabulary in `f32`). Chosen by measurement (`crates/devtools/scripts/lce_vs_torch.py
/// … --chunks`, docs/benchmarks/loss-head.md): at 8192 tokens, n_embd 256 and 2 threads,
/// 64 MiB chunks were 20 % faster but their peak extra memory (chunk, GEMM packing, threads)
/// came within noise of 2 % of the unfused logits and gradient; 32 MiB keeps it at 1.2 %.
pub const DEFAULT_CHUNK_BYTES: usize = 32 << 20;

/// The default tokens per chunk for a vocabulary and element size: as many as fit in
/// [`DEFAULT_CHUNK_BYTES`], at least 1.
pub fn default_chunk_tokens(vocab_size: usize, element_bytes: usize) -> usize {
    (DEFAULT_CHUNK_BYTES / vocab_size.max(1).saturating_mul(element_bytes.max(1))).max(1)
}

impl CrossEntropyOptions {
    /// Checks every value.
    pub(super) fn check(&self) -> Result<(), EmbeddingError> {
        let invalid = |name, value, requirement| {
            Err(EmbeddingError::InvalidOption {
                name,
                value,
                requirement,
            })
        };
        if !(0.0..=1.0).contains(&self.label_smoothing) {
            return invalid("label_smoothing", self.label_smoothing, "must be in [0, 1]");
        }
        if !(self.z_loss >= 0.0 && self.z_loss.is_finite()) {
            return invalid("z_loss", self.z_loss, "must be finite and ≥ 0");
        }
        match self.logit_scale {
            LogitScale::Multiply(s) | LogitScale::Divide(s) if !(s.is_finite() && s > 0.0) => {
                return invalid("logit_scale", s, "must be positive and finite");
            }
            _ => {}
        }
        if let Some(cap) = self.softcap
            && !(cap.is_finite() && cap > 0.0)
        {
            return invalid("softcap", cap, "must be positive and finite");
        }
        if self.chunk_tokens == Some(0) {
            return invalid("chunk_tokens", 0.0, "must be at least 1");
        }
        Ok(())
    }
}
