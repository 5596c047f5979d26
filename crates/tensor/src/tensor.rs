//! [`Tensor`]: an owned, contiguous, row-major tensor.

use crate::element::Element;
use crate::error::TensorError;
use crate::shape::Shape;
use crate::view::{TensorView, TensorViewMut};

/// An owned, contiguous, row-major tensor: a [`Shape`] and a `Vec<T>`.
///
/// Invariant: `data.len() == shape.elem_count()`. It is established by
/// [`Tensor::from_vec`] (and the constructors built on it, including deserialization) and
/// kept by every method, so the fields are private.
///
/// Kernels take borrowed [`TensorView`]s; `Tensor` is the convenience that owns the
/// storage. `T` is usually an [`Element`] (a float), but any type works for storage, e.g.
/// `Tensor<u32>` for token ids.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::Tensor;
///
/// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
/// assert_eq!(t.shape().to_string(), "(3, 2)");
/// assert_eq!(t.row(2)?, &[5.0, 6.0]);
///
/// let batched = t.unsqueeze_batch()?;
/// assert_eq!(batched.dims(), &[1, 3, 2]);
/// assert_eq!(batched.squeeze_batch()?.dims(), &[3, 2]);
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    shape: Shape,
    data: Vec<T>,
}

impl<T> Tensor<T> {
    /// Takes ownership of `data` as a tensor of shape `dims`.
    ///
    /// # Errors
    ///
    /// As [`Shape::new`], and [`TensorError::ElementCountMismatch`] when `data.len()` is not
    /// the product of `dims`.
    pub fn from_vec(data: Vec<T>, dims: &[usize]) -> Result<Self, TensorError> {
        Self::from_shape_vec(data, Shape::new(dims)?)
    }

    /// Takes ownership of `data` as a tensor of an already-built `shape`.
    ///
    /// # Errors
    ///
    /// [`TensorError::ElementCountMismatch`] when `data.len() != shape.elem_count()`.
    pub fn from_shape_vec(data: Vec<T>, shape: Shape) -> Result<Self, TensorError> {
        if data.len() != shape.elem_count() {
            return Err(TensorError::ElementCountMismatch {
                op: "Tensor::from_vec",
                shape,
                expected: shape.elem_count(),
                len: data.len(),
            });
        }
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
        &self.data
    }

    /// The elements in row-major order, mutably. The shape cannot change through it.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Gives up the tensor, returning its shape and storage.
    #[must_use]
    pub fn into_parts(self) -> (Shape, Vec<T>) {
        (self.shape, self.data)
    }

    /// A read-only view of the whole tensor.
    #[must_use]
    pub fn view(&self) -> TensorView<'_, T> {
        TensorView::from_shape(&self.data, self.shape)
            .expect("Tensor invariant: data.len() == shape.elem_count()")
    }

    /// A mutable view of the whole tensor.
    pub fn view_mut(&mut self) -> TensorViewMut<'_, T> {
        TensorViewMut::from_shape(&mut self.data, self.shape)
            .expect("Tensor invariant: data.len() == shape.elem_count()")
    }

    /// The same elements under new dimensions with the same element count.
    ///
    /// # Errors
    ///
    /// As [`Shape::new`], and [`TensorError::ReshapeMismatch`] when the element count
    /// differs.
    pub fn reshape(self, dims: &[usize]) -> Result<Self, TensorError> {
        let to = Shape::new(dims)?;
        if to.elem_count() != self.shape.elem_count() {
            return Err(TensorError::ReshapeMismatch {
                from: self.shape,
                from_count: self.shape.elem_count(),
                to: dims.to_vec(),
            });
        }
        Ok(Self {
            shape: to,
            data: self.data,
        })
    }

    /// Adds a leading batch dimension of 1: `(seq_len, n_embd)` → `(1, seq_len, n_embd)`.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankTooLarge`] when the tensor already has [`crate::MAX_RANK`]
    /// dimensions.
    pub fn unsqueeze_batch(self) -> Result<Self, TensorError> {
        let mut dims = [1; crate::MAX_RANK + 1];
        let rank = self.shape.rank();
        dims[1..=rank].copy_from_slice(self.shape.dims());
        let shape = Shape::new(&dims[..=rank])?;
        Ok(Self {
            shape,
            data: self.data,
        })
    }

    /// Removes a leading batch dimension of 1: `(1, seq_len, n_embd)` → `(seq_len, n_embd)`.
    ///
    /// # Errors
    ///
    /// [`TensorError::SqueezeNotOne`] when the tensor has rank 0 or its leading dimension
    /// is not 1.
    pub fn squeeze_batch(self) -> Result<Self, TensorError> {
        match self.shape.dims().split_first() {
            Some((1, rest)) => {
                let shape = Shape::new(rest)?;
                Ok(Self {
                    shape,
                    data: self.data,
                })
            }
            _ => Err(TensorError::SqueezeNotOne { shape: self.shape }),
        }
    }

    /// Row `index`: a slice of the innermost dimension.
    ///
    /// # Errors
    ///
    /// [`TensorError::RowOutOfRange`] when `index` is not below the number of rows.
    pub fn row(&self, index: usize) -> Result<&[T], TensorError> {
        self.view().row(index)
    }

    /// Iterates over the rows (slices of the innermost dimension).
    pub fn rows(&self) -> impl ExactSizeIterator<Item = &[T]> {
        self.view().rows()
    }
}

