//! RoPE as a candle op: forward and backward by `RopeTables::rotate_into` (the backward
//! is the rotation's transpose, [`Direction::Backward`]).

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor, WithDType};
use tokenloom_positions::{
    CacheFloat, Direction, QkLayout, RopeCache, RopeLayout, RopeTables, TokenPositions,
};
use tokenloom_tensor::adapters::candle::{CandleElement, cpu_view, with_view};
use tokenloom_tensor::{TensorView, TensorViewMut, try_filled};

use super::{Float, for_float, wrap};

/// Which positions a [`rope`] call rotates by.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum RopePositions {
    /// Every batch row holds positions `offset .. offset + seq_len` (prefill at 0, or the
    /// number of tokens already in a KV cache).
    Offset(usize),
    /// Position ids `(batch, seq_len)` (`u32`, `i64` or `i32`), as HuggingFace's
    /// `position_ids`: any order, repeats, a different offset per row.
    Ids(Tensor),
}

/// RoPE on a candle q or k tensor with the caller's cos/sin tables, as a candle op with a
/// backward: `x` is `(batch, seq_len, n_heads, head_dim)` or `(batch, n_heads, seq_len,
/// head_dim)` as `qk_layout` says (`f32`, `f64`, `f16` or `bf16`), `cos` and `sin` are
/// `(max_positions, rotary_dim / 2)` in `f32` or `f64` (candle-nn's `rope` tables; a
/// narrowed view of a duplicated `(max_positions, rotary_dim)` cache is read without a
/// copy when both share its strides), pairs laid out as `pair_layout`. The elements of
/// each head past `rotary_dim` pass through. The gradient of `x` is the transposed
/// rotation; the tables get none (they are constants, as transformers computes them).
///
/// # Errors
///
/// A candle error wrapping [`PositionError`](tokenloom_positions::PositionError): a
/// position past the tables (naming it), heads narrower than `rotary_dim`, ids of
/// another shape, a negative id; and dtype or device errors.
pub fn rope(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pair_layout: RopeLayout,
    qk_layout: QkLayout,
    positions: &RopePositions,
) -> candle_core::Result<Tensor> {
    let (cos, sin) = if cos.stride() == sin.stride() && cos.stride().last() == Some(&1) {
        (cos.clone(), sin.clone())
    } else {
        (cos.contiguous()?, sin.contiguous()?)
    };
    let positions = match positions {
        RopePositions::Offset(offset) => Positions::Offset(*offset),
        RopePositions::Ids(ids) => Positions::Ids(ids.contiguous()?),
    };
    x.contiguous()?.apply_op3(
        &cos,
        &sin,
        Rotate {
            pair_layout,
            qk_layout,
            positions,
            direction: Direction::Forward,
        },
    )
}

/// The positions as the op keeps them.
#[derive(Clone)]
enum Positions {
    Offset(usize),
    Ids(Tensor),
}

/// The op (x, cos, sin) → the rotated x.
#[derive(Clone)]
struct Rotate {
    pair_layout: RopeLayout,
    qk_layout: QkLayout,
    positions: Positions,
    direction: Direction,
}

/// The tables of a storage and its rank-2 layout whose rows are `stride[0]` apart.
fn table_slice<'s, C: CacheFloat + CandleElement>(
    storage: &'s CpuStorage,
    layout: &Layout,
) -> candle_core::Result<(&'s [C], usize, usize, usize)> {
    let (rows, half) = layout.shape().dims2()?;
    let row_stride = layout.stride()[0];
    // The rows' elements from the view's start (the same checks as a contiguous view's).
    let whole = Layout::contiguous_with_offset(
        (layout.start_offset() + rows.saturating_sub(1) * row_stride + half,),
        0,
    );
    let data = cpu_view::<C>(storage, &whole).map_err(wrap)?.as_slice();
    Ok((&data[layout.start_offset()..], rows, half, row_stride))
}

impl Rotate {
    fn run<T: Float, C: CacheFloat + CandleElement>(
        &self,
        (x, x_layout): (&CpuStorage, &Layout),
        (cos, cos_layout): (&CpuStorage, &Layout),
        (sin, sin_layout): (&CpuStorage, &Layout),
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (cos, rows, half, row_stride) = table_slice::<C>(cos, cos_layout)?;
        let (sin, sin_rows, sin_half, _) = table_slice::<C>(sin, sin_layout)?;
        if (sin_rows, sin_half) != (rows, half) {
            return Err(candle_core::Error::ShapeMismatchBinaryOp {
                lhs: cos_layout.shape().clone(),
                rhs: sin_layout.shape().clone(),
                op: "tokenloom-rope (cos and sin)",
            });
        }
        let tables = RopeTables::from_strided(cos, sin, rows, half, row_stride, self.pair_layout)
            .map_err(wrap)?;
        let x = cpu_view::<T>(x, x_layout).map_err(wrap)?;
        let dims = x.shape().dims().to_vec();
        let mut out = try_filled(x.as_slice().len(), T::zero(), "rope output").map_err(wrap)?;
        let rotate = |positions: TokenPositions<'_>, out: &mut [T]| {
            tables.rotate_into(
                x,
                TensorViewMut::new(out, &dims)?,
                self.qk_layout,
                positions,
                self.direction,
            )
        };
        match &self.positions {
            Positions::Offset(offset) => {
                rotate(TokenPositions::Offset(*offset), &mut out).map_err(wrap)?;
            }
            Positions::Ids(ids) => rotate_with_ids(ids, |positions| rotate(positions, &mut out))?,
        }
        Ok((T::to_cpu_storage_owned(out), Shape::from(dims)))
    }
}

