//! The scatter-add at the heart of both backward passes: the rows of `grad_output` added
//! into the gradient rows of their ids.
//!
//! It walks the tokens in position order, as the plain `grad[id] += g` loop does: the
//! incoming rows are read front to back in one stream (reading them grouped by id, in id
//! order, jumps through memory and measured twice as slow). A row touched by one token is
//! written straight from its gradient row; the rows of repeated ids are summed in
//! accumulators of [`GradSum`]'s precision, one per repeated id, in position order, and
//! rounded once at the end. Work is split by destination row: each task owns a
//! contiguous range of rows (zeroing the untouched ones with streaming stores when the
//! gradient is replaced) and adds only the tokens whose ids fall in it. Every row is
//! written by one task with the same operations in the same order, so the bits depend on
//! neither the thread count nor the task split.

use tokenloom_tensor::{
    Accumulate, DType, Element, TokenId, for_each_chunk_mut_by_work, stream, threads_for,
};

use crate::error::EmbeddingError;
use crate::options::GradSum;

/// The token positions of a batch grouped by id: ids increasing, the padding id left out.
pub(crate) struct RowGroups {
    /// `(id, number of tokens)` per distinct id, ids increasing.
    groups: Vec<(u32, usize)>,
    /// The group of each token position (`NO_GROUP` for the padding id).
    group_of: Vec<u32>,
}

/// [`RowGroups::group_of`] of a padding token.
const NO_GROUP: u32 = u32::MAX;

impl RowGroups {
    /// Groups checked ids (every id is a row index below a vocabulary that fits `u32`).
    pub(crate) fn new<I: TokenId>(ids: &[I], padding_idx: Option<usize>) -> Self {
        let row = |i: usize| ids[i].checked_index();
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by_key(|&i| row(i));
        let mut groups = Vec::new();
        let mut group_of = vec![NO_GROUP; ids.len()];
        for run in order.chunk_by(|&a, &b| row(a) == row(b)) {
            let id = row(run[0]);
            if padding_idx != Some(id) {
                let g = u32::try_from(groups.len()).expect("at most one group per token");
                run.iter().for_each(|&i| group_of[i] = g);
                let id = u32::try_from(id).expect("ids are checked to fit u32");
                groups.push((id, run.len()));
            }
        }
        Self { groups, group_of }
    }

    /// The distinct ids, increasing.
    pub(crate) fn ids(&self) -> impl ExactSizeIterator<Item = u32> + '_ {
        self.groups.iter().map(|&(id, _)| id)
    }

    /// The number of distinct (non-padding) ids.
    pub(crate) fn len(&self) -> usize {
        self.groups.len()
    }
}

/// How the touched rows are summed and written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowSum {
    pub(crate) scale_grad_by_freq: bool,
    pub(crate) accumulate: Accumulate,
}

