//! The position kernels: cos/sin tables, RoPE on caller tables, the sinusoidal table,
//! q/k weight layout conversion.

use std::ffi::{CStr, c_char};

use tokenloom_positions::{
    CacheFloat, Direction, QkLayout, RopeConfig, RopeLayout, RopeTables, TokenPositions,
    convert_qk_layout_into, sinusoidal_into,
};
use tokenloom_tensor::Element;

use crate::error::{Failure, TokenloomStatus, run};
use crate::tensor::{
    Raw, TokenloomDtype, TokenloomTensor, check_disjoint, describe, describe_optional, with_float,
};

/// Which elements of a head pair up.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomRopeLayout {
    /// Pairs `(x[2i], x[2i+1])`: Meta, GGUF llama.
    Interleaved = 0,
    /// Pairs `(x[i], x[i + rotary_dim/2])`: HuggingFace.
    HalfSplit = 1,
}

/// How a q/k tensor is laid out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomQkLayout {
    /// `(batch, seq_len, n_heads, head_dim)`.
    BatchSeqHeads = 0,
    /// `(batch, n_heads, seq_len, head_dim)`.
    BatchHeadsSeq = 1,
}

/// Which map a rotation applies.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomDirection {
    /// `x ↦ s·R(θ)·x`.
    Forward = 0,
    /// `x ↦ R(−θ)·x / s`.
    Inverse = 1,
    /// The transpose `s·R(−θ)`: gradient of the output to gradient of the input.
    Backward = 2,
}

fn invalid(message: String) -> Failure {
    Failure::new(TokenloomStatus::InvalidArgument, message)
}

fn rope_layout(tag: i32) -> Result<RopeLayout, Failure> {
    match tag {
        0 => Ok(RopeLayout::Interleaved),
        1 => Ok(RopeLayout::HalfSplit),
        other => Err(invalid(format!(
            "rope layout tag {other} is not 0 (interleaved) or 1 (half-split)"
        ))),
    }
}

/// The cos/sin of RoPE without scaling (`inv_freq_i = theta^(−2i/rotary_dim)`, angles in
/// f64, rounded once) for positions `first_position ..` into `cos` and `sin`, both
/// `(rows, rotary_dim / 2)` of f32 or f64 (the same dtype).
///
/// # Safety
///
/// As `tokenloom_lookup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_rope_cos_sin(
    head_dim: usize,
    rotary_dim: usize,
    theta: f64,
    first_position: usize,
    cos: *const TokenloomTensor,
    sin: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let config =
            RopeConfig::new(head_dim, theta, RopeLayout::HalfSplit).with_rotary_dim(rotary_dim);
        write_cos_sin(&config, 1, first_position, cos, sin)
    })
}

/// The cos/sin of a HuggingFace `config.json` (any rope scaling: linear, dynamic, YaRN,
/// llama3, LongRoPE; attention factor applied) for positions `first_position ..` into
/// `cos` and `sin`, both `(rows, rotary_dim / 2)` of f32 or f64. `seq_len` is the
/// sequence length dynamic NTK and LongRoPE compute their frequencies for. The config is
/// read by tokenloom's model spec: its `model_type` (or `architectures`) must name an
/// architecture the spec knows, and the RoPE written is that of most layers (the first
/// full-attention layer's).
///
/// # Safety
///
/// As `tokenloom_lookup`; `config_json` is a NUL-terminated UTF-8 string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_rope_cos_sin_hf(
    config_json: *const c_char,
    seq_len: usize,
    first_position: usize,
    cos: *const TokenloomTensor,
    sin: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        if config_json.is_null() {
            return Err(Failure::new(
                TokenloomStatus::NullPointer,
                "config_json is null",
            ));
        }
        // SAFETY: non-null, and the caller's contract: a NUL-terminated string.
        let text = unsafe { CStr::from_ptr(config_json) }
            .to_str()
            .map_err(|e| invalid(format!("config_json is not UTF-8: {e}")))?;
        let spec = tokenloom_decoder_input::ModelSpec::from_hf_json(
            text,
            std::path::Path::new("config_json"),
        )
        .map_err(|e| Failure::new(TokenloomStatus::InvalidArgument, e.to_string()))?;
        let rope = spec.main_rope().ok_or_else(|| {
            Failure::new(
                TokenloomStatus::InvalidArgument,
                format!(
                    "config_json: {} has no rotary positions",
                    spec.architecture.name()
                ),
            )
        })?;
        write_cos_sin(rope, seq_len, first_position, cos, sin)
    })
}

