//! [`EmbeddingOptions`]: the `torch.nn.Embedding` options, as plain data.

use crate::error::EmbeddingError;

/// The p of a p-norm, for [`MaxNorm`].
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum NormType {
    /// `(Σ|x|^p)^(1/p)`, `p > 0` (PyTorch's default is 2).
    P(f64),
    /// `max |x|` (PyTorch's `norm_type = inf`).
    Infinity,
}

impl NormType {
    /// The norm of `row`, accumulated in `f64`.
    #[must_use]
    pub fn norm(self, row: impl Iterator<Item = f64>) -> f64 {
        match self {
            NormType::Infinity => row.fold(0.0, |m, x| m.max(x.abs())),
            NormType::P(2.0) => row.map(|x| x * x).sum::<f64>().sqrt(),
            NormType::P(1.0) => row.map(f64::abs).sum(),
            NormType::P(p) => row.map(|x| x.abs().powf(p)).sum::<f64>().powf(1.0 / p),
        }
    }
}

/// `torch.nn.Embedding`'s `max_norm` / `norm_type`: looked-up rows whose norm exceeds
/// `max_norm` are rescaled by `max_norm / (norm + 1e-7)`.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MaxNorm {
    /// The largest allowed norm (> 0).
    pub max_norm: f64,
    /// Which norm.
    pub norm_type: NormType,
}

impl MaxNorm {
    /// The scale PyTorch applies to a row of norm `norm`, or `None` when the row is within
    /// bounds.
    #[must_use]
    pub fn scale_for(&self, norm: f64) -> Option<f64> {
        (norm > self.max_norm).then(|| self.max_norm / (norm + 1e-7))
    }
}

/// The options of an [`crate::Embedding`], matching `torch.nn.Embedding`.
///
/// - `padding_idx`: that row receives no gradient and is never updated by an optimizer;
///   [`crate::EmbeddingConfig`] zeroes it at init (as `nn.Embedding`), while a table built
///   from an existing weight keeps the row as stored (as `from_pretrained`). A lookup
///   always returns the row's current value.
/// - `max_norm`: see [`MaxNorm`] and [`crate::Embedding::renorm_in_place`].
/// - `scale_grad_by_freq`: each row's gradient is divided by the number of times its id
///   occurs in the batch.
/// - `grad_sum`: the precision repeated ids' gradient rows are summed in (tokenloom's
///   addition; see [`GradSum`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EmbeddingOptions {
    /// The padding row, if any.
    pub padding_idx: Option<usize>,
    /// Row renormalisation, if any.
    pub max_norm: Option<MaxNorm>,
    /// Divide each row's gradient by its id's frequency in the batch.
    pub scale_grad_by_freq: bool,
    /// How the gradient rows of a repeated id are summed (default [`GradSum::F64`]).
    #[cfg_attr(feature = "serde", serde(default))]
    pub grad_sum: GradSum,
}

/// How the backward passes sum the gradient rows of an id that occurs several times in a
/// batch. A row touched by one token is the same in both: its gradient row, rounded once.
///
/// Measured on 4096 ids of a (32000, 4096) `f32` table (docs/benchmarks/plain-loop.md,
/// "Never slower than the plain loop"): with 100 distinct ids (each ~41 times) `F32` is
/// about as fast as the plain loop and `F64` slower; with random ids (few repeats) the two
/// cost the same.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum GradSum {
    /// Summed in `f64` in position order and rounded once to the gradient's dtype
    /// (divided by the count in `f64` with `scale_grad_by_freq`; added to the buffer in
    /// `f64` with [`Accumulate::Add`](tokenloom_tensor::Accumulate::Add)). Nearest to the
    /// exact sum in every dtype; the default.
    #[default]
    F64,
    /// Added in `f32`, in position order, onto the buffer's value (`+0.0` when replacing)
    /// — each term multiplied by `1 / count` with `scale_grad_by_freq` — as the plain
    /// `grad[id] += g` loop and PyTorch's CPU kernel do: for `f32` gradients the same bits
    /// as that loop. Each addition rounds, so the error grows with the number of repeats
    /// (for `f16`/`bf16` gradients it is still far below summing in their own precision).
    /// `f64` gradients are summed as with [`GradSum::F64`].
    F32,
}

impl EmbeddingOptions {
    /// Resolves PyTorch's signed `padding_idx` (negative counts from the end) against
    /// `vocab_size`.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::PaddingIdxOutOfRange`] when `padding_idx` is not in
    /// `[-vocab_size, vocab_size)`, as PyTorch's "Padding_idx must be within
    /// num_embeddings".
    pub fn resolve_padding_idx(
        padding_idx: i64,
        vocab_size: usize,
    ) -> Result<usize, EmbeddingError> {
        let vocab = i64::try_from(vocab_size).unwrap_or(i64::MAX);
        let resolved = if padding_idx < 0 {
            padding_idx + vocab
        } else {
            padding_idx
        };
        usize::try_from(resolved)
            .ok()
            .filter(|&i| i < vocab_size)
            .ok_or(EmbeddingError::PaddingIdxOutOfRange {
                padding_idx,
                vocab_size,
            })
    }

    /// Checks the options against a table of `vocab_size` rows.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::PaddingIdxOutOfRange`] and [`EmbeddingError::InvalidOption`].
    pub fn validate(&self, vocab_size: usize) -> Result<(), EmbeddingError> {
        if let Some(p) = self.padding_idx
            && p >= vocab_size
        {
            return Err(EmbeddingError::PaddingIdxOutOfRange {
                padding_idx: i64::try_from(p).unwrap_or(i64::MAX),
                vocab_size,
            });
        }
        if let Some(m) = self.max_norm {
            if !(m.max_norm.is_finite() && m.max_norm > 0.0) {
                return Err(EmbeddingError::InvalidOption {
                    name: "max_norm",
                    value: m.max_norm,
                    requirement: "must be positive and finite",
                });
            }
            if let NormType::P(p) = m.norm_type
                && !(p.is_finite() && p > 0.0)
            {
                return Err(EmbeddingError::InvalidOption {
                    name: "norm_type",
                    value: p,
                    requirement: "must be positive (use NormType::Infinity for inf)",
                });
            }
        }
        Ok(())
    }
}
