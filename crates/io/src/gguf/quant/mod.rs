//! Block-quantized GGUF formats: decoding whole blocks, single rows, and dot products
//! straight from the blocks.
//!
//! One codec module per family: `legacy` (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0), `k_quants`
//! (Q2_K … Q6_K), `iq4` (IQ4_NL, IQ4_XS), `ternary` (TQ2_0, TQ1_0), `fp4` (MXFP4, NVFP4) and `iq_grid` (IQ1_S, IQ1_M, IQ2_XXS,
//! IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, with the codebooks of `grids`). Every decoder is bit-exact against gguf-py's
//! `gguf.quants.dequantize` (`tests/data/quant_golden.gguf`, written by gguf-py).
//!
//! Non-finite scales are decoded as IEEE arithmetic makes them: a NaN scale makes its
//! block's values NaN, an infinite one makes them infinite (or NaN where the code is 0),
//! exactly as ggml and gguf-py do; callers that must not see them check with
//! `f32::is_finite`.

mod fp4;
mod grids;
mod iq4;
mod iq_grid;
mod k_quants;
mod kernels;
mod legacy;
mod ternary;

#[cfg(feature = "testing")]
pub use legacy::quantize_q8_0;

use tokenloom_tensor::{Element, try_filled};

use super::ggml_type::GgmlType;
use crate::error::IoError;

use kernels::{DecodeRow, DotRow, Format, format};

/// The one list of block formats: each line makes the format's type (its block size from
/// [`GgmlType::block_layout`], its decoder) and its entry in [`BLOCK_FORMATS`] and
/// [`BlockCodec::of`].
macro_rules! formats {
    ($($name:ident => $decode:path;)*) => {
        $(format!($name, GgmlType::$name, $decode);)*

        /// Every block-quantized type tokenloom decodes, in the order of the list above.
        pub(crate) const BLOCK_FORMATS: &[GgmlType] = &[$(GgmlType::$name),*];

        /// The block size, bytes per block and kernels of a listed format.
        fn kernels_of(qtype: GgmlType) -> Option<(usize, usize, Kernels)> {
            Some(match qtype {
                $(GgmlType::$name => Kernels::of::<$name>(),)*
                _ => return None,
            })
        }
    };
}

formats! {
    Q4_0 => legacy::q4_0;
    Q4_1 => legacy::q4_1;
    Q5_0 => legacy::q5_0;
    Q5_1 => legacy::q5_1;
    Q8_0 => legacy::q8_0;
    Q2K => k_quants::q2_k;
    Q3K => k_quants::q3_k;
    Q4K => k_quants::q4_k;
    Q5K => k_quants::q5_k;
    Q6K => k_quants::q6_k;
    IQ4NL => iq4::iq4_nl;
    IQ4XS => iq4::iq4_xs;
    TQ2_0 => ternary::tq2_0;
    TQ1_0 => ternary::tq1_0;
    MXFP4 => fp4::mxfp4;
    NVFP4 => fp4::nvfp4;
    IQ2XXS => iq_grid::iq2_xxs;
    IQ2XS => iq_grid::iq2_xs;
    IQ2S => iq_grid::iq2_s;
    IQ3XXS => iq_grid::iq3_xxs;
    IQ3S => iq_grid::iq3_s;
    IQ1S => iq_grid::iq1_s;
    IQ1M => iq_grid::iq1_m;
}

/// The row kernels of one format (see [`kernels`]).
#[derive(Clone, Copy)]
struct Kernels {
    decode_row: DecodeRow,
    dot_row: DotRow,
    #[cfg(test)]
    decode_portable: DecodeRow,
    #[cfg(test)]
    dot_portable: DotRow,
}

impl Kernels {
    fn of<F: Format>() -> (usize, usize, Self) {
        (
            F::BLOCK_ELEMS,
            F::BLOCK_BYTES,
            Self {
                decode_row: kernels::decode_row::<F>,
                dot_row: kernels::dot_row::<F>,
                #[cfg(test)]
                decode_portable: kernels::decode_portable::<F>,
                #[cfg(test)]
                dot_portable: kernels::dot_portable::<F>,
            },
        )
    }
}

