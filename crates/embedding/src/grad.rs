//! The backward pass of the lookup: dense and row-sparse gradients of the weight, on
//! borrowed memory ([`backward_dense`], [`backward_sparse`]) and as methods of
//! [`Embedding`], which call them.

use tokenloom_tensor::{
    Accumulate, Element, Tensor, TensorLike, TensorLikeMut, TensorView, TokenId,
    for_each_chunk_mut, try_filled,
};

use crate::error::EmbeddingError;
use crate::lookup::{check_ids, table_dims};
use crate::options::EmbeddingOptions;
use crate::table::{Embedding, check_table_sizes};

/// The gradient of a `(vocab_size, n_embd)` weight restricted to the rows a batch
/// touched: the sorted, distinct row ids and their summed gradient rows.
///
/// This is the form a large-vocabulary trainer needs: its size is proportional to the
/// number of distinct ids in the batch, not to `vocab_size`.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseGrad<T> {
    vocab_size: usize,
    n_embd: usize,
    rows: Vec<u32>,
    values: Vec<T>,
}

impl<T: Element> SparseGrad<T> {
    /// The vocabulary size of the table this gradient belongs to.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The row width.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// The touched row ids, strictly increasing.
    #[must_use]
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// The gradient rows `(rows.len(), n_embd)`, in the order of [`SparseGrad::rows`].
    #[must_use]
    pub fn values(&self) -> TensorView<'_, T> {
        TensorView::new(&self.values, &[self.rows.len(), self.n_embd])
            .expect("SparseGrad invariant: values has rows.len() × n_embd entries")
    }

    /// Iterates over `(row id, gradient row)`.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &[T])> {
        self.rows
            .iter()
            .copied()
            .zip(self.values.chunks_exact(self.n_embd))
    }

    /// The dense `(vocab_size, n_embd)` gradient: zero except at the touched rows.
    ///
    /// # Errors
    ///
    /// Tensor errors when the dense buffer cannot be allocated.
    pub fn to_dense(&self) -> Result<Tensor<T>, EmbeddingError> {
        let mut dense = Tensor::from_vec(
            try_filled(
                self.vocab_size * self.n_embd,
                T::zero(),
                "SparseGrad::to_dense",
            )?,
            &[self.vocab_size, self.n_embd],
        )?;
        let data = dense.as_mut_slice();
        for (id, row) in self.iter() {
            let start = id as usize * self.n_embd;
            data[start..start + self.n_embd].copy_from_slice(row);
        }
        Ok(dense)
    }
}

/// The token positions of a batch grouped by id: ids increasing, positions in order,
/// the padding id left out.
struct RowGroups {
    /// Token positions sorted by (id, position).
    order: Vec<usize>,
    /// `(id, range of order)` per distinct id.
    groups: Vec<(u32, std::ops::Range<usize>)>,
}

impl RowGroups {
    /// Groups checked ids (every id is a row index below a vocabulary that fits `u32`).
    fn new<I: TokenId>(ids: &[I], padding_idx: Option<usize>) -> Self {
        let row = |i: usize| ids[i].checked_index();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        // (id, position) is unique, so the unstable sort is deterministic.
        order.sort_unstable_by_key(|&i| (row(i), i));
        let mut groups = Vec::new();
        let mut start = 0;
        for run in order.chunk_by(|&a, &b| row(a) == row(b)) {
            let id = row(run[0]);
            if padding_idx != Some(id) {
                let id = u32::try_from(id).expect("sparse ids are checked to fit u32");
                groups.push((id, start..start + run.len()));
            }
            start += run.len();
        }
        Self { order, groups }
    }

    /// Writes (or adds, with [`Accumulate::Add`]) the gradient row of group `g` into
    /// `dst`: the rows of its positions summed in `f64` in position order (as PyTorch's
    /// sequential `index_add`), divided by the count with `scale_grad_by_freq`, rounded
    /// once.
    ///
    /// A group of one token skips the `f64` pass: its sum is the value itself (`0 + x`,
    /// which turns −0 into +0 as the sum does), and adding one rounded value to `dst` in
    /// `T` rounds exactly as the `f64` sum rounded to `T` would (`f64` has more than twice
    /// the precision of every `T`, so rounding through it is innocuous). Same bits, one
    /// pass instead of four, and this is the common case of a sparse gradient.
    fn write_row<T: Element>(
        &self,
        g: usize,
        grad_output: &[T],
        n_embd: usize,
        scale_grad_by_freq: bool,
        dst: &mut [T],
        accumulate: Accumulate,
    ) {
        let positions = &self.order[self.groups[g].1.clone()];
        if let [i] = *positions {
            let row = &grad_output[i * n_embd..(i + 1) * n_embd];
            for (o, &x) in dst.iter_mut().zip(row) {
                let sum = T::zero() + x;
                *o = match accumulate {
                    Accumulate::Replace => sum,
                    Accumulate::Add => *o + sum,
                };
            }
            return;
        }
        let mut sum = vec![0.0f64; n_embd];
        for &i in positions {
            for (s, x) in sum
                .iter_mut()
                .zip(&grad_output[i * n_embd..(i + 1) * n_embd])
            {
                *s += x.as_f64();
            }
        }
        if scale_grad_by_freq {
            // counts are far below 2^53
            let count = positions.len() as f64;
            sum.iter_mut().for_each(|s| *s /= count);
        }
        for (o, s) in dst.iter_mut().zip(&sum) {
            *o = match accumulate {
                Accumulate::Replace => T::from_f64_lossy(*s),
                Accumulate::Add => T::from_f64_lossy(o.as_f64() + s),
            };
        }
    }
}

