//! The embedding bag's backward: each id's share of its bag's output gradient (the whole
//! row for sum, divided by the bag's count for mean, weighted for per-sample weights,
//! the arg-max columns for max), formed in `f64` and summed by id with the embedding's
//! exact scatter ([`backward_dense_cast`](crate::functional::backward_dense_cast)).

use tokenloom_tensor::{Accumulate, Element, TensorLike, TensorLikeMut, TokenId, try_filled};

use super::{BagMode, BagOptions, Bags, counts};
use crate::error::EmbeddingError;
use crate::grad::backward_dense_cast;
use crate::lookup::table_dims;
use crate::options::EmbeddingOptions;

/// The bags' output gradient `(n_bags, n_embd)` checked against the bags.
fn check_grad_out<T>(
    grad_out: tokenloom_tensor::TensorView<'_, T>,
    n_bags: usize,
    n_embd: usize,
) -> Result<(), EmbeddingError> {
    let expected = tokenloom_tensor::Shape::new(&[n_bags, n_embd])?;
    if grad_out.shape() != expected {
        return Err(EmbeddingError::GradShape {
            what: "grad_out",
            expected,
            got: grad_out.shape(),
        });
    }
    Ok(())
}

/// The gradient of the table of [`embedding_bag_into`](super::embedding_bag_into), added
/// to or replacing `grad_weight` (PyTorch's `_embedding_bag_backward`, dense): per id,
/// the sum over its tokens of their bag's `grad_out` row — times the token's
/// per-sample weight, divided by the bag's count in mean mode, or only the columns where
/// the token's id was the arg-max (from `max_indices`) in max mode. Padding ids get
/// nothing; `scale_grad_by_freq` divides by each id's count in the batch. Summed in
/// `f64`, rounded once.
///
/// # Shapes
///
/// - grad_out, max_indices: `(n_bags, n_embd)`
/// - grad_weight: `(vocab_size, n_embd)`
///
/// # Errors
///
/// As the forward, [`EmbeddingError::GradShape`] for a wrongly shaped `grad_out`, and
/// [`EmbeddingError::BagOption`] for missing `max_indices` in max mode or an arg-max id
/// that is not in its bag. Nothing is written on error.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::functional::{BagMode, BagOptions, Bags, embedding_bag_backward};
/// use tokenloom_tensor::Accumulate;
///
/// // Bags [0, 2] and [2] in mean mode: id 2 gets half of bag 0's gradient and all of bag 1's.
/// let bags = Bags::from_offsets(&[0u32, 2, 2], &[0, 2], false)?;
/// let grad_out = [1.0f32, 1.0, 10.0, 10.0];
/// let mut grad_weight = [0.0f32; 6];
/// embedding_bag_backward(
///     &bags,
///     None,
///     (&grad_out[..], [2, 2]),
///     None,
///     &BagOptions::new(BagMode::Mean),
///     (&mut grad_weight[..], [3, 2]),
///     Accumulate::Replace,
/// )?;
/// assert_eq!(grad_weight, [0.5, 0.5, 0.0, 0.0, 10.5, 10.5]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn embedding_bag_backward<'g, 'w, T: Element, I: TokenId>(
    bags: &Bags<'_, I>,
    per_sample_weights: Option<&[T]>,
    grad_out: impl TensorLike<'g, T>,
    max_indices: Option<&[i64]>,
    options: &BagOptions,
    grad_weight: impl TensorLikeMut<'w, T>,
    accumulate: Accumulate,
) -> Result<(), EmbeddingError> {
    let grad_out = grad_out.try_view()?;
    let mut grad_weight = grad_weight.try_view_mut()?;
    let (vocab_size, n_embd) = table_dims(grad_weight.as_view())?;
    bags.check(vocab_size, n_embd, per_sample_weights, options)?;
    check_grad_out(grad_out, bags.n_bags(), n_embd)?;
    let n_ids = bags.ids().as_slice().len();
    if n_ids == 0 {
        if accumulate == Accumulate::Replace {
            grad_weight.as_mut_slice().fill(T::zero());
        }
        return Ok(());
    }
    let len = n_ids
        .checked_mul(n_embd)
        .ok_or(tokenloom_tensor::TensorError::ShapeOverflow {
            dims: vec![n_ids, n_embd],
        })?;
    // Each token's share of its bag's gradient, in f64.
    let mut shares = try_filled(len, 0.0f64, "embedding_bag backward")?;
    let grad_out = grad_out.as_slice();
    let mut done = try_filled(n_embd, false, "embedding_bag backward")?;
    for (b, &(start, end)) in bags.ranges().iter().enumerate() {
        let g = &grad_out[b * n_embd..(b + 1) * n_embd];
        let ids = &bags.ids().as_slice()[start..end];
        let taken = ids
            .iter()
            .filter(|&&id| counts(id.checked_index(), options.padding_idx))
            .count();
        match options.mode {
            // An empty bag (or one of padding only) passes nothing back.
            BagMode::Max if taken == 0 => {}
            BagMode::Max => {
                let Some(max_indices) = max_indices else {
                    return Err(EmbeddingError::BagOption {
                        option: "max_indices",
                        requirement: "are needed in mode max (the backward reads them)",
                    });
                };
                let arg = max_indices.get(b * n_embd..(b + 1) * n_embd).ok_or(
                    EmbeddingError::BagOption {
                        option: "max_indices",
                        requirement: "must have (n_bags, n_embd) elements",
                    },
                )?;
                done.fill(false);
                // Each column's gradient goes to the first token of the arg-max id.
                for (k, &id) in ids.iter().enumerate() {
                    let id = id.checked_index() as i64;
                    let share = &mut shares[(start + k) * n_embd..(start + k + 1) * n_embd];
                    for d in 0..n_embd {
                        if !done[d] && arg[d] == id {
                            share[d] = g[d].as_f64();
                            done[d] = true;
                        }
                    }
                }
                if done.iter().any(|&d| !d) {
                    return Err(EmbeddingError::BagOption {
                        option: "max_indices",
                        requirement: "must name an id of their bag",
                    });
                }
            }
            mode => {
                let divisor = if mode == BagMode::Mean && taken > 0 {
                    taken as f64
                } else {
                    1.0
                };
                for (k, &id) in ids.iter().enumerate() {
                    if !counts(id.checked_index(), options.padding_idx) {
                        continue;
                    }
                    let weight = per_sample_weights.map_or(1.0, |w| w[start + k].as_f64());
                    let share = &mut shares[(start + k) * n_embd..(start + k + 1) * n_embd];
                    for (s, &x) in share.iter_mut().zip(g) {
                        *s = x.as_f64() * weight / divisor;
                    }
                }
            }
        }
    }
    let embedding_options = EmbeddingOptions {
        padding_idx: options.padding_idx,
        scale_grad_by_freq: options.scale_grad_by_freq,
        ..EmbeddingOptions::default()
    };
    let ids = bags.ids();
    let shares_dims = ids.shape().with_inner(n_embd)?;
    backward_dense_cast(
        ids,
        (&shares[..], shares_dims),
        grad_weight,
        &embedding_options,
        accumulate,
    )
}

