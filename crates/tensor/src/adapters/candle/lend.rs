//! Shared and mutable candle tensors of any element types lent in one call: the q, k,
//! cos, sin and position ids of a RoPE step, each with the type its handle names, so the
//! closure's parameters need no annotation.
//!
//! Storages are locked in one global order (shared ones read-locked, mutable ones
//! through candle's in-place op); tensors of one storage that is written are split into
//! disjoint views, and overlapping ones are refused.

use std::cell::RefCell;
use std::marker::PhantomData;

use candle_core::{CpuStorage, InplaceOp1, Layout, Storage, Tensor};
use half::{bf16, f16};

use super::guard::{LendGuard, conflict};
use super::{CandleElement, FRAMEWORK, check_cpu, contiguous, cpu_view, foreign};
use crate::error::TensorError;
use crate::view::{TensorView, TensorViewMut};

/// The operation named by the refusals that cannot happen (internal errors).
const OP: &str = "lend";

/// A tensor lent read-only by [`lend`], as a [`TensorView`] of `T`. Made by [`read`].
#[derive(Clone, Copy, Debug)]
pub struct Read<'t, T> {
    tensor: &'t Tensor,
    element: PhantomData<fn() -> T>,
}

/// A tensor lent mutably by [`lend`], as a [`TensorViewMut`] of `T`. Made by [`write`](fn@write).
#[derive(Clone, Copy, Debug)]
pub struct Write<'t, T> {
    tensor: &'t Tensor,
    element: PhantomData<fn() -> T>,
}

/// `tensor`, to be lent read-only as a [`TensorView`] of `T` by [`lend`].
pub fn read<T: Elem>(tensor: &Tensor) -> Read<'_, T> {
    Read {
        tensor,
        element: PhantomData,
    }
}

/// `tensor`, to be lent mutably as a [`TensorViewMut`] of `T` by [`lend`].
pub fn write<T: Elem>(tensor: &Tensor) -> Write<'_, T> {
    Write {
        tensor,
        element: PhantomData,
    }
}

/// Lends every tensor of `items` (a tuple of up to eight [`read`] and [`write`](fn@write) handles)
/// to `f` at once, as a tuple of views in the same order: a [`TensorView`] for each
/// `read`, a [`TensorViewMut`] for each `write`, each of the element type its handle
/// names. Tensors may be disjoint views of one storage; a storage written by one item
/// may hold other items only if none overlaps another.
///
/// # Errors
///
/// As [`super::with_view`] and [`super::with_view_mut`] for each tensor, and
/// [`TensorError::LendingConflict`] when tensors of a written storage overlap or when
/// called inside a mutable lending.
///
/// # Examples
///
/// The five tensors of a RoPE step — cos, sin and position ids read, q and k written —
/// in one call, the closure's parameters typed by the handles:
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use tokenloom_tensor::adapters::candle::{FlattenLending, lend, read, write};
///
/// let dev = Device::Cpu;
/// let (q, k) = (Tensor::ones((1, 3, 2, 4), DType::F32, &dev)?, Tensor::ones((1, 3, 1, 4), DType::F32, &dev)?);
/// let (cos, sin) = (Tensor::ones((8, 2), DType::F32, &dev)?, Tensor::zeros((8, 2), DType::F32, &dev)?);
/// let positions = Tensor::new(&[[0i64, 5, 7]], &dev)?;
/// let rows = lend(
///     (read::<f32>(&cos), read::<f32>(&sin), read::<i64>(&positions), write::<f32>(&q), write::<f32>(&k)),
///     |(cos, sin, positions, mut q, mut k)| {
///         q.as_mut_slice()[0] = cos.as_slice()[0] + sin.as_slice()[0];
///         k.as_mut_slice()[0] = -1.0;
///         Ok::<_, tokenloom_tensor::TensorError>(positions.as_slice().len())
///     },
/// )
/// .flat()?;
/// assert_eq!(rows, 3);
/// assert_eq!(k.flatten_all()?.to_vec1::<f32>()?[0], -1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn lend<'t, L, R, F>(items: L, f: F) -> Result<R, TensorError>
where
    L: Lendable<'t>,
    F: for<'a> FnOnce(L::Views<'a>) -> R,
{
    lend_as("lend", items, f)
}

