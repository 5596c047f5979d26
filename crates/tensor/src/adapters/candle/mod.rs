//! candle tensors lent to tokenloom's kernels without a copy.
//!
//! A candle tensor keeps its storage behind a lock, so it cannot be a [`TensorLike`]
//! value: these functions lend a contiguous CPU tensor as a [`TensorView`] or
//! [`TensorViewMut`] for the duration of a closure, on candle's own buffer. Writing goes
//! through candle's in-place custom ops ([`candle_core::InplaceOp1`] and friends), so
//! candle takes its locks in its own deadlock-free order and refuses a destination that
//! shares storage with a source.
//!
//! Element types: `f32`, `f64`, [`half::f16`], [`half::bf16`], and the id types `u32`,
//! `i32`, `i64`. A tensor on another device, of another dtype, or not contiguous is a
//! typed [`TensorError`]; nothing is copied behind your back (call candle's
//! `.contiguous()` yourself when you accept the copy). In-place writes change every
//! candle tensor that shares the storage, as candle's own in-place ops do.
//!
//! Nesting: a lending holds candle's lock on the storage for the whole closure. Shared
//! lendings nest freely, and a mutable lending may be nested inside shared ones of other
//! storages. Any lending inside a *mutable* lending, or writing a storage an enclosing
//! lending reads, would wait for its own lock forever: it is refused with
//! [`TensorError::LendingConflict`]. Lend several mutable tensors together with
//! [`with_views_mut`] (disjoint views of one storage included). As with candle's own
//! `storage_and_layout`, a shared lending nested in another of the same storage can
//! wait while another thread waits to write that storage.
//!
//! # Examples
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use tokenloom_tensor::adapters::candle::{with_view, with_view_mut};
//!
//! let t = Tensor::new(&[[1.0f32, 2.0], [3.0, 4.0]], &Device::Cpu)?;
//! let sum = with_view(&t, |v: tokenloom_tensor::TensorView<'_, f32>| v.as_slice().iter().sum::<f32>())?;
//! assert_eq!(sum, 10.0);
//! with_view_mut(&t, |mut v: tokenloom_tensor::TensorViewMut<'_, f32>| v.as_mut_slice()[0] = 9.0)?;
//! assert_eq!(t.to_vec2::<f32>()?, [[9.0, 2.0], [3.0, 4.0]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`TensorLike`]: crate::TensorLike

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, InplaceOp2, InplaceOp3, Layout, Storage, Tensor};
use half::{bf16, f16};

use crate::error::TensorError;
use crate::view::{TensorView, TensorViewMut};

mod dispatch;
mod flat;
mod guard;
mod lend;

pub use dispatch::FlattenLending;
pub use flat::with_views_mut;
pub use lend::{Elem, Handle, Lendable, Read, Write, lend, read, write};

/// The candle-core this adapter was built against (0.11): name candle's types through it
/// and your code uses the same version as tokenloom's lendings.
pub use candle_core;
use guard::LendGuard;

const FRAMEWORK: &str = "candle";

/// An element type a candle CPU tensor can hold and tokenloom can read.
pub trait CandleElement: Copy + 'static {
    /// candle's name of the dtype.
    const NAME: &'static str;
    /// The storage's elements, if it holds this type.
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    /// The storage's elements, mutably, if it holds this type.
    fn slice_mut(storage: &mut CpuStorage) -> Option<&mut [Self]>;
}

macro_rules! candle_element {
    ($t:ty, $variant:ident, $name:literal) => {
        impl CandleElement for $t {
            const NAME: &'static str = $name;
            fn slice(storage: &CpuStorage) -> Option<&[Self]> {
                match storage {
                    CpuStorage::$variant(data) => Some(data),
                    _ => None,
                }
            }
            fn slice_mut(storage: &mut CpuStorage) -> Option<&mut [Self]> {
                match storage {
                    CpuStorage::$variant(data) => Some(data),
                    _ => None,
                }
            }
        }
    };
}

candle_element!(f32, F32, "f32");
candle_element!(f64, F64, "f64");
candle_element!(f16, F16, "f16");
candle_element!(bf16, BF16, "bf16");
candle_element!(u32, U32, "u32");
candle_element!(i32, I32, "i32");
candle_element!(i64, I64, "i64");

/// The `(start, end)` of a contiguous layout, or the typed error.
fn contiguous(layout: &Layout) -> Result<(usize, usize), TensorError> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| TensorError::NotContiguous {
            framework: FRAMEWORK,
            dims: layout.dims().to_vec(),
            strides: layout
                .stride()
                .iter()
                .map(|&s| isize::try_from(s).unwrap_or(isize::MAX))
                .collect(),
        })
}

