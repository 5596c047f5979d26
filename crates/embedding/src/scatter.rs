//! The scatter-add at the heart of both backward passes: the rows of `grad_output` added
//! into the gradient rows of their ids.
//!
//! It walks the tokens in position order, as the plain `grad[id] += g` loop does: the
//! incoming rows are read front to back in one stream (reading them grouped by id, in id
//! order, jumps through memory and measured twice as slow). A row touched by one token is
//! written straight from its gradient row; an id with a few tokens is summed at its last
//! token from their rows; more frequent ids are summed in accumulators of [`GradSum`]'s
//! precision, one per id, in position order, and rounded once at the end. Work is split by destination row: each task owns a
//! contiguous range of rows (zeroing the untouched ones with streaming stores when the
//! gradient is replaced) and adds only the tokens whose ids fall in it. Every row is
//! written by one task with the same operations in the same order, so the bits depend on
//! neither the thread count nor the task split.

use tokenloom_tensor::{
    Accumulate, DType, Element, TokenId, for_each_chunk_mut_by_work, stream, threads_for,
};

use crate::error::EmbeddingError;
use crate::options::{EmbeddingOptions, GradSum};
use dispatch::Isa;

mod dispatch;

/// The token positions of a batch grouped by id: ids increasing, the padding id left out.
pub(crate) struct RowGroups {
    /// `(id, number of tokens)` per distinct id, ids increasing.
    groups: Vec<(u32, usize)>,
    /// The group of each token position (`NO_GROUP` for the padding id).
    group_of: Vec<u32>,
    /// Token positions sorted by (id, position); group `g`'s are
    /// `order[starts[g]..starts[g] + count]`.
    order: Vec<usize>,
    starts: Vec<usize>,
}

/// [`RowGroups::group_of`] of a padding token.
const NO_GROUP: u32 = u32::MAX;

impl RowGroups {
    /// Groups checked ids (every id is a row index below a vocabulary that fits `u32`).
    pub(crate) fn new<I: TokenId>(ids: &[I], padding_idx: Option<usize>) -> Self {
        let row = |i: usize| ids[i].checked_index();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        // (id, position) is unique, so the unstable sort is deterministic.
        order.sort_unstable_by_key(|&i| (row(i), i));
        let (mut groups, mut starts) = (Vec::new(), Vec::new());
        let mut group_of = vec![NO_GROUP; ids.len()];
        let mut start = 0;
        for run in order.chunk_by(|&a, &b| row(a) == row(b)) {
            let id = row(run[0]);
            if padding_idx != Some(id) {
                let g = u32::try_from(groups.len()).expect("at most one group per token");
                run.iter().for_each(|&i| group_of[i] = g);
                let id = u32::try_from(id).expect("ids are checked to fit u32");
                groups.push((id, run.len()));
                starts.push(start);
            }
            start += run.len();
        }
        Self {
            groups,
            group_of,
            order,
            starts,
        }
    }

    /// The distinct ids, increasing.
    pub(crate) fn ids(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.groups.iter().map(|&(id, _)| id)
    }

    /// The token positions of group `g`, in order.
    fn positions(&self, g: usize) -> &[usize] {
        &self.order[self.starts[g]..self.starts[g] + self.groups[g].1]
    }

    /// The number of distinct (non-padding) ids.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }
}

/// How the touched rows are summed and written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSum {
    pub(crate) grad_sum: GradSum,
    pub(crate) scale_grad_by_freq: bool,
    pub(crate) accumulate: Accumulate,
}

impl RowSum {
    /// The sum `options` ask for, replacing or adding as `accumulate` says.
    pub(crate) fn of(options: &EmbeddingOptions, accumulate: Accumulate) -> Self {
        Self {
            grad_sum: options.grad_sum,
            scale_grad_by_freq: options.scale_grad_by_freq,
            accumulate,
        }
    }
}

/// How a destination's rows are numbered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Layout {
    /// A `(vocab_size, n_embd)` gradient: group `g` goes to row `id`; replacing zeroes
    /// the untouched rows.
    Dense,
    /// One row per group, in group order (a sparse gradient's values).
    Compact,
}

/// Per task, the sums of its ids with more than [`DEFER_MAX`] tokens, one `n_embd` row
/// per id in order of first occurrence (none in [`Mode::Direct`]).
enum Sums {
    F32(Vec<Vec<f32>>),
    F64(Vec<Vec<f64>>),
}

