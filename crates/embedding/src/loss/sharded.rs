//! The loss on one shard of a vocabulary split by rows over ranks (Megatron-LM's vocab
//! parallelism): each rank holds `(shard_rows, n_embd)` of the head, computes its
//! tokens' statistics over its columns chunk by chunk, a [`VocabCombine`] makes them the
//! whole vocabulary's, and a second pass over the chunks gives the gradients.

use std::sync::Mutex;

use tokenloom_tensor::{
    Accumulate, DType, Element, Operand, TensorLike, TensorView, TensorViewMut, TokenId,
    for_each_chunk_mut, matmul_into, try_filled,
};

use super::kernel::Head;
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
/// vocabulary as [`EmbeddingError::WeightShape`], `f16` and `bf16` tensors as
/// [`EmbeddingError::UnsupportedDType`], and the combiner's.
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
    if matches!(T::DTYPE, DType::F16 | DType::BF16) {
        return Err(EmbeddingError::UnsupportedDType {
            op: "linear_cross_entropy_sharded",
            dtype: T::DTYPE,
            hint: "widen the hidden states and the shard to f32 (the single-process loss takes f16 and bf16)",
        }
        .into());
    }
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
    let shard = Shard {
        plan: &plan,
        hidden,
        head,
        first_row,
        vocab_size,
    };
    let mut logits = try_filled(
        plan.chunk_tokens.saturating_mul(shard_rows),
        T::zero(),
        "linear_cross_entropy logits chunk",
    )
    .map_err(EmbeddingError::from)?;
    let mut stats = shard.statistics(&mut logits)?;
    combine.combine(&mut stats)?;
    let rows_out: Vec<RowForward> = stats
        .iter()
        .map(|s| plan.math.finish(s, vocab_size))
        .collect();
    if let Some(g) = grads.as_mut()
        && let Some(mut sum) = shard.gradients(&mut logits, &rows_out, g)?
        && let Some(gh) = g.hidden.as_mut()
    {
        combine.sum(&mut sum)?;
        for (o, s) in gh.as_mut_slice().iter_mut().zip(sum) {
            *o = match g.accumulate {
                Accumulate::Replace => T::from_f64_lossy(s),
                Accumulate::Add => T::from_f64_lossy(o.as_f64() + s),
            };
        }
    }
    Ok(plan.finish(&rows_out)?)
}

/// One rank's part of the work: its rows of the head and the checked inputs.
struct Shard<'p, 'o, 'h, 'w, T> {
    plan: &'p Plan<'o>,
    hidden: TensorView<'h, T>,
    head: TensorView<'w, T>,
    first_row: usize,
    vocab_size: usize,
}

impl<T: Element> Shard<'_, '_, '_, '_, T> {
    fn n_embd(&self) -> usize {
        self.head.dims()[1]
    }

    fn shard_rows(&self) -> usize {
        self.head.dims()[0]
    }

    /// Token `row`'s target column within this shard, if it is here.
    fn local(&self, row: usize) -> Option<usize> {
        self.plan.columns[row]
            .and_then(|c| c.checked_sub(self.first_row))
            .filter(|&c| c < self.shard_rows())
    }

    /// The chunks of tokens: `(chunk index, first token, tokens)`.
    fn chunks(&self) -> impl Iterator<Item = (usize, usize, usize)> {
        let (n, chunk) = (self.plan.n_tokens, self.plan.chunk_tokens);
        (0..n)
            .step_by(chunk)
            .enumerate()
            .map(move |(c, start)| (c, start, chunk.min(n - start)))
    }

    /// Tokens `start..start + rows` of the hidden states, and their logits over this
    /// shard's columns in `logits`.
    fn chunk_logits<'l>(
        &self,
        start: usize,
        rows: usize,
        logits: &'l mut [T],
    ) -> Result<(TensorView<'_, T>, &'l mut [T]), EmbeddingError> {
        let n_embd = self.n_embd();
        let h = &self.hidden.as_slice()[start * n_embd..(start + rows) * n_embd];
        let hc = TensorView::new(h, &[rows, n_embd])?;
        let block = &mut logits[..rows * self.shard_rows()];
        Head::Dense(self.head).logits(
            hc,
            TensorViewMut::new(&mut *block, &[rows, self.shard_rows()])?,
        )?;
        Ok((hc, block))
    }

    /// Pass 1: each token's statistics over this shard's columns.
    fn statistics(&self, logits: &mut [T]) -> Result<Vec<ShardStats>, EmbeddingError> {
        let mut stats = try_filled(
            self.plan.n_tokens,
            ShardStats::default(),
            "linear_cross_entropy stats",
        )?;
        for (_, start, rows) in self.chunks() {
            let (_, block) = self.chunk_logits(start, rows, logits)?;
            let out = Mutex::new(&mut stats[start..start + rows]);
            for_each_chunk_mut(block, self.shard_rows().max(1), |r, row| {
                let s = self
                    .plan
                    .math
                    .stats(row, self.local(start + r), false, self.first_row);
                if let Ok(mut out) = out.lock() {
                    out[r] = s;
                }
            });
        }
        Ok(stats)
    }

    /// Pass 2, from the logits computed again: adds the head's gradient of this shard's
    /// rows, and returns this shard's part of the hidden states' gradient (in `f64`) when
    /// it is asked for.
    fn gradients(
        &self,
        logits: &mut [T],
        rows_out: &[RowForward],
        g: &mut LinearCrossEntropyGrads<'_, T>,
    ) -> Result<Option<Vec<f64>>, EmbeddingError> {
        let n_embd = self.n_embd();
        let (n_tokens, chunk) = (self.plan.n_tokens, self.plan.chunk_tokens);
        let mut grad_hidden = match g.hidden {
            Some(_) => Some(try_filled(
                n_tokens * n_embd,
                0.0f64,
                "linear_cross_entropy hidden gradient",
            )?),
            None => None,
        };
        let mut part = try_filled(chunk * n_embd, T::zero(), "linear_cross_entropy part")?;
        for (c, start, rows) in self.chunks() {
            let (hc, block) = self.chunk_logits(start, rows, logits)?;
            let scale = g.grad_scale;
            for_each_chunk_mut(block, self.shard_rows().max(1), |r, row| {
                let math = &self.plan.math;
                math.transform(row);
                let share = self.plan.share(start + r, scale);
                let target = self.local(start + r);
                math.backward(
                    row,
                    target,
                    &rows_out[start + r],
                    share,
                    self.vocab_size,
                    false,
                );
            });
            let dx = TensorView::new(&*block, &[rows, self.shard_rows()])?;
            if let Some(sum) = grad_hidden.as_mut() {
                let part = &mut part[..rows * n_embd];
                matmul_into(
                    dx,
                    Operand::AsIs,
                    self.head,
                    Operand::AsIs,
                    TensorViewMut::new(&mut *part, &[rows, n_embd])?,
                    Accumulate::Replace,
                )?;
                for (s, p) in sum[start * n_embd..].iter_mut().zip(part.iter()) {
                    *s = p.as_f64();
                }
            }
            add_head_grad(g, c, dx, hc)?;
        }
        Ok(grad_hidden)
    }
}
