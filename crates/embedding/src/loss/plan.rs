//! What every form of the loss checks and computes before and after its chunk loop: the
//! shapes, the targets' columns, the weights, the divisor of the mean, and the final
//! reduction of the per-token results.

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, TensorView, TensorViewMut, TokenId, matmul_into,
    try_filled,
};

use super::options::{CrossEntropyOptions, LogitScale, Reduction, default_chunk_tokens};
use super::row::{RowForward, RowMath};
use super::{LinearCrossEntropy, LinearCrossEntropyGrads};
use crate::error::EmbeddingError;
use crate::logits::check_hidden;

/// The checked inputs of one loss call.
pub(super) struct Plan<'o> {
    pub n_tokens: usize,
    /// The columns of the whole vocabulary (label smoothing's `K`).
    pub vocab_size: usize,
    /// The columns of one row of logits: the head's rows (a shard's, or `vocab_size`).
    pub row_len: usize,
    /// Each token's target, as a global column, or `None` when ignored.
    pub columns: Vec<Option<usize>>,
    pub n_targets: usize,
    pub weight_sum: f64,
    pub divisor: f64,
    pub math: RowMath,
    pub chunk_tokens: usize,
    weights: Option<&'o [f64]>,
    options: &'o CrossEntropyOptions,
}

impl<'o> Plan<'o> {
    /// Checks `hidden` `(…, n_embd)` against a head of `head_rows` rows, the targets
    /// against `vocab_size`, the weights and the options.
    #[allow(clippy::too_many_arguments)]
    pub fn new<T: Element, I: TokenId>(
        hidden: TensorView<'_, T>,
        head_rows: usize,
        n_embd: usize,
        vocab_size: usize,
        targets: TensorView<'_, I>,
        weights: Option<&'o [f64]>,
        options: &'o CrossEntropyOptions,
    ) -> Result<Self, EmbeddingError> {
        options.check()?;
        let (n_tokens, _) = check_hidden(hidden, head_rows, n_embd)?;
        let token_dims = &hidden.dims()[..hidden.dims().len() - 1];
        if targets.dims() != token_dims {
            return Err(EmbeddingError::GradShape {
                what: "targets",
                expected: Shape::new(token_dims)?,
                got: targets.shape(),
            });
        }
        if let Some(w) = weights {
            if w.len() != n_tokens {
                return Err(EmbeddingError::GradShape {
                    what: "token_weights",
                    expected: Shape::new(&[n_tokens])?,
                    got: Shape::new(&[w.len()])?,
                });
            }
            if let Some((row, &value)) = w
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(EmbeddingError::BadTokenWeight { row, value });
            }
        }
        let columns = target_columns(targets.as_slice(), vocab_size, options.ignore_index)?;
        let weight = |row: usize| weights.map_or(1.0, |w| w[row]);
        let n_targets = columns.iter().filter(|c| c.is_some()).count();
        let weight_sum: f64 = (0..n_tokens)
            .filter(|&r| columns[r].is_some())
            .map(weight)
            .sum();
        let divisor = match options.reduction {
            Reduction::Mean if weight_sum == 0.0 => {
                return Err(EmbeddingError::NoTargets { n_tokens });
            }
            Reduction::Mean => weight_sum,
            _ => 1.0,
        };
        let math = RowMath {
            scale: match options.logit_scale {
                LogitScale::Multiply(s) | LogitScale::Divide(s) => s,
                _ => 1.0,
            },
            divide: matches!(options.logit_scale, LogitScale::Divide(_)),
            softcap: options.softcap,
            label_smoothing: options.label_smoothing,
            z_loss: options.z_loss,
        };
        let chunk_tokens = options
            .chunk_tokens
            .unwrap_or_else(|| default_chunk_tokens(head_rows, logit_bytes::<T>()))
            .min(n_tokens.max(1));
        Ok(Self {
            n_tokens,
            vocab_size,
            row_len: head_rows,
            columns,
            n_targets,
            weight_sum,
            divisor,
            math,
            chunk_tokens,
            weights,
            options,
        })
    }

    /// Token `row`'s weight.
    pub fn weight(&self, row: usize) -> f64 {
        self.weights.map_or(1.0, |w| w[row])
    }

    /// Token `row`'s share `g` of the upstream gradient `grad_scale` (0 when ignored).
    pub fn share(&self, row: usize, grad_scale: f64) -> f64 {
        match self.columns[row] {
            Some(_) => grad_scale * self.weight(row) / self.divisor,
            None => 0.0,
        }
    }

    /// The reduced loss and the requested per-token results.
    pub fn finish(&self, rows_out: &[RowForward]) -> Result<LinearCrossEntropy, EmbeddingError> {
        let mut loss = 0.0;
        let mut losses = (self.options.reduction == Reduction::None)
            .then(|| try_filled(self.n_tokens, 0.0f64, "linear_cross_entropy losses"))
            .transpose()?;
        for (row, fwd) in rows_out.iter().enumerate() {
            if self.columns[row].is_none() {
                continue;
            }
            let l = self.weight(row) * fwd.loss;
            if !l.is_finite() {
                return Err(EmbeddingError::NonFiniteLoss { row, value: l });
            }
            if let Some(ls) = losses.as_mut() {
                ls[row] = l;
            }
            loss += l;
        }
        Ok(LinearCrossEntropy {
            loss: loss / self.divisor,
            losses,
            n_targets: self.n_targets,
            weight_sum: self.weight_sum,
            lse: self
                .options
                .return_lse
                .then(|| rows_out.iter().map(|r| r.lse).collect()),
            argmax: self
                .options
                .return_argmax
                .then(|| rows_out.iter().map(|r| r.argmax).collect()),
            chunk_tokens: self.chunk_tokens,
        })
    }
}

