//! Vocab-parallel cross-entropy: the mean loss over the full vocabulary from logits that
//! are split by columns over the ranks, without gathering them (Megatron-LM's
//! `vocab_parallel_cross_entropy`).
//!
//! # Reduction order (the same bits on every rank and with every backend)
//!
//! 1. Each rank takes the maximum of its logits per row, in `f64`; one all-reduce (max,
//!    exact in any order) gives the global maximum `m`.
//! 2. Each rank sums `exp(logit − m)` over its columns in column order, in `f64`, and
//!    takes the target's logit if it owns the target (else `0`); one all-gather gives
//!    every rank all partials, which each rank adds **in rank order**: `S` and the
//!    target logit `t` (exactly one rank contributes it).
//! 3. Row loss `ln S + m − t`; the loss is the sum over the rows that are not
//!    `ignore_index`, in row order, divided by their count — in `f64`.
//!
//! The single-process sum over the whole vocabulary runs in column order; the rank-order
//! sum of per-shard sums differs from it only by `f64` rounding (relative `~1e-16`).

use tokenloom_tensor::{Element, TensorLike, TensorLikeMut, TensorView, TokenId};

use crate::agree::{Fingerprint, agree};
use crate::comm::Communicator;
use crate::error::DistributedError;
use crate::shard::VocabShard;

/// PyTorch's default `ignore_index` of `cross_entropy`.
pub const DEFAULT_IGNORE_INDEX: i64 = -100;

/// The result of [`cross_entropy`]: the mean loss, and what its backward needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CrossEntropy {
    /// The mean loss over the rows whose target is not `ignore_index`.
    pub loss: f64,
    /// How many rows count.
    pub n_targets: usize,
    /// The global maximum logit of each row.
    max: Vec<f64>,
    /// `Σ exp(logit − max)` over the whole vocabulary, per row.
    sum_exp: Vec<f64>,
    /// Per row: the target's column in this shard, if this rank owns it; `None` also for
    /// ignored rows (flagged in `counts`).
    local_target: Vec<Option<usize>>,
    /// Per row: whether it counts (target is not `ignore_index`).
    counts: Vec<bool>,
}

