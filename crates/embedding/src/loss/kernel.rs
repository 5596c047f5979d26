//! The chunk loop of [`super::linear_cross_entropy`]: checks, then per chunk of tokens
//! one GEMM into the logits buffer, the rows' losses and gradients in place, and the two
//! gradient GEMMs.

use std::sync::Mutex;

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, TensorView, TensorViewMut, TokenId, for_each_chunk_mut,
    matmul_into, try_filled,
};

use super::options::{CrossEntropyOptions, LogitScale, Reduction, default_chunk_tokens};
use super::row::{RowForward, RowMath};
use super::{LinearCrossEntropy, LinearCrossEntropyGrads};
use crate::error::EmbeddingError;
use crate::head::check_hidden;
use crate::lookup::table_dims;

/// The head the logits come from.
pub(super) enum Head<'w, T> {
    /// A dense `(vocab_size, n_embd)` matrix: forward and backward.
    Dense(TensorView<'w, T>),
    /// GGUF blocks, decoded on the fly: the forward loss only.
    #[cfg(feature = "io")]
    Quantized(&'w crate::QuantizedEmbedding),
}

impl<T: Element> Head<'_, T> {
    fn dims(&self) -> Result<(usize, usize), EmbeddingError> {
        match self {
            Head::Dense(w) => table_dims(*w),
            #[cfg(feature = "io")]
            Head::Quantized(q) => Ok((q.vocab_size(), q.n_embd())),
        }
    }

    /// `out = hc @ headᵀ`.
    fn logits(
        &self,
        hc: TensorView<'_, T>,
        out: TensorViewMut<'_, T>,
    ) -> Result<(), EmbeddingError> {
        match self {
            Head::Dense(w) => Ok(matmul_into(
                hc,
                Operand::AsIs,
                *w,
                Operand::Transposed,
                out,
                Accumulate::Replace,
            )?),
            #[cfg(feature = "io")]
            Head::Quantized(q) => q.logits_into(hc, 1.0, out),
        }
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

fn check_grad<T>(
    what: &'static str,
    buffer: Option<&TensorViewMut<'_, T>>,
    expected: &Shape,
) -> Result<(), EmbeddingError> {
    match buffer {
        Some(b) if b.shape() != *expected => Err(EmbeddingError::GradShape {
            what,
            expected: expected.clone(),
            got: b.shape(),
        }),
        _ => Ok(()),
    }
}

pub(super) fn run<T: Element, I: TokenId>(
    hidden: TensorView<'_, T>,
    head: Head<'_, T>,
    targets: TensorView<'_, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, EmbeddingError> {
    options.check()?;
    let (vocab_size, n_embd) = head.dims()?;
    let (n_tokens, _) = check_hidden(hidden, vocab_size, n_embd)?;
    let token_dims = &hidden.dims()[..hidden.dims().len() - 1];
    if targets.dims() != token_dims {
        return Err(EmbeddingError::GradShape {
            what: "targets",
            expected: Shape::new(token_dims)?,
            got: targets.shape(),
        });
    }
    if let Some(w) = token_weights {
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
    let mut grads = grads;
    let dense_head = match &head {
        Head::Dense(w) => Some(*w),
        #[cfg(feature = "io")]
        Head::Quantized(q) if grads.is_some() => {
            return Err(q.not_trainable("linear_cross_entropy backward"));
        }
        #[cfg(feature = "io")]
        Head::Quantized(_) => None,
    };
    if let (Some(g), Some(w)) = (&grads, dense_head) {
        check_grad("grad_hidden", g.hidden.as_ref(), &hidden.shape())?;
        check_grad("grad_head", g.head.as_ref(), &w.shape())?;
        if !g.grad_scale.is_finite() {
            return Err(EmbeddingError::InvalidOption {
                name: "grad_scale",
                value: g.grad_scale,
                requirement: "must be finite",
            });
        }
    }
    let columns = target_columns(targets.as_slice(), vocab_size, options.ignore_index)?;
    let weight = |row: usize| token_weights.map_or(1.0, |w| w[row]);
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
        .unwrap_or_else(|| default_chunk_tokens(vocab_size, std::mem::size_of::<T>()))
        .min(n_tokens.max(1));
    let mut rows_out = try_filled(n_tokens, RowForward::default(), "linear_cross_entropy rows")?;
    let mut logits = try_filled(
        chunk_tokens.saturating_mul(vocab_size),
        T::zero(),
        "linear_cross_entropy logits chunk",
    )?;
    let h = hidden.as_slice();
    for (chunk, start) in (0..n_tokens).step_by(chunk_tokens).enumerate() {
        let rows = chunk_tokens.min(n_tokens - start);
        let hc = TensorView::new(&h[start * n_embd..(start + rows) * n_embd], &[rows, n_embd])?;
        let block = &mut logits[..rows * vocab_size];
        head.logits(hc, TensorViewMut::new(&mut *block, &[rows, vocab_size])?)?;
        let cols = &columns[start..start + rows];
        let out = Mutex::new(&mut rows_out[start..start + rows]);
        let backward = grads.as_ref().map(|g| g.grad_scale);
        for_each_chunk_mut(block, vocab_size, |r, row| {
            let target = cols[r].unwrap_or(0);
            let fwd = math.forward(row, target, backward.is_some());
            if let Some(scale) = backward {
                let g = match cols[r] {
                    Some(_) => scale * weight(start + r) / divisor,
                    None => 0.0,
                };
                math.backward(row, target, &fwd, g);
            }
            if let Ok(mut out) = out.lock() {
                out[r] = fwd;
            }
        });
        if let (Some(g), Some(head)) = (grads.as_mut(), dense_head) {
            let dx = TensorView::new(&*block, &[rows, vocab_size])?;
            if let Some(gh) = g.hidden.as_mut() {
                let gh_rows = &mut gh.as_mut_slice()[start * n_embd..(start + rows) * n_embd];
                matmul_into(
                    dx,
                    Operand::AsIs,
                    head,
                    Operand::AsIs,
                    TensorViewMut::new(gh_rows, &[rows, n_embd])?,
                    g.accumulate,
                )?;
            }
            if let Some(gw) = g.head.as_mut() {
                let mode = if chunk == 0 {
                    g.accumulate
                } else {
                    Accumulate::Add
                };
                matmul_into(
                    dx,
                    Operand::Transposed,
                    hc,
                    Operand::AsIs,
                    TensorViewMut::new(gw.as_mut_slice(), &[vocab_size, n_embd])?,
                    mode,
                )?;
            }
        }
    }

    let mut loss = 0.0;
    let mut losses = (options.reduction == Reduction::None)
        .then(|| try_filled(n_tokens, 0.0f64, "linear_cross_entropy losses"))
        .transpose()?;
    for (row, fwd) in rows_out.iter().enumerate() {
        if columns[row].is_none() {
            continue;
        }
        let l = weight(row) * fwd.loss;
        if !l.is_finite() {
            return Err(EmbeddingError::NonFiniteLoss { row, value: l });
        }
        if let Some(ls) = losses.as_mut() {
            ls[row] = l;
        }
        loss += l;
    }
    Ok(LinearCrossEntropy {
        loss: loss / divisor,
        losses,
        n_targets,
        weight_sum,
        lse: options
            .return_lse
            .then(|| rows_out.iter().map(|r| r.lse).collect()),
        argmax: options
            .return_argmax
            .then(|| rows_out.iter().map(|r| r.argmax).collect()),
        chunk_tokens,
    })
}