/// Lends the position ids (any of the three integer dtypes) as [`TokenPositions`].
fn rotate_with_ids(
    ids: &Tensor,
    mut f: impl FnMut(TokenPositions<'_>) -> Result<(), tokenloom_positions::PositionError>,
) -> candle_core::Result<()> {
    let lent = match ids.dtype() {
        DType::U32 => with_view(ids, |v: TensorView<'_, u32>| f(TokenPositions::Ids(v))),
        DType::I64 => with_view(ids, |v: TensorView<'_, i64>| f(TokenPositions::IdsI64(v))),
        DType::I32 => with_view(ids, |v: TensorView<'_, i32>| f(TokenPositions::IdsI32(v))),
        other => return Err(super::unsupported("position ids", "u32, i64 or i32", other)),
    };
    lent.map_err(wrap)?.map_err(wrap)
}

impl CustomOp3 for Rotate {
    fn name(&self) -> &'static str {
        "tokenloom-rope"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        x_layout: &Layout,
        cos: &CpuStorage,
        cos_layout: &Layout,
        sin: &CpuStorage,
        sin_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, cos, sin) = ((x, x_layout), (cos, cos_layout), (sin, sin_layout));
        match cos.0 {
            CpuStorage::F32(_) => for_float!(x.0, "x", T => self.run::<T, f32>(x, cos, sin)),
            CpuStorage::F64(_) => for_float!(x.0, "x", T => self.run::<T, f64>(x, cos, sin)),
            other => Err(super::unsupported(
                "cos",
                "f32 or f64",
                super::dtype_of(other),
            )),
        }
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _rotated: &Tensor,
        grad_rotated: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let transpose = Self {
            direction: Direction::Backward,
            ..self.clone()
        };
        let grad_x = grad_rotated
            .contiguous()?
            .apply_op3_no_bwd(cos, sin, &transpose)?;
        Ok((Some(grad_x), None, None))
    }
}

/// A rotary module in candle's style: cos/sin tables on a candle device and the layouts,
/// applied to q or k by [`forward`](Rotary::forward) through [`rope`] (with a backward).
#[derive(Clone, Debug)]
pub struct Rotary {
    cos: Tensor,
    sin: Tensor,
    pair_layout: RopeLayout,
    qk_layout: QkLayout,
}

impl Rotary {
    /// The module over the caller's `(max_positions, rotary_dim / 2)` tables.
    #[must_use]
    pub fn new(cos: Tensor, sin: Tensor, pair_layout: RopeLayout, qk_layout: QkLayout) -> Self {
        Self {
            cos,
            sin,
            pair_layout,
            qk_layout,
        }
    }

    /// The module over a tokenloom [`RopeCache`]'s tables (any scaling; `f64` angles),
    /// copied once onto `device` in the cache's precision, pairs laid out as the cache's
    /// config says.
    ///
    /// # Errors
    ///
    /// A candle error from creating the tensors. A cache whose attention factor is not 1
    /// (YaRN, LongRoPE) is fine: the factor is in the tables.
    pub fn from_cache<C: CacheFloat + WithDType>(
        cache: &RopeCache<C>,
        qk_layout: QkLayout,
        device: &Device,
    ) -> candle_core::Result<Self> {
        let table = |view: TensorView<'_, C>| {
            Tensor::from_slice(view.as_slice(), view.shape().dims(), device)
        };
        Ok(Self::new(
            table(cache.cos())?,
            table(cache.sin())?,
            cache.config().layout,
            qk_layout,
        ))
    }

    /// `x` rotated at `positions` (see [`rope`]).
    ///
    /// # Errors
    ///
    /// As [`rope`].
    pub fn forward(&self, x: &Tensor, positions: &RopePositions) -> candle_core::Result<Tensor> {
        rope(
            x,
            &self.cos,
            &self.sin,
            self.pair_layout,
            self.qk_layout,
            positions,
        )
    }

    /// The cos table, `(max_positions, rotary_dim / 2)`.
    #[must_use]
    pub fn cos(&self) -> &Tensor {
        &self.cos
    }

    /// The sin table, `(max_positions, rotary_dim / 2)`.
    #[must_use]
    pub fn sin(&self) -> &Tensor {
        &self.sin
    }
}