/// The mean cross-entropy of logits split by columns: `local_logits` is this rank's
/// `(rows, shard.len())` block of the `(rows, vocab_size)` logits; `targets` (the same on
/// every rank) holds one global id per row, or `ignore_index`.
///
/// Non-finite logits make the loss NaN (never an error), as in PyTorch.
///
/// # Errors
///
/// [`DistributedError::TargetCount`], [`DistributedError::TargetOutOfRange`] (naming the
/// row), [`DistributedError::NoTargets`] when every row is ignored,
/// [`DistributedError::ShardShape`] for logits of the wrong width,
/// [`DistributedError::NotReplicated`] for targets that differ across ranks, and
/// [`DistributedError::Comm`].
pub fn cross_entropy<'l, 't, C, T, I>(
    comm: &C,
    shard: VocabShard,
    local_logits: impl TensorLike<'l, T>,
    targets: impl TensorLike<'t, I>,
    ignore_index: i64,
) -> Result<CrossEntropy, DistributedError>
where
    C: Communicator + ?Sized,
    T: Element,
    I: TokenId,
{
    let checked = (|| {
        let logits = local_logits.try_view()?;
        let targets = targets.try_view()?;
        check_targets(shard, logits, targets.as_slice(), ignore_index)?;
        Ok((logits, targets))
    })();
    let fingerprint = checked.as_ref().map_or(0, |(_, targets)| {
        Fingerprint::new()
            .dims(targets.dims())
            .ids(targets.as_slice())
            .finish()
    });
    let (logits, targets) = agree(
        comm,
        "cross_entropy",
        &[],
        &[("targets", fingerprint)],
        checked,
    )?;
    let (rows, cols) = (targets.as_slice().len(), shard.len());
    let logits = logits.as_slice();
    let targets = targets.as_slice();

    let mut max: Vec<f64> = logits
        .chunks_exact(cols)
        .map(|row| {
            row.iter()
                .map(|x| x.as_f64())
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    comm.all_reduce_max_f64(&mut max)?;

    let mut local_target = Vec::with_capacity(rows);
    let mut counts = Vec::with_capacity(rows);
    // [partial sums of exp … | target logits …] of this rank.
    let mut partial = vec![0.0f64; 2 * rows];
    for (r, row) in logits.chunks_exact(cols).enumerate() {
        let m = max[r];
        partial[r] = row.iter().map(|x| (x.as_f64() - m).exp()).sum::<f64>();
        let target = targets[r];
        let counted = target.to_i64() != ignore_index;
        let column = counted
            .then(|| shard.local_row(target.checked_index()))
            .flatten();
        if let Some(c) = column {
            partial[rows + r] = row[c].as_f64();
        }
        local_target.push(column);
        counts.push(counted);
    }
    let mut gathered = vec![0.0f64; 2 * rows * comm.size()];
    comm.all_gather_f64(&partial, &mut gathered)?;
    let mut sum_exp = vec![0.0f64; rows];
    let mut target_logit = vec![0.0f64; rows];
    for per_rank in gathered.chunks_exact(2 * rows) {
        for r in 0..rows {
            sum_exp[r] += per_rank[r];
            target_logit[r] += per_rank[rows + r];
        }
    }
    let n_targets = counts.iter().filter(|&&c| c).count();
    let total: f64 = (0..rows)
        .filter(|&r| counts[r])
        .map(|r| sum_exp[r].ln() + max[r] - target_logit[r])
        .sum();
    Ok(CrossEntropy {
        loss: total / n_targets as f64,
        n_targets,
        max,
        sum_exp,
        local_target,
        counts,
    })
}

fn check_targets<T: Element, I: TokenId>(
    shard: VocabShard,
    logits: TensorView<'_, T>,
    targets: &[I],
    ignore_index: i64,
) -> Result<(), DistributedError> {
    let &[rows, cols] = logits.dims() else {
        return Err(shard_shape(shard, logits.dims()));
    };
    if cols != shard.len() {
        return Err(shard_shape(shard, logits.dims()));
    }
    if targets.len() != rows {
        return Err(DistributedError::TargetCount {
            targets: targets.len(),
            rows,
        });
    }
    for (row, &t) in targets.iter().enumerate() {
        if t.to_i64() != ignore_index && t.index_below(shard.vocab_size()).is_none() {
            return Err(DistributedError::TargetOutOfRange {
                target: t.to_i64(),
                row,
                vocab_size: shard.vocab_size(),
            });
        }
    }
    if !targets.iter().any(|t| t.to_i64() != ignore_index) {
        return Err(DistributedError::NoTargets { ignore_index });
    }
    Ok(())
}

fn shard_shape(shard: VocabShard, got: &[usize]) -> DistributedError {
    DistributedError::ShardShape {
        what: "local logits (rows, shard columns)",
        rows: got.first().copied().unwrap_or(0),
        n_embd: shard.len(),
        start: shard.start(),
        end: shard.end(),
        got: got.to_vec(),
    }
}

impl CrossEntropy {
    /// The gradient of `grad_loss · loss` with respect to this rank's logits, into a
    /// `(rows, shard.len())` buffer: `grad_loss / n_targets · (softmax − one_hot)` on the
    /// counted rows, zero on ignored rows. Computed in `f64`, rounded once to `T`. No
    /// communication.
    ///
    /// # Errors
    ///
    /// [`DistributedError::ShardShape`] when `local_logits` or `grad_logits` are not the
    /// `(rows, shard.len())` block this loss was computed from.
    pub fn backward_into<'l, 'g, T: Element>(
        &self,
        shard: VocabShard,
        local_logits: impl TensorLike<'l, T>,
        grad_loss: f64,
        grad_logits: impl TensorLikeMut<'g, T>,
    ) -> Result<(), DistributedError> {
        let logits = local_logits.try_view()?;
        let mut grad = grad_logits.try_view_mut()?;
        let rows = self.max.len();
        for dims in [logits.dims(), grad.dims()] {
            if dims != [rows, shard.len()] {
                return Err(shard_shape(shard, dims));
            }
        }
        let scale = grad_loss / self.n_targets as f64;
        let cols = shard.len();
        for (r, (row, out)) in logits
            .as_slice()
            .chunks_exact(cols)
            .zip(grad.as_mut_slice().chunks_exact_mut(cols))
            .enumerate()
        {
            if !self.counts[r] {
                out.fill(T::zero());
                continue;
            }
            let (m, s) = (self.max[r], self.sum_exp[r]);
            for (c, (x, g)) in row.iter().zip(out.iter_mut()).enumerate() {
                let p = (x.as_f64() - m).exp() / s;
                let hot = if self.local_target[r] == Some(c) {
                    1.0
                } else {
                    0.0
                };
                *g = T::from_f64_lossy(scale * (p - hot));
            }
        }
        Ok(())
    }
}
