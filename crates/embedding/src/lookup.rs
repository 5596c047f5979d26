//! The lookup: token ids to rows of the table.

use tokenloom_tensor::{Element, Shape, Tensor, TensorView, TensorViewMut, for_each_chunk_mut};

use crate::error::EmbeddingError;
use crate::renorm::renorm_row;
use crate::table::Embedding;

/// Checks token ids against a vocabulary: the shape must be `(seq_len,)` or
/// `(batch, seq_len)` with no zero dimension, and every id below `vocab_size`.
///
/// Returns the output shape of a lookup, `ids.shape + (n_embd,)`.
///
/// # Errors
///
/// [`EmbeddingError::IdsRank`], [`EmbeddingError::EmptyIds`], and
/// [`EmbeddingError::TokenOutOfRange`] for the first offending id in row-major order,
/// naming its batch index and position.
pub fn check_ids(
    ids: TensorView<'_, u32>,
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
        .position(|&id| usize::try_from(id).map_or(true, |id| id >= vocab_size))
    {
        return Err(EmbeddingError::TokenOutOfRange {
            token: ids.as_slice()[index],
            batch: index / seq_len,
            position: index % seq_len,
            vocab_size,
        });
    }
    Ok(shape.with_inner(n_embd)?)
}

impl<T: Element> Embedding<T> {
    /// Looks up each id's row: `(seq_len,)` → `(seq_len, n_embd)` and
    /// `(batch, seq_len)` → `(batch, seq_len, n_embd)`. Each output row is a bit-exact copy
    /// of the table row of its id — or, when a `max_norm` is set, of that row renormalised
    /// as PyTorch's forward would (without modifying the table; see
    /// [`renorm_in_place`](Embedding::renorm_in_place)).
    ///
    /// `ids` is anything that converts to a [`TensorView<u32>`]: a `&Tensor<u32>`, a
    /// `&[u32]` or a `&[u32; N]` (both rank 1), or a view over a framework's own buffer.
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
    /// let ids = Tensor::from_vec(vec![73, 786, 2934], &[1, 3])?;
    /// assert_eq!(table.forward(&ids)?.dims(), &[1, 3, 8]);
    ///
    /// let bad = Tensor::from_vec(vec![73, 786, 40000], &[1, 3])?;
    /// assert_eq!(
    ///     table.forward(&bad).unwrap_err(),
    ///     EmbeddingError::TokenOutOfRange { token: 40000, batch: 0, position: 2, vocab_size: 3000 },
    /// );
    /// # Ok::<(), EmbeddingError>(())
    /// ```
    pub fn forward<'a>(
        &self,
        ids: impl Into<TensorView<'a, u32>>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let ids = ids.into();
        let shape = check_ids(ids, self.vocab_size(), self.n_embd())?;
        // One pass: the rows are appended to reserved memory, never zeroed first.
        let n_embd = self.n_embd();
        let mut data = Vec::new();
        data.try_reserve_exact(shape.elem_count()).map_err(|_| {
            tokenloom_tensor::TensorError::AllocationFailed {
                op: "Embedding::forward",
                bytes: shape.elem_count().saturating_mul(std::mem::size_of::<T>()),
            }
        })?;
        let table = self.weight().as_slice();
        for &id in ids.as_slice() {
            data.extend_from_slice(&table[id as usize * n_embd..(id as usize + 1) * n_embd]);
        }
        if let Some(max_norm) = self.options().max_norm {
            for row in data.chunks_exact_mut(n_embd) {
                renorm_row(row, &max_norm);
            }
        }
        Ok(Tensor::from_shape_vec(data, shape)?)
    }

    /// Like [`forward`](Embedding::forward), writing into a caller's buffer of shape
    /// `ids.shape + (n_embd,)` without allocating.
    ///
    /// # Errors
    ///
    /// As [`check_ids`], and [`EmbeddingError::OutputShape`] when `out` has the wrong
    /// shape. On error `out` is unchanged.
    pub fn forward_into<'a>(
        &self,
        ids: impl Into<TensorView<'a, u32>>,
        mut out: TensorViewMut<'_, T>,
    ) -> Result<(), EmbeddingError> {
        let ids = ids.into();
        let expected = check_ids(ids, self.vocab_size(), self.n_embd())?;
        if out.shape() != expected {
            return Err(EmbeddingError::OutputShape {
                expected,
                got: out.shape(),
            });
        }
        self.lookup_rows(ids.as_slice(), out.as_mut_slice());
        Ok(())
    }

    /// Like [`forward`](Embedding::forward), reusing the allocation of `buffer` (e.g. the
    /// previous step's output): a training loop that hands its output back pays neither
    /// an allocation nor page faults on every call. This is tokenloom's answer to the
    /// allocating API's cost; see `docs/benchmarks.md`.
    ///
    /// # Errors
    ///
    /// As [`forward`](Embedding::forward).
    pub fn forward_reusing<'a>(
        &self,
        ids: impl Into<TensorView<'a, u32>>,
        buffer: Tensor<T>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let ids = ids.into();
        let shape = check_ids(ids, self.vocab_size(), self.n_embd())?;
        let mut out = buffer.recycle(shape.dims())?;
        self.lookup_rows(ids.as_slice(), out.as_mut_slice());
        Ok(out)
    }

    /// Copies the rows of checked ids, then applies `max_norm` to the copies.
    fn lookup_rows(&self, ids: &[u32], out: &mut [T]) {
        let n_embd = self.n_embd();
        copy_rows(self.weight().as_slice(), n_embd, ids, out);
        if let Some(max_norm) = self.options().max_norm {
            for row in out.chunks_exact_mut(n_embd) {
                renorm_row(row, &max_norm);
            }
        }
    }
}

