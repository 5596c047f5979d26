//! The logits through the head, and the gradients of a [`DecoderInput`]: its backward
//! and the head's.

use tokenloom_embedding::{EmbeddingAndHeadGrads, EmbeddingError};
use tokenloom_positions::CacheFloat;
use tokenloom_tensor::{Accumulate, Element, Tensor, TensorLike, TensorView, try_filled};

use crate::batch::TokenBatch;
use crate::error::DecoderInputError;
use crate::functional::{self, AbsolutePositionGrads};
use crate::logit_head;
use crate::scheme::PositionEncoding;

use super::DecoderInput;

/// The gradients of a [`DecoderInput`]: the embedding (and untied head) as
/// [`EmbeddingAndHeadGrads`], the learned position table and the token-type table when there are
/// ones.
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderInputGrads<T> {
    /// The embedding's (and an untied head's) gradients.
    pub model: EmbeddingAndHeadGrads<T>,
    /// The learned position table's gradient.
    pub learned_positions: Option<Tensor<T>>,
    /// The token-type table's gradient (BERT).
    pub token_types: Option<Tensor<T>>,
    /// The output head's bias gradient (Phi, GPT-J).
    pub head_bias: Option<Tensor<T>>,
}

impl<T: Element, C: CacheFloat> DecoderInput<T, C> {
    /// Zeroed gradient buffers for this decoder input.
    ///
    /// # Errors
    ///
    /// Allocation errors, and
    /// [`EmbeddingError::Quantized`](tokenloom_embedding::EmbeddingError::Quantized) when
    /// the tables are quantized.
    pub fn zero_grads(&self) -> Result<DecoderInputGrads<T>, DecoderInputError> {
        Ok(DecoderInputGrads {
            model: self.tables.dense("zero_grads")?.zero_grads()?,
            learned_positions: match &self.positions {
                PositionEncoding::Learned(table) => Some(Tensor::zeros(table.weight().dims())?),
                _ => None,
            },
            token_types: match &self.token_types {
                Some(table) => Some(Tensor::zeros(table.weight().dims())?),
                None => None,
            },
            head_bias: match &self.head_bias {
                Some(bias) => Some(Tensor::zeros(bias.dims())?),
                None => None,
            },
        })
    }

    /// Backward of [`forward`](DecoderInput::forward): adds the gradient of the token
    /// embedding (scaled by the embedding scale) and of the learned position table into
    /// `grads`.
    ///
    /// # Errors
    ///
    /// The embedding's gradient-shape errors for a `grad_hidden` that is not
    /// `(batch, seq_len, n_embd)`, and
    /// [`EmbeddingError::Quantized`](tokenloom_embedding::EmbeddingError::Quantized) when
    /// the tables are quantized (see [`into_dense`](Self::into_dense)).
    pub fn backward<'g>(
        &self,
        batch: &TokenBatch,
        grad_hidden: impl TensorLike<'g, T>,
        grads: &mut DecoderInputGrads<T>,
    ) -> Result<(), DecoderInputError> {
        let grad_hidden = grad_hidden.try_view()?;
        if self.embedding_norm.is_some() {
            return Err(DecoderInputError::EmbeddingNormBackward);
        }
        let model = self.tables.dense("backward")?;
        let embedding = model.embedding();
        if grads.model.embedding.shape() != embedding.weight().shape() {
            return Err(EmbeddingError::GradShape {
                what: "grad_weight",
                expected: embedding.weight().shape(),
                got: grads.model.embedding.shape(),
            }
            .into());
        }
        let positions = match (&self.positions, &mut grads.learned_positions) {
            (PositionEncoding::Learned(table), Some(g)) => Some(AbsolutePositionGrads {
                position_ids: batch.position_ids().view(),
                grad_table: g.view_mut(),
                options: table.options(),
            }),
            _ => None,
        };
        functional::embed_backward_into(
            batch.ids(),
            grad_hidden,
            self.embedding_scale,
            embedding.options(),
            &mut grads.model.embedding,
            positions,
            Accumulate::Add,
        )?;
        if let (Some(table), Some(g)) = (&self.token_types, &mut grads.token_types) {
            // Every token took row 0.
            let segment_ids = Tensor::<u32>::zeros(batch.ids().dims())?;
            table.backward_dense_into(&segment_ids, grad_hidden, g.view_mut(), Accumulate::Add)?;
        }
        Ok(())
    }

    /// The logits `(…, vocab_size)` of the last decoder block's output, through the tied
    /// or untied head.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingAndHead::logits`](tokenloom_embedding::EmbeddingAndHead::logits).
    pub fn logits<'h>(
        &self,
        hidden: impl TensorLike<'h, T>,
    ) -> Result<Tensor<T>, DecoderInputError> {
        let mut logits = self.projection(hidden.try_view()?)?;
        logit_head::apply(logits.as_mut_slice(), &self.logit_transform);
        Ok(logits)
    }

    /// The head's output before the logit transform: `hidden · Wᵀ (+ bias)`.
    fn projection(&self, hidden: TensorView<'_, T>) -> Result<Tensor<T>, DecoderInputError> {
        self.head_or_error()?;
        let mut logits = self.tables.logits(hidden)?;
        if let Some(bias) = &self.head_bias {
            logit_head::add_bias(logits.as_mut_slice(), bias.as_slice());
        }
        Ok(logits)
    }

    /// Backward of [`logits`](DecoderInput::logits): adds the head's weight gradient into
    /// `grads` and returns the gradient of `hidden`.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingAndHead::backward_logits`](tokenloom_embedding::EmbeddingAndHead::backward_logits), and
    /// [`EmbeddingError::Quantized`](tokenloom_embedding::EmbeddingError::Quantized) when
    /// the tables are quantized.
    pub fn backward_logits<'h, 'g>(
        &self,
        hidden: impl TensorLike<'h, T>,
        grad_logits: impl TensorLike<'g, T>,
        grads: &mut DecoderInputGrads<T>,
    ) -> Result<Tensor<T>, DecoderInputError> {
        let (hidden, grad_logits) = (hidden.try_view()?, grad_logits.try_view()?);
        let model = self.tables.dense("backward_logits")?;
        if self.logit_transform.is_identity() && self.head_bias.is_none() {
            return Ok(model.backward_logits(hidden, grad_logits, &mut grads.model)?);
        }
        // The gradient of the projection's output, through the transform.
        let raw = match self.logit_transform.softcap {
            Some(_) => Some(self.projection(hidden)?),
            None => None,
        };
        let mut data = try_filled(
            grad_logits.as_slice().len(),
            T::zero(),
            "DecoderInput::backward_logits",
        )?;
        data.copy_from_slice(grad_logits.as_slice());
        let mut grad = Tensor::from_shape_vec(data, grad_logits.shape())?;
        logit_head::backward(
            grad.as_mut_slice(),
            raw.as_ref().map(Tensor::as_slice),
            &self.logit_transform,
        );
        if let (Some(_), Some(g)) = (&self.head_bias, &mut grads.head_bias) {
            logit_head::bias_grad(grad.as_slice(), g.as_mut_slice());
        }
        Ok(model.backward_logits(hidden, grad.view(), &mut grads.model)?)
    }
}
