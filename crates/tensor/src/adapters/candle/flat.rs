//! Several candle tensors lent mutably in one call, including disjoint views of one
//! storage (cos and sin as the two halves of one cache).

use std::cell::RefCell;

use candle_core::{CpuStorage, InplaceOp1, Layout, Tensor};

use super::guard::{LendGuard, conflict};
use super::{CandleElement, check_cpu, contiguous, foreign, wrong_dtype};
use crate::error::TensorError;
use crate::view::TensorViewMut;

const OP: &str = "with_views_mut";

/// The tensors of one storage: `(index in the call, start, end, dims)`, by start.
struct Group<'t> {
    tensor: &'t Tensor,
    parts: Vec<(usize, usize, usize, Vec<usize>)>,
}

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
    T: CandleElement,
{
    for tensor in tensors {
        check_cpu(tensor)?;
    }
    let (_guard, ids) = LendGuard::enter(OP, &[], tensors)?;
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| ids[i]);
    let mut groups: Vec<(usize, Group<'_>)> = Vec::new();
    for i in order {
        let layout = tensors[i].layout();
        let (start, end) = contiguous(layout)?;
        let part = (i, start, end, layout.dims().to_vec());
        match groups.last_mut() {
            Some((id, group)) if *id == ids[i] => group.parts.push(part),
            _ => groups.push((
                ids[i],
                Group {
                    tensor: tensors[i],
                    parts: vec![part],
                },
            )),
        }
    }
    let mut groups: Vec<Group<'_>> = groups.into_iter().map(|(_, g)| g).collect();
    for group in &mut groups {
        group.parts.sort_by_key(|p| (p.1, p.2));
        for pair in group.parts.windows(2) {
            if pair[1].1 < pair[0].2 {
                return Err(conflict(
                    OP,
                    format!(
                        "tensors {} and {} overlap in one storage (elements {}..{} and {}..{})",
                        pair[0].0, pair[1].0, pair[0].1, pair[0].2, pair[1].1, pair[1].2
                    ),
                ));
            }
        }
    }
    let slots = (0..tensors.len()).map(|_| None).collect();
    acquire(&groups, slots, f)
}

/// Locks the first group's storage, splits it into its tensors' views, and recurses;
/// with every storage locked, calls `f`.
fn acquire<'a, T, R, F>(
    groups: &[Group<'_>],
    mut slots: Slots<'a, T>,
    f: F,
) -> Result<R, TensorError>
where
    T: CandleElement,
    F: FnOnce(Vec<TensorViewMut<'_, T>>) -> R,
{
    let Some((group, rest)) = groups.split_first() else {
        let views: Option<Vec<_>> = slots.drain(..).collect();
        let views =
            views.ok_or_else(|| conflict(OP, "a tensor was not lent (internal)".to_owned()))?;
        return Ok(f(views));
    };
    let step = Step {
        group,
        rest,
        state: RefCell::new(Some((slots, f))),
        out: RefCell::new(None),
    };
    let status = group.tensor.inplace_op1(&step);
    status.map_err(foreign)?;
    step.out
        .into_inner()
        .ok_or_else(|| conflict(OP, "candle did not run the lending (internal)".to_owned()))?
}

/// The views lent so far, by position in the call.
type Slots<'a, T> = Vec<Option<TensorViewMut<'a, T>>>;

/// One storage's lock, taken through candle's in-place op.
struct Step<'g, 't, 'a, T, R, F> {
    group: &'g Group<'t>,
    rest: &'g [Group<'t>],
    state: RefCell<Option<(Slots<'a, T>, F)>>,
    out: RefCell<Option<Result<R, TensorError>>>,
}

impl<T, R, F> InplaceOp1 for Step<'_, '_, '_, T, R, F>
where
    T: CandleElement,
    F: FnOnce(Vec<TensorViewMut<'_, T>>) -> R,
{
    fn name(&self) -> &'static str {
        "tokenloom::with_views_mut"
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

impl<T, R, F> Step<'_, '_, '_, T, R, F>
where
    T: CandleElement,
    F: FnOnce(Vec<TensorViewMut<'_, T>>) -> R,
{
    fn split<'s>(
        &self,
        storage: &'s mut CpuStorage,
        mut slots: Slots<'s, T>,
        f: F,
    ) -> Result<R, TensorError> {
        if T::slice(storage).is_none() {
            return Err(wrong_dtype::<T>(storage));
        }
        let Some(mut data) = T::slice_mut(storage) else {
            return Err(conflict(OP, "the dtype changed (internal)".to_owned()));
        };
        // The parts are sorted and disjoint: cut each off the front of what is left.
        let mut consumed = 0;
        for (index, start, end, dims) in &self.group.parts {
            let (_, tail) = std::mem::take(&mut data).split_at_mut(start - consumed);
            let (part, tail) = tail.split_at_mut(end - start);
            data = tail;
            consumed = *end;
            slots[*index] = Some(TensorViewMut::new(part, dims)?);
        }
        acquire(self.rest, slots, f)
    }
}