/// [`lend`], its refusals naming `op` (the public function called).
pub(super) fn lend_as<'t, L, R, F>(op: &'static str, items: L, f: F) -> Result<R, TensorError>
where
    L: Lendable<'t>,
    F: for<'a> FnOnce(L::Views<'a>) -> R,
{
    let items = items.items();
    let (mut shared, mut mutable) = (Vec::new(), Vec::new());
    for item in &items {
        check_cpu(item.tensor)?;
    }
    // Item indices in the order `LendGuard::enter` returns the storage identities.
    let (reads, writes): (Vec<usize>, Vec<usize>) =
        (0..items.len()).partition(|&i| !items[i].mutable);
    shared.extend(reads.iter().map(|&i| items[i].tensor));
    mutable.extend(writes.iter().map(|&i| items[i].tensor));
    let (_guard, ids) = LendGuard::enter(op, &shared, &mutable)?;
    let mut keyed = Vec::new();
    for (&index, id) in reads.iter().chain(&writes).zip(ids) {
        let (start, end) = contiguous(items[index].tensor.layout())?;
        keyed.push((id, index, start, end));
    }
    keyed.sort_by_key(|&(id, _, start, end)| (id, start, end));
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (id, index, start, end) in keyed {
        let item = items[index];
        let part = Part { index, start, end };
        match groups.last_mut() {
            Some(group) if group.storage == id => {
                group.mutable |= item.mutable;
                group.parts.push(part);
            }
            _ => groups.push(Group {
                storage: id,
                tensor: item.tensor,
                mutable: item.mutable,
                parts: vec![part],
            }),
        }
    }
    for group in groups.iter().filter(|g| g.mutable) {
        for pair in group.parts.windows(2) {
            if pair[1].start < pair[0].end {
                return Err(conflict(
                    op,
                    format!(
                        "tensors {} and {} overlap in a storage one of them writes \
                         (elements {}..{} and {}..{})",
                        pair[0].index,
                        pair[1].index,
                        pair[0].start,
                        pair[0].end,
                        pair[1].start,
                        pair[1].end
                    ),
                ));
            }
        }
    }
    let slots = (0..items.len()).map(|_| None).collect();
    acquire::<L, R, F>(&items, &groups, slots, f)
}

/// The handles [`lend`] takes: a tuple of one to eight [`read`] and [`write`](fn@write) handles
/// (the closure receives a tuple of views), or a `Vec` of handles of one kind and type
/// (it receives a `Vec` of views). Sealed.
pub trait Lendable<'t>: sealed::Sealed {
    /// The tuple of views `f` receives.
    type Views<'a>;
    #[doc(hidden)]
    fn items(&self) -> Vec<Item<'t>>;
    #[doc(hidden)]
    fn views<'a>(slots: &mut [Option<Slot<'a>>]) -> Result<Self::Views<'a>, TensorError>;
}

/// One handle: a [`Read`] or a [`Write`]. Sealed.
pub trait Handle<'t>: sealed::Sealed {
    /// The view the closure receives.
    type View<'a>;
    #[doc(hidden)]
    fn item(&self) -> Item<'t>;
    #[doc(hidden)]
    fn view(slot: Slot<'_>) -> Result<Self::View<'_>, TensorError>;
}

/// The element types [`lend`] lends: those of [`CandleElement`]. Sealed.
pub trait Elem: CandleElement + sealed::Sealed {
    #[doc(hidden)]
    fn from_part(part: SlicePart<'_>) -> Option<&mut [Self]>;
}

mod sealed {
    pub trait Sealed {}
}

/// What [`lend`] knows of one handle.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Item<'t> {
    tensor: &'t Tensor,
    mutable: bool,
}

/// One lent tensor before it is typed: a read-locked storage and the tensor's layout,
/// or a part cut from a write-locked storage.
#[doc(hidden)]
#[derive(Debug)]
pub enum Slot<'a> {
    /// A storage only read.
    Shared(&'a CpuStorage, &'a Layout),
    /// A part of a written storage and the tensor's dims.
    Cut(SlicePart<'a>, &'a [usize]),
}

