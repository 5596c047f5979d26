//! Borrowed views: a [`Shape`] plus `&[T]` or `&mut [T]`.
//!
//! Every kernel in tokenloom takes views, so a framework with its own storage wraps its
//! buffers here at zero cost (the shape is a small `Copy` value) and calls tokenloom
//! without copying.

use crate::error::TensorError;
use crate::shape::Shape;

/// Checks that `len` elements fill `shape` exactly.
#[inline]
fn check_len(op: &'static str, shape: Shape, len: usize) -> Result<(), TensorError> {
    if shape.elem_count() == len {
        Ok(())
    } else {
        Err(TensorError::ElementCountMismatch {
            op,
            shape,
            expected: shape.elem_count(),
            len,
        })
    }
}

/// A read-only, contiguous, row-major view: a shape and the slice it describes.
///
/// Invariant: `data.len() == shape.elem_count()`, checked by [`TensorView::new`].
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::TensorView;
///
/// let storage = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let view = TensorView::new(&storage, &[2, 3])?;
/// assert_eq!(view.row(1)?, &[4.0, 5.0, 6.0]);
/// assert!(TensorView::new(&storage, &[4, 2]).is_err());
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
#[derive(Debug, PartialEq)]
pub struct TensorView<'a, T> {
    shape: Shape,
    data: &'a [T],
}

impl<T> Clone for TensorView<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for TensorView<'_, T> {}

impl<'a, T> TensorView<'a, T> {
    /// Wraps `data` as a tensor of shape `dims`.
    ///
    /// # Errors
    ///
    /// As [`Shape::new`], and [`TensorError::ElementCountMismatch`] when `data.len()` is not
    /// the product of `dims`.
    #[inline]
    pub fn new(data: &'a [T], dims: &[usize]) -> Result<Self, TensorError> {
        Self::from_shape(data, Shape::new(dims)?)
    }

    /// Wraps `data` as a tensor of an already-built `shape`.
    ///
    /// # Errors
    ///
    /// [`TensorError::ElementCountMismatch`] when `data.len() != shape.elem_count()`.
    #[inline]
    pub fn from_shape(data: &'a [T], shape: Shape) -> Result<Self, TensorError> {
        check_len("TensorView::new", shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// The shape.
    #[must_use]
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The dimensions, outermost first.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        // Borrow from `data`'s lifetime is not needed; `shape` is a field of `self`.
        self.shape.dims()
    }

    /// The elements in row-major order.
    #[must_use]
    pub fn as_slice(&self) -> &'a [T] {
        self.data
    }

    /// Row `index` (the innermost dimension).
    ///
    /// # Errors
    ///
    /// [`TensorError::RowOutOfRange`] when `index >= n_rows`.
    pub fn row(&self, index: usize) -> Result<&'a [T], TensorError> {
        let n_rows = self.shape.n_rows();
        if index >= n_rows {
            return Err(TensorError::RowOutOfRange {
                op: "row",
                index,
                n_rows,
            });
        }
        let len = self.shape.row_len();
        Ok(&self.data[index * len..(index + 1) * len])
    }

    /// Iterates over the rows (slices of the innermost dimension).
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &'a [T]> + use<'a, T> {
        let (len, n_rows) = (self.shape.row_len(), self.shape.n_rows());
        (0..n_rows).map({
            let data = self.data;
            move |i| &data[i * len..(i + 1) * len]
        })
    }
}

/// A mutable, contiguous, row-major view: a shape and the slice it describes.
///
/// Invariant: `data.len() == shape.elem_count()`, checked by [`TensorViewMut::new`].
#[derive(Debug, PartialEq)]
pub struct TensorViewMut<'a, T> {
    shape: Shape,
    data: &'a mut [T],
}

impl<'a, T> TensorViewMut<'a, T> {
    /// Wraps `data` as a mutable tensor of shape `dims`.
    ///
    /// # Errors
    ///
    /// As [`TensorView::new`].
    #[inline]
    pub fn new(data: &'a mut [T], dims: &[usize]) -> Result<Self, TensorError> {
        Self::from_shape(data, Shape::new(dims)?)
    }

    /// Wraps `data` as a mutable tensor of an already-built `shape`.
    ///
    /// # Errors
    ///
    /// [`TensorError::ElementCountMismatch`] when `data.len() != shape.elem_count()`.
    #[inline]
    pub fn from_shape(data: &'a mut [T], shape: Shape) -> Result<Self, TensorError> {
        check_len("TensorViewMut::new", shape, data.len())?;
        Ok(Self { shape, data })
    }

    /// The shape.
    #[must_use]
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The dimensions, outermost first.
    #[must_use]
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// The elements in row-major order.
    #[must_use]
    pub fn as_slice(&self) -> &[T] {
        self.data
    }

    /// The elements in row-major order, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self.data
    }

    /// Consumes the view, returning the slice with the view's lifetime.
    #[must_use]
    pub fn into_mut_slice(self) -> &'a mut [T] {
        self.data
    }

    /// Consumes the view, returning a read-only view with the same lifetime.
    #[must_use]
    pub fn into_view(self) -> TensorView<'a, T> {
        TensorView {
            shape: self.shape,
            data: self.data,
        }
    }

    /// A read-only view of the same data.
    #[must_use]
    pub fn as_view(&self) -> TensorView<'_, T> {
        TensorView {
            shape: self.shape,
            data: self.data,
        }
    }

    /// A shorter-lived mutable view of the same data, so the original can be used again.
    pub fn reborrow(&mut self) -> TensorViewMut<'_, T> {
        TensorViewMut {
            shape: self.shape,
            data: self.data,
        }
    }

    /// Iterates over the rows (slices of the innermost dimension), mutably.
    pub fn rows_mut(&mut self) -> impl ExactSizeIterator<Item = &mut [T]> {
        let (len, n_rows) = (self.shape.row_len(), self.shape.n_rows());
        // Split off one row at a time: unlike `chunks_exact_mut`, this also works for
        // zero-width rows, yielding `n_rows` empty slices.
        let mut rest: &mut [T] = self.data;
        (0..n_rows).map(move |_| {
            let (row, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            row
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_zero_width_tensors_are_empty() {
        let data: [f32; 0] = [];
        let view = TensorView::new(&data, &[3, 0]).unwrap();
        assert_eq!(view.rows().len(), 3);
        assert!(view.rows().all(<[f32]>::is_empty));
        let mut data: [f32; 0] = [];
        let mut view = TensorViewMut::new(&mut data, &[2, 0]).unwrap();
        assert_eq!(view.rows_mut().count(), 2);
    }

    #[test]
    fn mutable_rows_cover_the_buffer() {
        let mut data = [0u32; 6];
        let mut view = TensorViewMut::new(&mut data, &[3, 2]).unwrap();
        for (i, row) in view.rows_mut().enumerate() {
            row.fill(u32::try_from(i).unwrap());
        }
        assert_eq!(data, [0, 0, 1, 1, 2, 2]);
    }

    #[test]
    fn wrong_lengths_are_errors() {
        let data = [0u8; 5];
        assert!(matches!(
            TensorView::new(&data, &[2, 3]),
            Err(TensorError::ElementCountMismatch {
                expected: 6,
                len: 5,
                ..
            })
        ));
        let view = TensorView::new(&data, &[5]).unwrap();
        assert!(matches!(
            view.row(1),
            Err(TensorError::RowOutOfRange {
                index: 1,
                n_rows: 1,
                ..
            })
        ));
    }
}