fn wrong_dtype<T: CandleElement>(storage: &CpuStorage) -> TensorError {
    TensorError::ForeignDType {
        framework: FRAMEWORK,
        expected: T::NAME,
        got: format!("{:?}", candle_core::backend::BackendStorage::dtype(storage)),
    }
}

/// A candle CPU storage and its layout as a [`TensorView`] — what a
/// [`candle_core::CustomOp1`]'s `cpu_fwd` (and its siblings) receives, so a custom op can
/// run tokenloom's kernels on candle's buffer with the checks the lendings make.
///
/// # Errors
///
/// [`TensorError::NotContiguous`] for a layout that is not contiguous (candle's start
/// offset is honoured), [`TensorError::ForeignDType`] when the storage holds another
/// dtype than `T`, and shape errors.
///
/// # Examples
///
/// A custom op that doubles its input with a tokenloom view of candle's storage:
///
/// ```
/// use candle_core::{CpuStorage, CustomOp1, Device, Layout, Shape, Tensor};
/// use tokenloom_tensor::adapters::candle::cpu_view;
///
/// struct Double;
///
/// impl CustomOp1 for Double {
///     fn name(&self) -> &'static str {
///         "double"
///     }
///     fn cpu_fwd(
///         &self,
///         storage: &CpuStorage,
///         layout: &Layout,
///     ) -> candle_core::Result<(CpuStorage, Shape)> {
///         let x = cpu_view::<f32>(storage, layout).map_err(candle_core::Error::wrap)?;
///         let doubled: Vec<f32> = x.as_slice().iter().map(|v| 2.0 * v).collect();
///         Ok((CpuStorage::F32(doubled), layout.shape().clone()))
///     }
/// }
///
/// let t = Tensor::new(&[1.0f32, 2.0, 3.0], &Device::Cpu)?;
/// assert_eq!(t.apply_op1(Double)?.to_vec1::<f32>()?, [2.0, 4.0, 6.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cpu_view<'s, T: CandleElement>(
    storage: &'s CpuStorage,
    layout: &Layout,
) -> Result<TensorView<'s, T>, TensorError> {
    let (start, end) = contiguous(layout)?;
    let data = T::slice(storage).ok_or_else(|| wrong_dtype::<T>(storage))?;
    TensorView::new(&data[start..end], layout.dims())
}

/// A mutable candle CPU storage and its layout as a [`TensorViewMut`] — what a
/// [`candle_core::InplaceOp1`]'s `cpu_fwd` (and its siblings) receives.
///
/// # Errors
///
/// As [`cpu_view`].
///
/// # Examples
///
/// ```
/// use candle_core::{CpuStorage, Device, InplaceOp1, Layout, Tensor};
/// use tokenloom_tensor::adapters::candle::cpu_view_mut;
///
/// struct Negate;
///
/// impl InplaceOp1 for Negate {
///     fn name(&self) -> &'static str {
///         "negate"
///     }
///     fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
///         let mut x = cpu_view_mut::<f32>(storage, layout).map_err(candle_core::Error::wrap)?;
///         x.as_mut_slice().iter_mut().for_each(|v| *v = -*v);
///         Ok(())
///     }
/// }
///
/// let t = Tensor::new(&[1.0f32, -2.0], &Device::Cpu)?;
/// t.inplace_op1(&Negate)?;
/// assert_eq!(t.to_vec1::<f32>()?, [-1.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn cpu_view_mut<'s, T: CandleElement>(
    storage: &'s mut CpuStorage,
    layout: &Layout,
) -> Result<TensorViewMut<'s, T>, TensorError> {
    let (start, end) = contiguous(layout)?;
    if T::slice(storage).is_none() {
        return Err(wrong_dtype::<T>(storage));
    }
    let data = T::slice_mut(storage).expect("the dtype was just checked");
    TensorViewMut::new(&mut data[start..end], layout.dims())
}

fn check_cpu(tensor: &Tensor) -> Result<(), TensorError> {
    if tensor.device().is_cpu() {
        Ok(())
    } else {
        Err(TensorError::ForeignDevice {
            framework: FRAMEWORK,
            device: format!("{:?}", tensor.device().location()),
        })
    }
}

fn foreign(err: candle_core::Error) -> TensorError {
    TensorError::Foreign {
        framework: FRAMEWORK,
        source: crate::ErrorSource::new(err),
    }
}