macro_rules! slice_parts {
    ($($t:ty => $variant:ident),*) => {
        /// A part of a written storage, of the storage's element type.
        #[doc(hidden)]
        #[derive(Debug)]
        pub enum SlicePart<'a> {
            $(
                #[doc(hidden)]
                $variant(&'a mut [$t]),
            )*
        }

        impl SlicePart<'_> {
            /// candle's name of the part's dtype.
            fn dtype(&self) -> &'static str {
                match self {
                    $(SlicePart::$variant(_) => stringify!($variant),)*
                }
            }
        }

        $(
            impl sealed::Sealed for $t {}
            impl Elem for $t {
                fn from_part(part: SlicePart<'_>) -> Option<&mut [Self]> {
                    match part {
                        SlicePart::$variant(data) => Some(data),
                        #[allow(unreachable_patterns)]
                        _ => None,
                    }
                }
            }
        )*

        /// Cuts `storage` into the (sorted, disjoint) parts, each of its element type.
        fn cut<'a>(
            storage: &'a mut CpuStorage,
            parts: &[Part],
        ) -> Result<Vec<SlicePart<'a>>, TensorError> {
            match storage {
                $(CpuStorage::$variant(data) => Ok(cut_slice(data, parts)
                    .into_iter()
                    .map(SlicePart::$variant)
                    .collect()),)*
                other => Err(TensorError::ForeignDType {
                    framework: FRAMEWORK,
                    expected: "a float or integer dtype tokenloom reads",
                    got: format!("{:?}", candle_core::backend::BackendStorage::dtype(other)),
                }),
            }
        }
    };
}

slice_parts!(f32 => F32, f64 => F64, f16 => F16, bf16 => BF16, u32 => U32, i32 => I32, i64 => I64);

/// The (sorted, disjoint) parts cut off `data`, in order.
fn cut_slice<'a, T>(mut data: &'a mut [T], parts: &[Part]) -> Vec<&'a mut [T]> {
    let mut consumed = 0;
    let mut out = Vec::with_capacity(parts.len());
    for part in parts {
        let (_, tail) = std::mem::take(&mut data).split_at_mut(part.start - consumed);
        let (piece, tail) = tail.split_at_mut(part.end - part.start);
        data = tail;
        consumed = part.end;
        out.push(piece);
    }
    out
}

impl<T: Elem> sealed::Sealed for Read<'_, T> {}
impl<'t, T: Elem> Handle<'t> for Read<'t, T> {
    type View<'a> = TensorView<'a, T>;
    fn item(&self) -> Item<'t> {
        Item {
            tensor: self.tensor,
            mutable: false,
        }
    }
    fn view(slot: Slot<'_>) -> Result<TensorView<'_, T>, TensorError> {
        match slot {
            Slot::Shared(storage, layout) => cpu_view(storage, layout),
            Slot::Cut(part, dims) => {
                let got = part.dtype();
                let data = T::from_part(part).ok_or_else(|| part_dtype::<T>(got.to_owned()))?;
                TensorView::new(&*data, dims)
            }
        }
    }
}

impl<T: Elem> sealed::Sealed for Write<'_, T> {}
impl<'t, T: Elem> Handle<'t> for Write<'t, T> {
    type View<'a> = TensorViewMut<'a, T>;
    fn item(&self) -> Item<'t> {
        Item {
            tensor: self.tensor,
            mutable: true,
        }
    }
    fn view(slot: Slot<'_>) -> Result<TensorViewMut<'_, T>, TensorError> {
        match slot {
            Slot::Cut(part, dims) => {
                let got = part.dtype();
                let data = T::from_part(part).ok_or_else(|| part_dtype::<T>(got.to_owned()))?;
                TensorViewMut::new(data, dims)
            }
            Slot::Shared(..) => Err(conflict(
                OP,
                "a written tensor was read-locked (internal)".to_owned(),
            )),
        }
    }
}

fn part_dtype<T: CandleElement>(got: String) -> TensorError {
    TensorError::ForeignDType {
        framework: FRAMEWORK,
        expected: T::NAME,
        got,
    }
}

macro_rules! lendable_tuple {
    ($($h:ident $i:tt),+) => {
        impl<$($h: sealed::Sealed),+> sealed::Sealed for ($($h,)+) {}
        impl<'t, $($h: Handle<'t>),+> Lendable<'t> for ($($h,)+) {
            type Views<'a> = ($($h::View<'a>,)+);
            fn items(&self) -> Vec<Item<'t>> {
                vec![$(self.$i.item()),+]
            }
            fn views<'a>(slots: &mut [Option<Slot<'a>>]) -> Result<Self::Views<'a>, TensorError> {
                Ok(($($h::view(take(slots, $i)?)?,)+))
            }
        }
    };
}

lendable_tuple!(A 0);
lendable_tuple!(A 0, B 1);
lendable_tuple!(A 0, B 1, C 2);
lendable_tuple!(A 0, B 1, C 2, D 3);
lendable_tuple!(A 0, B 1, C 2, D 3, E 4);
lendable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
lendable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
lendable_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

