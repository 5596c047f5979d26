//! The lookup: token ids to rows of the table — on borrowed memory ([`lookup`],
//! [`lookup_into`], [`renorm`]) and as methods of [`Embedding`], which call them.

use tokenloom_tensor::{
    Element, Shape, Tensor, TensorLike, TensorLikeMut, TensorView, TokenId,
    for_each_chunk_mut_by_work, tasks_for,
};

use crate::error::EmbeddingError;
use crate::options::MaxNorm;
use crate::renorm::renorm_row;
use crate::table::{Embedding, check_table_sizes};

/// Checks token ids against a vocabulary: the shape must be `(seq_len,)` or
/// `(batch, seq_len)` with no zero dimension, and every id in `[0, vocab_size)`.
///
/// Returns the output shape of a lookup, `ids.shape + (n_embd,)`. A framework that runs
/// its own kernel can validate ids with it and report tokenloom's errors.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::check_ids;
/// use tokenloom_tensor::TensorView;
///
/// let ids = [73i64, 786, 2934];
/// let shape = check_ids(TensorView::new(&ids, &[1, 3])?, 3000, 8)?;
/// assert_eq!(shape.dims(), &[1, 3, 8]);
/// let err = check_ids(TensorView::new(&ids, &[1, 3])?, 1000, 8).unwrap_err();
/// assert_eq!(err.to_string(), "token id 2934 at batch 0, position 2 is outside vocab_size 1000");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
///
/// [`EmbeddingError::IdsRank`], [`EmbeddingError::EmptyIds`], and
/// [`EmbeddingError::TokenOutOfRange`] for the first offending id in row-major order
/// (negative or at least `vocab_size`), naming its batch index and position.
pub fn check_ids<I: TokenId>(
    ids: TensorView<'_, I>,
    vocab_size: usize,
    n_embd: usize,
) -> Result<Shape, EmbeddingError> {
    let shape = ids.shape();
    let seq_len = match *shape.dims() {
        [seq_len] | [_, seq_len] => seq_len,
        _ => return Err(EmbeddingError::IdsRank { shape }),
    };
    if shape.elem_count() == 0 {
        return Err(EmbeddingError::EmptyIds { shape });
    }
    if let Some(index) = ids
        .as_slice()
        .iter()
        .position(|&id| id.index_below(vocab_size).is_none())
    {
        return Err(EmbeddingError::TokenOutOfRange {
            token: ids.as_slice()[index].to_i64(),
            batch: index / seq_len,
            position: index % seq_len,
            vocab_size,
        });
    }
    Ok(shape.with_inner(n_embd)?)
}

/// `(vocab_size, n_embd)` of a borrowed table: rank 2, no zero dimension.
pub(crate) fn table_dims<T>(table: TensorView<'_, T>) -> Result<(usize, usize), EmbeddingError> {
    let (vocab_size, n_embd) =
        table
            .shape()
            .dims2("embedding table")
            .map_err(|_| EmbeddingError::WeightShape {
                shape: table.shape(),
            })?;
    check_table_sizes(vocab_size, n_embd)?;
    Ok((vocab_size, n_embd))
}