/// Adds chunk `chunk`'s part `dxᵀ @ hc` to the head's gradient, if asked: the first
/// chunk overwrites or adds as the caller said, the others add.
pub(super) fn add_head_grad<T: Element>(
    grads: &mut LinearCrossEntropyGrads<'_, T>,
    chunk: usize,
    dx: TensorView<'_, T>,
    hc: TensorView<'_, T>,
) -> Result<(), EmbeddingError> {
    let mode = if chunk == 0 {
        grads.accumulate
    } else {
        Accumulate::Add
    };
    if let Some(gw) = grads.head.as_mut() {
        let (head_rows, n_embd) = (dx.dims()[1], hc.dims()[1]);
        matmul_into(
            dx,
            Operand::Transposed,
            hc,
            Operand::AsIs,
            TensorViewMut::new(gw.as_mut_slice(), &[head_rows, n_embd])?,
            mode,
        )?;
    }
    Ok(())
}

/// Checks the gradient buffers against the hidden states' and the head's shapes.
pub(super) fn check_grads<T>(
    grads: &LinearCrossEntropyGrads<'_, T>,
    hidden: &Shape,
    head: &Shape,
) -> Result<(), EmbeddingError> {
    check_grad("grad_hidden", grads.hidden.as_ref(), hidden)?;
    check_grad("grad_head", grads.head.as_ref(), head)?;
    if !grads.grad_scale.is_finite() {
        return Err(EmbeddingError::InvalidOption {
            name: "grad_scale",
            value: grads.grad_scale,
            requirement: "must be finite",
        });
    }
    Ok(())
}

fn check_grad<T>(
    what: &'static str,
    buffer: Option<&TensorViewMut<'_, T>>,
    expected: &Shape,
) -> Result<(), EmbeddingError> {
    match buffer {
        Some(b) if b.shape() != *expected => Err(EmbeddingError::GradShape {
            what,
            expected: *expected,
            got: b.shape(),
        }),
        _ => Ok(()),
    }
}

/// A token's target column, or `None` when it is ignored.
fn target_columns<I: TokenId>(
    targets: &[I],
    vocab_size: usize,
    ignore_index: Option<i64>,
) -> Result<Vec<Option<usize>>, EmbeddingError> {
    let mut columns = Vec::new();
    columns.try_reserve_exact(targets.len()).map_err(|_| {
        tokenloom_tensor::TensorError::AllocationFailed {
            op: "linear_cross_entropy targets",
            bytes: targets.len().saturating_mul(16),
        }
    })?;
    for (row, &t) in targets.iter().enumerate() {
        if ignore_index == Some(t.to_i64()) {
            columns.push(None);
            continue;
        }
        match t.index_below(vocab_size) {
            Some(c) => columns.push(Some(c)),
            None => {
                return Err(EmbeddingError::TargetOutOfRange {
                    target: t.to_i64(),
                    row,
                    vocab_size,
                });
            }
        }
    }
    Ok(columns)
}

/// The bytes of one logit: `f16` and `bf16` products are held in `f32`.
pub(super) fn logit_bytes<T: Element>() -> usize {
    std::mem::size_of::<T>().max(std::mem::size_of::<f32>())
}