/// A scatter planned before anything is written: the split of the destination into one
/// part per thread, and the memory for the sums of repeated ids (reserved, untouched),
/// so that a failed allocation leaves the destination as it was.
pub(crate) struct Scatter {
    layout: Layout,
    how: RowSum,
    n_embd: usize,
    /// Per task: its first destination row and its groups.
    tasks: Vec<(usize, std::ops::Range<usize>)>,
    n_rows: usize,
    /// The bytes the scatter moves, which decide the number of tasks.
    work_bytes: usize,
    mode: Mode,
    sums: Sums,
}

impl Scatter {
    /// Plans the scatter of `groups` (rows of `G`) into `n_rows` rows of `n_embd`
    /// elements of `T`.
    ///
    /// # Errors
    ///
    /// [`tokenloom_tensor::TensorError::AllocationFailed`] when the sums of the repeated
    /// ids cannot be allocated.
    pub(crate) fn plan<G: Element, T: Element>(
        groups: &RowGroups,
        grad_output_len: usize,
        n_embd: usize,
        n_rows: usize,
        layout: Layout,
        how: RowSum,
    ) -> Result<Self, EmbeddingError> {
        let elem = std::mem::size_of::<T>();
        let work_bytes = grad_output_len * std::mem::size_of::<G>()
            + if zeroes_untouched(layout, how) {
                n_rows * n_embd * elem
            } else {
                0
            };
        // One task per thread, as the plain loop: each reads the incoming rows of its ids
        // in position order; more tasks than threads would make a thread's reads jump.
        let n_tasks = threads_for(work_bytes);
        let per_task = n_rows.div_ceil(n_tasks).max(1);
        let mut tasks = Vec::with_capacity(n_tasks);
        let (mut first_row, mut first_group) = (0, 0);
        while first_row < n_rows {
            let end_row = (first_row + per_task).min(n_rows);
            let end_group = match layout {
                Layout::Dense => {
                    first_group
                        + groups.groups[first_group..]
                            .partition_point(|&(id, _)| (id as usize) < end_row)
                }
                Layout::Compact => end_row,
            };
            tasks.push((first_row, first_group..end_group));
            (first_row, first_group) = (end_row, end_group);
        }
        let mode = match (how.grad_sum, T::DTYPE) {
            (GradSum::F32, DType::F32) if G::DTYPE == DType::F32 => Mode::Direct,
            (GradSum::F32, dtype) if dtype != DType::F64 => Mode::Plain,
            _ => Mode::Exact,
        };
        // Reserved, not touched: the memory of the running sums of each task.
        let sums_len = |range: &std::ops::Range<usize>| match mode {
            Mode::Direct => 0,
            _ => {
                groups.groups[range.clone()]
                    .iter()
                    .filter(|g| g.1 > DEFER_MAX)
                    .count()
                    * n_embd
            }
        };
        fn reserved<S>(
            tasks: &[(usize, std::ops::Range<usize>)],
            len: impl Fn(&std::ops::Range<usize>) -> usize,
        ) -> Result<Vec<Vec<S>>, EmbeddingError> {
            tasks
                .iter()
                .map(|(_, range)| {
                    let (mut v, len) = (Vec::new(), len(range));
                    v.try_reserve_exact(len).map_err(|_| {
                        tokenloom_tensor::TensorError::AllocationFailed {
                            op: "embedding backward (sums of repeated ids)",
                            bytes: len.saturating_mul(std::mem::size_of::<S>()),
                        }
                    })?;
                    Ok(v)
                })
                .collect()
        }
        let sums = match mode {
            Mode::Exact => Sums::F64(reserved(&tasks, sums_len)?),
            Mode::Direct | Mode::Plain => Sums::F32(reserved(&tasks, sums_len)?),
        };
        Ok(Self {
            layout,
            how,
            n_embd,
            tasks,
            n_rows,
            work_bytes,
            mode,
            sums,
        })
    }

    /// Writes (or adds) every group's gradient row into `dest` (`n_rows × n_embd`): the
    /// rows of `grad_output` (one per token position) summed as planned.
    ///
    /// # Panics
    ///
    /// If `dest` is not the planned size (a bug in this crate).
    pub(crate) fn run<G: Element, T: Element>(
        &mut self,
        groups: &RowGroups,
        grad_output: &[G],
        dest: &mut [T],
    ) {
        self.run_isa(Isa::detect(), groups, grad_output, dest);
    }

