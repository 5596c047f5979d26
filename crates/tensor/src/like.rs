//! [`TensorLike`] and [`TensorLikeMut`]: "a shape plus a contiguous row-major slice",
//! whoever owns it.
//!
//! Every borrowed kernel of tokenloom takes its tensors through these traits, so the same
//! call accepts a [`Tensor`], a [`TensorView`], a slice with a shape, or — with the
//! `ndarray` feature — an `ndarray` array in standard layout, all without copying. A
//! source that is not contiguous and row-major is a typed error
//! ([`TensorError::NotContiguous`]), never a silent copy.
//!
//! The traits convert by value, as [`Into`] does: implement them for references
//! (`&Tensor<T>`, `&mut Tensor<T>`) and for views, which are cheap to move.

use crate::error::TensorError;
use crate::shape::Shape;
use crate::tensor::Tensor;
use crate::view::{TensorView, TensorViewMut};

/// Something that lends a read-only [`TensorView`]: a shape and a contiguous row-major
/// slice of exactly that many elements.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Tensor, TensorLike};
///
/// let owned = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let buffer = [1.0f32, 2.0, 3.0, 4.0];
/// // A framework's buffer with its shape, an owned tensor, a view: the same view.
/// let a = (&buffer[..], &[2usize, 2][..]).try_view()?;
/// assert_eq!(a, (&owned).try_view()?);
/// assert_eq!(a, owned.view().try_view()?);
/// // A slice alone is rank 1.
/// assert_eq!((&buffer[..]).try_view()?.dims(), &[4]);
/// // The wrong element count is an error, not a panic.
/// assert!((&buffer[..], &[3usize, 2][..]).try_view().is_err());
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
pub trait TensorLike<'a, T> {
    /// The view.
    ///
    /// # Errors
    ///
    /// [`TensorError::NotContiguous`] for a strided or non-row-major source, and the
    /// shape errors of [`TensorView::new`].
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError>;
}

/// Something that lends a mutable [`TensorViewMut`]: a shape and a contiguous row-major
/// slice of exactly that many elements, written in place.
pub trait TensorLikeMut<'a, T> {
    /// The mutable view.
    ///
    /// # Errors
    ///
    /// As [`TensorLike::try_view`].
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError>;
}

impl<'a, T> TensorLike<'a, T> for TensorView<'a, T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(self)
    }
}

impl<'a, T> TensorLike<'a, T> for &'a TensorView<'_, T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(*self)
    }
}

impl<'a, T> TensorLike<'a, T> for TensorViewMut<'a, T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(self.into_view())
    }
}

impl<'a, T> TensorLike<'a, T> for &'a TensorViewMut<'_, T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(self.as_view())
    }
}

impl<'a, T> TensorLike<'a, T> for &'a Tensor<T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(self.view())
    }
}

impl<'a, T> TensorLike<'a, T> for &'a mut Tensor<T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        Ok(self.view())
    }
}

/// A rank-1 view `(len,)`.
impl<'a, T> TensorLike<'a, T> for &'a [T] {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::new(self, &[self.len()])
    }
}

/// A rank-1 view `(N,)`.
impl<'a, T, const N: usize> TensorLike<'a, T> for &'a [T; N] {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::new(self, &[N])
    }
}

/// A rank-1 view `(len,)`.
impl<'a, T> TensorLike<'a, T> for &'a Vec<T> {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::new(self, &[self.len()])
    }
}

/// A slice with its dimensions.
impl<'a, T> TensorLike<'a, T> for (&'a [T], &[usize]) {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::new(self.0, self.1)
    }
}

/// A slice with its dimensions.
impl<'a, T, const R: usize> TensorLike<'a, T> for (&'a [T], [usize; R]) {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::new(self.0, &self.1)
    }
}

/// A slice with its shape.
impl<'a, T> TensorLike<'a, T> for (&'a [T], Shape) {
    #[inline]
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        TensorView::from_shape(self.0, self.1)
    }
}

impl<'a, T> TensorLikeMut<'a, T> for TensorViewMut<'a, T> {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        Ok(self)
    }
}

impl<'a, T> TensorLikeMut<'a, T> for &'a mut TensorViewMut<'_, T> {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        Ok(self.reborrow())
    }
}

impl<'a, T> TensorLikeMut<'a, T> for &'a mut Tensor<T> {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        Ok(self.view_mut())
    }
}

/// A rank-1 mutable view `(len,)`.
impl<'a, T> TensorLikeMut<'a, T> for &'a mut [T] {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        let len = self.len();
        TensorViewMut::new(self, &[len])
    }
}

/// A rank-1 mutable view `(len,)`.
impl<'a, T> TensorLikeMut<'a, T> for &'a mut Vec<T> {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        let len = self.len();
        TensorViewMut::new(self, &[len])
    }
}

/// A mutable slice with its dimensions.
impl<'a, T> TensorLikeMut<'a, T> for (&'a mut [T], &[usize]) {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        TensorViewMut::new(self.0, self.1)
    }
}

/// A mutable slice with its dimensions.
impl<'a, T, const R: usize> TensorLikeMut<'a, T> for (&'a mut [T], [usize; R]) {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        TensorViewMut::new(self.0, &self.1)
    }
}

/// A mutable slice with its shape.
impl<'a, T> TensorLikeMut<'a, T> for (&'a mut [T], Shape) {
    #[inline]
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        TensorViewMut::from_shape(self.0, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_ptr<'a, T: 'a>(x: impl TensorLike<'a, T>) -> *const T {
        x.try_view().unwrap().as_slice().as_ptr()
    }

    #[test]
    fn every_source_lends_its_own_memory() {
        let owned = Tensor::from_vec(vec![0u8; 6], &[2, 3]).unwrap();
        let ptr = owned.as_slice().as_ptr();
        assert_eq!(data_ptr(&owned), ptr);
        assert_eq!(data_ptr(owned.view()), ptr);
        let view = owned.view();
        let by_ref: &TensorView<'_, u8> = &view;
        assert_eq!(data_ptr(by_ref), ptr);
        assert_eq!(data_ptr((owned.as_slice(), &[3usize, 2][..])), ptr);
        assert_eq!(data_ptr((owned.as_slice(), [6usize])), ptr);
        assert_eq!(data_ptr((owned.as_slice(), owned.shape())), ptr);
        let mut buffer = vec![0u8; 6];
        let ptr = buffer.as_ptr();
        let view = (&mut buffer[..], [2usize, 3]).try_view_mut().unwrap();
        assert_eq!(view.as_slice().as_ptr(), ptr);
        assert_eq!(view.dims(), &[2, 3]);
        assert_eq!((&mut buffer).try_view_mut().unwrap().dims(), &[6]);
    }

    #[test]
    fn wrong_shapes_are_errors() {
        let buffer = [0.0f32; 5];
        assert!(matches!(
            (&buffer[..], [2usize, 3]).try_view(),
            Err(TensorError::ElementCountMismatch {
                expected: 6,
                len: 5,
                ..
            })
        ));
        let mut buffer = [0.0f32; 5];
        assert!(
            (&mut buffer[..], &[usize::MAX, 2][..])
                .try_view_mut()
                .is_err()
        );
    }
}