/// The lookup on borrowed memory, as `torch.nn.functional.embedding`: row `ids[i]` of a
/// `(vocab_size, n_embd)` table the caller owns, into a fresh tensor. With `max_norm`,
/// each returned row is renormalised as PyTorch's forward returns it; the table is never
/// modified (see [`renorm`] for PyTorch's in-place side effect).
///
/// `table` and `ids` are anything [`TensorLike`]: a [`Tensor`], a view, a framework's
/// buffer with its shape, an `ndarray` array (feature `ndarray`). Ids may be `u32`, `i32`
/// or `i64`, read without conversion.
///
/// # Shapes
///
/// - table: `(vocab_size, n_embd)`
/// - ids: `(seq_len,)` or `(batch, seq_len)`
/// - output: `ids.shape + (n_embd,)`
///
/// # Errors
///
/// [`EmbeddingError::WeightShape`] for a table that is not rank 2,
/// [`EmbeddingError::ZeroSize`] / [`EmbeddingError::TableTooLarge`] for a table with a zero
/// dimension or one too large to address, the id errors of [`check_ids`], and tensor errors
/// for a source that is not a contiguous row-major buffer or an allocation that fails.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{EmbeddingError, functional};
///
/// // A framework's own (vocab_size = 4, n_embd = 2) parameter buffer, and PyTorch-style
/// // i64 ids: no copy of either.
/// let weight = vec![0.0f32, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5];
/// let x = functional::lookup((&weight[..], [4, 2]), &[3i64, 0], None)?;
/// assert_eq!(x.as_slice(), &[3.0, 3.5, 0.0, 0.5]);
///
/// let err = functional::lookup((&weight[..], [4, 2]), &[1i64, -1], None).unwrap_err();
/// assert_eq!(err.to_string(), "token id -1 at batch 0, position 1 is outside vocab_size 4");
/// # Ok::<(), EmbeddingError>(())
/// ```
pub fn lookup<'t, 'i, T: Element, I: TokenId>(
    table: impl TensorLike<'t, T>,
    ids: impl TensorLike<'i, I>,
    max_norm: Option<&MaxNorm>,
) -> Result<Tensor<T>, EmbeddingError> {
    let table = table.try_view()?;
    let (vocab_size, n_embd) = table_dims(table)?;
    lookup_rows(
        table.as_slice(),
        vocab_size,
        n_embd,
        ids.try_view()?,
        max_norm,
    )
}

/// [`lookup`] on a table whose dimensions are already known to be valid.
fn lookup_rows<T: Element, I: TokenId>(
    rows: &[T],
    vocab_size: usize,
    n_embd: usize,
    ids: TensorView<'_, I>,
    max_norm: Option<&MaxNorm>,
) -> Result<Tensor<T>, EmbeddingError> {
    let shape = check_ids(ids, vocab_size, n_embd)?;
    // One pass: the rows are appended to reserved memory, never zeroed first.
    let mut data = Vec::new();
    data.try_reserve_exact(shape.elem_count()).map_err(|_| {
        tokenloom_tensor::TensorError::AllocationFailed {
            op: "lookup",
            bytes: shape.elem_count().saturating_mul(std::mem::size_of::<T>()),
        }
    })?;
    for &id in ids.as_slice() {
        let start = id.checked_index() * n_embd;
        data.extend_from_slice(&rows[start..start + n_embd]);
    }
    if let Some(max_norm) = max_norm {
        for row in data.chunks_exact_mut(n_embd) {
            renorm_row(row, max_norm);
        }
    }
    Ok(Tensor::from_shape_vec(data, shape)?)
}

/// [`lookup`] into a caller's buffer of shape `ids.shape + (n_embd,)`, without
/// allocating; large outputs are split across threads (see
/// [`tokenloom_tensor::for_each_chunk_mut`]).
///
/// # Errors
///
/// As [`lookup`], and [`EmbeddingError::OutputShape`] when `out` has the wrong shape. On
/// error `out` is unchanged.
pub fn lookup_into<'t, 'i, 'o, T: Element, I: TokenId>(
    table: impl TensorLike<'t, T>,
    ids: impl TensorLike<'i, I>,
    out: impl TensorLikeMut<'o, T>,
    max_norm: Option<&MaxNorm>,
) -> Result<(), EmbeddingError> {
    let table = table.try_view()?;
    let (vocab_size, n_embd) = table_dims(table)?;
    lookup_rows_into(
        table.as_slice(),
        vocab_size,
        n_embd,
        ids.try_view()?,
        out.try_view_mut()?,
        max_norm,
    )
}

