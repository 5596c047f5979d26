//! `ndarray` arrays as [`TensorLike`] / [`TensorLikeMut`]: arrays (owned, shared, views)
//! in standard (row-major, contiguous) layout lend their own memory; anything else is
//! [`TensorError::NotContiguous`].

use ndarray::{ArrayBase, ArrayView, ArrayViewMut, Data, DataMut, Dimension};

use crate::error::TensorError;
use crate::like::{TensorLike, TensorLikeMut};
use crate::view::{TensorView, TensorViewMut};

fn not_contiguous(dims: &[usize], strides: &[isize]) -> TensorError {
    TensorError::NotContiguous {
        framework: "ndarray",
        dims: dims.to_vec(),
        strides: strides.to_vec(),
    }
}

/// An array in standard layout (e.g. `&Array2<f32>`, `&ArcArray`, `&ArrayView`).
impl<'a, T, S, D> TensorLike<'a, T> for &'a ArrayBase<S, D>
where
    S: Data<Elem = T>,
    D: Dimension,
{
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        let data = self
            .as_slice()
            .ok_or_else(|| not_contiguous(self.shape(), self.strides()))?;
        TensorView::new(data, self.shape())
    }
}

/// A view in standard layout.
impl<'a, T, D: Dimension> TensorLike<'a, T> for ArrayView<'a, T, D> {
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        let data = self
            .to_slice()
            .ok_or_else(|| not_contiguous(self.shape(), self.strides()))?;
        TensorView::new(data, self.shape())
    }
}

/// A mutable array in standard layout (e.g. `&mut Array2<f32>`), written in place.
impl<'a, T, S, D> TensorLikeMut<'a, T> for &'a mut ArrayBase<S, D>
where
    S: DataMut<Elem = T>,
    D: Dimension,
{
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        let dims = self.shape().to_vec();
        let strides = self.strides().to_vec();
        let data = self
            .as_slice_mut()
            .ok_or_else(|| not_contiguous(&dims, &strides))?;
        TensorViewMut::new(data, &dims)
    }
}

/// A mutable view in standard layout, written in place.
impl<'a, T, D: Dimension> TensorLikeMut<'a, T> for ArrayViewMut<'a, T, D> {
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        let dims = self.shape().to_vec();
        let strides = self.strides().to_vec();
        let data = self
            .into_slice()
            .ok_or_else(|| not_contiguous(&dims, &strides))?;
        TensorViewMut::new(data, &dims)
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, s};

    use super::*;

    #[test]
    fn standard_layout_is_lent_without_a_copy() {
        let mut a = Array2::<f32>::zeros((3, 4));
        let ptr = a.as_ptr();
        let view = (&a).try_view().unwrap();
        assert_eq!(
            (view.dims(), view.as_slice().as_ptr()),
            (&[3usize, 4][..], ptr)
        );
        assert_eq!(a.view().try_view().unwrap().as_slice().as_ptr(), ptr);
        let mut view = (&mut a).try_view_mut().unwrap();
        view.as_mut_slice()[5] = 2.0;
        assert_eq!(a[[1, 1]], 2.0);
        assert_eq!(
            a.view_mut().try_view_mut().unwrap().as_slice().as_ptr(),
            ptr
        );
    }

    #[test]
    fn strided_arrays_are_errors() {
        let mut a = Array2::<f32>::zeros((3, 4));
        let t = a.t();
        assert!(matches!(
            t.try_view(),
            Err(TensorError::NotContiguous { framework: "ndarray", ref dims, ref strides })
                if dims == &[4, 3] && strides == &[1, 4]
        ));
        assert!(matches!(
            a.slice_mut(s![.., ..2]).try_view_mut(),
            Err(TensorError::NotContiguous { .. })
        ));
    }
}