/// Copies row `ids[i]` of `table` to row `i` of `out` (across threads for large
/// outputs). The ids have been checked.
fn copy_rows<T: Copy + Send + Sync>(table: &[T], n_embd: usize, ids: &[u32], out: &mut [T]) {
    for_each_chunk_mut(out, n_embd, |i, dst| {
        let start = ids[i] as usize * n_embd;
        dst.copy_from_slice(&table[start..start + n_embd]);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Init;

    fn table() -> Embedding<f32> {
        let weight = Tensor::from_vec((0..12).map(|x| x as f32).collect(), &[4, 3]).unwrap();
        Embedding::from_weight(weight).unwrap()
    }

    #[test]
    fn lookup_selects_rows() {
        let out = table().forward(&[3, 0, 3]).unwrap();
        assert_eq!(out.as_slice(), &[9., 10., 11., 0., 1., 2., 9., 10., 11.]);
    }

    #[test]
    fn errors_locate_the_bad_id() {
        let ids = Tensor::from_vec(vec![0, 1, 2, 3, 4, 0], &[2, 3]).unwrap();
        let err = table().forward(&ids).unwrap_err();
        assert_eq!(
            err.to_string(),
            "token id 4 at batch 1, position 1 is outside vocab_size 4"
        );
        let empty = Tensor::from_vec(Vec::<u32>::new(), &[2, 0]).unwrap();
        assert!(matches!(
            table().forward(&empty),
            Err(EmbeddingError::EmptyIds { .. })
        ));
        let cube = Tensor::from_vec(vec![0u32; 8], &[2, 2, 2]).unwrap();
        assert!(matches!(
            table().forward(&cube),
            Err(EmbeddingError::IdsRank { .. })
        ));
    }

    #[test]
    fn forward_into_checks_the_buffer_and_leaves_it_on_error() {
        let t = Embedding::<f64>::seeded(5, 2, Init::default(), 0).unwrap();
        let mut buf = [7.0f64; 4];
        let err = t
            .forward_into(&[1, 9], TensorViewMut::new(&mut buf, &[2, 2]).unwrap())
            .unwrap_err();
        assert!(matches!(
            err,
            EmbeddingError::TokenOutOfRange {
                token: 9,
                position: 1,
                ..
            }
        ));
        assert_eq!(buf, [7.0; 4]);
        let err = t
            .forward_into(&[1, 2], TensorViewMut::new(&mut buf, &[1, 4]).unwrap())
            .unwrap_err();
        assert!(matches!(err, EmbeddingError::OutputShape { .. }), "{err}");
        t.forward_into(&[1, 2], TensorViewMut::new(&mut buf, &[2, 2]).unwrap())
            .unwrap();
        assert_eq!(&buf[2..], t.row(2).unwrap());
    }
}
