//! burn's [`TensorData`] as [`TensorLike`] / [`TensorLikeMut`]: `&TensorData` lends its
//! host bytes read-only, `&mut TensorData` mutably (burn copies a shared buffer on write
//! first, so the write lands in that `TensorData` alone). `TensorData` is always
//! contiguous and row-major, so the only failures are burn's own: another element type
//! ([`TensorError::ForeignDType`]) or bytes that cannot be read as the element type
//! ([`TensorError::Foreign`] with burn's error as its source).
//!
//! `TensorData` has inherent `try_view`/`try_view_mut` methods of its own (burn's
//! `TensorDataView`): the kernels take `&TensorData` directly, and code that wants
//! tokenloom's view by hand writes `TensorLike::try_view(&data)`.
//!
//! A burn `Tensor` becomes a `TensorData` with `into_data()` (a device read; on the
//! `NdArray` backend the host buffer itself) and goes back with `Tensor::from_data`.

use burn_std::{DataError, Element, TensorData};

use crate::error::{ErrorSource, TensorError};
use crate::like::{TensorLike, TensorLikeMut};
use crate::view::{TensorView, TensorViewMut};

const FRAMEWORK: &str = "burn";

fn data_error<T: Element>(err: DataError) -> TensorError {
    match err {
        DataError::DTypeMismatch { actual, .. } => TensorError::ForeignDType {
            framework: FRAMEWORK,
            expected: T::dtype().name(),
            got: actual.name().to_owned(),
        },
        other => TensorError::Foreign {
            framework: FRAMEWORK,
            source: ErrorSource::new(other),
        },
    }
}

/// A `TensorData` of element type `T` (`f32`, `f64`, `f16`, `bf16`, `u32`, `i64`, …).
impl<'a, T: Element> TensorLike<'a, T> for &'a TensorData {
    fn try_view(self) -> Result<TensorView<'a, T>, TensorError> {
        let data = self.as_slice::<T>().map_err(data_error::<T>)?;
        TensorView::new(data, self.shape().as_slice())
    }
}

/// A mutable `TensorData` of element type `T`, written in place.
impl<'a, T: Element> TensorLikeMut<'a, T> for &'a mut TensorData {
    fn try_view_mut(self) -> Result<TensorViewMut<'a, T>, TensorError> {
        let dims = self.shape().as_slice().to_vec();
        let data = self.as_mut_slice::<T>().map_err(data_error::<T>)?;
        TensorViewMut::new(data, &dims)
    }
}

#[cfg(test)]
mod tests {
    use burn_std::{BoolStore, DType};

    use super::*;

    #[test]
    fn tensor_data_is_lent_without_a_copy() {
        let mut data = TensorData::new((0..12).map(|i| i as f32).collect::<Vec<_>>(), [3, 4]);
        let ptr = data.as_slice::<f32>().unwrap().as_ptr();
        let view: TensorView<'_, f32> = TensorLike::try_view(&data).unwrap();
        assert_eq!(
            (view.dims(), view.as_slice().as_ptr(), view.as_slice()[5]),
            (&[3usize, 4][..], ptr, 5.0)
        );
        let mut view: TensorViewMut<'_, f32> = TensorLikeMut::try_view_mut(&mut data).unwrap();
        view.as_mut_slice()[5] = -2.0;
        assert_eq!(data.as_slice::<f32>().unwrap()[5], -2.0);
    }

    #[test]
    fn a_write_does_not_reach_a_clone() {
        let original = TensorData::new(vec![1i64, 2, 3], [3]);
        let mut copy = original.clone();
        let mut view: TensorViewMut<'_, i64> = TensorLikeMut::try_view_mut(&mut copy).unwrap();
        view.as_mut_slice()[0] = 7;
        assert_eq!(copy.as_slice::<i64>().unwrap(), &[7, 2, 3]);
        assert_eq!(original.as_slice::<i64>().unwrap(), &[1, 2, 3]);
    }

    #[test]
    fn another_element_type_is_a_typed_error() {
        let mut data = TensorData::new(vec![half::bf16::ONE; 6], [2, 3]);
        let err = TensorLike::<f32>::try_view(&data).unwrap_err();
        assert!(
            matches!(
                &err,
                TensorError::ForeignDType { framework: "burn", expected, got }
                    if *expected == DType::F32.name()
                        && *got == DType::BF16.name()
            ),
            "{err}"
        );
        assert!(matches!(
            TensorLikeMut::<f64>::try_view_mut(&mut data),
            Err(TensorError::ForeignDType { .. })
        ));
        let view: TensorView<'_, half::bf16> = TensorLike::try_view(&data).unwrap();
        assert_eq!(view.dims(), &[2, 3]);
    }

    #[test]
    fn bytes_burn_cannot_read_are_its_error_kept_as_the_source() {
        // Not validated on construction: 2 is no bool.
        let data = TensorData::from_bytes_vec(vec![0u8, 2], [2], DType::Bool(BoolStore::Native));
        let err = TensorLike::<bool>::try_view(&data).unwrap_err();
        assert!(
            matches!(
                &err,
                TensorError::Foreign {
                    framework: "burn",
                    ..
                }
            ),
            "{err}"
        );
        let source = std::error::Error::source(&err).expect("burn's error");
        assert!(source.to_string().contains("InvalidBitPattern"), "{source}");
    }
}
