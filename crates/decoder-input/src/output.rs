//! [`DecoderInputOutput`]: the hidden states entering the first block, and what attention
//! needs beside them (position ids, mask, the per-layer rotation of q and k).

use tokenloom_positions::{CacheFloat, Direction, QkLayout, RopeCache, TokenPositions};
use tokenloom_tensor::{Element, Tensor, TensorLikeMut};

use crate::batch::TokenBatch;
use crate::error::DecoderInputError;
use crate::layer_rope::LayerRopes;

/// The output of [`DecoderInput::forward`](crate::DecoderInput::forward): the hidden
/// states and what the attention layers need.
#[derive(Debug)]
pub struct DecoderInputOutput<'a, T, C> {
    pub(crate) hidden: Tensor<T>,
    pub(crate) batch: &'a TokenBatch,
    pub(crate) rope: Option<&'a RopeCache<C>>,
    pub(crate) layers: Option<&'a LayerRopes<C>>,
    pub(crate) scheme: &'static str,
}

impl<T: Element, C: CacheFloat> DecoderInputOutput<'_, T, C> {
    /// The hidden states `(batch, seq_len, n_embd)`.
    #[must_use]
    pub fn hidden(&self) -> &Tensor<T> {
        &self.hidden
    }

    /// Gives up the output, returning the hidden states.
    #[must_use]
    pub fn into_hidden(self) -> Tensor<T> {
        self.hidden
    }

    /// The position ids `(batch, seq_len)`.
    #[must_use]
    pub fn position_ids(&self) -> &Tensor<u32> {
        self.batch.position_ids()
    }

    /// The attention mask `(batch, seq_len)`.
    #[must_use]
    pub fn attention_mask(&self) -> &Tensor<u8> {
        self.batch.attention_mask()
    }

    /// The RoPE cos/sin cache, when the scheme is RoPE.
    #[must_use]
    pub fn rope(&self) -> Option<&RopeCache<C>> {
        self.rope
    }

    /// Rotates a block's q and k in place with the batch's position ids, for a model
    /// whose layers all rotate alike (a model loaded with a [`ModelSpec`](crate::ModelSpec)
    /// whose layers differ — Gemma 3, SmolLM3, Llama 4 — needs
    /// [`apply_rope_layer`](Self::apply_rope_layer)).
    ///
    /// # Shapes
    ///
    /// `q`: `(batch, n_heads, seq_len, head_dim)` or `(batch, seq_len, n_heads,
    /// head_dim)` per `layout`; `k` the same with `n_kv_heads`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::NotRope`] when the scheme is not RoPE,
    /// [`DecoderInputError::LayerDependentRope`] when the layers differ, and the RoPE
    /// shape errors.
    pub fn apply_rope<'q, 'k>(
        &self,
        q: impl TensorLikeMut<'q, T>,
        k: impl TensorLikeMut<'k, T>,
        layout: QkLayout,
    ) -> Result<(), DecoderInputError> {
        let (q, k) = (q.try_view_mut()?, k.try_view_mut()?);
        if let Some(layers) = self.layers {
            if !layers.all_alike() {
                return Err(DecoderInputError::LayerDependentRope {
                    layers: layers.describe(),
                });
            }
            return self.apply_rope_layer(0, q, k, layout);
        }
        let rope = self.rope.ok_or(DecoderInputError::NotRope {
            scheme: self.scheme,
        })?;
        let positions = TokenPositions::Ids(self.batch.position_ids().view());
        rope.rotate_in_place(q, layout, positions, Direction::Forward)?;
        rope.rotate_in_place(k, layout, positions, Direction::Forward)?;
        Ok(())
    }

    /// What layer `layer` of the model does to q and k, done in place with the batch's
    /// position ids: the layer's RoPE (LongRoPE's short or long factors chosen for this
    /// batch, DeepSeek-V3's de-interleaved output), or nothing for a NoPE layer (Llama 4:
    /// q scaled by its attention temperature at each position id).
    ///
    /// # Shapes
    ///
    /// As [`apply_rope`](Self::apply_rope); for MLA (DeepSeek) q and k are the rotated
    /// parts `(…, qk_rope_head_dim)`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::NotRope`] for a model built without per-layer positions and
    /// without RoPE, [`DecoderInputError::LayerOutOfRange`], and the RoPE shape errors.
    pub fn apply_rope_layer<'q, 'k>(
        &self,
        layer: usize,
        q: impl TensorLikeMut<'q, T>,
        k: impl TensorLikeMut<'k, T>,
        layout: QkLayout,
    ) -> Result<(), DecoderInputError> {
        let (q, k) = (q.try_view_mut()?, k.try_view_mut()?);
        match self.layers {
            Some(layers) => layers
                .layer(layer)?
                .apply(q, k, layout, self.batch.position_ids()),
            None => self.apply_rope(q, k, layout),
        }
    }
}
