//! Applying RoPE to query/key tensors: forward, inverse and backward, in place and out of
//! place, for both tensor layouts and both pair layouts.

use tokenloom_tensor::{Element, Shape, Tensor, TensorView, TensorViewMut, for_each_chunk_mut};

use super::cache::{CacheFloat, RopeCache};
use super::kernel::{Isa, Rotation, rotate_rows};
use crate::error::PositionError;

/// How a query/key tensor is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QkLayout {
    /// `(batch, seq_len, n_heads, head_dim)`: Meta's `model.py`, the output of a q/k
    /// projection before the transpose. The cos/sin rows are read once per token.
    BatchSeqHeads,
    /// `(batch, n_heads, seq_len, head_dim)`: HuggingFace, after the transpose.
    BatchHeadsSeq,
}

impl QkLayout {
    fn name(self) -> &'static str {
        match self {
            QkLayout::BatchSeqHeads => "(batch, seq_len, n_heads, head_dim)",
            QkLayout::BatchHeadsSeq => "(batch, n_heads, seq_len, head_dim)",
        }
    }
}

/// The absolute position of each token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Positions<'a> {
    /// Every batch row holds positions `offset .. offset + seq_len`: prefill (offset 0) or
    /// KV-cache decoding (offset = tokens already cached), as Meta's `start_pos`.
    Offset(usize),
    /// Explicit position ids `(batch, seq_len)`, as HuggingFace's `position_ids`: any
    /// order, repeats, a different offset per row (left-padded batches).
    Ids(TensorView<'a, u32>),
}

/// Which map to apply. With `R` the rotation and `s` the attention factor, the forward
/// map is `x ↦ s·R(θ)x`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// `s·R(θ)`.
    Forward,
    /// The transpose `s·R(−θ)`: maps the gradient of the output to that of the input.
    Backward,
    /// The inverse `R(−θ)/s`.
    Inverse,
}