    /// [`Scatter::run`] with the loops built for `isa`.
    fn run_isa<G: Element, T: Element>(
        &mut self,
        isa: Isa,
        groups: &RowGroups,
        grad_output: &[G],
        dest: &mut [T],
    ) {
        assert_eq!(
            dest.len(),
            self.n_rows * self.n_embd,
            "scatter: planned for another size"
        );
        match std::mem::replace(&mut self.sums, Sums::F32(Vec::new())) {
            Sums::F32(mut sums) => self.run_with(isa, groups, grad_output, dest, &mut sums),
            Sums::F64(mut sums) => self.run_with(isa, groups, grad_output, dest, &mut sums),
        }
    }

    /// [`Scatter::run`] with `S` sums: the tasks, split across threads.
    fn run_with<G: Element, T: Element, S: SumFloat>(
        &self,
        isa: Isa,
        groups: &RowGroups,
        grad_output: &[G],
        dest: &mut [T],
        sums: &mut [Vec<S>],
    ) {
        let zero_untouched = zeroes_untouched(self.layout, self.how);
        let mut tasks = self.split(dest, sums);
        for_each_chunk_mut_by_work(&mut tasks, 1, self.work_bytes, |_, tasks| {
            for task in tasks {
                if zero_untouched {
                    task.zero_gaps(groups);
                }
                task.add_rows_with(isa, groups, grad_output, self.mode);
            }
        });
    }

    /// The planned tasks over `dest`.
    fn split<'w, T, S>(&self, dest: &'w mut [T], sums: &'w mut [Vec<S>]) -> Vec<Task<'w, T, S>> {
        let mut rest = dest;
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for (i, ((first_row, groups), sums)) in self.tasks.iter().zip(sums).enumerate() {
            let end_row = self.tasks.get(i + 1).map_or(self.n_rows, |t| t.0);
            let (rows, tail) = rest.split_at_mut((end_row - first_row) * self.n_embd);
            rest = tail;
            tasks.push(Task {
                rows,
                first_row: *first_row,
                groups: groups.clone(),
                layout: self.layout,
                n_embd: self.n_embd,
                how: self.how,
                sums,
            });
        }
        tasks
    }
}

/// How the repeated ids of a task are summed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Into the destination, in `T` (`f32`): the plain loop.
    Direct,
    /// In `f32` sums, the plain loop's arithmetic, rounded to `T` at the end.
    Plain,
    /// In `f64` sums from zero, scaled and added once at the end.
    Exact,
}

/// Whether the untouched rows of the destination are zeroed: a dense gradient, replaced.
fn zeroes_untouched(layout: Layout, how: RowSum) -> bool {
    layout == Layout::Dense && how.accumulate == Accumulate::Replace
}

/// A contiguous part of the destination: rows `first_row ..` of a dense gradient (or the
/// rows of groups `first_row ..` of a compact one), the groups that land in it, and the
/// sums of its repeated ids.
struct Task<'w, T, S> {
    rows: &'w mut [T],
    first_row: usize,
    groups: std::ops::Range<usize>,
    layout: Layout,
    n_embd: usize,
    how: RowSum,
    sums: &'w mut Vec<S>,
}