/// Where group `g`'s gradient row goes.
pub(crate) enum Dest<'w, T> {
    /// A `(vocab_size, n_embd)` gradient: row `id`. Replacing zeroes the untouched rows.
    Dense(&'w mut [T]),
    /// One row per group, in group order (a sparse gradient's values).
    Compact(&'w mut [T]),
}

/// The accumulators of the repeated ids (`n_embd` each, in group order), in the precision
/// [`GradSum`] asks for: allocated before anything is written, so that a failed
/// allocation leaves the destination untouched.
pub(crate) enum Accumulators {
    F64(Vec<f64>),
    F32(Vec<f32>),
}

impl Accumulators {
    /// Space for every repeated id of `groups`.
    ///
    /// # Errors
    ///
    /// [`tokenloom_tensor::TensorError::AllocationFailed`] when it cannot be allocated.
    pub(crate) fn new<T: Element>(
        groups: &RowGroups,
        n_embd: usize,
        grad_sum: GradSum,
    ) -> Result<Self, EmbeddingError> {
        let len = groups.groups.iter().filter(|g| g.1 > 1).count() * n_embd;
        fn zeroed<S: SumFloat>(len: usize) -> Result<Vec<S>, EmbeddingError> {
            let mut v = Vec::new();
            v.try_reserve_exact(len).map_err(|_| {
                tokenloom_tensor::TensorError::AllocationFailed {
                    op: "embedding backward (sums of repeated ids)",
                    bytes: len.saturating_mul(std::mem::size_of::<S>()),
                }
            })?;
            v.resize(len, S::ZERO);
            Ok(v)
        }
        Ok(if grad_sum == GradSum::F32 && T::DTYPE != DType::F64 {
            Accumulators::F32(zeroed(len)?)
        } else {
            Accumulators::F64(zeroed(len)?)
        })
    }
}

/// Writes (or adds) every group's gradient row into `dest`: the rows of `grad_output`
/// (one per token position, `n_embd` wide) summed as `how` says, the repeated ids in
/// `acc` (from [`Accumulators::new`] for these groups).
pub(crate) fn scatter<T: Element>(
    groups: &RowGroups,
    grad_output: &[T],
    n_embd: usize,
    dest: Dest<'_, T>,
    acc: &mut Accumulators,
    how: RowSum,
) {
    match acc {
        Accumulators::F64(acc) => scatter_in(groups, grad_output, n_embd, dest, acc, how),
        Accumulators::F32(acc) => scatter_in(groups, grad_output, n_embd, dest, acc, how),
    }
}

/// [`scatter`] with `S` accumulators.
fn scatter_in<T: Element, S: SumFloat>(
    groups: &RowGroups,
    grad_output: &[T],
    n_embd: usize,
    dest: Dest<'_, T>,
    acc: &mut [S],
    how: RowSum,
) {
    let (dense, rows) = match dest {
        Dest::Dense(rows) => (true, rows),
        Dest::Compact(rows) => (false, rows),
    };
    let zero_untouched = dense && how.accumulate == Accumulate::Replace;
    let work_bytes = std::mem::size_of_val(grad_output)
        + if zero_untouched {
            std::mem::size_of_val(rows)
        } else {
            0
        };
    // One task per thread, as the plain loop: each reads the incoming rows of its ids in
    // position order; more tasks than threads would make a thread's reads jump.
    let n_tasks = threads_for(work_bytes);
    let mut tasks = split(groups, rows, acc, n_embd, dense, n_tasks);
    for_each_chunk_mut_by_work(&mut tasks, 1, work_bytes, |_, tasks| {
        for task in tasks {
            if zero_untouched {
                task.zero_gaps(groups, n_embd);
            }
            task.add_rows(groups, grad_output, n_embd, how);
        }
    });
}

/// A contiguous part of the destination: rows `first_row ..` of a dense gradient (or the
/// rows of groups `first_row ..` of a compact one), the groups that land in it, and the
/// accumulators of its repeated ids.
struct Task<'w, T, S> {
    rows: &'w mut [T],
    first_row: usize,
    groups: std::ops::Range<usize>,
    dense: bool,
    acc: &'w mut [S],
}

/// Splits the destination into up to `n_tasks` parts of about equal rows.
fn split<'w, T, S>(
    groups: &RowGroups,
    rows: &'w mut [T],
    acc: &'w mut [S],
    n_embd: usize,
    dense: bool,
    n_tasks: usize,
) -> Vec<Task<'w, T, S>> {
    let n_rows = rows.len() / n_embd.max(1);
    let per_task = n_rows.div_ceil(n_tasks).max(1);
    let mut tasks = Vec::with_capacity(n_tasks);
    let (mut rest, mut acc_rest) = (rows, acc);
    let (mut first_row, mut first_group) = (0, 0);
    while first_row < n_rows {
        let end_row = (first_row + per_task).min(n_rows);
        let (mine, tail) = rest.split_at_mut((end_row - first_row) * n_embd);
        let end_group = if dense {
            first_group
                + groups.groups[first_group..].partition_point(|&(id, _)| (id as usize) < end_row)
        } else {
            end_row
        };
        let repeated = groups.groups[first_group..end_group]
            .iter()
            .filter(|g| g.1 > 1)
            .count();
        let (acc, acc_tail) = acc_rest.split_at_mut(repeated * n_embd);
        tasks.push(Task {
            rows: mine,
            first_row,
            groups: first_group..end_group,
            dense,
            acc,
        });
        (rest, acc_rest) = (tail, acc_tail);
        (first_row, first_group) = (end_row, end_group);
    }
    tasks
}