impl<C: CacheFloat> RopeCache<C> {
    /// Rotates `x` in place: `x ← s·R(position·θ)·x` on the first `rotary_dim` elements of
    /// every head; the rest of each head is unchanged.
    ///
    /// `f16`/`bf16` activations are widened to the cache precision `C`, rotated, and
    /// rounded once. An `f64` activation with an `f32` cache is rotated in `f32`.
    ///
    /// # Shapes
    ///
    /// `x`: `(batch, seq_len, n_heads, head_dim)` or `(batch, n_heads, seq_len, head_dim)`
    /// as declared by `layout`; position ids: `(batch, seq_len)`.
    ///
    /// # Errors
    ///
    /// [`PositionError::QkShape`] for a tensor that is not rank 4 with the configured
    /// `head_dim`, [`PositionError::PositionIdsShape`] for ids of another shape, and
    /// [`PositionError::PositionOutOfRange`] for a position past the cache. Nothing is
    /// written unless every check passes.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_positions::{Positions, QkLayout, RopeCache, RopeConfig, RopeLayout};
    /// use tokenloom_tensor::Tensor;
    ///
    /// let cache = RopeCache::<f32>::new(&RopeConfig::new(4, 10000.0, RopeLayout::Interleaved), 8)?;
    /// // One token, one head, q = (1, 0, 1, 0) at position 2.
    /// let mut q = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 0.0], &[1, 1, 1, 4])?;
    /// cache.apply_in_place(q.view_mut(), QkLayout::BatchSeqHeads, Positions::Offset(2))?;
    /// assert_eq!(q.as_slice()[0], 2f32.cos()); // the first pair turns by 2 radians
    /// assert_eq!(q.as_slice()[1], 2f32.sin());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply_in_place<T: Element>(
        &self,
        x: TensorViewMut<'_, T>,
        layout: QkLayout,
        positions: Positions<'_>,
    ) -> Result<(), PositionError> {
        self.rotate(x, layout, positions, Direction::Forward)
    }

    /// Out-of-place [`apply_in_place`](RopeCache::apply_in_place): returns the rotated copy.
    ///
    /// # Errors
    ///
    /// As [`apply_in_place`](RopeCache::apply_in_place).
    pub fn apply<T: Element>(
        &self,
        x: TensorView<'_, T>,
        layout: QkLayout,
        positions: Positions<'_>,
    ) -> Result<Tensor<T>, PositionError> {
        let mut out = Tensor::from_shape_vec(x.as_slice().to_vec(), x.shape())?;
        self.apply_in_place(out.view_mut(), layout, positions)?;
        Ok(out)
    }

    /// Undoes [`apply_in_place`](RopeCache::apply_in_place): `x ← R(−position·θ)·x / s`.
    ///
    /// # Errors
    ///
    /// As [`apply_in_place`](RopeCache::apply_in_place).
    pub fn inverse_in_place<T: Element>(
        &self,
        x: TensorViewMut<'_, T>,
        layout: QkLayout,
        positions: Positions<'_>,
    ) -> Result<(), PositionError> {
        self.rotate(x, layout, positions, Direction::Inverse)
    }

    /// Backward of [`apply_in_place`](RopeCache::apply_in_place): turns the gradient with
    /// respect to the rotated tensor into the gradient with respect to its input, in
    /// place. The map is linear with matrix `s·R(θ)`, so its gradient is the transpose
    /// `s·R(−θ)` (equal to the inverse only when `s = 1`).
    ///
    /// # Errors
    ///
    /// As [`apply_in_place`](RopeCache::apply_in_place).
    pub fn backward_in_place<T: Element>(
        &self,
        grad: TensorViewMut<'_, T>,
        layout: QkLayout,
        positions: Positions<'_>,
    ) -> Result<(), PositionError> {
        self.rotate(grad, layout, positions, Direction::Backward)
    }

    fn rotate<T: Element>(
        &self,
        mut x: TensorViewMut<'_, T>,
        layout: QkLayout,
        positions: Positions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        let head_dim = self.config().head_dim;
        let shape = x.shape();
        let bad_shape = || PositionError::QkShape {
            shape,
            layout: layout.name(),
            head_dim,
        };
        let (batch, d1, d2, hd) = shape.dims4("rope").map_err(|_| bad_shape())?;
        if hd != head_dim {
            return Err(bad_shape());
        }
        let (seq_len, n_heads) = match layout {
            QkLayout::BatchSeqHeads => (d1, d2),
            QkLayout::BatchHeadsSeq => (d2, d1),
        };
        let position_of = self.check_positions(positions, batch, seq_len)?;
        if shape.elem_count() == 0 {
            return Ok(());
        }

        let (sign, scale) = match direction {
            Direction::Forward => (C::one(), C::one()),
            Direction::Backward => (-C::one(), C::one()),
            Direction::Inverse => {
                let s = self.attention_factor();
                (-C::one(), C::from_f64_lossy(1.0 / (s * s)))
            }
        };
        let rotation = Rotation {
            pairing: self.config().layout,
            sign,
            scale,
        };
        let isa = Isa::detect();
        // One pass over the tensor, split across threads when it is large; every element
        // is rotated by exactly one task, so results do not depend on the thread count.
        let data = x.as_mut_slice();
        match layout {
            QkLayout::BatchSeqHeads => {
                // One token's heads are contiguous: its cos/sin rows are read once.
                for_each_chunk_mut(data, n_heads * head_dim, |token, heads| {
                    let angles = self.checked_rows(position_of(token / seq_len, token % seq_len));
                    rotate_rows(isa, heads, head_dim, rotation, |_| angles);
                });
            }
            QkLayout::BatchHeadsSeq => {
                // One (batch, head) block of seq_len rows at a time.
                for_each_chunk_mut(data, seq_len * head_dim, |block, rows| {
                    let b = block / n_heads;
                    rotate_rows(isa, rows, head_dim, rotation, |s| {
                        self.checked_rows(position_of(b, s))
                    });
                });
            }
        }
        Ok(())
    }

    /// Checks every position against the cache and returns the position lookup.
    fn check_positions<'p>(
        &self,
        positions: Positions<'p>,
        batch: usize,
        seq_len: usize,
    ) -> Result<impl Fn(usize, usize) -> usize + 'p, PositionError> {
        let max_positions = self.max_positions();
        let out_of_range =
            |position: usize, b: usize, index: usize| PositionError::PositionOutOfRange {
                position,
                batch: b,
                index,
                max_positions,
            };
        let ids = match positions {
            Positions::Offset(offset) => {
                if seq_len > 0 && batch > 0 {
                    let last = offset
                        .checked_add(seq_len - 1)
                        .ok_or_else(|| out_of_range(usize::MAX, 0, seq_len - 1))?;
                    if last >= max_positions {
                        // Report the first position that falls outside.
                        let index = max_positions.saturating_sub(offset).min(seq_len - 1);
                        return Err(out_of_range(offset + index, 0, index));
                    }
                }
                None
            }
            Positions::Ids(ids) => {
                let expected = Shape::new(&[batch, seq_len])?;
                if ids.shape() != expected {
                    return Err(PositionError::PositionIdsShape {
                        expected,
                        got: ids.shape(),
                    });
                }
                if let Some(i) = ids
                    .as_slice()
                    .iter()
                    .position(|&p| p as usize >= max_positions)
                {
                    return Err(out_of_range(
                        ids.as_slice()[i] as usize,
                        i / seq_len,
                        i % seq_len,
                    ));
                }
                Some(ids.as_slice())
            }
        };
        let offset = match positions {
            Positions::Offset(offset) => offset,
            Positions::Ids(_) => 0,
        };
        Ok(move |b: usize, s: usize| match ids {
            Some(ids) => ids[b * seq_len + s] as usize,
            None => offset + s,
        })
    }

    /// The rows of a position already checked against the cache.
    fn checked_rows(&self, position: usize) -> (&[C], &[C]) {
        self.rows(position, 0, 0)
            .expect("positions are checked against the cache before rotating")
    }
}
