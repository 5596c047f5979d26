//! Per-layer rotation of q and k, built from a [`ModelSpec`](crate::ModelSpec)'s
//! [`LayerPositions`]: the caches (shared between layers with the same settings), the
//! LongRoPE short/long choice, DeepSeek-V3's de-interleaved output and Llama 4's NoPE
//! temperature.

use std::borrow::Cow;
use std::sync::Arc;

use tokenloom_positions::{
    CacheFloat, Direction, QkLayout, RopeCache, RopeConfig, RopeScaling, TokenPositions,
};
use tokenloom_tensor::{Element, Tensor, TensorViewMut};

use crate::error::DecoderInputError;
use crate::spec::LayerPositions;

/// Which LongRoPE factors a batch is rotated with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LongRopeChoice {
    /// As transformers (`dynamic_rope_update`): per batch, the short factors while the
    /// batch's largest position id + 1 is at most `original_max_position_embeddings`,
    /// the long factors past it. The default.
    #[default]
    PerBatch,
    /// As llama.cpp: by the context the model runs with, the long factors when `n_ctx`
    /// exceeds `original_max_position_embeddings`, for every batch.
    ByContext {
        /// The context length (llama.cpp's `n_ctx_per_seq`).
        n_ctx: usize,
    },
}

/// The caches of one layer's rotation.
#[derive(Clone, Debug, PartialEq)]
enum Caches<C> {
    /// One cache for every batch.
    Fixed(Arc<RopeCache<C>>),
    /// Dynamic NTK: the default-frequency cache over `[0, max_position_embeddings)`, and
    /// the settings to compute the frequencies of a longer batch from (transformers'
    /// `dynamic_rope_update`: `seq_len = max(position_ids) + 1`).
    Dynamic {
        within: Arc<RopeCache<C>>,
        rope: RopeConfig,
        max_position_embeddings: usize,
    },
    /// LongRoPE: the short-factor cache over `[0, original)`, the long-factor one over
    /// the whole context, and how to choose.
    LongRope {
        short: Arc<RopeCache<C>>,
        long: Arc<RopeCache<C>>,
        original: usize,
        choice: LongRopeChoice,
    },
}

/// What one layer does to q and k, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LayerRotary<C> {
    pub(crate) positions: LayerPositions,
    caches: Option<Caches<C>>,
}

/// Every layer's rotation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LayerRopes<C> {
    layers: Vec<LayerRotary<C>>,
    /// The spec gave one entry for every layer (its file did not say how many).
    uniform: bool,
}

impl<C: CacheFloat> LayerRopes<C> {
    /// Caches for `layers` over `max_positions`; layers with equal settings share them.
    pub(crate) fn new(
        layers: &[LayerPositions],
        uniform: bool,
        max_positions: usize,
        choice: LongRopeChoice,
    ) -> Result<Self, DecoderInputError> {
        let mut built: Vec<(RopeConfig, Caches<C>)> = Vec::new();
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let caches = match &layer.rope {
                None => None,
                Some(rope) => Some(match built.iter().find(|(r, _)| r == rope) {
                    Some((_, c)) => c.clone(),
                    None => {
                        let c = Self::caches(rope, max_positions, choice)?;
                        built.push((rope.clone(), c.clone()));
                        c
                    }
                }),
            };
            out.push(LayerRotary {
                positions: layer.clone(),
                caches,
            });
        }
        Ok(Self {
            layers: out,
            uniform,
        })
    }

    fn caches(
        rope: &RopeConfig,
        max_positions: usize,
        choice: LongRopeChoice,
    ) -> Result<Caches<C>, DecoderInputError> {
        Ok(match &rope.scaling {
            RopeScaling::LongRope(l) => {
                let original = l.original_max_position_embeddings;
                // The frequencies of a sequence of `original + 1` tokens are the long
                // ones, of `original` the short ones (`seq_len > original`).
                Caches::LongRope {
                    short: Arc::new(RopeCache::new_for_seq_len(rope, original, original)?),
                    long: Arc::new(RopeCache::new_for_seq_len(
                        rope,
                        max_positions,
                        original.saturating_add(1),
                    )?),
                    original,
                    choice,
                }
            }
            RopeScaling::DynamicNtk {
                max_position_embeddings,
                ..
            } => Caches::Dynamic {
                within: Arc::new(RopeCache::new(
                    rope,
                    (*max_position_embeddings).min(max_positions),
                )?),
                rope: rope.clone(),
                max_position_embeddings: *max_position_embeddings,
            },
            _ => Caches::Fixed(Arc::new(RopeCache::new(rope, max_positions)?)),
        })
    }

    /// The number of layers (`None` when one entry stands for all).
    pub(crate) fn n_layers(&self) -> Option<usize> {
        (!self.uniform).then_some(self.layers.len())
    }

    /// The rotation of layer `layer`.
    pub(crate) fn layer(&self, layer: usize) -> Result<&LayerRotary<C>, DecoderInputError> {
        let index = if self.uniform { 0 } else { layer };
        self.layers
            .get(index)
            .ok_or(DecoderInputError::LayerOutOfRange {
                layer,
                n_layers: self.layers.len(),
            })
    }

    /// One line per group of layers with the same treatment (see
    /// [`ModelSpec::describe_layers`](crate::ModelSpec::describe_layers)).
    pub(crate) fn describe(&self) -> Vec<String> {
        let layers: Vec<LayerPositions> = self.layers.iter().map(|l| l.positions.clone()).collect();
        crate::spec::describe_layers(&layers)
    }

    /// Whether every layer does the same to q and k.
    pub(crate) fn all_alike(&self) -> bool {
        self.layers
            .windows(2)
            .all(|w| w[0].positions == w[1].positions)
    }
}

