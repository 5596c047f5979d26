//! The loss on one shard of a vocabulary split by rows over ranks (Megatron-LM's vocab
//! parallelism): each rank holds `(shard_rows, n_embd)` of the head, computes its
//! tokens' statistics over its columns chunk by chunk, a [`VocabCombine`] makes them the
//! whole vocabulary's, and a second pass over the chunks gives the gradients.

use tokenloom_tensor::{
    Accumulate, Element, Operand, TensorLike, TensorView, TensorViewMut, TokenId,
    for_each_chunk_mut, matmul_into, try_filled,
};

use super::plan::{Plan, add_head_grad, check_grads};
use super::row::{RowForward, ShardStats};
use super::{CrossEntropyOptions, LinearCrossEntropy, LinearCrossEntropyGrads};
use crate::error::EmbeddingError;
use crate::lookup::table_dims;

/// How the shards of a vocabulary-parallel loss combine their results (a communicator).
pub trait VocabCombine {
    /// The error of a failed combination (the communicator's), which also carries the
    /// loss's own errors.
    type Error: From<EmbeddingError>;

    /// Replaces each token's statistics over this shard's columns by those over the
    /// whole vocabulary: the same values on every shard.
    ///
    /// # Errors
    ///
    /// The communicator's.
    fn combine(&self, stats: &mut [ShardStats]) -> Result<(), Self::Error>;

    /// Sums `values` element-wise over the shards, in place (the hidden states'
    /// gradient, of which each shard computed its part).
    ///
    /// # Errors
    ///
    /// The communicator's.
    fn sum(&self, values: &mut [f64]) -> Result<(), Self::Error>;
}

/// [`linear_cross_entropy`](super::linear_cross_entropy) on one shard of the vocabulary:
/// `head_shard` holds rows `first_row..first_row + shard_rows` of a `(vocab_size,
/// n_embd)` head, `targets` are global ids. Every shard calls it with the same hidden
/// states, targets and options; each gets the whole loss, the whole hidden states'
/// gradient (summed by `combine`) and its own rows of the head's gradient.
///
/// The combination of the statistics is the caller's (`combine`); the distributed
/// crate's `linear_cross_entropy` is this function over a communicator.
///
/// # Errors
///
/// As [`linear_cross_entropy`](super::linear_cross_entropy), a shard outside the
/// vocabulary as [`EmbeddingError::WeightShape`], and the combiner's.
#[allow(clippy::too_many_arguments)]
pub fn linear_cross_entropy_sharded<'h, 'w, 't, T, I, C>(
    combine: &C,
    hidden: impl TensorLike<'h, T>,
    head_shard: impl TensorLike<'w, T>,
    first_row: usize,
    vocab_size: usize,
    targets: impl TensorLike<'t, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, C::Error>
