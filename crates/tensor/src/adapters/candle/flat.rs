//! Several candle tensors lent mutably in one call, including disjoint views of one
//! storage (cos and sin as the two halves of one cache).

use candle_core::Tensor;

use super::lend::{Elem, lend_as, write};
use crate::error::TensorError;
use crate::view::TensorViewMut;

/// Lends every tensor of `tensors` mutably to `f` at once, in the order given. Tensors
/// may be disjoint views of one storage (each storage is locked once and split); two
/// that overlap are refused. Storages are locked in one global order, so two threads
/// lending the same tensors in different orders do not wait for each other.
///
/// # Errors
///
/// As [`super::with_view_mut`] for each tensor, and [`TensorError::LendingConflict`]
/// when two tensors overlap or when called inside a mutable lending.
///
/// # Examples
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use tokenloom_tensor::adapters::candle::with_views_mut;
///
/// // cos and sin as the two halves of one (2, 4) cache.
/// let cache = Tensor::zeros((2, 4), DType::F32, &Device::Cpu)?;
/// let (cos, sin) = (cache.narrow(0, 0, 1)?, cache.narrow(0, 1, 1)?);
/// with_views_mut(&[&cos, &sin], |mut views: Vec<tokenloom_tensor::TensorViewMut<'_, f32>>| {
///     views[0].as_mut_slice().fill(1.0);
///     views[1].as_mut_slice().fill(2.0);
/// })?;
/// assert_eq!(cache.to_vec2::<f32>()?, [[1.0; 4], [2.0; 4]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_views_mut<T, R>(
    tensors: &[&Tensor],
    f: impl FnOnce(Vec<TensorViewMut<'_, T>>) -> R,
) -> Result<R, TensorError>
where
    T: Elem,
{
    // `lend` with a `Vec` of write handles: one locking mechanism for both.
    let handles: Vec<_> = tensors.iter().map(|t| write::<T>(t)).collect();
    lend_as("with_views_mut", handles, f)
}