impl<T: Clone + Default> Tensor<T> {
    /// A tensor of shape `dims` filled with `T::default()` (zero for floats and ids).
    ///
    /// # Errors
    ///
    /// As [`Shape::new`], and [`TensorError::AllocationFailed`] when the memory cannot be
    /// reserved (instead of aborting the process).
    pub fn zeros(dims: &[usize]) -> Result<Self, TensorError> {
        let shape = Shape::new(dims)?;
        let data = try_filled(shape.elem_count(), T::default(), "Tensor::zeros")?;
        Ok(Self { shape, data })
    }
}

impl<T: Clone + Default> Tensor<T> {
    /// Reuses this tensor's allocation for a tensor of shape `dims`, for kernels that
    /// overwrite every element: a training loop that hands back last step's output pays
    /// neither an allocation nor its page faults again. Elements that fit in the old
    /// length keep their old values; new ones are `T::default()`.
    ///
    /// # Errors
    ///
    /// As [`Shape::new`], and [`TensorError::AllocationFailed`] when a larger buffer
    /// cannot be had.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_tensor::Tensor;
    ///
    /// let t = Tensor::from_vec(vec![1.0f32; 12], &[3, 4])?;
    /// let ptr = t.as_slice().as_ptr();
    /// let again = t.recycle(&[2, 4])?;
    /// assert_eq!(again.dims(), &[2, 4]);
    /// assert_eq!(again.as_slice().as_ptr(), ptr); // same allocation
    /// # Ok::<(), tokenloom_tensor::TensorError>(())
    /// ```
    pub fn recycle(self, dims: &[usize]) -> Result<Self, TensorError> {
        let shape = Shape::new(dims)?;
        let len = shape.elem_count();
        let mut data = self.data;
        if len > data.len() {
            data.try_reserve_exact(len - data.len()).map_err(|_| {
                TensorError::AllocationFailed {
                    op: "Tensor::recycle",
                    bytes: len.saturating_mul(std::mem::size_of::<T>()),
                }
            })?;
        }
        data.resize(len, T::default());
        Ok(Self { shape, data })
    }
}

impl<T: Element> Tensor<T> {
    /// Converts every element to another float type through `f64`, rounding to nearest
    /// (exact when widening).
    #[must_use]
    pub fn to_dtype<U: Element>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape,
            data: self
                .data
                .iter()
                .map(|&x| U::from_f64_lossy(x.as_f64()))
                .collect(),
        }
    }
}

impl<'a, T> From<&'a Tensor<T>> for TensorView<'a, T> {
    fn from(tensor: &'a Tensor<T>) -> Self {
        tensor.view()
    }
}

impl<'a, T> From<&'a [T]> for TensorView<'a, T> {
    /// A rank-1 view `(len,)` of a slice, e.g. the token ids of one sequence.
    fn from(data: &'a [T]) -> Self {
        TensorView::new(data, &[data.len()])
            .expect("a rank-1 shape of a slice's length is always valid")
    }
}