fn write_cos_sin(
    config: &RopeConfig,
    seq_len: usize,
    first_position: usize,
    cos: *const TokenloomTensor,
    sin: *const TokenloomTensor,
) -> Result<(), Failure> {
    let (cos, sin) = (describe(cos, "cos")?, describe(sin, "sin")?);
    check_disjoint(&cos, &[&sin])?;
    // The documented dtypes, the ones tokenloom_rope rotates with: f16/bf16 tables were
    // filled although nothing of tokenloom's could use them.
    if !matches!(cos.dtype, TokenloomDtype::F32 | TokenloomDtype::F64) {
        return Err(Failure::new(
            TokenloomStatus::BadDtype,
            format!(
                "cos/sin of dtype {} (f32 or f64 are needed)",
                cos.dtype.name()
            ),
        ));
    }
    with_float!(cos, |T| {
        // SAFETY: the caller's contract and `check_disjoint`.
        let (c, s) = unsafe { (cos.view_mut::<T>()?, sin.view_mut::<T>()?) };
        Ok(config.cos_sin_into(seq_len, first_position, c, s)?)
    })
}

/// Rotates q/k `x` with the caller's `cos`/`sin` tables (`(max_positions, rotary_dim /
/// 2)`, f32 or f64, one value per pair; `attention_factor` is the factor already in them,
/// used by the inverse only, 1 usually). In place when `out` is null, else from `x` into
/// `out` (same shape, disjoint). Positions are `position_offset + index` per batch row,
/// or `position_ids` (u32, i32 or i64, `(batch, seq_len)`; a negative id is
/// `TOKENLOOM_STATUS_POSITION_OUT_OF_RANGE`) when it is not null. `x` is any float
/// dtype; half types are rotated in the tables' precision and rounded once.
///
/// # Safety
///
/// As `tokenloom_lookup`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature: one argument per setting
pub unsafe extern "C" fn tokenloom_rope(
    x: *const TokenloomTensor,
    out: *const TokenloomTensor,
    cos: *const TokenloomTensor,
    sin: *const TokenloomTensor,
    rope_layout_tag: i32,
    qk_layout_tag: i32,
    direction_tag: i32,
    attention_factor: f64,
    position_offset: usize,
    position_ids: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let layout = rope_layout(rope_layout_tag)?;
        let qk = match qk_layout_tag {
            0 => QkLayout::BatchSeqHeads,
            1 => QkLayout::BatchHeadsSeq,
            other => return Err(invalid(format!("q/k layout tag {other} is not 0 or 1"))),
        };
        let direction = match direction_tag {
            0 => TokenloomDirection::Forward,
            1 => TokenloomDirection::Inverse,
            2 => TokenloomDirection::Backward,
            other => return Err(invalid(format!("direction tag {other} is not 0, 1 or 2"))),
        };
        let x = describe(x, "x")?;
        let out = describe_optional(out, "out")?;
        let (cos, sin) = (describe(cos, "cos")?, describe(sin, "sin")?);
        let ids = describe_optional(position_ids, "position_ids")?;
        let written = out.unwrap_or(x);
        let mut inputs = vec![&cos, &sin];
        if out.is_some() {
            inputs.push(&x);
        }
        if let Some(ids) = &ids {
            inputs.push(ids);
        }
        check_disjoint(&written, &inputs)?;
        let call = Rotate {
            x,
            out,
            layout,
            qk,
            direction,
            attention_factor,
            position_offset,
            ids,
        };
        match cos.dtype {
            TokenloomDtype::F32 => call.run::<f32>(cos, sin),
            TokenloomDtype::F64 => call.run::<f64>(cos, sin),
            other => Err(Failure::new(
                TokenloomStatus::BadDtype,
                format!("cos/sin of dtype {} (f32 or f64 are needed)", other.name()),
            )),
        }
    })
}