/// Checks ids and a `grad_output` shaped like the lookup's output.
fn check_backward<I: TokenId, T>(
    ids: TensorView<'_, I>,
    grad_output: TensorView<'_, T>,
    vocab_size: usize,
    n_embd: usize,
) -> Result<(), EmbeddingError> {
    let expected = check_ids(ids, vocab_size, n_embd)?;
    if grad_output.shape() != expected {
        return Err(EmbeddingError::GradShape {
            what: "grad_output",
            expected,
            got: grad_output.shape(),
        });
    }
    Ok(())
}

/// The dense gradient of a `(vocab_size, n_embd)` embedding weight, on borrowed memory
/// (as PyTorch's `embedding_dense_backward`): a scatter-add of the rows of `grad_output`
/// by id into the caller's `grad_weight`. Only the gradient's shape and the options are
/// needed — never the table itself. With [`Accumulate::Replace`] the buffer is
/// overwritten (untouched rows become zero); with [`Accumulate::Add`] the gradient is
/// added to it (gradient accumulation over micro-batches, or a tied head's second
/// contribution).
///
/// Repeated ids accumulate; `options.padding_idx`'s row gets nothing; with
/// `options.scale_grad_by_freq` each row's sum is divided by its id's count in the batch
/// (`options.max_norm` plays no part: PyTorch's backward treats the renormalised weight
/// as a constant). Sums run in `f64` in position order and are rounded once, so
/// `f16`/`bf16` gradients are closer to the exact value than PyTorch's, and the result
/// is bit-identical from run to run and for any thread count.
///
/// # Shapes
///
/// - ids: `(seq_len,)` or `(batch, seq_len)`
/// - grad_output: `ids.shape + (n_embd,)`
/// - grad_weight: `(vocab_size, n_embd)`
///
/// # Errors
///
/// The id errors of [`check_ids`], [`EmbeddingError::GradShape`] for a wrongly shaped
/// `grad_output`, [`EmbeddingError::WeightShape`] for a `grad_weight` that is not rank 2,
/// [`EmbeddingError::PaddingIdxOutOfRange`] for a padding row outside it, and tensor
/// errors for sources that are not contiguous row-major buffers. On error nothing is
/// written.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{EmbeddingOptions, functional};
/// use tokenloom_tensor::Accumulate;
///
/// // A framework's gradient buffer (vocab_size = 3, n_embd = 2), i64 ids, no table.
/// let mut grad_weight = vec![0.0f32; 6];
/// let grad_output = [1.0f32, 1.0, 0.5, 0.5, 2.0, 2.0];
/// functional::backward_dense(
///     &[2i64, 0, 2],
///     (&grad_output[..], [3, 2]),
///     (&mut grad_weight[..], [3, 2]),
///     &EmbeddingOptions::default(),
///     Accumulate::Replace,
/// )?;
/// assert_eq!(grad_weight, [0.5, 0.5, 0.0, 0.0, 3.0, 3.0]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn backward_dense<'i, 'g, 'w, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_output: impl TensorLike<'g, T>,
    grad_weight: impl TensorLikeMut<'w, T>,
    options: &EmbeddingOptions,
    accumulate: Accumulate,
) -> Result<(), EmbeddingError> {
    let ids = ids.try_view()?;
    let grad_output = grad_output.try_view()?;
    let mut grad_weight = grad_weight.try_view_mut()?;
    let (vocab_size, n_embd) = table_dims(grad_weight.as_view())?;
    options.validate(vocab_size)?;
    check_backward(ids, grad_output, vocab_size, n_embd)?;
    let groups = RowGroups::new(ids.as_slice(), options.padding_idx);
    let scale = options.scale_grad_by_freq;
    let grad_output = grad_output.as_slice();
    // One pass over the output, partitioned by destination row (no atomics): each row
    // is zeroed or summed by exactly one task, so any thread count gives the same bits.
    for_each_chunk_mut(grad_weight.as_mut_slice(), n_embd, |row, dst| match groups
        .groups
        .binary_search_by_key(&row, |(id, _)| *id as usize)
    {
        Ok(g) => groups.write_row(g, grad_output, n_embd, scale, dst, accumulate),
        Err(_) if accumulate == Accumulate::Replace => dst.fill(T::zero()),
        Err(_) => {}
    });
    Ok(())
}