impl<C: CacheFloat> LayerRotary<C> {
    /// The cache a batch whose largest position id is `max_position` is rotated with
    /// (built for the batch when dynamic NTK scales it).
    pub(crate) fn cache_for(
        &self,
        max_position: usize,
    ) -> Result<Option<Cow<'_, RopeCache<C>>>, DecoderInputError> {
        let Some(caches) = self.caches.as_ref() else {
            return Ok(None);
        };
        Ok(Some(match caches {
            Caches::Fixed(cache) => Cow::Borrowed(&**cache),
            Caches::Dynamic {
                within,
                rope,
                max_position_embeddings,
            } => {
                let seq_len = max_position.saturating_add(1);
                if seq_len <= *max_position_embeddings {
                    Cow::Borrowed(&**within)
                } else {
                    Cow::Owned(RopeCache::new_for_seq_len(rope, seq_len, seq_len)?)
                }
            }
            Caches::LongRope {
                short,
                long,
                original,
                choice,
            } => {
                let use_long = match choice {
                    LongRopeChoice::PerBatch => max_position.saturating_add(1) > *original,
                    LongRopeChoice::ByContext { n_ctx } => n_ctx > original,
                };
                Cow::Borrowed(if use_long { &**long } else { &**short })
            }
        }))
    }

    /// Rotates (or, for a NoPE layer, scales) q and k in place at `position_ids`
    /// `(batch, seq_len)`.
    pub(crate) fn apply<T: Element>(
        &self,
        mut q: TensorViewMut<'_, T>,
        mut k: TensorViewMut<'_, T>,
        layout: QkLayout,
        position_ids: &Tensor<u32>,
    ) -> Result<(), DecoderInputError> {
        let max_position = position_ids.as_slice().iter().copied().max().unwrap_or(0) as usize;
        let positions = TokenPositions::Ids(position_ids.view());
        match self.cache_for(max_position)? {
            Some(cache) => {
                cache.rotate_in_place(q.reborrow(), layout, positions, Direction::Forward)?;
                cache.rotate_in_place(k.reborrow(), layout, positions, Direction::Forward)?;
                if self.positions.deinterleave_output {
                    let rotary_dim = cache.config().rotary_dim;
                    let head_dim = cache.config().head_dim;
                    deinterleave(q.as_mut_slice(), head_dim, rotary_dim);
                    deinterleave(k.as_mut_slice(), head_dim, rotary_dim);
                }
            }
            None => {
                if let Some(t) = &self.positions.q_scale {
                    scale_q(q, layout, position_ids, |p| t.scale(p))?;
                }
            }
        }
        Ok(())
    }
}

/// Reorders the first `rotary_dim` elements of every head (the last axis) from
/// `(x0, x1, x2, x3, …)` to `(x0, x2, …, x1, x3, …)`.
fn deinterleave<T: Copy>(data: &mut [T], head_dim: usize, rotary_dim: usize) {
    if head_dim == 0 || rotary_dim < 2 {
        return;
    }
    let mut scratch: Vec<T> = Vec::with_capacity(rotary_dim);
    for head in data.chunks_exact_mut(head_dim) {
        scratch.clear();
        scratch.extend(head[..rotary_dim].iter().step_by(2));
        scratch.extend(head[1..rotary_dim].iter().step_by(2));
        head[..rotary_dim].copy_from_slice(&scratch);
    }
}

/// Multiplies each token's q by `scale(cache position)`, rounded to `T` as PyTorch does
/// (`(q * scale).to(q.dtype)` with the scale in f32). As transformers, the position is the
/// token's cache position — its index in the sequence plus the tokens already in the KV
/// cache, the same for every row — not its position id: tokenloom takes the tokens
/// already cached to be the batch's smallest first position id (0 for a fresh or
/// padded batch, the offset of `TokenBatch::with_offset`).
fn scale_q<T: Element>(
    mut q: TensorViewMut<'_, T>,
    layout: QkLayout,
    position_ids: &Tensor<u32>,
    scale: impl Fn(usize) -> f32,
) -> Result<(), DecoderInputError> {
    let dims = q.dims().to_vec();
    let &[batch, a, b, head_dim] = dims.as_slice() else {
        return Err(DecoderInputError::QkRank { got: dims.len() });
    };
    let (n_heads, seq_len) = match layout {
        QkLayout::BatchHeadsSeq => (a, b),
        QkLayout::BatchSeqHeads => (b, a),
    };
    if position_ids.dims() != [batch, seq_len] {
        return Err(DecoderInputError::PositionIdsShape {
            expected: [batch, seq_len],
            got: position_ids.dims().to_vec(),
        });
    }
    let past = (0..batch)
        .map(|bi| position_ids.as_slice()[bi * seq_len] as usize)
        .min()
        .unwrap_or(0);
    let data = q.as_mut_slice();
    for bi in 0..batch {
        for h in 0..n_heads {
            for s in 0..seq_len {
                let factor = scale(past + s);
                let start = match layout {
                    QkLayout::BatchHeadsSeq => ((bi * n_heads + h) * seq_len + s) * head_dim,
                    QkLayout::BatchSeqHeads => ((bi * seq_len + s) * n_heads + h) * head_dim,
                };
                for x in &mut data[start..start + head_dim] {
                    *x = T::from_f32_lossy(x.as_f32() * factor);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deinterleave_takes_evens_then_odds_of_the_rotary_part() {
        let mut x: Vec<u8> = (0..12).collect();
        deinterleave(&mut x, 6, 4);
        assert_eq!(x, [0, 2, 1, 3, 4, 5, 6, 8, 7, 9, 10, 11]);
    }
}