/// Lends a contiguous CPU tensor's buffer, read-only, to `f`.
///
/// # Errors
///
/// [`TensorError::ForeignDevice`], [`TensorError::ForeignDType`] and
/// [`TensorError::NotContiguous`].
pub fn with_view<T, R>(
    tensor: &Tensor,
    f: impl FnOnce(TensorView<'_, T>) -> R,
) -> Result<R, TensorError>
where
    T: CandleElement,
{
    check_cpu(tensor)?;
    let _guard = LendGuard::enter("with_view", &[tensor], &[])?;
    let (storage, layout) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(f(cpu_view(cpu, layout)?)),
        _ => Err(TensorError::ForeignDevice {
            framework: FRAMEWORK,
            device: format!("{:?}", tensor.device().location()),
        }),
    }
}

/// The closure of an in-place op, called once, and what it returned.
struct Lend<F, R> {
    f: RefCell<Option<F>>,
    out: RefCell<Option<Result<R, TensorError>>>,
}

impl<F, R> Lend<F, R> {
    fn new(f: F) -> Self {
        Self {
            f: RefCell::new(Some(f)),
            out: RefCell::new(None),
        }
    }

    fn call(&self, run: impl FnOnce(F) -> Result<R, TensorError>) {
        let f = self
            .f
            .borrow_mut()
            .take()
            .expect("candle calls an in-place op once");
        *self.out.borrow_mut() = Some(run(f));
    }

    fn finish(self, status: candle_core::Result<()>) -> Result<R, TensorError> {
        status.map_err(foreign)?;
        self.out
            .into_inner()
            .expect("candle ran the op on the CPU storage")
    }
}

struct Mut0<T, F, R>(Lend<F, R>, std::marker::PhantomData<T>);

impl<T, F, R> InplaceOp1 for Mut0<T, F, R>
where
    T: CandleElement,
    F: FnOnce(TensorViewMut<'_, T>) -> R,
{
    fn name(&self) -> &'static str {
        "tokenloom::with_view_mut"
    }
    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> candle_core::Result<()> {
        self.0.call(|f| Ok(f(cpu_view_mut(storage, layout)?)));
        Ok(())
    }
}

/// Lends a contiguous CPU tensor's buffer, mutably, to `f`: `f` writes candle's memory
/// in place.
///
/// # Errors
///
/// As [`with_view`], and [`TensorError::Foreign`] when candle refuses the in-place op.
pub fn with_view_mut<T, R>(
    tensor: &Tensor,
    f: impl FnOnce(TensorViewMut<'_, T>) -> R,
) -> Result<R, TensorError>
where
    T: CandleElement,
{
    check_cpu(tensor)?;
    let _guard = LendGuard::enter("with_view_mut", &[], &[tensor])?;
    let op = Mut0(Lend::new(f), std::marker::PhantomData);
    let status = tensor.inplace_op1(&op);
    op.0.finish(status)
}

struct Mut1<T, S, F, R>(Lend<F, R>, std::marker::PhantomData<(T, S)>);

impl<T, S, F, R> InplaceOp2 for Mut1<T, S, F, R>
where
    T: CandleElement,
    S: CandleElement,
    F: FnOnce(TensorViewMut<'_, T>, TensorView<'_, S>) -> R,
{
    fn name(&self) -> &'static str {
        "tokenloom::with_view_mut_from"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_layout: &Layout,
        src: &CpuStorage,
        src_layout: &Layout,
    ) -> candle_core::Result<()> {
        self.0.call(|f| {
            let src = cpu_view(src, src_layout)?;
            Ok(f(cpu_view_mut(dst, dst_layout)?, src))
        });
        Ok(())
    }
}

/// Lends `dst` mutably and `src` read-only to `f`, e.g. an out-of-place rotation from
/// candle's q into candle's output. A `dst` that shares storage with `src` is refused by
/// candle ([`TensorError::Foreign`]).
///
/// # Errors
///
/// As [`with_view_mut`], for either tensor.
pub fn with_view_mut_from<T, S, R>(
    dst: &Tensor,
    src: &Tensor,
    f: impl FnOnce(TensorViewMut<'_, T>, TensorView<'_, S>) -> R,
) -> Result<R, TensorError>
where
    T: CandleElement,
    S: CandleElement,
{
    check_cpu(dst)?;
    check_cpu(src)?;
    let _guard = LendGuard::enter("with_view_mut_from", &[src], &[dst])?;
    let op = Mut1(Lend::new(f), std::marker::PhantomData);
    let status = dst.inplace_op2(src, &op);
    op.0.finish(status)
}

struct Mut2<T, S1, S2, F, R>(Lend<F, R>, std::marker::PhantomData<(T, S1, S2)>);