impl<'a, T, const N: usize> From<&'a [T; N]> for TensorView<'a, T> {
    /// A rank-1 view `(N,)` of an array.
    fn from(data: &'a [T; N]) -> Self {
        TensorView::from(&data[..])
    }
}

impl<'a, T> From<&'a mut Tensor<T>> for TensorViewMut<'a, T> {
    fn from(tensor: &'a mut Tensor<T>) -> Self {
        tensor.view_mut()
    }
}

/// A `Vec` of `len` copies of `value`, or [`TensorError::AllocationFailed`] instead of an
/// abort when the memory cannot be had: the allocation every tokenloom kernel uses for
/// sizes that come from user input (a `vec![value; len]` would abort the process).
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{TensorError, try_filled};
///
/// assert_eq!(try_filled(3, 0.5f32, "example")?, [0.5, 0.5, 0.5]);
/// let err = try_filled(usize::MAX / 2, 0u64, "a huge table").unwrap_err();
/// assert!(matches!(err, TensorError::AllocationFailed { op: "a huge table", .. }));
/// # Ok::<(), TensorError>(())
/// ```
///
/// # Errors
///
/// [`TensorError::AllocationFailed`] naming `op` and the byte count.
pub fn try_filled<T: Clone>(len: usize, value: T, op: &'static str) -> Result<Vec<T>, TensorError> {
    let mut data = try_with_capacity(len, op)?;
    data.resize(len, value);
    Ok(data)
}

/// An empty `Vec` with room for `len` elements, or [`TensorError::AllocationFailed`]
/// instead of an abort: for buffers filled later, sized by user input.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{TensorError, try_with_capacity};
///
/// let v: Vec<u32> = try_with_capacity(3, "example")?;
/// assert!(v.is_empty() && v.capacity() >= 3);
/// let err = try_with_capacity::<u64>(usize::MAX / 2, "a huge index").unwrap_err();
/// assert!(matches!(err, TensorError::AllocationFailed { op: "a huge index", .. }));
/// # Ok::<(), TensorError>(())
/// ```
///
/// # Errors
///
/// [`TensorError::AllocationFailed`] naming `op` and the byte count.
pub fn try_with_capacity<T>(len: usize, op: &'static str) -> Result<Vec<T>, TensorError> {
    let mut data = Vec::new();
    data.try_reserve_exact(len)
        .map_err(|_| TensorError::AllocationFailed {
            op,
            bytes: len.saturating_mul(std::mem::size_of::<T>()),
        })?;
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_keeps_data_and_checks_counts() {
        let t = Tensor::from_vec((0..6u32).collect(), &[2, 3]).unwrap();
        let r = t.clone().reshape(&[3, 2]).unwrap();
        assert_eq!(r.as_slice(), t.as_slice());
        assert!(matches!(
            t.reshape(&[4, 2]),
            Err(TensorError::ReshapeMismatch { from_count: 6, .. })
        ));
    }

    #[test]
    fn squeeze_requires_a_leading_one() {
        let t: Tensor<f32> = Tensor::zeros(&[2, 3]).unwrap();
        assert!(matches!(
            t.squeeze_batch(),
            Err(TensorError::SqueezeNotOne { .. })
        ));
        let scalar: Tensor<f32> = Tensor::zeros(&[]).unwrap();
        assert!(scalar.squeeze_batch().is_err());
    }

    #[test]
    fn huge_zeros_is_an_error_not_an_abort() {
        let err = Tensor::<f64>::zeros(&[1 << 31, 1 << 31]).unwrap_err();
        assert!(matches!(err, TensorError::AllocationFailed { .. }), "{err}");
    }

    #[test]
    fn to_dtype_rounds_through_f64() {
        let t = Tensor::from_vec(vec![0.1f64, -2.5, 1e300], &[3]).unwrap();
        let h: Tensor<half::bf16> = t.to_dtype();
        assert_eq!(h.as_slice()[1].as_f32(), -2.5);
        assert!(h.as_slice()[2].is_infinite());
        assert_eq!(t.to_dtype::<f32>().as_slice()[0], 0.1f32);
    }
}
