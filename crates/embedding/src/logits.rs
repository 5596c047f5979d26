//! The output projection `logits = h @ Wᵀ` on borrowed memory ([`logits`],
//! [`logits_into`], [`logits_backward`]); [`EmbeddingAndHead`](crate::EmbeddingAndHead)
//! owns its weights and calls them.

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, Tensor, TensorLike, TensorLikeMut, TensorView,
    TensorViewMut, matmul_into, try_filled,
};

use crate::error::EmbeddingError;
use crate::lookup::table_dims;

/// `(rows, output shape)` for hidden states `(…, n_embd)` against a `(vocab_size,
/// n_embd)` weight: the output shape has `vocab_size` innermost.
pub(crate) fn check_hidden<T>(
    hidden: TensorView<'_, T>,
    vocab_size: usize,
    n_embd: usize,
) -> Result<(usize, Shape), EmbeddingError> {
    let dims = hidden.dims();
    if dims.last() != Some(&n_embd) {
        let mut want = dims.to_vec();
        match want.last_mut() {
            Some(last) => *last = n_embd,
            None => want.push(n_embd),
        }
        return Err(EmbeddingError::GradShape {
            what: "hidden states",
            expected: Shape::new(&want)?,
            got: hidden.shape(),
        });
    }
    let rows = hidden.shape().n_rows();
    let mut out_dims = dims.to_vec();
    *out_dims
        .last_mut()
        .expect("rank ≥ 1: its last dimension is n_embd") = vocab_size;
    Ok((rows, Shape::new(&out_dims)?))
}

pub(crate) fn check_logit_scale(logit_scale: f64) -> Result<(), EmbeddingError> {
    if logit_scale.is_finite() && logit_scale > 0.0 {
        Ok(())
    } else {
        Err(EmbeddingError::InvalidOption {
            name: "logit_scale",
            value: logit_scale,
            requirement: "must be positive and finite",
        })
    }
}

pub(crate) fn scale_in_place<T: Element>(xs: &mut [T], logit_scale: f64) {
    if logit_scale != 1.0 {
        for x in xs {
            *x = T::from_f64_lossy(x.as_f64() * logit_scale);
        }
    }
}

/// The output projection on borrowed memory: `out = logit_scale · hidden @ weightᵀ` for
/// a caller's `(vocab_size, n_embd)` weight — the embedding table itself when the head is
/// tied. Up to 8 rows (a decode step) take the threaded dot-product path, more rows the
/// GEMM; both give the same bits for any thread count (see
/// [`tokenloom_tensor::matmul_into`]).
///
/// # Shapes
///
/// - hidden: `(…, n_embd)`
/// - weight: `(vocab_size, n_embd)`
/// - out: `(…, vocab_size)`
///
/// # Errors
///
/// [`EmbeddingError::WeightShape`] for a weight that is not rank 2,
/// [`EmbeddingError::GradShape`] for hidden states whose innermost dimension is not
/// `n_embd`, [`EmbeddingError::OutputShape`] for a wrongly shaped `out`,
/// [`EmbeddingError::InvalidOption`] for a non-positive or non-finite scale, and tensor
/// errors for sources that are not contiguous row-major buffers.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::functional;
///
/// // Tied logits over a caller's (vocab_size = 3, n_embd = 2) table.
/// let table = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let hidden = [2.0f32, 3.0];
/// let mut logits = [0.0f32; 3];
/// functional::logits_into((&hidden[..], [1, 2]), (&table[..], [3, 2]), 1.0, (&mut logits[..], [1, 3]))?;
/// assert_eq!(logits, [2.0, 3.0, 5.0]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn logits_into<'h, 'w, 'o, T: Element>(
    hidden: impl TensorLike<'h, T>,
    weight: impl TensorLike<'w, T>,
    logit_scale: f64,
    out: impl TensorLikeMut<'o, T>,
) -> Result<(), EmbeddingError> {
    let hidden = hidden.try_view()?;
    let weight = weight.try_view()?;
    let mut out = out.try_view_mut()?;
    check_logit_scale(logit_scale)?;
    let (vocab_size, n_embd) = table_dims(weight)?;
    let (rows, expected) = check_hidden(hidden, vocab_size, n_embd)?;
    if out.shape() != expected {
        return Err(EmbeddingError::OutputShape {
            expected,
            got: out.shape(),
        });
    }
    let h = TensorView::new(hidden.as_slice(), &[rows, n_embd])?;
    let out2 = TensorViewMut::new(out.as_mut_slice(), &[rows, vocab_size])?;
    matmul_into(
        h,
        Operand::AsIs,
        weight,
        Operand::Transposed,
        out2,
        Accumulate::Replace,
    )?;
    scale_in_place(out.as_mut_slice(), logit_scale);
    Ok(())
}