/// A quantized format: values per block, bytes per block, and its row kernels.
#[derive(Clone, Copy)]
pub struct BlockCodec {
    qtype: GgmlType,
    block_elems: usize,
    block_bytes: usize,
    kernels: Kernels,
}

impl std::fmt::Debug for BlockCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCodec")
            .field("qtype", &self.qtype)
            .field("block_elems", &self.block_elems)
            .field("block_bytes", &self.block_bytes)
            .finish_non_exhaustive()
    }
}

/// The most values a block holds (a K-quant super-block).
const MAX_BLOCK: usize = 256;

/// Values decoded per pass of [`BlockCodec::dequantize_into`] (a whole number of blocks of
/// every format).
const STAGING: usize = 1024;

impl BlockCodec {
    /// Every block-quantized type tokenloom decodes (each has a codec from
    /// [`BlockCodec::of`]).
    #[must_use]
    pub fn formats() -> &'static [GgmlType] {
        BLOCK_FORMATS
    }

    /// The codec of a block-quantized type, or `None` (plain floats, unsupported types).
    #[must_use]
    pub fn of(qtype: GgmlType) -> Option<Self> {
        let (block_elems, block_bytes, kernels) = kernels_of(qtype)?;
        Some(Self {
            qtype,
            block_elems,
            block_bytes,
            kernels,
        })
    }

    /// The type.
    #[must_use]
    pub fn qtype(&self) -> GgmlType {
        self.qtype
    }

    /// Values per block.
    #[must_use]
    pub fn block_elems(&self) -> usize {
        self.block_elems
    }

    /// Bytes per block.
    #[must_use]
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// The bytes that hold `n` values.
    ///
    /// # Errors
    ///
    /// [`IoError::QuantizedLength`] when `n` is not a whole number of blocks.
    pub fn bytes_for(&self, n: usize) -> Result<usize, IoError> {
        if n.is_multiple_of(self.block_elems) {
            Ok(n / self.block_elems * self.block_bytes)
        } else {
            Err(IoError::QuantizedLength {
                qtype: self.qtype.name(),
                values: n,
                block_elems: self.block_elems,
            })
        }
    }

    /// Checks that `bytes` are whole blocks of exactly `values` values.
    fn check(&self, bytes: &[u8], values: usize) -> Result<(), IoError> {
        let needed = self.bytes_for(values)?;
        if bytes.len() == needed {
            Ok(())
        } else {
            Err(IoError::QuantizedData {
                qtype: self.qtype.name(),
                bytes: bytes.len(),
                expected: needed,
                values,
            })
        }
    }

    /// Decodes `bytes` into `out`, rounding each `f32` value once to `T`.
    ///
    /// # Errors
    ///
    /// [`IoError::QuantizedLength`] when `out.len()` is not a whole number of blocks and
    /// [`IoError::QuantizedData`] when `bytes` does not hold exactly those blocks. On
    /// error `out` is unchanged.
    pub fn dequantize_into<T: Element>(&self, bytes: &[u8], out: &mut [T]) -> Result<(), IoError> {
        self.check(bytes, out.len())?;
        // Decoded a few blocks at a time into a staging buffer, then rounded to `T`.
        let mut buffer = [0.0f32; STAGING];
        let blocks_per_pass = STAGING / self.block_elems;
        for (blocks, dst) in bytes
            .chunks(blocks_per_pass * self.block_bytes)
            .zip(out.chunks_mut(blocks_per_pass * self.block_elems))
        {
            let values = &mut buffer[..dst.len()];
            (self.kernels.decode_row)(blocks, values);
            for (o, &v) in dst.iter_mut().zip(values.iter()) {
                *o = T::from_f32_lossy(v);
            }
        }
        Ok(())
    }

    /// Decodes whole blocks straight into an `f32` buffer of their values (no staging
    /// buffer, no conversion): the hot path of rows read for logits.
    ///
    /// # Panics
    ///
    /// When `out` does not hold exactly the values of `bytes` (callers check first).
    pub(crate) fn decode_f32_into(&self, bytes: &[u8], out: &mut [f32]) {
        assert_eq!(
            bytes.len() / self.block_bytes * self.block_elems,
            out.len(),
            "decode_f32_into: {} bytes of {} for {} values",
            bytes.len(),
            self.qtype.name(),
            out.len()
        );
        (self.kernels.decode_row)(bytes, out);
    }

    /// `out[i] = a[i] · row` for the `out.len()` rows of `a` (each `cols` long) and the
    /// row held in `bytes`, decoded once into `scratch` (`cols` values); each product
    /// summed as [`tokenloom_tensor::dot`] sums it.
    ///
    /// # Panics
    ///
    /// When the lengths disagree (callers check first).
    pub(crate) fn dot_rows_f32(
        &self,
        bytes: &[u8],
        a: &[f32],
        scratch: &mut [f32],
        out: &mut [f32],
    ) {
        assert!(
            bytes.len() / self.block_bytes * self.block_elems == scratch.len()
                && a.len() == out.len() * scratch.len(),
            "dot_rows_f32: {} bytes, a {}, scratch {}, out {}",
            bytes.len(),
            a.len(),
            scratch.len(),
            out.len()
        );
        (self.kernels.dot_row)(bytes, a, scratch, out);
    }

    /// Decodes `bytes` holding `values` values into a fresh vector.
    ///
    /// # Errors
    ///
    /// As [`dequantize_into`](BlockCodec::dequantize_into), and allocation errors.
    pub fn dequantize<T: Element>(&self, bytes: &[u8], values: usize) -> Result<Vec<T>, IoError> {
        self.check(bytes, values)?;
        let mut out = try_filled(values, T::zero(), "dequantize")?;
        self.dequantize_into(bytes, &mut out)?;
        Ok(out)
    }

    /// `Σ x[i] · row[i]` for the row held in `bytes`, decoded block by block and never
    /// materialized: the products summed in `f32` exactly as [`tokenloom_tensor::dot`]
    /// sums them (16 partial sums folded in order), so the result has the bits of
    /// `dot(x, dequantized row)` — and of the dense logits of the dequantized table.
    ///
    /// # Errors
    ///
    /// As [`dequantize_into`](BlockCodec::dequantize_into), for `x.len()` values.
    pub fn dot(&self, bytes: &[u8], x: &[f32]) -> Result<f32, IoError> {
        self.check(bytes, x.len())?;
        let mut buffer = [0.0f32; MAX_BLOCK];
        let values = &mut buffer[..self.block_elems];
        let mut partial = [0.0f32; 16];
        for (block, xs) in bytes
            .chunks_exact(self.block_bytes)
            .zip(x.chunks_exact(self.block_elems))
        {
            (self.kernels.decode_row)(block, values);
            for (vs, xs) in values.chunks_exact(16).zip(xs.chunks_exact(16)) {
                for ((p, &v), &xv) in partial.iter_mut().zip(vs).zip(xs) {
                    *p += v * xv;
                }
            }
        }
        Ok(partial.iter().fold(0.0, |sum, &p| sum + p))
    }
}

/// Decodes a block-quantized buffer of `values` values into `T`.
///
/// # Errors
///
/// [`IoError::UnsupportedDType`] for a type without a codec, and the errors of
/// [`BlockCodec::dequantize`].
pub fn dequantize<T: Element>(
    qtype: GgmlType,
    bytes: &[u8],
    values: usize,
    name: &str,
) -> Result<Vec<T>, IoError> {
    BlockCodec::of(qtype)
        .ok_or_else(|| IoError::UnsupportedDType {
            name: name.to_owned(),
            dtype: qtype.name(),
        })?
        .dequantize(bytes, values)
}

/// Dequantises Q8_0 blocks (f16 scale `d`, then 32 `i8`): `f32(q) · f32(d)` in `f32`,
/// rounded once to `T`. `bytes` is a whole number of 34-byte blocks.
///
/// # Errors
///
/// [`IoError::QuantizedData`] when `bytes` is not whole blocks, and allocation errors.
pub fn dequantize_q8_0<T: Element>(bytes: &[u8], name: &str) -> Result<Vec<T>, IoError> {
    dequantize(GgmlType::Q8_0, bytes, bytes.len() / 34 * 32, name)
}