/// [`lookup_into`] on a table whose dimensions are already known to be valid.
#[inline]
fn lookup_rows_into<T: Element, I: TokenId>(
    rows: &[T],
    vocab_size: usize,
    n_embd: usize,
    ids: TensorView<'_, I>,
    mut out: tokenloom_tensor::TensorViewMut<'_, T>,
    max_norm: Option<&MaxNorm>,
) -> Result<(), EmbeddingError> {
    // A decode step of one sequence, `(1,)` or `(1, 1)` into `(1, n_embd)` or
    // `(1, 1, n_embd)`: one row, checked and copied without the general path's set-up
    // (which costs 10 % of a 16 KiB row's copy on the Xeon).
    if let ([id], None) = (ids.as_slice(), max_norm)
        && let Some(index) = id.index_below(vocab_size)
        && matches!(
            (ids.dims(), out.dims()),
            ([1], &[1, n]) | ([1, 1], &[1, 1, n]) if n == n_embd
        )
    {
        let (start, out) = (index * n_embd, out.as_mut_slice());
        row_copy(out)(out, &rows[start..start + n_embd]);
        return Ok(());
    }
    check_output(ids, out.dims(), vocab_size, n_embd)?;
    write_rows(rows, n_embd, ids.as_slice(), out.as_mut_slice(), max_norm);
    Ok(())
}

/// Checks ids and an output of dimensions `out_dims` for a lookup: every id in range,
/// `out_dims` = `ids.shape + (n_embd,)`.
#[inline]
fn check_output<I: TokenId>(
    ids: TensorView<'_, I>,
    out_dims: &[usize],
    vocab_size: usize,
    n_embd: usize,
) -> Result<(), EmbeddingError> {
    // The common case, checked without building shapes (a decode step's lookup is a
    // 100 ns copy; the full check below costs half as much again): `out` is
    // `ids.shape + (n_embd,)` for non-empty ids of rank 1 or 2, every id in range.
    let ids_dims = ids.dims();
    let fits = matches!(ids_dims.len(), 1 | 2)
        && out_dims.len() == ids_dims.len() + 1
        && out_dims[ids_dims.len()] == n_embd
        && ids_dims.iter().zip(out_dims).all(|(a, b)| a == b)
        && !ids.as_slice().is_empty()
        && ids
            .as_slice()
            .iter()
            .all(|id| id.index_below(vocab_size).is_some());
    if !fits {
        // Which check failed, as a typed error.
        let expected = check_ids(ids, vocab_size, n_embd)?;
        let got = tokenloom_tensor::Shape::new(out_dims)?;
        if got != expected {
            return Err(EmbeddingError::OutputShape { expected, got });
        }
    }
    Ok(())
}

/// [`lookup_into`] from a table of one float type into an output of another: a bf16 or
/// f16 table looked up into f32 (or f64) hidden states, exactly (every half value is an
/// f32), or an f32 table into a half output rounded to nearest once — what
/// `weight[ids].float()` gives in PyTorch, without the intermediate half tensor.
///
/// `max_norm` is not offered here: renormalise the table first
/// ([`renorm`](crate::functional::renorm)), as PyTorch does before the lookup.
///
/// # Errors
///
/// As [`lookup_into`].
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::functional;
/// use tokenloom_tensor::bf16;
///
/// let table: Vec<bf16> = [0.5f32, 1.0, 1.5, 2.0].iter().map(|&x| bf16::from_f32(x)).collect();
/// let mut hidden = [0.0f32; 2];
/// functional::lookup_cast_into((&table[..], [2, 2]), &[1u32], (&mut hidden[..], [1, 2]))?;
/// assert_eq!(hidden, [1.5, 2.0]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn lookup_cast_into<'t, 'i, 'o, S: Element, D: Element, I: TokenId>(
    table: impl TensorLike<'t, S>,
    ids: impl TensorLike<'i, I>,
    out: impl TensorLikeMut<'o, D>,
) -> Result<(), EmbeddingError> {
    let table = table.try_view()?;
    let (vocab_size, n_embd) = table_dims(table)?;
    let (ids, mut out) = (ids.try_view()?, out.try_view_mut()?);
    check_output(ids, out.dims(), vocab_size, n_embd)?;
    let rows = table.as_slice();
    let convert = |dst: &mut [D], src: &[S]| {
        for (d, &s) in dst.iter_mut().zip(src) {
            // Every float type widens exactly to f64: one rounding, to D.
            *d = D::from_f64_lossy(s.as_f64());
        }
    };
    for_each_row(out.as_mut_slice(), n_embd, ids.as_slice(), |dst, id| {
        let start = id.checked_index() * n_embd;
        convert(dst, &rows[start..start + n_embd]);
    });
    Ok(())
}