/// The gradient of `per_sample_weights` (mode sum): token `e` of bag `b` gets
/// `grad_out[b] · table[id_e]` (0 for a padding id), computed in `f64` and rounded once,
/// written into `out` (one per id).
///
/// # Errors
///
/// As [`embedding_bag_backward`], and [`EmbeddingError::BagOption`] for an `out` of
/// another length.
pub fn embedding_bag_per_sample_weights_backward<'t, 'g, T: Element, I: TokenId>(
    table: impl TensorLike<'t, T>,
    bags: &Bags<'_, I>,
    grad_out: impl TensorLike<'g, T>,
    options: &BagOptions,
    out: &mut [T],
) -> Result<(), EmbeddingError> {
    let table = table.try_view()?;
    let grad_out = grad_out.try_view()?;
    let (vocab_size, n_embd) = table_dims(table)?;
    bags.check(vocab_size, n_embd, Some(&*out), options)?;
    check_grad_out(grad_out, bags.n_bags(), n_embd)?;
    let (rows, grad_out) = (table.as_slice(), grad_out.as_slice());
    for (b, &(start, end)) in bags.ranges().iter().enumerate() {
        let g = &grad_out[b * n_embd..(b + 1) * n_embd];
        for (e, &id) in (start..end).zip(&bags.ids().as_slice()[start..end]) {
            let id = id.checked_index();
            out[e] = if counts(id, options.padding_idx) {
                let row = &rows[id * n_embd..(id + 1) * n_embd];
                T::from_f64_lossy(
                    row.iter()
                        .zip(g)
                        .map(|(&w, &x)| w.as_f64() * x.as_f64())
                        .sum(),
                )
            } else {
                T::zero()
            };
        }
    }
    Ok(())
}
