//! [`VocabParallelHead`]: the output projection split by vocabulary rows, tied to the
//! [`VocabParallelEmbedding`] or with its own shard, and its loss.

use tokenloom_embedding::functional::{CrossEntropyOptions, LinearCrossEntropyGrads, LogitScale};
use tokenloom_embedding::{Optimizer, functional};
use tokenloom_tensor::Accumulate;
use tokenloom_tensor::{Element, Tensor, TensorLike, TensorView, TokenId, try_filled};

use crate::agree::{Fingerprint, agree};
use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::fused_loss::linear_cross_entropy;
use crate::loss::DEFAULT_IGNORE_INDEX;

/// The output head `logits = logit_scale · hidden @ Wᵀ` with `W` split by vocabulary rows
/// like the embedding (Megatron-LM's vocab-parallel output layer): each rank computes the
/// `(rows, shard.len())` block of the logits it owns, and the loss is the fused
/// vocab-parallel loss ([`linear_cross_entropy`](crate::linear_cross_entropy)): the full
/// `(rows, vocab_size)` logits are never gathered, and each rank holds one chunk of its
/// own at a time.
///
/// Tied (`W` is the embedding's shard: one parameter, one gradient) or untied (its own
/// `(shard.len(), n_embd)` shard, its own gradient and optimizer state).
///
/// Backward: each rank adds `Gᵀ·hidden` to its weight rows' gradient (no communication)
/// and computes its part `G·W` of the hidden-state gradient, chunk by chunk; one
/// all-reduce (sum, in `f64`, rounded once) gives every rank the full `(rows, n_embd)`
/// gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct VocabParallelHead<T: Element> {
    /// `None` when tied to the embedding.
    weight: Option<Tensor<T>>,
    grad: Option<Tensor<T>>,
    logit_scale: f64,
    ignore_index: i64,
}

/// What [`VocabParallelHead::loss_and_backward`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadStep<T: Element> {
    /// The mean cross-entropy over the counted rows (the same on every rank).
    pub loss: f64,
    /// How many rows counted (targets that are not `ignore_index`).
    pub n_targets: usize,
    /// The gradient of the loss with respect to the hidden states, shaped like them (the
    /// same on every rank).
    pub grad_hidden: Tensor<T>,
}

impl<T: Element> VocabParallelHead<T> {
    /// A head tied to the embedding's shard, scaling the logits by `logit_scale` (1 for
    /// the usual head; see `TieOptions` in tokenloom-embedding for why a tied head may
    /// want `1/√n_embd`). Targets equal to PyTorch's default `ignore_index` (-100) do
    /// not count.
    #[must_use]
    pub fn tied(logit_scale: f64) -> Self {
        Self {
            weight: None,
            grad: None,
            logit_scale,
            ignore_index: DEFAULT_IGNORE_INDEX,
        }
    }

    /// An untied head whose `(shard.len(), n_embd)` shard is `local_weight` (the rows of
    /// `lm_head.weight` this rank owns, split like the embedding).
    ///
    /// # Errors
    ///
    /// [`DistributedError::ShardShape`] for a weight of the wrong shape (on one rank:
    /// [`DistributedError::PeerFailed`] on the others).
    pub fn untied<C: Communicator + ?Sized>(
        comm: &C,
        embedding: &VocabParallelEmbedding<T>,
        local_weight: Tensor<T>,
        logit_scale: f64,
    ) -> Result<Self, DistributedError> {
        let shard = embedding.shard();
        let local = if local_weight.dims() == [shard.len(), embedding.n_embd()] {
            let grad = Tensor::from_vec(
                try_filled(local_weight.as_slice().len(), T::zero(), "head grad")?,
                local_weight.dims(),
            )?;
            Ok(Self {
                weight: Some(local_weight),
                grad: Some(grad),
                logit_scale,
                ignore_index: DEFAULT_IGNORE_INDEX,
            })
        } else {
            Err(DistributedError::ShardShape {
                what: "head local_weight",
                rows: shard.len(),
                n_embd: embedding.n_embd(),
                start: shard.start(),
                end: shard.end(),
                got: local_weight.dims().to_vec(),
            })
        };
        agree(comm, "head construction", &[], &[], local)
    }

    /// Targets equal to `ignore_index` do not count in the loss (default -100).
    #[must_use]
    pub fn with_ignore_index(mut self, ignore_index: i64) -> Self {
        self.ignore_index = ignore_index;
        self
    }

    /// Whether the head is the embedding's shard.
    #[must_use]
    pub fn is_tied(&self) -> bool {
        self.weight.is_none()
    }

    /// The untied head's local gradient (`None` when tied: it is the embedding's).
    #[must_use]
    pub fn grad(&self) -> Option<&Tensor<T>> {
        self.grad.as_ref()
    }

    /// The untied head's local weight (`None` when tied).
    #[must_use]
    pub fn weight(&self) -> Option<&Tensor<T>> {
        self.weight.as_ref()
    }

    /// Sets the untied head's gradient to zero (a tied head's is the embedding's).
    pub fn zero_grad(&mut self) {
        if let Some(g) = &mut self.grad {
            g.as_mut_slice().fill(T::zero());
        }
    }

