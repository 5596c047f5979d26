//! The scatter-add at the heart of both backward passes: the rows of `grad_output` added
//! into the gradient rows of their ids.
//!
//! It walks the tokens in position order, as the plain `grad[id] += g` loop does: the
//! incoming rows are read front to back in one stream (reading them grouped by id, in id
//! order, jumps through memory and measured twice as slow). A row touched by one token is
//! written straight from its gradient row; a repeated id is summed in an accumulator of
//! [`GradSum`]'s precision, in position order, [`FLUSH`] tokens at a time (their rows read at
//! the flush, the accumulator read and written once per flush), and rounded into
//! its row at its last token. Work is split by destination row: each task owns a
//! contiguous range of rows (zeroing the untouched ones with streaming stores when the
//! gradient is replaced) and adds only the tokens whose ids fall in it. Every row is
//! written by one task with the same operations in the same order, so the bits depend on
//! neither the thread count nor the task split.

use tokenloom_tensor::{
    Accumulate, DType, Element, TokenId, as_same_type, for_each_chunk_mut_by_work,
    stream::Streamer, threads_for, try_filled,
};

use crate::error::EmbeddingError;
use crate::options::{EmbeddingOptions, GradSum};
use arith::{Flush, SumFloat, flush, write_straight};
use dispatch::Isa;

mod arith;
mod dispatch;
mod scratch;

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

/// An empty vector with room for `len` elements, or the allocation failure naming `op`.
fn try_with_capacity<T>(len: usize, op: &'static str) -> Result<Vec<T>, EmbeddingError> {
    Ok(tokenloom_tensor::try_with_capacity(len, op)?)
}

