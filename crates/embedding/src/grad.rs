//! The backward pass of the lookup: dense and row-sparse gradients of the weight, on
//! borrowed memory ([`backward_dense`], [`backward_sparse`]) and as methods of
//! [`Embedding`], which call them.

use tokenloom_tensor::{
    Accumulate, Element, Tensor, TensorLike, TensorLikeMut, TensorView, TokenId, try_filled,
};

use crate::error::EmbeddingError;
use crate::lookup::{check_ids, table_dims};
use crate::options::EmbeddingOptions;
use crate::scatter::{Layout, RowGroups, RowSum, Scatter};
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
/// as a constant). By default ([`GradSum::F64`](crate::GradSum::F64)) sums run in `f64`
/// in position order and are rounded once, so `f16`/`bf16` gradients are closer to the
/// exact value than PyTorch's; [`GradSum::F32`](crate::GradSum::F32) is the plain
/// `grad[id] += g` loop's arithmetic (PyTorch's CPU kernel), faster when ids repeat many
/// times. Either way the result is bit-identical from run to run and for any thread
/// count. Untouched rows are zeroed with streaming stores (see
/// [`tokenloom_tensor::stream`]).
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
    backward_dense_cast(ids, grad_output, grad_weight, options, accumulate)
}

/// [`backward_dense`] from an output gradient of another element type: mixed precision's
/// `f16`/`bf16` upstream gradient accumulated into the `f32` (or `f64`) gradient of a
/// master table. Each term is widened exactly, repeats are summed as
/// `options.grad_sum` says (by default in `f64`, rounded once to `T`), so the result is
/// at least as close to the exact sum as PyTorch's autocast path (cast to `f32`, then
/// the `f32` backward). With `G = T` it is [`backward_dense`], bit for bit.
///
/// # Shapes
///
/// As [`backward_dense`].
///
/// # Errors
///
/// As [`backward_dense`].
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{EmbeddingOptions, functional};
/// use tokenloom_tensor::{Accumulate, bf16};
///
/// // A bf16 upstream gradient for ids [1, 1] into the f32 gradient of a (2, 1) table.
/// let grad_output = [bf16::from_f32(0.5), bf16::from_f32(0.25)];
/// let mut grad_weight = [0.0f32; 2];
/// functional::backward_dense_cast(
///     &[1u32, 1],
///     (&grad_output[..], [2, 1]),
///     (&mut grad_weight[..], [2, 1]),
///     &EmbeddingOptions::default(),
///     Accumulate::Replace,
/// )?;
/// assert_eq!(grad_weight, [0.0, 0.75]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn backward_dense_cast<'i, 'g, 'w, G: Element, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_output: impl TensorLike<'g, G>,
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
    let groups = RowGroups::new(ids.as_slice(), options.padding_idx)?;
    let how = RowSum::of(options, accumulate);
    let grad_output = grad_output.as_slice();
    let mut scatter = Scatter::plan::<G, T>(
        &groups,
        grad_output.len(),
        n_embd,
        vocab_size,
        Layout::Dense,
        how,
    )?;
    scatter.run(&groups, grad_output, grad_weight.as_mut_slice());
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
/// [`EmbeddingError::RowIdsTooLarge`] for a `vocab_size` whose row ids do not fit the
/// `u32` rows of a [`SparseGrad`]. On error `grad` is unchanged.
pub fn backward_sparse<'i, 'g, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_output: impl TensorLike<'g, T>,
    vocab_size: usize,
    options: &EmbeddingOptions,
    grad: &mut SparseGrad<T>,
) -> Result<(), EmbeddingError> {
    let grad_output = grad_output.try_view()?;
    let mut plan = SparsePlan::new(ids.try_view()?, grad_output, vocab_size, options)?;
    let (n_rows, n_embd) = (plan.groups.len(), plan.n_embd);
    let len = n_rows * n_embd;
    try_grow(&mut grad.values, len, "backward_sparse")?;
    try_grow(&mut grad.rows, n_rows, "backward_sparse rows")?;
    grad.values.resize(len, T::zero());
    grad.rows.clear();
    grad.rows.extend(plan.groups.ids());
    (grad.vocab_size, grad.n_embd) = (vocab_size, n_embd);
    plan.scatter
        .run(&plan.groups, grad_output.as_slice(), &mut grad.values);
    Ok(())
}