impl<T, S1, S2, F, R> InplaceOp3 for Mut2<T, S1, S2, F, R>
where
    T: CandleElement,
    S1: CandleElement,
    S2: CandleElement,
    F: FnOnce(TensorViewMut<'_, T>, TensorView<'_, S1>, TensorView<'_, S2>) -> R,
{
    fn name(&self) -> &'static str {
        "tokenloom::with_view_mut_from2"
    }
    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_layout: &Layout,
        src1: &CpuStorage,
        src1_layout: &Layout,
        src2: &CpuStorage,
        src2_layout: &Layout,
    ) -> candle_core::Result<()> {
        self.0.call(|f| {
            let src1 = cpu_view(src1, src1_layout)?;
            let src2 = cpu_view(src2, src2_layout)?;
            Ok(f(cpu_view_mut(dst, dst_layout)?, src1, src2))
        });
        Ok(())
    }
}

/// Lends `dst` mutably and two sources read-only to `f`, e.g. the embedding backward from
/// candle's ids and upstream gradient into candle's gradient buffer.
///
/// # Errors
///
/// As [`with_view_mut_from`].
pub fn with_view_mut_from2<T, S1, S2, R>(
    dst: &Tensor,
    src1: &Tensor,
    src2: &Tensor,
    f: impl FnOnce(TensorViewMut<'_, T>, TensorView<'_, S1>, TensorView<'_, S2>) -> R,
) -> Result<R, TensorError>
where
    T: CandleElement,
    S1: CandleElement,
    S2: CandleElement,
{
    check_cpu(dst)?;
    check_cpu(src1)?;
    check_cpu(src2)?;
    let _guard = LendGuard::enter("with_view_mut_from2", &[src1, src2], &[dst])?;
    let op = Mut2(Lend::new(f), std::marker::PhantomData);
    let status = dst.inplace_op3(src1, src2, &op);
    op.0.finish(status)
}

#[cfg(test)]
mod tests {
    use candle_core::{DType, Device, IndexOp};

    use super::*;

    /// The address of a candle tensor's first element, read through candle's own API.
    fn candle_ptr(t: &Tensor) -> *const f32 {
        let (storage, layout) = t.storage_and_layout();
        match &*storage {
            Storage::Cpu(cpu) => cpu.as_slice::<f32>().unwrap()[layout.start_offset()..].as_ptr(),
            _ => unreachable!("CPU tensors only"),
        }
    }

    #[test]
    fn views_are_candles_own_memory() {
        let t = Tensor::arange(0f32, 12.0, &Device::Cpu)
            .unwrap()
            .reshape((3, 4))
            .unwrap();
        let ptr = candle_ptr(&t);
        assert_eq!(
            with_view(&t, |v: TensorView<'_, f32>| v.as_slice().as_ptr()).unwrap(),
            ptr
        );
        assert_eq!(
            with_view_mut(&t, |v: TensorViewMut<'_, f32>| (
                v.as_slice().as_ptr(),
                v.dims().to_vec()
            ))
            .unwrap(),
            (ptr, vec![3, 4])
        );
        // A contiguous row of a larger tensor starts at its offset.
        let row = t.i(1).unwrap();
        let first = with_view(&row, |v: TensorView<'_, f32>| v.as_slice().to_vec()).unwrap();
        assert_eq!(first, [4.0, 5.0, 6.0, 7.0]);
        // Writing from a source into a destination.
        let dst = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        with_view_mut_from(
            &dst,
            &t,
            |mut d: TensorViewMut<'_, f32>, s: TensorView<'_, f32>| {
                d.as_mut_slice().copy_from_slice(s.as_slice());
            },
        )
        .unwrap();
        assert_eq!(dst.to_vec2::<f32>().unwrap(), t.to_vec2::<f32>().unwrap());
    }

    #[test]
    fn strided_other_dtype_and_aliased_tensors_are_errors() {
        let t = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
        let transposed = t.t().unwrap();
        assert!(matches!(
            with_view(&transposed, |_: TensorView<'_, f32>| ()),
            Err(TensorError::NotContiguous {
                framework: "candle",
                ..
            })
        ));
        assert!(matches!(
            with_view(&t, |_: TensorView<'_, f64>| ()),
            Err(TensorError::ForeignDType {
                expected: "f64",
                ..
            })
        ));
        assert!(matches!(
            with_view_mut(&transposed, |_: TensorViewMut<'_, f32>| ()),
            Err(TensorError::NotContiguous { .. })
        ));
        let alias = t.clone();
        assert!(matches!(
            with_view_mut_from(
                &t,
                &alias,
                |_: TensorViewMut<'_, f32>, _: TensorView<'_, f32>| ()
            ),
            Err(TensorError::Foreign {
                framework: "candle",
                ..
            })
        ));
    }
}