impl<T: Element, S: SumFloat> Task<'_, T, S> {
    /// The offset of group `g`'s row in `self.rows`.
    fn offset(&self, groups: &RowGroups, g: usize, n_embd: usize) -> usize {
        let row = if self.dense {
            groups.groups[g].0 as usize
        } else {
            g
        };
        (row - self.first_row) * n_embd
    }

    /// Zeroes the rows of this task no group writes.
    fn zero_gaps(&mut self, groups: &RowGroups, n_embd: usize) {
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

    /// The position-order pass: single tokens written straight, repeated ids summed in
    /// the `S` accumulators and written at the end.
    fn add_rows(&mut self, groups: &RowGroups, grad_output: &[T], n_embd: usize, how: RowSum) {
        let add = how.accumulate == Accumulate::Add;
        // `S = f32` is the plain loop's arithmetic: start from the buffer when adding,
        // scale each term. `S = f64` sums from zero and scales and adds once at the end.
        let plain = S::DTYPE == DType::F32;
        // The accumulator slot of each group of this task (`NO_GROUP`: a single token).
        let mut n_slots = 0;
        let slots: Vec<u32> = groups.groups[self.groups.clone()]
            .iter()
            .map(|&(_, count)| {
                if count > 1 {
                    n_slots += 1;
                    n_slots - 1
                } else {
                    NO_GROUP
                }
            })
            .collect();
        let repeated = || {
            self.groups
                .clone()
                .zip(&slots)
                .filter(|&(_, &slot)| slot != NO_GROUP)
                .map(|(g, &slot)| (g, slot as usize * n_embd))
        };
        if plain && add {
            for (g, at) in repeated() {
                let offset = self.offset(groups, g, n_embd);
                let row = &self.rows[offset..offset + n_embd];
                let sum = &mut self.acc[at..at + n_embd];
                sum.iter_mut().zip(row).for_each(|(s, &o)| *s = S::of(o));
            }
        } else {
            self.acc.fill(S::ZERO);
        }
        for (p, &g) in groups.group_of.iter().enumerate() {
            let g = g as usize;
            if !self.groups.contains(&g) {
                continue;
            }
            let x = &grad_output[p * n_embd..(p + 1) * n_embd];
            let slot = slots[g - self.groups.start];
            if slot == NO_GROUP {
                // One token: `0 + x` (−0 becomes +0, as in a sum), added in `T` — or, as
                // the plain loop, `o + x`.
                let offset = self.offset(groups, g, n_embd);
                let row = &mut self.rows[offset..offset + n_embd];
                if add && plain {
                    row.iter_mut().zip(x).for_each(|(o, &x)| *o = *o + x);
                } else if add {
                    row.iter_mut()
                        .zip(x)
                        .for_each(|(o, &x)| *o = *o + (T::zero() + x));
                } else {
                    row.iter_mut().zip(x).for_each(|(o, &x)| *o = T::zero() + x);
                }
                continue;
            }
            let at = slot as usize * n_embd;
            let sum = &mut self.acc[at..at + n_embd];
            if plain && how.scale_grad_by_freq {
                let term_scale = S::ONE.div_count(groups.groups[g].1);
                sum.iter_mut()
                    .zip(x)
                    .for_each(|(s, &x)| *s = *s + S::of(x) * term_scale);
            } else {
                sum.iter_mut().zip(x).for_each(|(s, &x)| *s = *s + S::of(x));
            }
        }
        for (g, at) in repeated() {
            let count = groups.groups[g].1;
            let offset = self.offset(groups, g, n_embd);
            let row = &mut self.rows[offset..offset + n_embd];
            let sum = &self.acc[at..at + n_embd];
            for (o, &s) in row.iter_mut().zip(sum) {
                *o = if plain {
                    s.to()
                } else {
                    let s = if how.scale_grad_by_freq {
                        s.div_count(count)
                    } else {
                        s
                    };
                    if add { (S::of(*o) + s).to() } else { s.to() }
                };
            }
        }
    }
}

