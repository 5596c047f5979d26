//! Fewer `?`s and no type annotations: a lending's nested `Result` flattened into one
//! ([`FlattenLending`]), and float tensors lent with the element type their run-time
//! dtype says ([`with_float_view!`](crate::with_float_view) and
//! [`with_float_view_mut!`](crate::with_float_view_mut)).

use crate::error::TensorError;

/// The result of a lending whose closure returned a `Result`:
/// `Result<Result<R, E>, TensorError>`, made one `Result<R, E>` by [`flat`](Self::flat)
/// when `E` takes a [`TensorError`] (tokenloom's error types, `Box<dyn Error>`, …).
///
/// # Examples
///
/// ```
/// use candle_core::{Device, Tensor};
/// use tokenloom_tensor::TensorView;
/// use tokenloom_tensor::adapters::candle::{FlattenLending, with_view};
///
/// fn first_two(t: &Tensor) -> Result<[f32; 2], tokenloom_tensor::TensorError> {
///     // The closure's own error and the lending's, in one `?`.
///     with_view(t, |v: TensorView<'_, f32>| Ok([v.row(0)?[0], v.row(1)?[0]])).flat()
/// }
///
/// let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
/// assert_eq!(first_two(&t)?, [1.0, 3.0]);
/// assert!(first_two(&t.to_dtype(candle_core::DType::F64)?).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait FlattenLending<R, E> {
    /// The lending's error converted into `E`, or the closure's result.
    ///
    /// # Errors
    ///
    /// The lending's error (as `E`) or the closure's.
    fn flat(self) -> Result<R, E>;
}

impl<R, E: From<TensorError>> FlattenLending<R, E> for Result<Result<R, E>, TensorError> {
    fn flat(self) -> Result<R, E> {
        self.map_err(E::from).and_then(|inner| inner)
    }
}

/// Lends a float candle tensor read-only with the element type of its dtype: `$body`
/// runs with `$view` a [`TensorView`](crate::TensorView) of `f32`, `f64`, `f16` or
/// `bf16` (it is compiled once per type, so it must type-check for all four and give
/// one result type). The value is the lending's `Result`; another dtype is
/// [`TensorError::ForeignDType`](crate::TensorError::ForeignDType).
///
/// # Examples
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use tokenloom_tensor::{Element, with_float_view};
///
/// let t = Tensor::new(&[1.0f32, 2.0, 4.0], &Device::Cpu)?;
/// for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
///     let t = t.to_dtype(dtype)?;
///     let sum = with_float_view!(&t, |v| v.as_slice().iter().map(|x| x.as_f64()).sum::<f64>())?;
///     assert_eq!(sum, 7.0);
/// }
/// let ids = Tensor::new(&[1u32], &Device::Cpu)?;
/// assert!(with_float_view!(&ids, |v| v.as_slice().len()).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! with_float_view {
    ($tensor:expr, |$view:ident| $body:expr) => {
        $crate::__candle_float_dispatch!(with_view, TensorView, [], $tensor, |$view| $body)
    };
}

/// [`with_float_view!`](crate::with_float_view) lending the tensor mutably: `$view` is a
/// [`TensorViewMut`](crate::TensorViewMut) of the tensor's element type.
///
/// # Examples
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use tokenloom_tensor::with_float_view_mut;
///
/// let t = Tensor::new(&[1.0f32, 2.0], &Device::Cpu)?.to_dtype(DType::BF16)?;
/// with_float_view_mut!(&t, |v| v.as_mut_slice().iter_mut().for_each(|x| *x = *x + *x))?;
/// assert_eq!(t.to_dtype(DType::F32)?.to_vec1::<f32>()?, [2.0, 4.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[macro_export]
macro_rules! with_float_view_mut {
    ($tensor:expr, |$view:ident| $body:expr) => {
        $crate::__candle_float_dispatch!(with_view_mut, TensorViewMut, [mut], $tensor, |$view| $body)
    };
}

/// The dtype match behind [`with_float_view!`](crate::with_float_view) and
/// [`with_float_view_mut!`](crate::with_float_view_mut).
#[doc(hidden)]
#[macro_export]
macro_rules! __candle_float_dispatch {
    ($lend:ident, $view_type:ident, [$($m:tt)*], $tensor:expr, |$view:ident| $body:expr) => {{
        use $crate::adapters::candle::candle_core::DType;
        let tensor: &$crate::adapters::candle::candle_core::Tensor = $tensor;
        match tensor.dtype() {
            DType::F32 => $crate::adapters::candle::$lend(
                tensor,
                |$($m)* $view: $crate::$view_type<'_, f32>| $body,
            ),
            DType::F64 => $crate::adapters::candle::$lend(
                tensor,
                |$($m)* $view: $crate::$view_type<'_, f64>| $body,
            ),
            DType::F16 => $crate::adapters::candle::$lend(
                tensor,
                |$($m)* $view: $crate::$view_type<'_, $crate::f16>| $body,
            ),
            DType::BF16 => $crate::adapters::candle::$lend(
                tensor,
                |$($m)* $view: $crate::$view_type<'_, $crate::bf16>| $body,
            ),
            other => Err($crate::TensorError::ForeignDType {
                framework: "candle",
                expected: "a float dtype (f32, f64, f16, bf16)",
                got: format!("{other:?}"),
            }),
        }
    }};
}