/// The arguments of one [`tokenloom_rope`] call, checked.
struct Rotate {
    x: Raw,
    out: Option<Raw>,
    layout: RopeLayout,
    qk: QkLayout,
    direction: TokenloomDirection,
    attention_factor: f64,
    position_offset: usize,
    ids: Option<Raw>,
}

impl Rotate {
    fn run<C: CacheFloat + crate::tensor::Tagged>(
        &self,
        cos: Raw,
        sin: Raw,
    ) -> Result<(), Failure> {
        // SAFETY: the caller's contract; the tables and ids are only read.
        let (cos, sin) = unsafe { (cos.view::<C>()?, sin.view::<C>()?) };
        let tables =
            RopeTables::new(cos, sin, self.layout)?.with_attention_factor(self.attention_factor)?;
        let positions = match &self.ids {
            None => TokenPositions::Offset(self.position_offset),
            Some(ids) => match ids.dtype {
                // SAFETY: as above.
                TokenloomDtype::I64 => TokenPositions::IdsI64(unsafe { ids.view::<i64>()? }),
                // SAFETY: as above.
                TokenloomDtype::I32 => TokenPositions::IdsI32(unsafe { ids.view::<i32>()? }),
                // SAFETY: as above (another tag is refused by the view).
                _ => TokenPositions::Ids(unsafe { ids.view::<u32>()? }),
            },
        };
        with_float!(self.x, |T| self.rotate::<T, C>(&tables, positions))
    }

    fn rotate<T: Element + crate::tensor::Tagged, C: CacheFloat>(
        &self,
        tables: &RopeTables<'_, C>,
        positions: TokenPositions<'_>,
    ) -> Result<(), Failure> {
        use TokenloomDirection as D;
        let direction = match self.direction {
            D::Forward => Direction::Forward,
            D::Inverse => Direction::Inverse,
            D::Backward => Direction::Backward,
        };
        match &self.out {
            None => {
                // SAFETY: the caller's contract; `check_disjoint` kept x apart from the
                // tables and ids.
                let x = unsafe { self.x.view_mut::<T>()? };
                tables.rotate_in_place(x, self.qk, positions, direction)?;
            }
            Some(out) => {
                // SAFETY: the caller's contract; `check_disjoint` kept out apart from every
                // input.
                let (x, out) = unsafe { (self.x.view::<T>()?, out.view_mut::<T>()?) };
                tables.rotate_into(x, out, self.qk, positions, direction)?;
            }
        }
        Ok(())
    }
}

/// The Vaswani sinusoidal rows of positions `first_position ..` into `out`
/// `(rows, n_embd)` of any float dtype (sin at even columns, cos at odd, f64 angles).
///
/// # Safety
///
/// As `tokenloom_lookup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_sinusoidal(
    out: *const TokenloomTensor,
    base: f64,
    first_position: usize,
) -> TokenloomStatus {
    run(|| {
        let out = describe(out, "out")?;
        with_float!(out, |T| {
            // SAFETY: the caller's contract.
            let out = unsafe { out.view_mut::<T>()? };
            Ok(sinusoidal_into(out, base, first_position)?)
        })
    })
}

/// Permutes a q or k projection weight `(n_heads · head_dim, n_embd)` (or bias) from one
/// pair layout to the other (`TokenloomRopeLayout` tags), from `src` into `dst` (same
/// shape and dtype, disjoint).
///
/// # Safety
///
/// As `tokenloom_lookup`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_convert_qk_layout(
    src: *const TokenloomTensor,
    dst: *const TokenloomTensor,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    from_tag: i32,
    to_tag: i32,
) -> TokenloomStatus {
    run(|| {
        let (from, to) = (rope_layout(from_tag)?, rope_layout(to_tag)?);
        let (src, dst) = (describe(src, "src")?, describe(dst, "dst")?);
        check_disjoint(&dst, &[&src])?;
        with_float!(src, |T| {
            // SAFETY: the caller's contract and `check_disjoint`.
            let (s, d) = unsafe { (src.view::<T>()?, dst.view_mut::<T>()?) };
            Ok(convert_qk_layout_into(
                s,
                d,
                "the weight",
                n_heads,
                head_dim,
                rotary_dim,
                from,
                to,
            )?)
        })
    })
}