impl<T: Element, S: SumFloat> Task<'_, T, S> {
    /// Where group `g`'s row starts in `self.rows`.
    fn at(&self, groups: &RowGroups, g: usize) -> usize {
        let row = match self.layout {
            Layout::Dense => groups.groups[g].0 as usize,
            Layout::Compact => g,
        };
        (row - self.first_row) * self.n_embd
    }

    /// Zeroes the rows of this task no group writes.
    fn zero_gaps(&mut self, groups: &RowGroups) {
        let n_embd = self.n_embd;
        let mut next = self.first_row;
        let mut rest = &mut self.rows[..];
        for g in self.groups.clone() {
            let id = groups.groups[g].0 as usize;
            let (gap, tail) = rest.split_at_mut((id - next) * n_embd);
            stream::zero(gap);
            rest = &mut tail[n_embd..];
            next = id + 1;
        }
        stream::zero(rest);
    }

    /// The position-order pass: single tokens (and, in [`Mode::Direct`], every token)
    /// written straight into their rows, repeated ids summed in `S` and written at the end.
    /// Inlined into each instruction-set build ([`dispatch`]).
    #[inline(always)]
    fn add_rows<G: Element>(&mut self, groups: &RowGroups, grad_output: &[G], mode: Mode) {
        let n_embd = self.n_embd;
        let add = self.how.accumulate == Accumulate::Add;
        let scale = self.how.scale_grad_by_freq;
        // Per group of the task: `NO_GROUP` until its first token, then its sum's slot.
        let mut slot_of = vec![NO_GROUP; self.groups.len()];
        self.sums.clear();
        for (p, &g) in groups.group_of.iter().enumerate() {
            let g = g as usize;
            if !self.groups.contains(&g) {
                continue;
            }
            let x = &grad_output[p * n_embd..(p + 1) * n_embd];
            let count = groups.groups[g].1;
            let slot = &mut slot_of[g - self.groups.start];
            let first = *slot == NO_GROUP;
            let at = self.at(groups, g);
            let row = &mut self.rows[at..at + n_embd];
            if count == 1 || mode == Mode::Direct {
                *slot = 0;
                write_straight(row, x, first && !add, mode, scale.then_some(count));
                continue;
            }
            let term = if mode == Mode::Plain && scale {
                S::ONE.div_count(count)
            } else {
                S::ONE
            };
            if count <= DEFER_MAX {
                // A few tokens: nothing until the last one, which sums them all (reading
                // the earlier rows again) straight into the row — no accumulator traffic.
                *slot = if first { 1 } else { *slot + 1 };
                if (*slot as usize) == count {
                    let positions = groups.positions(g);
                    sum_into_row::<G, T, S>(row, grad_output, positions, mode, add, scale, term);
                }
                continue;
            }
            if first {
                // A new sum, in order of first occurrence: from zero, or (the plain loop's
                // arithmetic, adding) from the row's value.
                *slot = u32::try_from(self.sums.len() / n_embd).expect("fewer slots than groups");
                let from_row = mode == Mode::Plain && add;
                let start = |o: T| if from_row { S::of(o) } else { S::ZERO };
                self.sums
                    .extend(row.iter().zip(x).map(|(&o, &x)| start(o) + S::of(x) * term));
                continue;
            }
            let at = *slot as usize * n_embd;
            add_term(&mut self.sums[at..at + n_embd], x, term);
        }
        if mode == Mode::Direct {
            return;
        }
        for g in self.groups.clone() {
            let count = groups.groups[g].1;
            if count <= DEFER_MAX {
                continue;
            }
            let from = slot_of[g - self.groups.start] as usize * n_embd;
            let at = self.at(groups, g);
            let row = &mut self.rows[at..at + n_embd];
            for (o, &s) in row.iter_mut().zip(&self.sums[from..from + n_embd]) {
                *o = finish(*o, s, mode, add, scale.then_some(count));
            }
        }
    }
}

/// Ids with at most this many tokens are summed at their last token from the rows
/// themselves; more frequent ids keep a running sum (reading many earlier rows back out of
/// position order is what made the first, grouped version slow).
const DEFER_MAX: usize = 4;

/// The row of an id with `positions` (≤ [`DEFER_MAX`]), summed in `S` column block by
/// column block in position order — the same operations as a running sum — and written
/// (or, exact and adding, added once) into `row`.
#[inline(always)]
fn sum_into_row<G: Element, T: Element, S: SumFloat>(
    row: &mut [T],
    grad_output: &[G],
    positions: &[usize],
    mode: Mode,
    add: bool,
    scale: bool,
    term: S,
) {
    const BLOCK: usize = 64;
    let n_embd = row.len();
    let count = positions.len();
    for (b, out) in row.chunks_mut(BLOCK).enumerate() {
        let start = b * BLOCK;
        let mut acc = [S::ZERO; BLOCK];
        let acc = &mut acc[..out.len()];
        if mode == Mode::Plain && add {
            acc.iter_mut().zip(&*out).for_each(|(a, &o)| *a = S::of(o));
        }
        for &p in positions {
            add_term(
                acc,
                &grad_output[p * n_embd + start..p * n_embd + start + out.len()],
                term,
            );
        }
        for (o, &a) in out.iter_mut().zip(&*acc) {
            *o = finish(*o, a, mode, add, scale.then_some(count));
        }
    }
}