/// The row-sparse gradient of a `(vocab_size, n_embd)` embedding weight, on borrowed
/// inputs, into a reusable [`SparseGrad`]: the same numbers as [`backward_dense`] at the
/// touched rows, without touching (or allocating) the other rows. The padding row is not
/// listed. A training loop that keeps one `SparseGrad` pays no allocation per step once
/// its buffers have grown.
///
/// # Shapes
///
/// - ids: `(seq_len,)` or `(batch, seq_len)`
/// - grad_output: `ids.shape + (n_embd,)`, `n_embd` taken from it
///
/// # Errors
///
/// As [`backward_dense`], [`EmbeddingError::ZeroSize`] for a zero `vocab_size`, and
/// [`EmbeddingError::TableTooLarge`] for a `vocab_size` whose row ids do not fit the
/// `u32` rows of a [`SparseGrad`]. On error `grad` is unchanged.
pub fn backward_sparse<'i, 'g, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_output: impl TensorLike<'g, T>,
    vocab_size: usize,
    options: &EmbeddingOptions,
    grad: &mut SparseGrad<T>,
) -> Result<(), EmbeddingError> {
    let ids = ids.try_view()?;
    let grad_output = grad_output.try_view()?;
    let n_embd = grad_output.dims().last().copied().unwrap_or(0);
    check_table_sizes(vocab_size, n_embd)?;
    if u32::try_from(vocab_size - 1).is_err() {
        return Err(EmbeddingError::TableTooLarge { vocab_size, n_embd });
    }
    options.validate(vocab_size)?;
    check_backward(ids, grad_output, vocab_size, n_embd)?;
    let groups = RowGroups::new(ids.as_slice(), options.padding_idx);
    let len = groups.groups.len() * n_embd;
    if len > grad.values.len() {
        grad.values
            .try_reserve_exact(len - grad.values.len())
            .map_err(|_| tokenloom_tensor::TensorError::AllocationFailed {
                op: "backward_sparse",
                bytes: len.saturating_mul(std::mem::size_of::<T>()),
            })?;
    }
    grad.values.resize(len, T::zero());
    grad.rows.clear();
    grad.rows.extend(groups.groups.iter().map(|(id, _)| *id));
    (grad.vocab_size, grad.n_embd) = (vocab_size, n_embd);
    let scale = options.scale_grad_by_freq;
    let grad_output = grad_output.as_slice();
    for_each_chunk_mut(&mut grad.values, n_embd, |g, dst| {
        groups.write_row(g, grad_output, n_embd, scale, dst, Accumulate::Replace);
    });
    Ok(())
}

