//! What a [`DecoderInput`] takes from a model spec beyond its tables: every layer's
//! treatment of q and k, the head's bias and logit transform, the embedding LayerNorm.

use tokenloom_positions::CacheFloat;
use tokenloom_tensor::{Element, Tensor};

use crate::error::DecoderInputError;
use crate::input::{DecoderInput, EmbeddingLayerNorm};
use crate::layer_rope::{LayerRopes, LongRopeChoice};
use crate::spec::{LayerPositions, LogitTransform};

impl<T: Element, C: CacheFloat> DecoderInput<T, C> {
    /// Gives each decoder layer its own treatment of q and k (a [`ModelSpec`]'s
    /// [`layers`](crate::ModelSpec::layers); `n_layers` `None` when one entry stands for
    /// every layer), with caches over `max_positions` shared between layers that rotate
    /// alike and LongRoPE's factors chosen by `long_rope`.
    /// [`DecoderInputOutput::apply_rope_layer`](crate::DecoderInputOutput::apply_rope_layer) then runs layer `l`'s.
    ///
    /// # Errors
    ///
    /// The RoPE cache errors, and [`DecoderInputError::LayerOutOfRange`] for an empty
    /// list.
    ///
    /// [`ModelSpec`]: crate::ModelSpec
    pub fn with_layer_positions(
        mut self,
        layers: &[LayerPositions],
        n_layers: Option<usize>,
        long_rope: LongRopeChoice,
    ) -> Result<Self, DecoderInputError> {
        if layers.is_empty() {
            return Err(DecoderInputError::LayerOutOfRange {
                layer: 0,
                n_layers: 0,
            });
        }
        self.layer_ropes = Some(LayerRopes::new(
            layers,
            n_layers.is_none(),
            self.max_positions,
            long_rope,
        )?);
        Ok(self)
    }

    /// What layer `layer` does to q and k (`None` for a decoder input built without
    /// per-layer positions).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::LayerOutOfRange`].
    pub fn layer_positions(
        &self,
        layer: usize,
    ) -> Result<Option<&LayerPositions>, DecoderInputError> {
        match &self.layer_ropes {
            Some(l) => Ok(Some(&l.layer(layer)?.positions)),
            None => Ok(None),
        }
    }

    /// The number of layers with per-layer positions (`None` without, or when one entry
    /// stands for all).
    #[must_use]
    pub fn n_layers(&self) -> Option<usize> {
        self.layer_ropes.as_ref().and_then(LayerRopes::n_layers)
    }

    /// Sets what [`logits`](Self::logits) applies after the projection (Cohere's
    /// multiplier, Granite's divisor, Gemma 2's softcapping).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::BadValue`] for a value that is not positive and finite.
    pub fn with_logit_transform(
        mut self,
        transform: LogitTransform,
    ) -> Result<Self, DecoderInputError> {
        transform.validate(std::path::Path::new("logit transform"))?;
        self.logit_transform = transform;
        Ok(self)
    }

    /// What [`logits`](Self::logits) applies after the projection.
    #[must_use]
    pub fn logit_transform(&self) -> &LogitTransform {
        &self.logit_transform
    }

    /// Adds a bias `(vocab_size,)` to the head's output (Phi's and GPT-J's `lm_head`).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::HeadBiasShape`] for a bias of another shape.
    pub fn with_head_bias(mut self, bias: Tensor<T>) -> Result<Self, DecoderInputError> {
        if bias.dims() != [self.vocab_size()] {
            return Err(DecoderInputError::HeadBiasShape {
                got: bias.dims().to_vec(),
                vocab_size: self.vocab_size(),
            });
        }
        self.head_bias = Some(bias);
        Ok(self)
    }

    /// The head's bias, if it has one.
    #[must_use]
    pub fn head_bias(&self) -> Option<&Tensor<T>> {
        self.head_bias.as_ref()
    }

    /// Ends [`forward`](Self::forward) with a LayerNorm over each token's embedding sum
    /// (BERT's, RoBERTa's and ModernBERT's embeddings), `weight` and `bias` `(n_embd,)`.
    /// The backward of such a decoder input is
    /// [`DecoderInputError::EmbeddingNormBackward`]: the norm's gradient is the first
    /// layer's business in tokenloom's split.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::EmbeddingNormShape`] for a weight or bias that is not
    /// `(n_embd,)`, [`DecoderInputError::BadScale`] for an `eps` that is not positive and
    /// finite.
    pub fn with_embedding_norm(
        mut self,
        weight: Tensor<T>,
        bias: Option<Tensor<T>>,
        eps: f64,
    ) -> Result<Self, DecoderInputError> {
        let n_embd = self.n_embd();
        for t in std::iter::once(&weight).chain(bias.as_ref()) {
            if t.dims() != [n_embd] {
                return Err(DecoderInputError::EmbeddingNormShape {
                    got: t.dims().to_vec(),
                    n_embd,
                });
            }
        }
        if !(eps.is_finite() && eps > 0.0) {
            return Err(DecoderInputError::BadScale {
                name: "embedding norm eps",
                value: eps,
            });
        }
        self.embedding_norm = Some(EmbeddingLayerNorm { weight, bias, eps });
        Ok(self)
    }

    /// Whether [`forward`](Self::forward) ends with a LayerNorm.
    #[must_use]
    pub fn has_embedding_norm(&self) -> bool {
        self.embedding_norm.is_some()
    }
}