    /// This rank's `(…, shard.len())` block of the logits of `hidden` `(…, n_embd)`.
    ///
    /// # Errors
    ///
    /// The shape errors of `functional::logits` (in [`DistributedError::Embedding`]).
    pub fn local_logits<'h>(
        &self,
        embedding: &VocabParallelEmbedding<T>,
        hidden: impl TensorLike<'h, T>,
    ) -> Result<Tensor<T>, DistributedError> {
        let weight = self.weight.as_ref().unwrap_or(embedding.weight());
        Ok(functional::logits(hidden, weight, self.logit_scale)?)
    }

    /// The mean cross-entropy of the logits of `hidden` against `targets` (one global id
    /// per row of `hidden`; `hidden` and `targets` the same on every rank).
    ///
    /// # Errors
    ///
    /// As [`linear_cross_entropy`](crate::linear_cross_entropy), and
    /// [`DistributedError::NotReplicated`] for hidden states that differ across ranks.
    pub fn loss<'h, 't, C, I>(
        &self,
        comm: &C,
        embedding: &VocabParallelEmbedding<T>,
        hidden: impl TensorLike<'h, T>,
        targets: impl TensorLike<'t, I>,
    ) -> Result<f64, DistributedError>
    where
        C: Communicator + ?Sized,
        I: TokenId,
    {
        let (_, hidden) = self.checked_hidden(comm, embedding, hidden)?;
        let weight = self.weight.as_ref().unwrap_or(embedding.weight());
        let ce = linear_cross_entropy(
            comm,
            embedding.shard(),
            hidden,
            weight,
            targets,
            None,
            &self.loss_options(),
            None,
        )?;
        Ok(ce.loss)
    }

    /// The fused loss's options: this head's `ignore_index` and logit scale.
    fn loss_options(&self) -> CrossEntropyOptions {
        let mut options = CrossEntropyOptions::default();
        options.ignore_index = Some(self.ignore_index);
        if self.logit_scale != 1.0 {
            options.logit_scale = LogitScale::Multiply(self.logit_scale);
        }
        options
    }

    /// Hidden states as `(rows, n_embd)`, after one agreement on shapes and on the
    /// hidden states being replicated.
    fn checked_hidden<'h, C: Communicator + ?Sized>(
        &self,
        comm: &C,
        embedding: &VocabParallelEmbedding<T>,
        hidden: impl TensorLike<'h, T>,
    ) -> Result<(Vec<usize>, TensorView<'h, T>), DistributedError> {
        let checked = (|| {
            let hidden = hidden.try_view()?;
            let n_embd = embedding.n_embd();
            if hidden.dims().last() != Some(&n_embd) {
                return Err(tokenloom_embedding::EmbeddingError::GradShape {
                    what: "hidden states (…, n_embd)",
                    expected: tokenloom_tensor::Shape::new(&[
                        hidden.as_slice().len() / n_embd.max(1),
                        n_embd,
                    ])?,
                    got: hidden.shape(),
                }
                .into());
            }
            let rows = hidden.as_slice().len() / n_embd;
            let dims = hidden.dims().to_vec();
            let hidden = TensorView::new(hidden.as_slice(), &[rows, n_embd])?;
            Ok((dims, hidden))
        })();
        let fingerprint = checked.as_ref().map_or(0, |(_, h)| {
            Fingerprint::new()
                .dims(h.dims())
                .values(h.as_slice())
                .finish()
        });
        agree(
            comm,
            "head",
            &[],
            &[("hidden states", fingerprint)],
            checked,
        )
    }

    /// The loss and its backward in one pass: adds the weight gradient of this rank's
    /// rows (to the embedding's gradient when tied, to the head's own when untied) and
    /// returns the loss and the full hidden-state gradient.
    ///
    /// # Errors
    ///
    /// As [`loss`](Self::loss).
    pub fn loss_and_backward<'h, 't, C, I>(
        &mut self,
        comm: &C,
        embedding: &mut VocabParallelEmbedding<T>,
        hidden: impl TensorLike<'h, T>,
        targets: impl TensorLike<'t, I>,
    ) -> Result<HeadStep<T>, DistributedError>
    where
        C: Communicator + ?Sized,
        I: TokenId,
    {
        let shard = embedding.shard();
        let (hidden_dims, hidden) = self.checked_hidden(comm, embedding, hidden)?;
        let mut grad_hidden = Tensor::from_vec(
            try_filled(hidden.as_slice().len(), T::zero(), "grad hidden")?,
            hidden.dims(),
        )?;
        let options = self.loss_options();
        let (weight, grad_weight) = match (&self.weight, &mut self.grad) {
            (Some(w), Some(g)) => (w, g),
            _ => embedding.weight_and_grad_mut(),
        };
        // The fused, chunked loss: this rank's logits are never materialised. The
        // hidden-state gradient starts at zero, so adding gives it; the weight's adds.
        let grads = LinearCrossEntropyGrads::new()
            .with_hidden(&mut grad_hidden)?
            .with_head(grad_weight)?
            .accumulate(Accumulate::Add);
        let ce = linear_cross_entropy(
            comm,
            shard,
            hidden,
            weight,
            targets,
            None,
            &options,
            Some(grads),
        )?;
        Ok(HeadStep {
            loss: ce.loss,
            n_targets: ce.n_targets,
            grad_hidden: grad_hidden.reshape(&hidden_dims)?,
        })
    }

    /// One optimizer step on the untied head's local rows (a tied head is stepped with
    /// the embedding). Does nothing for a tied head.
    ///
    /// # Errors
    ///
    /// [`tokenloom_embedding::EmbeddingError::OptimizerStateMismatch`] for an optimizer
    /// used on another shape.
    pub fn step<O: Optimizer>(&mut self, optimizer: &mut O) -> Result<(), DistributedError> {
        if let (Some(w), Some(g)) = (&mut self.weight, &self.grad) {
            functional::step_dense(optimizer, w, g, None)?;
        }
        Ok(())
    }
}
