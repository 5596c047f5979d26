//! The fused vocab-parallel loss: the embedding crate's chunked
//! `linear_cross_entropy_sharded` on each rank's rows of the head, its per-token
//! statistics combined over a [`Communicator`]. No rank ever holds more than one chunk
//! of its own logits.
//!
//! # Order of the sums (the same bits on every rank and with every backend)
//!
//! Each rank's per-token statistics (maximum, `Σ exp(z − max)`, `Σ z`, target logit,
//! argmax) are gathered (`all_gather_f64`) and combined **in rank order**: the global
//! maximum `M`, then `S = Σ_r S_r · exp(max_r − M)`. The hidden states' gradient is
//! each rank's part summed with `all_reduce_sum_f64` in `f64`, rounded once.

use tokenloom_embedding::EmbeddingError;
use tokenloom_embedding::functional::{
    CrossEntropyOptions, LinearCrossEntropy, LinearCrossEntropyGrads, LogitScale, ShardStats,
    VocabCombine, linear_cross_entropy_sharded,
};
use tokenloom_tensor::{Element, TensorLike, TokenId, try_filled};

use crate::agree::{Fingerprint, agree};
use crate::comm::Communicator;
use crate::error::DistributedError;
use crate::shard::VocabShard;

/// Values per token in the gathered statistics.
const WORDS: usize = 5;

struct CommCombine<'c, C: ?Sized>(&'c C);

impl<C: Communicator + ?Sized> VocabCombine for CommCombine<'_, C> {
    type Error = DistributedError;

    fn combine(&self, stats: &mut [ShardStats]) -> Result<(), DistributedError> {
        let n = stats.len();
        let mut local = try_filled(n * WORDS, 0.0f64, "vocab-parallel loss statistics")?;
        for (words, s) in local.chunks_exact_mut(WORDS).zip(stats.iter()) {
            // Columns are below 2^53: exact in f64.
            words.copy_from_slice(&[s.max, s.sum_exp, s.sum_z, s.target_logit, s.argmax as f64]);
        }
        let size = self.0.size();
        let mut all = try_filled(
            (n * WORDS).saturating_mul(size),
            0.0f64,
            "vocab-parallel loss statistics",
        )?;
        self.0.all_gather_f64(&local, &mut all)?;
        for (i, s) in stats.iter_mut().enumerate() {
            let word = |rank: usize, k: usize| all[rank * n * WORDS + i * WORDS + k];
            let (mut max, mut argmax) = (f64::NEG_INFINITY, 0.0);
            for rank in 0..size {
                // The first rank holding the largest logit has its first column; a NaN
                // maximum wins, so the loss reports it.
                let m = word(rank, 0);
                if m > max || (m.is_nan() && !max.is_nan()) {
                    max = m;
                    argmax = word(rank, 4);
                }
            }
            let (mut sum_exp, mut sum_z, mut target) = (0.0, 0.0, 0.0);
            for rank in 0..size {
                let m = word(rank, 0);
                if m != f64::NEG_INFINITY {
                    sum_exp += word(rank, 1) * (m - max).exp();
                }
                sum_z += word(rank, 2);
                target += word(rank, 3);
            }
            *s = ShardStats {
                max,
                sum_exp,
                sum_z,
                target_logit: target,
                argmax: argmax as u64,
            };
        }
        Ok(())
    }

    fn sum(&self, values: &mut [f64]) -> Result<(), DistributedError> {
        Ok(self.0.all_reduce_sum_f64(values)?)
    }
}

/// The fused output projection and cross-entropy over a vocabulary split by rows: this
/// rank's `head_shard` holds `shard`'s rows of the `(vocab_size, n_embd)` head (the
/// tied embedding's shard, or the head's own); `hidden`, `targets` (global ids),
/// `token_weights` and `options` are the same on every rank. Every rank gets the whole
/// loss and, with `grads`, the whole hidden states' gradient and its own rows of the
/// head's gradient. Equal to the single-process
/// [`linear_cross_entropy`](tokenloom_embedding::functional::linear_cross_entropy) up to
/// `f64` rounding of the rank-order sums.
///
/// # Errors
///
/// The loss's errors ([`DistributedError::Embedding`]), [`DistributedError::NotReplicated`]
/// when the targets, weights or shapes differ across ranks, a head shard of the wrong
/// shape ([`DistributedError::ShardShape`]), and [`DistributedError::Comm`].
#[allow(clippy::too_many_arguments)]
pub fn linear_cross_entropy<'h, 'w, 't, C, T, I>(
    comm: &C,
    shard: VocabShard,
    hidden: impl TensorLike<'h, T>,
    head_shard: impl TensorLike<'w, T>,
    targets: impl TensorLike<'t, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, DistributedError>
where
    C: Communicator + ?Sized,
    T: Element,
    I: TokenId,
{
    let checked = (|| {
        let hidden = hidden.try_view()?;
        let head = head_shard.try_view()?;
        let targets = targets.try_view()?;
        let n_embd = hidden.dims().last().copied().unwrap_or(0);
        if head.dims() != [shard.len(), n_embd] {
            return Err(DistributedError::ShardShape {
                what: "head shard (shard rows, n_embd)",
                rows: shard.len(),
                n_embd,
                start: shard.start(),
                end: shard.end(),
                got: head.dims().to_vec(),
            });
        }
        Ok((hidden, head, targets))
    })();
    let fingerprints = checked.as_ref().map_or((0, 0), |(hidden, _, targets)| {
        let mut weights = Fingerprint::new().dims(hidden.dims());
        if let Some(w) = token_weights {
            weights = weights.values(w);
        }
        (
            Fingerprint::new()
                .dims(targets.dims())
                .ids(targets.as_slice())
                .finish(),
            weights.finish(),
        )
    });
    let mut settings = Fingerprint::new();
    for word in [
        options.ignore_index.map_or(u64::MAX, |i| i as u64),
        options.label_smoothing.to_bits(),
        options.z_loss.to_bits(),
        match options.logit_scale {
            LogitScale::Multiply(s) => s.to_bits(),
            LogitScale::Divide(s) => !s.to_bits(),
            _ => 0,
        },
        options.softcap.map_or(0, f64::to_bits),
        options.reduction as u64,
        options.chunk_tokens.map_or(0, |c| c as u64),
        grads.as_ref().map_or(0, |g| g.grad_scale.to_bits()),
    ] {
        settings.word(word);
    }
    let (hidden, head, targets) = agree(
        comm,
        "linear_cross_entropy",
        &[("options", settings.finish())],
        &[
            ("targets", fingerprints.0),
            ("hidden shape and token weights", fingerprints.1),
        ],
        checked,
    )?;
    let ignore_index = options.ignore_index.unwrap_or(i64::MIN);
    linear_cross_entropy_sharded(
        &CommCombine(comm),
        hidden,
        head,
        shard.start(),
        shard.vocab_size(),
        targets,
        token_weights,
        options,
        grads,
    )
    .map_err(|e| match e {
        // The distributed crate's own words for the targets' errors.
        DistributedError::Embedding(EmbeddingError::TargetOutOfRange {
            target,
            row,
            vocab_size,
        }) => DistributedError::TargetOutOfRange {
            target,
            row,
            vocab_size,
        },
        DistributedError::Embedding(EmbeddingError::NoTargets { .. }) => {
            DistributedError::NoTargets { ignore_index }
        }
        other => other,
    })
}
