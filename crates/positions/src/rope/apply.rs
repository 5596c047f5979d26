//! Applying RoPE to query/key tensors: forward, inverse and backward, in place and out of
//! place, for both tensor layouts and both pair layouts — on cos/sin tables the caller
//! lends ([`RopeTables`]) or on a [`RopeCache`], which lends its own.

use tokenloom_tensor::{
    Element, Shape, TensorLike, TensorLikeMut, TensorView, TensorViewMut,
    for_each_chunk_mut_by_work, tasks_for,
};

use super::cache::{CacheFloat, RopeCache};
use super::config::RopeLayout;
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
    /// The dimensions in words, for messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            QkLayout::BatchSeqHeads => "(batch, seq_len, n_heads, head_dim)",
            QkLayout::BatchHeadsSeq => "(batch, n_heads, seq_len, head_dim)",
        }
    }
}

/// The absolute position of each token.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum TokenPositions<'a> {
    /// Every batch row holds positions `offset .. offset + seq_len`: prefill (offset 0) or
    /// KV-cache decoding (offset = tokens already cached), as Meta's `start_pos`.
    Offset(usize),
    /// Explicit position ids `(batch, seq_len)`, as HuggingFace's `position_ids`: any
    /// order, repeats, a different offset per row (left-padded batches).
    Ids(TensorView<'a, u32>),
    /// [`Ids`](TokenPositions::Ids) as PyTorch hands them over (`torch.long`); a negative
    /// id is [`PositionError::NegativePosition`].
    IdsI64(TensorView<'a, i64>),
    /// [`Ids`](TokenPositions::Ids) as `int32` (ONNX, JAX); a negative id is
    /// [`PositionError::NegativePosition`].
    IdsI32(TensorView<'a, i32>),
}

/// Checked position ids of any integer type.
#[derive(Clone, Copy)]
enum IdSlice<'a> {
    U32(&'a [u32]),
    I64(&'a [i64]),
    I32(&'a [i32]),
}

impl IdSlice<'_> {
    /// Id `i` (checked non-negative before use).
    #[inline]
    fn get(self, i: usize) -> i64 {
        match self {
            Self::U32(ids) => i64::from(ids[i]),
            Self::I64(ids) => ids[i],
            Self::I32(ids) => i64::from(ids[i]),
        }
    }

    fn len(self) -> usize {
        match self {
            Self::U32(ids) => ids.len(),
            Self::I64(ids) => ids.len(),
            Self::I32(ids) => ids.len(),
        }
    }
}

/// Which map a rotation applies. With `R(θ)` the rotation by `position·θ` and `s` the
/// attention factor, the forward map is `x ↦ s·R(θ)·x`.
///
/// The C API's `tokenloom_rope(…, direction)` takes the same three values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `x ← s·R(θ)·x`: RoPE as a model applies it to q and k.
    Forward,
    /// The transpose `s·R(−θ)`: maps the gradient of the forward map's output to that of
    /// its input (equal to the inverse only when `s = 1`).
    Backward,
    /// The inverse `R(−θ)/s`: recovers `x` from the rotated tensor.
    Inverse,
}

/// cos/sin tables lent by the caller — computed by tokenloom
/// ([`RopeCache::tables`], [`RopeConfig::cos_sin_into`](crate::RopeConfig::cos_sin_into))
/// or by the caller's own code, in `f32` or `f64` — and the pair layout to rotate with:
/// RoPE on borrowed memory.
///
/// The tables are `(max_positions, rotary_dim / 2)`, one value per pair (candle-nn's
/// `rope`/`rope_i` layout; HuggingFace duplicates them to `rotary_dim` with
/// `cat(freqs, freqs)`: pass the first half). Row `p` rotates position `p`. Every q/k
/// head whose width is at least `rotary_dim` can be rotated; the elements past
/// `rotary_dim` pass through unchanged.
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{Direction, TokenPositions, QkLayout, RopeLayout, RopeTables};
///
/// // The caller's own f32 tables for 3 positions and one pair (rotary_dim = 2).
/// let cos = [1.0f32, 0.0, -1.0];
/// let sin = [0.0f32, 1.0, 0.0];
/// let tables = RopeTables::new((&cos[..], [3, 1]), (&sin[..], [3, 1]), RopeLayout::HalfSplit)?;
///
/// // x of shape (batch 1, seq_len 2, n_heads 1, head_dim 2) → out, x kept.
/// let x = [1.0f32, 0.0, 1.0, 0.0];
/// let mut out = [0.0f32; 4];
/// tables.rotate_into(
///     (&x[..], [1, 2, 1, 2]),
///     (&mut out[..], [1, 2, 1, 2]),
///     QkLayout::BatchSeqHeads,
///     TokenPositions::Offset(1),
///     Direction::Forward,
/// )?;
/// assert_eq!(out, [0.0, 1.0, -1.0, 0.0]); // positions 1 and 2: a quarter and a half turn
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RopeTables<'a, C> {
    cos: &'a [C],
    sin: &'a [C],
    max_positions: usize,
    half: usize,
    /// Elements from one row of `cos`/`sin` to the next (`half` when contiguous).
    row_stride: usize,
    layout: RopeLayout,
    attention_factor: f64,
}

impl<'a, C: CacheFloat> RopeTables<'a, C> {
    /// Borrows `cos` and `sin`, both `(max_positions, rotary_dim / 2)`, to rotate pairs
    /// laid out as `layout`. The attention factor already in the tables is taken to be 1
    /// (see [`with_attention_factor`](RopeTables::with_attention_factor)).
    ///
    /// # Errors
    ///
    /// [`PositionError::RopeTablesShape`] when the shapes differ, are not rank 2, or are
    /// empty, and tensor errors for sources that are not contiguous row-major buffers.
    pub fn new(
        cos: impl TensorLike<'a, C>,
        sin: impl TensorLike<'a, C>,
        layout: RopeLayout,
    ) -> Result<Self, PositionError> {
        let (cos, sin) = (cos.try_view()?, sin.try_view()?);
        let bad = || PositionError::RopeTablesShape {
            cos: cos.shape(),
            sin: sin.shape(),
        };
        let (max_positions, half) = cos.shape().dims2("rope tables").map_err(|_| bad())?;
        if sin.shape() != cos.shape() || max_positions == 0 || half == 0 {
            return Err(bad());
        }
        // Contiguous rows: the strided constructor with a stride of one row.
        Self::from_strided(
            cos.as_slice(),
            sin.as_slice(),
            max_positions,
            half,
            half,
            layout,
        )
    }

    /// Borrows tables whose rows are `row_stride` elements apart: row `p` of cos is
    /// `cos[p · row_stride ..][..half]`, and likewise for sin. The first half of a
    /// HuggingFace-style duplicated `(max_positions, rotary_dim)` cache (`cat(freqs,
    /// freqs)`) is `half = rotary_dim / 2`, `row_stride = rotary_dim`: rotated without a
    /// copy. The attention factor already in the tables is taken to be 1.
    ///
    /// # Errors
    ///
    /// [`PositionError::RopeTablesStride`] for an empty table, a stride below `half`, or
    /// slices too short for `max_positions` rows.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_positions::{RopeLayout, RopeTables};
    ///
    /// // A duplicated (max_positions 2, rotary_dim 4) cache, as transformers builds it.
    /// let cos = [1.0f32, 1.0, 1.0, 1.0, 0.5, 0.25, 0.5, 0.25];
    /// let sin = [0.0f32, 0.0, 0.0, 0.0, 0.75, 0.5, 0.75, 0.5];
    /// let tables = RopeTables::from_strided(&cos, &sin, 2, 2, 4, RopeLayout::HalfSplit)?;
    /// assert_eq!(tables.max_positions(), 2);
    /// # Ok::<(), tokenloom_positions::PositionError>(())
    /// ```
    pub fn from_strided(
        cos: &'a [C],
        sin: &'a [C],
        max_positions: usize,
        half: usize,
        row_stride: usize,
        layout: RopeLayout,
    ) -> Result<Self, PositionError> {
        let needed = max_positions
            .checked_sub(1)
            .and_then(|rows| rows.checked_mul(row_stride))
            .and_then(|start| start.checked_add(half));
        let fits = |len: usize| needed.is_some_and(|n| n <= len);
        if half == 0 || row_stride < half || !fits(cos.len()) || !fits(sin.len()) {
            return Err(PositionError::RopeTablesStride {
                max_positions,
                half,
                row_stride,
                cos_len: cos.len(),
                sin_len: sin.len(),
            });
        }
        Ok(Self {
            cos,
            sin,
            max_positions,
            half,
            row_stride,
            layout,
            attention_factor: 1.0,
        })
    }

    /// Declares the factor `s` the tables were multiplied by (YaRN's attention factor;
    /// tokenloom's own tables carry it, see [`RopeCache::attention_factor`]). Only the
    /// inverse needs it: it divides by `s` after rotating back.
    ///
    /// # Errors
    ///
    /// [`PositionError::InvalidParameter`] for a factor that is not positive and finite.
    pub fn with_attention_factor(mut self, attention_factor: f64) -> Result<Self, PositionError> {
        if !(attention_factor.is_finite() && attention_factor > 0.0) {
            return Err(PositionError::InvalidParameter {
                name: "attention_factor",
                value: attention_factor,
                requirement: "must be positive and finite",
            });
        }
        self.attention_factor = attention_factor;
        Ok(self)
    }

    /// The number of positions the tables cover.
    #[must_use]
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The rotated width of each head, twice the tables' width.
    #[must_use]
    pub fn rotary_dim(&self) -> usize {
        2 * self.half
    }

    /// The pair layout.
    #[must_use]
    pub fn layout(&self) -> RopeLayout {
        self.layout
    }

    /// Rotates `x` in place by `direction` on the first `rotary_dim` elements of every
    /// head ([`Direction::Forward`] is RoPE as a model applies it: `x ← s·R(position·θ)·x`);
    /// the rest of each head is unchanged.
    ///
    /// `f16`/`bf16` activations are widened to the table precision `C`, rotated, and
    /// rounded once. An `f64` activation with `f32` tables is rotated in `f32`.
    ///
    /// # Shapes
    ///
    /// `x`: `(batch, seq_len, n_heads, head_dim)` or `(batch, n_heads, seq_len, head_dim)`
    /// as declared by `layout`, `head_dim ≥ rotary_dim`; position ids: `(batch, seq_len)`.
    ///
    /// # Errors
    ///
    /// [`PositionError::QkShape`] for a tensor that is not rank 4,
    /// [`PositionError::QkTooNarrow`] for heads narrower than `rotary_dim`,
    /// [`PositionError::PositionIdsShape`] for ids of another shape, and
    /// [`PositionError::PositionOutOfRange`] for a position past the tables. Nothing is
    /// written unless every check passes.
    pub fn rotate_in_place<'x, T: Element>(
        &self,
        x: impl TensorLikeMut<'x, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        self.rotate(x.try_view_mut()?, None, layout, positions, direction)
    }

    /// [`rotate_in_place`](RopeTables::rotate_in_place) from `x` into `out` (same shape)
    /// in one pass, leaving `x` as it is.
    ///
    /// # Errors
    ///
    /// As [`rotate_in_place`](RopeTables::rotate_in_place), and
    /// [`PositionError::OutputShape`] when `out`'s shape is not `x`'s.
    pub fn rotate_into<'x, 'o, T: Element>(
        &self,
        x: impl TensorLike<'x, T>,
        out: impl TensorLikeMut<'o, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        let (x, out) = check_out(x, out)?;
        self.rotate(out, Some(x), layout, positions, direction)
    }

    /// The former name of `rotate_in_place(x, layout, positions, Direction::Forward)`.
    ///
    /// # Errors
    ///
    /// As [`rotate_in_place`](RopeTables::rotate_in_place).
    #[deprecated(
        since = "0.1.0",
        note = "use `rotate_in_place(x, layout, positions, Direction::Forward)`"
    )]
    pub fn apply_in_place<'x, T: Element>(
        &self,
        x: impl TensorLikeMut<'x, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
    ) -> Result<(), PositionError> {
        self.rotate_in_place(x, layout, positions, Direction::Forward)
    }

    /// The former name of `rotate_into(x, out, layout, positions, Direction::Forward)`.
    ///
    /// # Errors
    ///
    /// As [`rotate_into`](RopeTables::rotate_into).
    #[deprecated(
        since = "0.1.0",
        note = "use `rotate_into(x, out, layout, positions, Direction::Forward)`"
    )]
    pub fn apply_into<'x, 'o, T: Element>(
        &self,
        x: impl TensorLike<'x, T>,
        out: impl TensorLikeMut<'o, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
    ) -> Result<(), PositionError> {
        self.rotate_into(x, out, layout, positions, Direction::Forward)
    }

    /// Rotates `dst` in place, or — with `src` — rotates `src` into `dst` (same shape,
    /// checked), one head at a time.
    fn rotate<T: Element>(
        &self,
        mut dst: TensorViewMut<'_, T>,
        src: Option<TensorView<'_, T>>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        let shape = dst.shape();
        let (batch, d1, d2, head_dim) =
            shape.dims4("rope").map_err(|_| PositionError::QkShape {
                shape,
                layout: layout.name(),
                head_dim: self.rotary_dim(),
            })?;
        if head_dim < self.rotary_dim() {
            return Err(PositionError::QkTooNarrow {
                shape,
                layout: layout.name(),
                rotary_dim: self.rotary_dim(),
            });
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
                let s = self.attention_factor;
                (-C::one(), C::from_f64_lossy(1.0 / (s * s)))
            }
        };
        let rotation = Rotation {
            pairing: self.layout,
            sign,
            scale,
        };
        let src = src.map(|src| src.as_slice());
        let isa = Isa::for_buffers(dst.as_slice(), src, head_dim);
        // One pass over the tensor, split across threads when it is large — contiguous
        // runs of tokens (or of (batch, head) blocks), a few per thread (`tasks_for`: a
        // thread that wakes late still takes its share). Every element is rotated by
        // exactly one task, so results do not depend on the thread count.
        let data = dst.as_mut_slice();
        let bytes = std::mem::size_of_val(data);
        let tasks = tasks_for(bytes);
        let chunk_src = |unit: usize, len: usize| src.map(|s| &s[unit * len..(unit + 1) * len]);
        match layout {
            QkLayout::BatchSeqHeads => {
                // One token's heads are contiguous: its cos/sin rows are read once.
                let len = n_heads * head_dim;
                let per_task = (batch * seq_len).div_ceil(tasks).max(1);
                for_each_chunk_mut_by_work(data, per_task * len, bytes, |task, tokens| {
                    for (t, heads) in tokens.chunks_mut(len).enumerate() {
                        let token = task * per_task + t;
                        let angles =
                            self.checked_rows(position_of(token / seq_len, token % seq_len));
                        rotate_rows(
                            isa,
                            heads,
                            chunk_src(token, len),
                            head_dim,
                            rotation,
                            |_| angles,
                        );
                    }
                });
            }
            QkLayout::BatchHeadsSeq => {
                // One (batch, head) block of seq_len rows at a time.
                let len = seq_len * head_dim;
                let per_task = (batch * n_heads).div_ceil(tasks).max(1);
                for_each_chunk_mut_by_work(data, per_task * len, bytes, |task, blocks| {
                    for (k, rows) in blocks.chunks_mut(len).enumerate() {
                        let block = task * per_task + k;
                        let b = block / n_heads;
                        rotate_rows(isa, rows, chunk_src(block, len), head_dim, rotation, |s| {
                            self.checked_rows(position_of(b, s))
                        });
                    }
                });
            }
        }
        Ok(())
    }

    /// Checks every position against the tables and returns the position lookup.
    fn check_positions<'p>(
        &self,
        positions: TokenPositions<'p>,
        batch: usize,
        seq_len: usize,
    ) -> Result<impl Fn(usize, usize) -> usize + 'p, PositionError> {
        let max_positions = self.max_positions;
        let out_of_range =
            |position: usize, b: usize, index: usize| PositionError::PositionOutOfRange {
                position,
                batch: b,
                index,
                max_positions,
            };
        let ids = match positions {
            TokenPositions::Offset(offset) => {
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
            TokenPositions::Ids(ids) => Some((ids.shape(), IdSlice::U32(ids.as_slice()))),
            TokenPositions::IdsI64(ids) => Some((ids.shape(), IdSlice::I64(ids.as_slice()))),
            TokenPositions::IdsI32(ids) => Some((ids.shape(), IdSlice::I32(ids.as_slice()))),
        };
        let ids = ids
            .map(|(shape, ids)| Self::check_ids(shape, ids, batch, seq_len, max_positions))
            .transpose()?;
        let offset = match positions {
            TokenPositions::Offset(offset) => offset,
            _ => 0,
        };
        Ok(move |b: usize, s: usize| match ids {
            // Checked: non-negative and below max_positions.
            Some(ids) => usize::try_from(ids.get(b * seq_len + s)).unwrap_or(usize::MAX),
            None => offset + s,
        })
    }

    /// Checks position ids: shape `(batch, seq_len)`, every id in `0..max_positions`.
    fn check_ids(
        shape: Shape,
        ids: IdSlice<'_>,
        batch: usize,
        seq_len: usize,
        max_positions: usize,
    ) -> Result<IdSlice<'_>, PositionError> {
        let expected = Shape::new(&[batch, seq_len])?;
        if shape != expected {
            return Err(PositionError::PositionIdsShape {
                expected,
                got: shape,
            });
        }
        for i in 0..ids.len() {
            let id = ids.get(i);
            let (b, index) = (i / seq_len, i % seq_len);
            match usize::try_from(id) {
                Err(_) => {
                    return Err(PositionError::NegativePosition {
                        position: id,
                        batch: b,
                        index,
                    });
                }
                Ok(position) if position >= max_positions => {
                    return Err(PositionError::PositionOutOfRange {
                        position,
                        batch: b,
                        index,
                        max_positions,
                    });
                }
                Ok(_) => {}
            }
        }
        Ok(ids)
    }

    /// The cos and sin rows of `position`, reporting `batch` and `index` on error.
    pub(crate) fn rows(
        &self,
        position: usize,
        batch: usize,
        index: usize,
    ) -> Result<(&'a [C], &'a [C]), PositionError> {
        if position >= self.max_positions {
            return Err(PositionError::PositionOutOfRange {
                position,
                batch,
                index,
                max_positions: self.max_positions,
            });
        }
        let start = position * self.row_stride;
        let range = start..start + self.half;
        Ok((&self.cos[range.clone()], &self.sin[range]))
    }

    /// The rows of a position already checked against the tables.
    fn checked_rows(&self, position: usize) -> (&'a [C], &'a [C]) {
        self.rows(position, 0, 0)
            .expect("positions are checked against the tables before rotating")
    }
}

/// `x` and an `out` of the same shape.
fn check_out<'x, 'o, T>(
    x: impl TensorLike<'x, T>,
    out: impl TensorLikeMut<'o, T>,
) -> Result<(TensorView<'x, T>, TensorViewMut<'o, T>), PositionError> {
    let (x, out) = (x.try_view()?, out.try_view_mut()?);
    if out.shape() != x.shape() {
        return Err(PositionError::OutputShape {
            what: "out",
            expected: x.shape(),
            got: out.shape(),
        });
    }
    Ok((x, out))
}

impl<C: CacheFloat> RopeCache<C> {
    /// The cache's tables as [`RopeTables`], with its layout and attention factor: the
    /// borrowed layer the cache's rotations (in `cache_apply.rs`) run on.
    #[must_use]
    pub fn tables(&self) -> RopeTables<'_, C> {
        RopeTables {
            cos: self.cos().as_slice(),
            sin: self.sin().as_slice(),
            max_positions: self.max_positions(),
            half: self.inv_freq().len(),
            row_stride: self.inv_freq().len(),
            layout: self.config().layout,
            attention_factor: self.attention_factor(),
        }
    }
}