/// [`backward_sparse`] into the caller's buffers, no allocation of the result: the
/// distinct touched row ids, increasing, into the first entries of `rows`, their summed
/// gradient rows into the first rows of `values` `(capacity, n_embd)`; returns their
/// number. A `capacity` of the number of ids always suffices. The rest of both buffers
/// is left as it was.
///
/// # Errors
///
/// As [`backward_sparse`], and [`EmbeddingError::SparseCapacity`] when `rows` or
/// `values` has room for fewer rows than the batch touches (or `values` is not
/// `(capacity, n_embd)`). On error nothing is written.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{EmbeddingOptions, functional};
///
/// // Ids [4, 1, 4] of a 10-row table, n_embd 2, into buffers for up to 3 rows.
/// let grad_output = [1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0];
/// let (mut rows, mut values) = ([0u32; 3], [0.0f32; 6]);
/// let n = functional::backward_sparse_into(
///     &[4u32, 1, 4],
///     (&grad_output[..], [3, 2]),
///     10,
///     &EmbeddingOptions::default(),
///     &mut rows,
///     (&mut values[..], [3, 2]),
/// )?;
/// assert_eq!((n, &rows[..n], &values[..n * 2]), (2, &[1u32, 4][..], &[2.0f32, 2.0, 4.0, 4.0][..]));
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn backward_sparse_into<'i, 'g, 'v, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_output: impl TensorLike<'g, T>,
    vocab_size: usize,
    options: &EmbeddingOptions,
    rows: &mut [u32],
    values: impl TensorLikeMut<'v, T>,
) -> Result<usize, EmbeddingError> {
    let grad_output = grad_output.try_view()?;
    let mut values = values.try_view_mut()?;
    let mut plan = SparsePlan::new(ids.try_view()?, grad_output, vocab_size, options)?;
    let (needed, n_embd) = (plan.groups.len(), plan.n_embd);
    let capacity = match *values.dims() {
        [capacity, width] if width == n_embd => capacity.min(rows.len()),
        _ => 0,
    };
    if capacity < needed {
        return Err(EmbeddingError::SparseCapacity {
            needed,
            n_embd,
            rows: rows.len(),
            values: values.shape(),
        });
    }
    for (row, id) in rows.iter_mut().zip(plan.groups.ids()) {
        *row = id;
    }
    let values = &mut values.as_mut_slice()[..needed * n_embd];
    plan.scatter
        .run(&plan.groups, grad_output.as_slice(), values);
    Ok(needed)
}

/// Room for `len` elements in `v`, reserved fallibly.
fn try_grow<X>(v: &mut Vec<X>, len: usize, op: &'static str) -> Result<(), EmbeddingError> {
    if len > v.len() {
        v.try_reserve_exact(len - v.len()).map_err(|_| {
            tokenloom_tensor::TensorError::AllocationFailed {
                op,
                bytes: len.saturating_mul(std::mem::size_of::<X>()),
            }
        })?;
    }
    Ok(())
}

/// A checked sparse backward, planned: the ids grouped, the scatter over the groups.
struct SparsePlan {
    groups: RowGroups,
    scatter: Scatter,
    n_embd: usize,
}

impl SparsePlan {
    fn new<T: Element, I: TokenId>(
        ids: TensorView<'_, I>,
        grad_output: TensorView<'_, T>,
        vocab_size: usize,
        options: &EmbeddingOptions,
    ) -> Result<Self, EmbeddingError> {
        let n_embd = grad_output.dims().last().copied().unwrap_or(0);
        check_table_sizes(vocab_size, n_embd)?;
        if u32::try_from(vocab_size - 1).is_err() {
            return Err(EmbeddingError::RowIdsTooLarge { vocab_size });
        }
        options.validate(vocab_size)?;
        check_backward(ids, grad_output, vocab_size, n_embd)?;
        let groups = RowGroups::new(ids.as_slice(), options.padding_idx)?;
        let how = RowSum::of(options, Accumulate::Replace);
        let scatter = Scatter::plan::<T, T>(
            &groups,
            grad_output.as_slice().len(),
            n_embd,
            groups.len(),
            Layout::Compact,
            how,
        )?;
        Ok(Self {
            groups,
            scatter,
            n_embd,
        })
    }
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