/// `sum += x · term` element by element in `S` (without the product when `term` is 1).
#[inline(always)]
fn add_term<T: Element, S: SumFloat>(sum: &mut [S], x: &[T], term: S) {
    if term == S::ONE {
        sum.iter_mut().zip(x).for_each(|(s, &x)| *s = *s + S::of(x));
    } else {
        sum.iter_mut()
            .zip(x)
            .for_each(|(s, &x)| *s = *s + S::of(x) * term);
    }
}

/// The value a finished sum `s` leaves in a row holding `o`: in [`Mode::Exact`], `s`
/// divided by the count with scale_grad_by_freq (`count`), then added to `o` when
/// accumulating, rounded once; otherwise `s` already holds everything (the plain loop's
/// arithmetic), rounded.
#[inline(always)]
fn finish<T: Element, S: SumFloat>(o: T, s: S, mode: Mode, add: bool, count: Option<usize>) -> T {
    match mode {
        Mode::Exact => {
            let s = count.map_or(s, |c| s.div_count(c));
            if add { (S::of(o) + s).to() } else { s.to() }
        }
        _ => s.to(),
    }
}

/// Writes one token's gradient row `x` straight into `row`: `0 + x` when it is the row's
/// first token and the gradient is replaced (−0 becomes +0, as in a sum), `o + x`
/// otherwise. With `count` (scale_grad_by_freq) the plain loop's arithmetic multiplies
/// each term by `1 / count` ([`Mode::Direct`] and [`Mode::Plain`]); a single token of the
/// exact sum ([`Mode::Exact`]) adds `0 + x`, the value its `f64` sum rounds to.
#[inline(always)]
fn write_straight<G: Element, T: Element>(
    row: &mut [T],
    x: &[G],
    first_replace: bool,
    mode: Mode,
    count: Option<usize>,
) {
    let term = count
        .filter(|&c| c > 1 && mode != Mode::Exact)
        .map(|c| T::from_f64_lossy(1.0 / c as f64));
    let pairs = row.iter_mut().zip(x.iter().map(|&x| widen::<G, T>(x)));
    match (first_replace, term, mode) {
        (true, None, _) => pairs.for_each(|(o, x)| *o = T::zero() + x),
        (true, Some(t), _) => pairs.for_each(|(o, x)| *o = T::zero() + x * t),
        (false, None, Mode::Exact) => pairs.for_each(|(o, x)| *o = *o + (T::zero() + x)),
        (false, None, _) => pairs.for_each(|(o, x)| *o = *o + x),
        (false, Some(t), _) => pairs.for_each(|(o, x)| *o = *o + x * t),
    }
}

/// `x` as a `T`: the same bits when the types are the same (no conversion is compiled),
/// otherwise through `f64`, to which every float widens exactly (one rounding, to `T`; a
/// half gradient into an `f32`/`f64` gradient is exact).
#[inline(always)]
fn widen<G: Element, T: Element>(x: G) -> T {
    if G::DTYPE == T::DTYPE {
        T::from_bits64(x.to_bits64())
    } else {
        T::from_f64_lossy(x.as_f64())
    }
}

/// The float a repeated id's rows are summed in: `f64` ([`GradSum::F64`]) or `f32`
/// ([`GradSum::F32`]).
trait SumFloat:
    Copy + Send + Sync + PartialEq + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn of<T: Element>(x: T) -> Self;
    fn to<T: Element>(self) -> T;
    /// `self / count` (counts are far below 2^24, exact in both).
    fn div_count(self, count: usize) -> Self;
}

impl SumFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of<T: Element>(x: T) -> Self {
        x.as_f64()
    }
    #[inline(always)]
    fn to<T: Element>(self) -> T {
        T::from_f64_lossy(self)
    }
    #[inline(always)]
    fn div_count(self, count: usize) -> Self {
        self / count as f64
    }
}

impl SumFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of<T: Element>(x: T) -> Self {
        x.as_f32()
    }
    #[inline(always)]
    fn to<T: Element>(self) -> T {
        T::from_f32_lossy(self)
    }
    #[inline(always)]
    fn div_count(self, count: usize) -> Self {
        self / count as f32
    }
}

#[cfg(test)]
mod tests;