impl<T: Element> SparseGrad<T> {
    /// An empty gradient, to be filled by [`backward_sparse`].
    #[must_use]
    pub fn new() -> Self {
        Self {
            vocab_size: 0,
            n_embd: 0,
            rows: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<T: Element> Default for SparseGrad<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> Embedding<T> {
    /// The dense gradient of the weight, written into a caller's `(vocab_size, n_embd)`
    /// buffer: [`backward_dense`] with this table's options (see there for the
    /// semantics).
    ///
    /// # Shapes
    ///
    /// - ids: `(seq_len,)` or `(batch, seq_len)`
    /// - grad_output: `ids.shape + (n_embd,)`
    /// - grad_weight: `(vocab_size, n_embd)`
    ///
    /// # Errors
    ///
    /// The id errors of [`check_ids`], and [`EmbeddingError::GradShape`] for a wrongly
    /// shaped `grad_output` or `grad_weight`. On error nothing is written.
    pub fn backward_dense_into<'a, 'g, 'w, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        grad_output: impl TensorLike<'g, T>,
        grad_weight: impl TensorLikeMut<'w, T>,
        accumulate: Accumulate,
    ) -> Result<(), EmbeddingError> {
        let grad_weight = grad_weight.try_view_mut()?;
        if grad_weight.shape() != self.weight().shape() {
            return Err(EmbeddingError::GradShape {
                what: "grad_weight",
                expected: self.weight().shape(),
                got: grad_weight.shape(),
            });
        }
        backward_dense(ids, grad_output, grad_weight, self.options(), accumulate)
    }

    /// The dense gradient of the weight in a fresh `(vocab_size, n_embd)` tensor; see
    /// [`backward_dense_into`](Embedding::backward_dense_into).
    ///
    /// # Errors
    ///
    /// As [`backward_dense_into`](Embedding::backward_dense_into).
    pub fn backward_dense<'a, 'g, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        grad_output: impl TensorLike<'g, T>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let ids = ids.try_view()?;
        let grad_output = grad_output.try_view()?;
        check_backward(ids, grad_output, self.vocab_size(), self.n_embd())?;
        let mut grad = Tensor::from_vec(
            try_filled(
                self.vocab_size() * self.n_embd(),
                T::zero(),
                "Embedding::backward_dense",
            )?,
            &[self.vocab_size(), self.n_embd()],
        )?;
        self.backward_dense_into(ids, grad_output, &mut grad, Accumulate::Add)?;
        Ok(grad)
    }

    /// The row-sparse gradient of the weight: the same numbers as
    /// [`backward_dense`](Embedding::backward_dense) at the touched rows, without ever
    /// touching (or allocating) the other `vocab_size` rows. The padding row is not
    /// listed.
    ///
    /// # Errors
    ///
    /// As [`backward_dense_into`](Embedding::backward_dense_into).
    pub fn backward_sparse<'a, 'g, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        grad_output: impl TensorLike<'g, T>,
    ) -> Result<SparseGrad<T>, EmbeddingError> {
        let mut grad = SparseGrad::new();
        self.backward_sparse_into(ids, grad_output, &mut grad)?;
        Ok(grad)
    }

    /// [`backward_sparse`](Embedding::backward_sparse) into an existing [`SparseGrad`],
    /// reusing its buffers ([`backward_sparse`](crate::functional::backward_sparse) with
    /// this table's options).
    ///
    /// # Errors
    ///
    /// As [`backward_dense_into`](Embedding::backward_dense_into). On error `grad` is
    /// unchanged.
    pub fn backward_sparse_into<'a, 'g, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        grad_output: impl TensorLike<'g, T>,
        grad: &mut SparseGrad<T>,
    ) -> Result<(), EmbeddingError> {
        let ids = ids.try_view()?;
        let grad_output = grad_output.try_view()?;
        check_backward(ids, grad_output, self.vocab_size(), self.n_embd())?;
        backward_sparse(ids, grad_output, self.vocab_size(), self.options(), grad)
    }
}

#[cfg(test)]
mod tests {
    use tokenloom_tensor::{bf16, f16};

    use super::*;

    /// Bit patterns of `T` from a fixed LCG, plus the signed zeros and extremes.
    fn patterns<T: Element>(len: usize) -> Vec<T> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut values: Vec<T> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                T::from_bits64(state >> 11)
            })
            .collect();
        values.extend([
            T::zero(),
            -T::zero(),
            T::max_value(),
            T::min_positive_value(),
        ]);
        values
    }

    fn same<T: Element>(a: T, b: T) -> bool {
        a.to_bits64() == b.to_bits64() || (a.is_nan() && b.is_nan())
    }

    /// A one-token group's shortcut gives the bits of the `f64` sum rounded once, for
    /// every dtype, replacing or adding, signed zeros included.
    fn one_token_shortcut_matches_the_f64_sum<T: Element>() {
        let n_embd = 4096 + 4;
        let row = patterns::<T>(4096);
        let old = {
            let mut old = patterns::<T>(4096 + 1);
            old.remove(0); // shifted against `row`
            old.reverse();
            old
        };
        let groups = RowGroups::new(&[7], None);
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            let mut dst = old.clone();
            groups.write_row(0, &row, n_embd, false, &mut dst, accumulate);
            for j in 0..n_embd {
                let sum = 0.0 + row[j].as_f64();
                let expected = match accumulate {
                    Accumulate::Replace => T::from_f64_lossy(sum),
                    Accumulate::Add => T::from_f64_lossy(old[j].as_f64() + sum),
                };
                assert!(
                    same(dst[j], expected),
                    "{} {accumulate:?}: {:?} + {:?} gave {:?}, the f64 sum {:?}",
                    T::DTYPE,
                    old[j],
                    row[j],
                    dst[j],
                    expected
                );
            }
        }
    }

    #[test]
    fn one_token_shortcut_matches_the_f64_sum_in_every_dtype() {
        one_token_shortcut_matches_the_f64_sum::<f32>();
        one_token_shortcut_matches_the_f64_sum::<f64>();
        one_token_shortcut_matches_the_f64_sum::<f16>();
        one_token_shortcut_matches_the_f64_sum::<bf16>();
    }
}