impl RowGroups {
    /// Groups checked ids (every id is a row index below a vocabulary that fits `u32`).
    ///
    /// # Errors
    ///
    /// [`tokenloom_tensor::TensorError::AllocationFailed`] when the per-token index
    /// cannot be allocated (it holds a few words per token).
    pub(crate) fn new<I: TokenId>(
        ids: &[I],
        padding_idx: Option<usize>,
    ) -> Result<Self, EmbeddingError> {
        const OP: &str = "embedding backward (grouping the ids)";
        let row = |i: usize| ids[i].checked_index();
        let mut order = try_with_capacity(ids.len(), OP)?;
        order.extend(0..ids.len());
        // (id, position) is unique, so the unstable sort is deterministic.
        order.sort_unstable_by_key(|&i| (row(i), i));
        let mut group_of = try_filled(ids.len(), NO_GROUP, OP)?;
        let n_groups = order.chunk_by(|&a, &b| row(a) == row(b)).count();
        let mut groups = try_with_capacity(n_groups, OP)?;
        let mut starts = try_with_capacity(n_groups, OP)?;
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
        Ok(Self {
            groups,
            group_of,
            order,
            starts,
        })
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

/// Per task, the sums of its ids with more than [`FLUSH`] tokens, one `n_embd` row
/// per id in order of its first flush (none in [`Mode::Direct`]).
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
    /// Whether single-token rows are written with non-temporal stores
    /// ([`STREAM_ROWS_MIN_BYTES`]).
    stream_rows: bool,
    sums: Sums,
    /// Per task: room for its [`Mark`]s, one per group.
    marks: Vec<Vec<Mark>>,
}

/// Per group of a task, during its pass: the tokens seen, and the slot of its stored sum
/// (`NO_GROUP` until its first flush that is not its last).
type Mark = (usize, u32);

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
        Self::plan_split::<G, T>(
            groups,
            grad_output_len,
            n_embd,
            n_rows,
            layout,
            how,
            HOT_BYTES_PER_TASK,
        )
    }

    /// [`Scatter::plan`] with at most about `hot_budget` bytes of hot memory per task
    /// ([`HOT_BYTES_PER_TASK`] there).
    fn plan_split<G: Element, T: Element>(
        groups: &RowGroups,
        grad_output_len: usize,
        n_embd: usize,
        n_rows: usize,
        layout: Layout,
        how: RowSum,
        hot_budget: usize,
    ) -> Result<Self, EmbeddingError> {
        let elem = std::mem::size_of::<T>();
        let work_bytes = grad_output_len * std::mem::size_of::<G>()
            + if zeroes_untouched(layout, how) {
                n_rows * n_embd * elem
            } else {
                0
            };
        let mode = match (how.grad_sum, T::DTYPE) {
            (GradSum::F32, DType::F32) if G::DTYPE == DType::F32 => Mode::Direct,
            (GradSum::F32, dtype) if dtype != DType::F64 => Mode::Plain,
            _ => Mode::Exact,
        };
        // One task per thread, as the plain loop: each reads the incoming rows of its ids
        // in position order; more tasks than threads for their own sake would make a
        // thread's reads jump (measured: the `f32` sum with random ids on two threads went
        // from 0.98× to 1.20× the plain loop with four tasks per thread). A scatter lasts
        // milliseconds, far longer than a late pool thread's wake-up
        // (`tokenloom_tensor::TASKS_PER_THREAD`). But a multiple of that where the hot
        // memory of one task per thread would not stay in L2 ([`HOT_BYTES_PER_TASK`]).
        let threads = threads_for(work_bytes);
        let hot = hot_bytes(groups, n_embd, elem, mode);
        let n_tasks = threads.max(hot.div_ceil(hot_budget.max(1)).next_multiple_of(threads));
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
        // Reserved, not touched: the memory of the running sums of each task.
        let lens: Vec<usize> = tasks
            .iter()
            .map(|(_, range)| match mode {
                Mode::Direct => 0,
                _ => stored_sums(&groups.groups[range.clone()]) * n_embd,
            })
            .collect();
        const SUMS: &str = "embedding backward (sums of repeated ids)";
        let sums = match mode {
            Mode::Exact => Sums::F64(scratch::take(&lens, SUMS)?),
            Mode::Direct | Mode::Plain => Sums::F32(scratch::take(&lens, SUMS)?),
        };
        let marks = tasks
            .iter()
            .map(|(_, range)| try_with_capacity(range.len(), "embedding backward (row marks)"))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            layout,
            how,
            n_embd,
            tasks,
            n_rows,
            work_bytes,
            mode,
            stream_rows: zeroes_untouched(layout, how)
                && n_rows.saturating_mul(n_embd).saturating_mul(elem) >= STREAM_ROWS_MIN_BYTES,
            sums,
            marks,
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
        let mut marks = std::mem::take(&mut self.marks);
        match std::mem::replace(&mut self.sums, Sums::F32(Vec::new())) {
            Sums::F32(mut sums) => {
                self.run_with(isa, groups, grad_output, dest, &mut sums, &mut marks);
                scratch::give_back(sums);
            }
            Sums::F64(mut sums) => {
                self.run_with(isa, groups, grad_output, dest, &mut sums, &mut marks);
                scratch::give_back(sums);
            }
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
        marks: &mut [Vec<Mark>],
    ) {
        let zero_untouched = zeroes_untouched(self.layout, self.how);
        let mut tasks = self.split(dest, sums, marks);
        for_each_chunk_mut_by_work(&mut tasks, 1, self.work_bytes, |_, tasks| {
            for task in tasks {
                // Fenced at the end of the task, before the pool's join.
                let mut streamer = Streamer::new();
                if zero_untouched {
                    task.zero_gaps(groups, &mut streamer);
                }
                task.add_rows_with(isa, groups, grad_output, self.mode, &mut streamer);
            }
        });
    }

    /// The planned tasks over `dest`.
    fn split<'w, T, S>(
        &self,
        dest: &'w mut [T],
        sums: &'w mut [Vec<S>],
        marks: &'w mut [Vec<Mark>],
    ) -> Vec<Task<'w, T, S>> {
        let mut rest = dest;
        let mut tasks = Vec::with_capacity(self.tasks.len());
        let parts = self.tasks.iter().zip(sums).zip(marks).enumerate();
        for (i, (((first_row, groups), sums), marks)) in parts {
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
                stream_rows: self.stream_rows,
                sums,
                marks,
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

/// A task's hot memory — the rows it writes more than once and the running sums of its
/// repeated ids — is kept to about this many bytes by splitting the destination into more
/// tasks than threads, so that it stays in a core's L2 cache while the task's tokens
/// stream past. Measured on the accumulating backward with 100 distinct ids of 4096
/// columns (4.9 MB of `f64` sums and rows; docs/benchmarks/row-copies-and-streams.md, "The
/// sums' memory, kept"): two threads 0.95–1.05× the plain loop instead of 1.09–1.15×, the
/// `f32` sum on one thread 0.80× instead of 0.92–0.98×; random ids, with almost no hot
/// memory, unchanged.
const HOT_BYTES_PER_TASK: usize = 1 << 20;

/// The hot memory of a whole scatter: per id summed across flushes, its destination row
/// and its sum row ([`Mode::Direct`]: the destination row of every repeated id).
fn hot_bytes(groups: &RowGroups, n_embd: usize, elem: usize, mode: Mode) -> usize {
    let (hot_ids, sum_bytes) = match mode {
        Mode::Direct => (groups.groups.iter().filter(|g| g.1 > 1).count(), 0),
        Mode::Plain => (stored_sums(&groups.groups), std::mem::size_of::<f32>()),
        Mode::Exact => (stored_sums(&groups.groups), std::mem::size_of::<f64>()),
    };
    hot_ids
        .saturating_mul(n_embd)
        .saturating_mul(elem + sum_bytes)
}

/// How many of these groups (id, token count) keep a stored running sum: those with more
/// than [`FLUSH`] tokens. The others are summed from their rows at their last token.
fn stored_sums(groups: &[(u32, usize)]) -> usize {
    groups.iter().filter(|g| g.1 > FLUSH).count()
}

/// From this many bytes of a replaced dense gradient on (past the last-level cache of the
/// machines measured), its rows touched by one token are written with non-temporal
/// stores, as its untouched rows are zeroed: a normal store reads each line before
/// writing it. Measured on the AMD EPYC host, 32000 × 4096 `f32` and 4096 random ids
/// (docs/benchmarks/row-copies-and-streams.md, "Streaming the single-token rows"): one
/// thread 0.95× the plain loop instead of 1.07–1.12×, two threads 0.82–0.83× instead of
/// 0.89–0.93×. Smaller gradients keep normal stores, so that the optimizer step that
/// follows finds them in cache.
const STREAM_ROWS_MIN_BYTES: usize = 64 << 20;

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
    stream_rows: bool,
    sums: &'w mut Vec<S>,
    /// One per group of the task, reserved by [`Scatter::plan`].
    marks: &'w mut Vec<Mark>,
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
    fn zero_gaps(&mut self, groups: &RowGroups, streamer: &mut Streamer) {
        let n_embd = self.n_embd;
        let mut next = self.first_row;
        let mut rest = &mut self.rows[..];
        for g in self.groups.clone() {
            let id = groups.groups[g].0 as usize;
            let (gap, tail) = rest.split_at_mut((id - next) * n_embd);
            streamer.zero(gap);
            rest = &mut tail[n_embd..];
            next = id + 1;
        }
        streamer.zero(rest);
    }

    /// The position-order pass: single tokens (and, in [`Mode::Direct`], every token)
    /// written straight into their rows; a repeated id's rows summed in `S`,
    /// [`FLUSH`] tokens at a time, and written at its last token.
    /// Inlined into each instruction-set build ([`dispatch`]).
    #[inline(always)]
    fn add_rows<G: Element>(
        &mut self,
        groups: &RowGroups,
        grad_output: &[G],
        mode: Mode,
        streamer: &mut Streamer,
    ) {
        let n_embd = self.n_embd;
        let add = self.how.accumulate == Accumulate::Add;
        let scale = self.how.scale_grad_by_freq;
        // Within the capacity `plan` reserved: no allocation here.
        self.marks.clear();
        self.marks.resize(self.groups.len(), (0, NO_GROUP));
        self.sums.clear();
        for (p, &g) in groups.group_of.iter().enumerate() {
            let g = g as usize;
            if !self.groups.contains(&g) {
                continue;
            }
            let k = g - self.groups.start;
            self.marks[k].0 += 1;
            let (seen, count) = (self.marks[k].0, groups.groups[g].1);
            let at = self.at(groups, g);
            let row = &mut self.rows[at..at + n_embd];
            if count == 1 || mode == Mode::Direct {
                let x = &grad_output[p * n_embd..(p + 1) * n_embd];
                // A single token of a replaced gradient: `0 + x`, as `write_straight`.
                if count == 1
                    && self.stream_rows
                    && let Some(x) = as_same_type::<G, T>(x)
                {
                    streamer.add_to_zero(row, x);
                    continue;
                }
                write_straight(row, x, seen == 1 && !add, mode, scale.then_some(count));
                continue;
            }
            // Nothing until the FLUSH-th token since the last flush, or the last token:
            // then the pending tokens' rows are read and summed.
            let last = seen == count;
            if !last && seen % FLUSH != 0 {
                continue;
            }
            let pending = (seen - 1) % FLUSH + 1;
            let from_sum = seen > pending;
            if !from_sum && !last {
                // Within the capacity reserved by the plan.
                self.marks[k].1 =
                    u32::try_from(self.sums.len() / n_embd).expect("a slot per group");
                self.sums.resize(self.sums.len() + n_embd, S::ZERO);
            }
            let sum = match self.marks[k].1 {
                NO_GROUP => &mut [][..],
                slot => &mut self.sums[slot as usize * n_embd..(slot as usize + 1) * n_embd],
            };
            let term = if mode == Mode::Plain && scale {
                S::ONE.div_count(count)
            } else {
                S::ONE
            };
            let how = Flush {
                from_sum,
                to_row: last,
                mode,
                add,
                count: scale.then_some(count),
                term,
            };
            let positions = &groups.positions(g)[seen - pending..seen];
            flush(row, sum, grad_output, positions, how);
        }
    }
}

/// A repeated id's rows are summed this many tokens at a time: a token's row is not read
/// when the pass reaches it but at the flush, together with the id's other pending rows
/// (eight streams through memory, each row still read once), and the id's sum row is read
/// and written once per flush, not once per token — that traffic is what made the exact
/// `f64` sum slower than the plain loop. Measured on 100 distinct ids with the sums in
/// registers (docs/benchmarks/next-to-pytorch.md, "Sums in registers"): 4 tokens
/// 1.07–1.15×, 8 tokens 0.98–1.01×, 16 tokens 1.05–1.11× the plain loop (more streams than
/// the prefetchers follow). An id with at most `FLUSH` tokens needs no stored sum at all.
const FLUSH: usize = 8;
#[cfg(test)]
mod tests;