where
    T: Element,
    I: TokenId,
    C: VocabCombine + ?Sized,
{
    let hidden = hidden.try_view().map_err(EmbeddingError::from)?;
    let head = head_shard.try_view().map_err(EmbeddingError::from)?;
    let (shard_rows, n_embd) = table_dims(head)?;
    if first_row
        .checked_add(shard_rows)
        .is_none_or(|end| end > vocab_size)
    {
        return Err(EmbeddingError::WeightShape {
            shape: head.shape(),
        }
        .into());
    }
    let targets = targets.try_view().map_err(EmbeddingError::from)?;
    let plan = Plan::new(
        hidden,
        shard_rows,
        n_embd,
        vocab_size,
        targets,
        token_weights,
        options,
    )?;
    let mut grads = grads;
    if let Some(g) = &grads {
        check_grads(g, &hidden.shape(), &head.shape())?;
    }
    let (n_tokens, chunk) = (plan.n_tokens, plan.chunk_tokens);
    let local = |row: usize| {
        plan.columns[row]
            .and_then(|c| c.checked_sub(first_row))
            .filter(|&c| c < shard_rows)
    };
    let mut logits = try_filled(
        chunk.saturating_mul(shard_rows),
        T::zero(),
        "linear_cross_entropy logits chunk",
    )
    .map_err(EmbeddingError::from)?;
    let h = hidden.as_slice();
    let chunk_view = |start: usize, rows: usize| {
        TensorView::new(&h[start * n_embd..(start + rows) * n_embd], &[rows, n_embd])
    };

    // Pass 1: each token's statistics over this shard's columns, then the vocabulary's.
    let mut stats = try_filled(
        n_tokens,
        ShardStats::default(),
        "linear_cross_entropy stats",
    )
    .map_err(EmbeddingError::from)?;
    for start in (0..n_tokens).step_by(chunk) {
        let rows = chunk.min(n_tokens - start);
        let block = &mut logits[..rows * shard_rows];
        matmul_into(
            chunk_view(start, rows).map_err(EmbeddingError::from)?,
            Operand::AsIs,
            head,
            Operand::Transposed,
            TensorViewMut::new(&mut *block, &[rows, shard_rows]).map_err(EmbeddingError::from)?,
            Accumulate::Replace,
        )
        .map_err(EmbeddingError::from)?;
        let out = std::sync::Mutex::new(&mut stats[start..start + rows]);
        for_each_chunk_mut(block, shard_rows.max(1), |r, row| {
            let s = plan.math.stats(row, local(start + r), false, first_row);
            if let Ok(mut out) = out.lock() {
                out[r] = s;
            }
        });
    }
    combine.combine(&mut stats)?;
    let rows_out: Vec<RowForward> = stats
        .iter()
        .map(|s| plan.math.finish(s, vocab_size))
        .collect();

    // Pass 2: the gradients, from the logits computed again.
    if let Some(g) = grads.as_mut() {
        let mut grad_hidden = match g.hidden {
            Some(_) => Some(
                try_filled(
                    n_tokens * n_embd,
                    0.0f64,
                    "linear_cross_entropy hidden gradient",
                )
                .map_err(EmbeddingError::from)?,
            ),
            None => None,
        };
        let mut part = try_filled(chunk * n_embd, T::zero(), "linear_cross_entropy part")
            .map_err(EmbeddingError::from)?;
        for (c, start) in (0..n_tokens).step_by(chunk).enumerate() {
            let rows = chunk.min(n_tokens - start);
            let hc = chunk_view(start, rows).map_err(EmbeddingError::from)?;
            let block = &mut logits[..rows * shard_rows];
            matmul_into(
                hc,
                Operand::AsIs,
                head,
                Operand::Transposed,
                TensorViewMut::new(&mut *block, &[rows, shard_rows])
                    .map_err(EmbeddingError::from)?,
                Accumulate::Replace,
            )
            .map_err(EmbeddingError::from)?;
            let scale = g.grad_scale;
            for_each_chunk_mut(block, shard_rows.max(1), |r, row| {
                plan.math.transform(row);
                let share = plan.share(start + r, scale);
                plan.math.backward(
                    row,
                    local(start + r),
                    &rows_out[start + r],
                    share,
                    vocab_size,
                    false,
                );
            });
            let dx = TensorView::new(&*block, &[rows, shard_rows]).map_err(EmbeddingError::from)?;
            if let Some(sum) = grad_hidden.as_mut() {
                let part = &mut part[..rows * n_embd];
                matmul_into(
                    dx,
                    Operand::AsIs,
                    head,
                    Operand::AsIs,
                    TensorViewMut::new(&mut *part, &[rows, n_embd])
                        .map_err(EmbeddingError::from)?,
                    Accumulate::Replace,
                )
                .map_err(EmbeddingError::from)?;
                for (s, p) in sum[start * n_embd..].iter_mut().zip(part.iter()) {
                    *s = p.as_f64();
                }
            }
            add_head_grad(g, c, dx, hc)?;
        }
        if let (Some(mut sum), Some(gh)) = (grad_hidden, g.hidden.as_mut()) {
            combine.sum(&mut sum)?;
            for (o, s) in gh.as_mut_slice().iter_mut().zip(sum) {
                *o = match g.accumulate {
                    Accumulate::Replace => T::from_f64_lossy(s),
                    Accumulate::Add => T::from_f64_lossy(o.as_f64() + s),
                };
            }
        }
    }
    Ok(plan.finish(&rows_out)?)
}