/// The float a repeated id's rows are summed in: `f64` ([`GradSum::F64`]) or `f32`
/// ([`GradSum::F32`]).
trait SumFloat:
    Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    const DTYPE: DType;
    const ZERO: Self;
    const ONE: Self;
    fn of<T: Element>(x: T) -> Self;
    fn to<T: Element>(self) -> T;
    /// `self / count` (counts are far below 2^24, exact in both).
    fn div_count(self, count: usize) -> Self;
}

impl SumFloat for f64 {
    const DTYPE: DType = DType::F64;
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
    const DTYPE: DType = DType::F32;
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
mod tests {
    use tokenloom_tensor::{bf16, f16};

    use super::*;

    /// Bit patterns of `T` from a fixed LCG, plus the signed zeros and extremes.
    fn patterns<T: Element>(len: usize) -> Vec<T> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut values: Vec<T> = (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                T::from_bits64(state >> 11)
            })
            .collect();
        values.extend([
            T::zero(),
            -T::zero(),
            T::max_value(),
            T::min_positive_value(),
        ]);
        values
    }

    fn same<T: Element>(a: T, b: T) -> bool {
        a.to_bits64() == b.to_bits64() || (a.is_nan() && b.is_nan())
    }

    /// A one-token group's shortcut gives the bits of the `f64` sum rounded once, for
    /// every dtype, replacing or adding, signed zeros included.
    fn one_token_shortcut_matches_the_f64_sum<T: Element>() {
        let n_embd = 4096 + 4;
        let row = patterns::<T>(4096);
        let old = {
            let mut old = patterns::<T>(4096 + 1);
            old.remove(0); // shifted against `row`
            old.reverse();
            old
        };
        let groups = RowGroups::new(&[7u32], None);
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            let mut dst = old.clone();
            let how = RowSum {
                scale_grad_by_freq: false,
                accumulate,
            };
            let mut acc = Accumulators::new::<T>(&groups, n_embd, GradSum::F64).unwrap();
            scatter(
                &groups,
                &row,
                n_embd,
                Dest::Compact(&mut dst),
                &mut acc,
                how,
            );
            for j in 0..n_embd {
                let sum = 0.0 + row[j].as_f64();
                let expected = match accumulate {
                    Accumulate::Replace => T::from_f64_lossy(sum),
                    Accumulate::Add => T::from_f64_lossy(old[j].as_f64() + sum),
                };
                assert!(
                    same(dst[j], expected),
                    "{} {accumulate:?}: {:?} + {:?} gave {:?}, the f64 sum {:?}",
                    T::DTYPE,
                    old[j],
                    row[j],
                    dst[j],
                    expected
                );
            }
        }
    }

    #[test]
    fn one_token_shortcut_matches_the_f64_sum_in_every_dtype() {
        one_token_shortcut_matches_the_f64_sum::<f32>();
        one_token_shortcut_matches_the_f64_sum::<f64>();
        one_token_shortcut_matches_the_f64_sum::<f16>();
        one_token_shortcut_matches_the_f64_sum::<bf16>();
    }
}