/// Copies the rows of checked ids into `out` (across threads for large outputs), then
/// applies `max_norm` to the copies.
#[inline]
fn write_rows<T: Element, I: TokenId>(
    rows: &[T],
    n_embd: usize,
    ids: &[I],
    out: &mut [T],
    max_norm: Option<&MaxNorm>,
) {
    copy_rows(rows, n_embd, ids, out);
    if let Some(max_norm) = max_norm {
        for row in out.chunks_exact_mut(n_embd) {
            renorm_row(row, max_norm);
        }
    }
}

/// PyTorch's `max_norm` side effect on a caller's table: every row referenced by `ids`
/// whose norm exceeds `max_norm` is scaled in place by `max_norm / (norm + 1e-7)`, once
/// per distinct id. Returns the renormalised rows, sorted.
///
/// # Errors
///
/// As [`lookup`]. On error the table is unchanged.
pub fn renorm<'t, 'i, T: Element, I: TokenId>(
    table: impl TensorLikeMut<'t, T>,
    ids: impl TensorLike<'i, I>,
    max_norm: &MaxNorm,
) -> Result<Vec<usize>, EmbeddingError> {
    let mut table = table.try_view_mut()?;
    let ids = ids.try_view()?;
    let (vocab_size, n_embd) = table_dims(table.as_view())?;
    check_ids(ids, vocab_size, n_embd)?;
    let mut distinct: Vec<usize> = ids.as_slice().iter().map(|id| id.checked_index()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let weight = table.as_mut_slice();
    Ok(distinct
        .into_iter()
        .filter(|&row| renorm_row(&mut weight[row * n_embd..(row + 1) * n_embd], max_norm))
        .collect())
}

impl<T: Element> Embedding<T> {
    /// Looks up each id's row: `(seq_len,)` → `(seq_len, n_embd)` and
    /// `(batch, seq_len)` → `(batch, seq_len, n_embd)`. Each output row is a bit-exact copy
    /// of the table row of its id — or, when a `max_norm` is set, of that row renormalised
    /// as PyTorch's forward would (without modifying the table; see
    /// [`renorm_in_place`](Embedding::renorm_in_place)). This is [`lookup`] on the table.
    ///
    /// `ids` is anything [`TensorLike`] over `u32`, `i32` or `i64`: a `&Tensor<u32>`, a
    /// `&[i64]` or a `&[u32; N]` (both rank 1), or a view over a framework's own buffer.
    ///
    /// # Shapes
    ///
    /// - ids: `(seq_len,)` or `(batch, seq_len)`
    /// - output: `ids.shape + (n_embd,)`
    ///
    /// # Errors
    ///
    /// As [`check_ids`]; nothing is written before every id has been checked.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_embedding::{Embedding, EmbeddingError, Init};
    /// use tokenloom_tensor::Tensor;
    ///
    /// let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 0)?;
    /// let ids = Tensor::from_vec(vec![73u32, 786, 2934], &[1, 3])?;
    /// assert_eq!(table.forward(&ids)?.dims(), &[1, 3, 8]);
    ///
    /// let bad = Tensor::from_vec(vec![73u32, 786, 40000], &[1, 3])?;
    /// assert_eq!(
    ///     table.forward(&bad).unwrap_err(),
    ///     EmbeddingError::TokenOutOfRange { token: 40000, batch: 0, position: 2, vocab_size: 3000 },
    /// );
    /// # Ok::<(), EmbeddingError>(())
    /// ```
    pub fn forward<'a, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        // The table's dimensions are valid by construction: straight to the rows.
        lookup_rows(
            self.weight().as_slice(),
            self.vocab_size(),
            self.n_embd(),
            ids.try_view()?,
            self.options().max_norm.as_ref(),
        )
    }

    /// Like [`forward`](Embedding::forward), writing into a caller's buffer of shape
    /// `ids.shape + (n_embd,)` without allocating ([`lookup_into`] on the table).
    ///
    /// # Errors
    ///
    /// As [`check_ids`], and [`EmbeddingError::OutputShape`] when `out` has the wrong
    /// shape. On error `out` is unchanged.
    #[inline]
    pub fn forward_into<'a, 'o, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        out: impl TensorLikeMut<'o, T>,
    ) -> Result<(), EmbeddingError> {
        lookup_rows_into(
            self.weight().as_slice(),
            self.vocab_size(),
            self.n_embd(),
            ids.try_view()?,
            out.try_view_mut()?,
            self.options().max_norm.as_ref(),
        )
    }

    /// Like [`forward`](Embedding::forward), reusing the allocation of `buffer` (e.g. the
    /// previous step's output): a training loop that hands its output back pays neither
    /// an allocation nor page faults on every call. This is tokenloom's answer to the
    /// allocating API's cost; see `docs/benchmarks.md`.
    ///
    /// # Errors
    ///
    /// As [`forward`](Embedding::forward).
    pub fn forward_reusing<'a, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        buffer: Tensor<T>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let ids = ids.try_view()?;
        let shape = check_ids(ids, self.vocab_size(), self.n_embd())?;
        let mut out = buffer.recycle(shape.dims())?;
        write_rows(
            self.weight().as_slice(),
            self.n_embd(),
            ids.as_slice(),
            out.as_mut_slice(),
            self.options().max_norm.as_ref(),
        );
        Ok(out)
    }
}