/// [`logits_into`] into a fresh `(…, vocab_size)` tensor.
///
/// # Errors
///
/// As [`logits_into`], and allocation errors.
pub fn logits<'h, 'w, T: Element>(
    hidden: impl TensorLike<'h, T>,
    weight: impl TensorLike<'w, T>,
    logit_scale: f64,
) -> Result<Tensor<T>, EmbeddingError> {
    let hidden = hidden.try_view()?;
    let weight = weight.try_view()?;
    let (vocab_size, n_embd) = table_dims(weight)?;
    let (rows, shape) = check_hidden(hidden, vocab_size, n_embd)?;
    let len = rows
        .checked_mul(vocab_size)
        .ok_or(tokenloom_tensor::TensorError::ShapeOverflow {
            dims: vec![rows, vocab_size],
        })?;
    let mut out = Tensor::from_shape_vec(try_filled(len, T::zero(), "logits")?, shape)?;
    logits_into(hidden, weight, logit_scale, &mut out)?;
    Ok(out)
}

/// Backward of [`logits_into`] on borrowed memory: adds `logit_scale · grad_logitsᵀ @
/// hidden` to the caller's `grad_weight` (the embedding's gradient when the head is tied,
/// so the lookup's and the projection's contributions meet in one buffer) and writes
/// `grad_hidden = logit_scale · grad_logits @ weight`.
///
/// # Shapes
///
/// - hidden, grad_hidden: `(…, n_embd)`
/// - weight, grad_weight: `(vocab_size, n_embd)`
/// - grad_logits: `(…, vocab_size)`
///
/// # Errors
///
/// As [`logits_into`], and [`EmbeddingError::GradShape`] for a wrongly shaped
/// `grad_logits`, `grad_weight` or `grad_hidden`. On error nothing is written.
pub fn logits_backward<'h, 'w, 'g, 'gw, 'gh, T: Element>(
    hidden: impl TensorLike<'h, T>,
    weight: impl TensorLike<'w, T>,
    grad_logits: impl TensorLike<'g, T>,
    logit_scale: f64,
    grad_weight: impl TensorLikeMut<'gw, T>,
    grad_hidden: impl TensorLikeMut<'gh, T>,
) -> Result<(), EmbeddingError> {
    let hidden = hidden.try_view()?;
    let weight = weight.try_view()?;
    let grad_logits = grad_logits.try_view()?;
    let mut grad_weight = grad_weight.try_view_mut()?;
    let mut grad_hidden = grad_hidden.try_view_mut()?;
    check_logit_scale(logit_scale)?;
    let (vocab_size, n_embd) = table_dims(weight)?;
    let (rows, expected) = check_hidden(hidden, vocab_size, n_embd)?;
    for (what, got, expected) in [
        ("grad_logits", grad_logits.shape(), expected),
        ("grad_weight", grad_weight.shape(), weight.shape()),
        ("grad_hidden", grad_hidden.shape(), hidden.shape()),
    ] {
        if got != expected {
            return Err(EmbeddingError::GradShape {
                what,
                expected,
                got,
            });
        }
    }
    let h = TensorView::new(hidden.as_slice(), &[rows, n_embd])?;
    let g = TensorView::new(grad_logits.as_slice(), &[rows, vocab_size])?;
    // Scale G once (a copy), so both products below carry the logit scale.
    let scaled: Vec<T>;
    let g = if logit_scale == 1.0 {
        g
    } else {
        scaled = g
            .as_slice()
            .iter()
            .map(|&x| T::from_f64_lossy(x.as_f64() * logit_scale))
            .collect();
        TensorView::new(&scaled, &[rows, vocab_size])?
    };
    // dW += Gᵀ h: (vocab_size, rows) @ (rows, n_embd).
    matmul_into(
        g,
        Operand::Transposed,
        h,
        Operand::AsIs,
        grad_weight.reborrow(),
        Accumulate::Add,
    )?;
    // dh = G W: (rows, vocab_size) @ (vocab_size, n_embd).
    matmul_into(
        g,
        Operand::AsIs,
        weight,
        Operand::AsIs,
        TensorViewMut::new(grad_hidden.as_mut_slice(), &[rows, n_embd])?,
        Accumulate::Replace,
    )?;
    Ok(())
}