impl<H: sealed::Sealed> sealed::Sealed for Vec<H> {}
impl<'t, H: Handle<'t>> Lendable<'t> for Vec<H> {
    type Views<'a> = Vec<H::View<'a>>;
    fn items(&self) -> Vec<Item<'t>> {
        self.iter().map(Handle::item).collect()
    }
    fn views<'a>(slots: &mut [Option<Slot<'a>>]) -> Result<Self::Views<'a>, TensorError> {
        (0..slots.len()).map(|i| H::view(take(slots, i)?)).collect()
    }
}

fn take<'a>(slots: &mut [Option<Slot<'a>>], index: usize) -> Result<Slot<'a>, TensorError> {
    slots
        .get_mut(index)
        .and_then(Option::take)
        .ok_or_else(|| conflict(OP, format!("item {index} was not lent (internal)")))
}

/// One tensor's place in its storage.
#[derive(Clone, Copy, Debug)]
struct Part {
    index: usize,
    start: usize,
    end: usize,
}

/// The items of one storage, sorted by start; `mutable` when any of them is written.
struct Group<'t> {
    storage: usize,
    tensor: &'t Tensor,
    mutable: bool,
    parts: Vec<Part>,
}

/// Locks the first group's storage, fills its items' slots, and recurses; with every
/// storage locked, types the slots and calls `f`.
fn acquire<'t, 'a, L, R, F>(
    items: &[Item<'t>],
    groups: &[Group<'t>],
    mut slots: Vec<Option<Slot<'a>>>,
    f: F,
) -> Result<R, TensorError>
where
    L: Lendable<'t>,
    F: for<'b> FnOnce(L::Views<'b>) -> R,
{
    let Some((group, rest)) = groups.split_first() else {
        return Ok(f(L::views(&mut slots)?));
    };
    if !group.mutable {
        let (storage, _) = group.tensor.storage_and_layout();
        let Storage::Cpu(cpu) = &*storage else {
            return Err(TensorError::ForeignDevice {
                framework: FRAMEWORK,
                device: format!("{:?}", group.tensor.device().location()),
            });
        };
        let mut slots = shorten(slots);
        for part in &group.parts {
            slots[part.index] = Some(Slot::Shared(cpu, items[part.index].tensor.layout()));
        }
        return acquire::<L, R, F>(items, rest, slots, f);
    }
    let step = Step::<L, R, F> {
        items,
        group,
        rest,
        state: RefCell::new(Some((slots, f))),
        out: RefCell::new(None),
        lendable: PhantomData,
    };
    let status = group.tensor.inplace_op1(&step);
    status.map_err(foreign)?;
    step.out
        .into_inner()
        .ok_or_else(|| conflict(OP, "candle did not run the lending (internal)".to_owned()))?
}

/// The slots, for a shorter borrow (of a storage locked now).
fn shorten<'a: 'b, 'b>(slots: Vec<Option<Slot<'a>>>) -> Vec<Option<Slot<'b>>> {
    slots
}

/// One written storage's lock, taken through candle's in-place op.
struct Step<'g, 't, 'a, L, R, F> {
    items: &'g [Item<'t>],
    group: &'g Group<'t>,
    rest: &'g [Group<'t>],
    state: RefCell<Option<(Vec<Option<Slot<'a>>>, F)>>,
    out: RefCell<Option<Result<R, TensorError>>>,
    lendable: PhantomData<fn() -> L>,
}

impl<'t, L, R, F> InplaceOp1 for Step<'_, 't, '_, L, R, F>
where
    L: Lendable<'t>,
    F: for<'b> FnOnce(L::Views<'b>) -> R,
{
    fn name(&self) -> &'static str {
        "tokenloom::lend"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, _layout: &Layout) -> candle_core::Result<()> {
        let result = match self.state.borrow_mut().take() {
            None => Err(conflict(
                OP,
                "candle ran the lending twice (internal)".to_owned(),
            )),
            Some((slots, f)) => self.split(storage, slots, f),
        };
        *self.out.borrow_mut() = Some(result);
        Ok(())
    }
}

impl<'t, L, R, F> Step<'_, 't, '_, L, R, F>
where
    L: Lendable<'t>,
    F: for<'b> FnOnce(L::Views<'b>) -> R,
{
    fn split<'s>(
        &self,
        storage: &'s mut CpuStorage,
        slots: Vec<Option<Slot<'s>>>,
        f: F,
    ) -> Result<R, TensorError> {
        let mut slots = shorten(slots);
        let pieces = cut(storage, &self.group.parts)?;
        for (part, piece) in self.group.parts.iter().zip(pieces) {
            let dims = self.items[part.index].tensor.layout().dims();
            slots[part.index] = Some(Slot::Cut(piece, dims));
        }
        acquire::<L, R, F>(self.items, self.rest, slots, f)
    }
}