/// Outputs up to this size are copied with the AVX row copy ([`tokenloom_tensor::copy`]).
const CACHED_OUTPUT_BYTES: usize = 256 * 1024;

/// How the rows of the output `out` are copied. A small output (a decode step) is
/// written while its rows sit in cache, where the AVX row copy beats `memcpy` on AMD CPUs
/// (`copy::copy` takes it there only); a large one streams to memory, where `memcpy`
/// measured faster ((8, 512) rows of 16 KiB: 1.10× with the AVX copy;
/// docs/benchmarks/next-to-pytorch.md, "Copying a row").
#[inline]
fn row_copy<T: Copy>(out: &[T]) -> fn(&mut [T], &[T]) {
    if std::mem::size_of_val(out) <= CACHED_OUTPUT_BYTES {
        tokenloom_tensor::copy::copy
    } else {
        <[T]>::copy_from_slice
    }
}

/// Copies row `ids[i]` of `table` to row `i` of `out` (across threads for large
/// outputs). The ids have been checked.
#[inline]
fn copy_rows<T: Copy + Send + Sync, I: TokenId>(
    table: &[T],
    n_embd: usize,
    ids: &[I],
    out: &mut [T],
) {
    let copy = row_copy(out);
    for_each_row(out, n_embd, ids, |dst, id| {
        let start = id.checked_index() * n_embd;
        copy(dst, &table[start..start + n_embd]);
    });
}

/// Calls `write(row, id)` for each output row and its checked id: contiguous runs of rows,
/// a few per thread ([`tasks_for`]), so a pool thread that wakes late still takes its
/// share.
#[inline]
fn for_each_row<T: Send, I: TokenId>(
    out: &mut [T],
    n_embd: usize,
    ids: &[I],
    write: impl Fn(&mut [T], I) + Sync,
) {
    let run = |dst: &mut [T], ids: &[I]| {
        for (dst, &id) in dst.chunks_exact_mut(n_embd).zip(ids) {
            write(dst, id);
        }
    };
    let bytes = std::mem::size_of_val(out);
    let tasks = tasks_for(bytes);
    if tasks == 1 {
        // A decode step: no task set-up around a 100 ns copy.
        run(out, ids);
        return;
    }
    let rows_per_task = ids.len().div_ceil(tasks).max(1);
    for_each_chunk_mut_by_work(out, rows_per_task * n_embd, bytes, |task, dst| {
        run(dst, &ids[task * rows_per_task..]);
    });
}

#[cfg(test)]
mod tests;
