//! [`Shape`]: the dimensions of a row-major tensor, with a checked element count.

use std::fmt;

use crate::error::TensorError;

/// The largest rank a [`Shape`] can hold.
///
/// tokenloom needs at most four dimensions (`(batch, seq_len, n_heads, head_dim)`); eight
/// leaves room for callers while keeping `Shape` a small `Copy` value that never allocates,
/// so wrapping a foreign buffer in a view costs nothing.
pub const MAX_RANK: usize = 8;

/// The dimensions of a contiguous, row-major tensor.
///
/// Invariant: the product of the dimensions fits in `usize`. It is enforced by
/// [`Shape::new`], the only constructor, so [`Shape::elem_count`] never overflows.
///
/// `Shape` displays like a Python tuple: `(3, 8)`, `(3,)`, `()`.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::Shape;
///
/// let shape = Shape::new(&[1, 3, 8])?;
/// assert_eq!(shape.rank(), 3);
/// assert_eq!(shape.elem_count(), 24);
/// assert_eq!(shape.to_string(), "(1, 3, 8)");
/// assert!(Shape::new(&[usize::MAX, 2]).is_err());
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shape {
    dims: [usize; MAX_RANK],
    rank: usize,
    /// The product of `dims`, computed once (views check it on every call).
    elem_count: usize,
}

impl Shape {
    /// Builds a shape from its dimensions, outermost first.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankTooLarge`] for more than [`MAX_RANK`] dimensions and
    /// [`TensorError::ShapeOverflow`] when the element count overflows `usize`.
    #[inline]
    pub fn new(dims: &[usize]) -> Result<Self, TensorError> {
        if dims.len() > MAX_RANK {
            return Err(TensorError::RankTooLarge {
                rank: dims.len(),
                max_rank: MAX_RANK,
            });
        }
        let Some(elem_count) = checked_product(dims) else {
            return Err(TensorError::ShapeOverflow {
                dims: dims.to_vec(),
            });
        };
        let mut stored = [0; MAX_RANK];
        stored[..dims.len()].copy_from_slice(dims);
        Ok(Self {
            dims: stored,
            rank: dims.len(),
            elem_count,
        })
    }

    /// The dimensions, outermost first.
    #[must_use]
    #[inline]
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// The number of dimensions.
    #[must_use]
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of elements: the product of the dimensions (1 for rank 0).
    #[must_use]
    #[inline]
    pub fn elem_count(&self) -> usize {
        self.elem_count
    }

    /// The innermost dimension (the length of a row), or 1 for a rank-0 shape.
    #[must_use]
    pub fn row_len(&self) -> usize {
        self.dims().last().copied().unwrap_or(1)
    }

    /// The number of rows: the product of all dimensions but the innermost.
    #[must_use]
    pub fn n_rows(&self) -> usize {
        match self.dims().split_last() {
            Some((_, outer)) => outer.iter().product(),
            None => 1,
        }
    }

    /// This shape with `extra` appended as a new innermost dimension, e.g.
    /// `(batch, seq_len)` + `n_embd` → `(batch, seq_len, n_embd)`.
    ///
    /// # Errors
    ///
    /// As [`Shape::new`].
    pub fn with_inner(&self, extra: usize) -> Result<Self, TensorError> {
        let mut dims = [0; MAX_RANK + 1];
        dims[..self.rank].copy_from_slice(self.dims());
        dims[self.rank] = extra;
        Self::new(&dims[..=self.rank])
    }

    /// The dimensions of a rank-2 shape.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankMismatch`] naming `op` when the rank is not 2.
    pub fn dims2(&self, op: &'static str) -> Result<(usize, usize), TensorError> {
        match *self.dims() {
            [a, b] => Ok((a, b)),
            _ => Err(self.rank_mismatch(op, 2)),
        }
    }

    /// The dimensions of a rank-3 shape.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankMismatch`] naming `op` when the rank is not 3.
    pub fn dims3(&self, op: &'static str) -> Result<(usize, usize, usize), TensorError> {
        match *self.dims() {
            [a, b, c] => Ok((a, b, c)),
            _ => Err(self.rank_mismatch(op, 3)),
        }
    }

    /// The dimensions of a rank-4 shape.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankMismatch`] naming `op` when the rank is not 4.
    pub fn dims4(&self, op: &'static str) -> Result<(usize, usize, usize, usize), TensorError> {
        match *self.dims() {
            [a, b, c, d] => Ok((a, b, c, d)),
            _ => Err(self.rank_mismatch(op, 4)),
        }
    }

    fn rank_mismatch(&self, op: &'static str, expected: usize) -> TensorError {
        TensorError::RankMismatch {
            op,
            expected,
            shape: *self,
        }
    }
}

/// The product of `dims`, or `None` when it overflows `usize`.
#[must_use]
#[inline]
pub(crate) fn checked_product(dims: &[usize]) -> Option<usize> {
    dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, d) in self.dims().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{d}")?;
        }
        if self.rank == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Shape{self}")
    }
}

impl AsRef<[usize]> for Shape {
    fn as_ref(&self) -> &[usize] {
        self.dims()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_matches_python_tuples() {
        assert_eq!(Shape::new(&[]).unwrap().to_string(), "()");
        assert_eq!(Shape::new(&[3]).unwrap().to_string(), "(3,)");
        assert_eq!(Shape::new(&[3, 8]).unwrap().to_string(), "(3, 8)");
    }

    #[test]
    fn overflow_and_rank_are_errors() {
        assert!(matches!(
            Shape::new(&[1 << 40, 1 << 40]),
            Err(TensorError::ShapeOverflow { .. })
        ));
        assert!(matches!(
            Shape::new(&[1; MAX_RANK + 1]),
            Err(TensorError::RankTooLarge { rank: 9, .. })
        ));
    }

    #[test]
    fn rows_of_shapes() {
        let s = Shape::new(&[2, 3, 4]).unwrap();
        assert_eq!((s.n_rows(), s.row_len()), (6, 4));
        let scalar = Shape::new(&[]).unwrap();
        assert_eq!(
            (scalar.n_rows(), scalar.row_len(), scalar.elem_count()),
            (1, 1, 1)
        );
        assert_eq!(s.with_inner(5).unwrap().dims(), &[2, 3, 4, 5]);
        assert!(matches!(
            s.dims2("test"),
            Err(TensorError::RankMismatch { expected: 2, .. })
        ));
    }
}
