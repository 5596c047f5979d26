//! [`Element`], the sealed float trait of tokenloom, and [`DType`], its runtime tag.

use std::fmt;

use half::{bf16, f16};
use num_traits::Float;

/// `serde::Serialize + serde::de::DeserializeOwned` with the `serde` feature (so every
/// [`Element`] serializes), nothing without it.
#[cfg(feature = "serde")]
pub trait MaybeSerde: serde::Serialize + serde::de::DeserializeOwned {}
#[cfg(feature = "serde")]
impl<T: serde::Serialize + serde::de::DeserializeOwned> MaybeSerde for T {}
/// `serde::Serialize + serde::de::DeserializeOwned` with the `serde` feature (so every
/// [`Element`] serializes), nothing without it.
#[cfg(not(feature = "serde"))]
pub trait MaybeSerde {}
#[cfg(not(feature = "serde"))]
impl<T> MaybeSerde for T {}

/// The runtime tag of an [`Element`] type, as stored in files and configs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum DType {
    /// `f32`, IEEE binary32.
    F32,
    /// `f64`, IEEE binary64.
    F64,
    /// [`half::f16`], IEEE binary16 (a storage type; computes in f32).
    F16,
    /// [`half::bf16`], bfloat16 (a storage type; computes in f32).
    BF16,
}

impl DType {
    /// Every dtype, in a fixed order.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

    /// The size of one element in bytes.
    #[must_use]
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::F16 | DType::BF16 => 2,
        }
    }

    /// The lowercase name used in files, configs and messages: `f32`, `f64`, `f16`, `bf16`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub(crate) mod private {
    use crate::matmul::GemmDims;

    /// Seals [`super::Element`] and carries the per-type GEMM hook, which only this crate
    /// can call.
    pub trait Sealed: Sized {
        /// `c = op(a) · op(b)` or `c += op(a) · op(b)`, row-major, as described by `dims`.
        /// The caller has checked every length. Fails only when the `f32` copies of a
        /// half-precision product cannot be allocated.
        fn gemm(
            dims: GemmDims,
            a: &[Self],
            b: &[Self],
            c: &mut [Self],
        ) -> Result<(), crate::TensorError>;
    }
}

/// A float element type of tokenloom tensors: `f32`, `f64`, [`half::f16`] or [`half::bf16`].
///
/// This trait is sealed: it can only be implemented by those four types. `f32` and `f64`
/// compute natively; `f16` and `bf16` are storage types whose arithmetic (matmul, RoPE,
/// gradient accumulation) runs in `f32` and rounds once at the end.
///
/// Conversions that can lose information are named as such: [`Element::from_f32_lossy`]
/// and [`Element::from_f64_lossy`] round to nearest-even, overflow to ±∞ and keep NaN, as
/// the `half` crate documents. Widening with [`Element::as_f32`] is exact for `f16`, `bf16`
/// and `f32`; [`Element::as_f64`] is exact for all four.
pub trait Element:
    Float + Default + fmt::Debug + fmt::Display + Send + Sync + MaybeSerde + 'static + private::Sealed
{
    /// The runtime tag of this type.
    const DTYPE: DType;

    /// Widens (or, for `f64`, rounds) to `f32`.
    fn as_f32(self) -> f32;
    /// Widens to `f64`, exactly.
    fn as_f64(self) -> f64;
    /// Rounds an `f32` to this type (exact for `f32` and `f64`).
    fn from_f32_lossy(value: f32) -> Self;
    /// Rounds an `f64` to this type (exact for `f64`).
    fn from_f64_lossy(value: f64) -> Self;
    /// The raw bit pattern, zero-extended (NaN payloads included).
    fn to_bits64(self) -> u64;
    /// The value with the raw bit pattern `bits` (its low `DTYPE.size_in_bytes()` bytes).
    fn from_bits64(bits: u64) -> Self;
}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn as_f32(self) -> f32 {
        self
    }
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn from_f32_lossy(value: f32) -> Self {
        value
    }
    // The rounding is this function's job.
    fn from_f64_lossy(value: f64) -> Self {
        value as f32
    }
    fn to_bits64(self) -> u64 {
        u64::from(self.to_bits())
    }
    // Documented: the low 4 bytes.
    fn from_bits64(bits: u64) -> Self {
        f32::from_bits(bits as u32)
    }
}

impl Element for f64 {
    const DTYPE: DType = DType::F64;
    // The rounding is this function's job.
    fn as_f32(self) -> f32 {
        self as f32
    }
    fn as_f64(self) -> f64 {
        self
    }
    fn from_f32_lossy(value: f32) -> Self {
        f64::from(value)
    }
    fn from_f64_lossy(value: f64) -> Self {
        value
    }
    fn to_bits64(self) -> u64 {
        self.to_bits()
    }
    fn from_bits64(bits: u64) -> Self {
        f64::from_bits(bits)
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::F16;
    fn as_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn as_f64(self) -> f64 {
        f16::to_f64(self)
    }
    fn from_f32_lossy(value: f32) -> Self {
        f16::from_f32(value)
    }
    fn from_f64_lossy(value: f64) -> Self {
        f16::from_f64(value)
    }
    fn to_bits64(self) -> u64 {
        u64::from(self.to_bits())
    }
    // Documented: the low 2 bytes.
    fn from_bits64(bits: u64) -> Self {
        f16::from_bits(bits as u16)
    }
}

impl Element for bf16 {
    const DTYPE: DType = DType::BF16;
    /// Exact widening, as `half::bf16::to_f32` (a NaN comes back quiet), branch-free.
    #[inline]
    fn as_f32(self) -> f32 {
        let bits = u32::from(self.to_bits());
        let quiet = if (bits & 0x7FFF) > 0x7F80 { 0x0040 } else { 0 };
        f32::from_bits((bits | quiet) << 16)
    }
    fn as_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    /// Round to nearest, ties to even, as `half::bf16::from_f32` (NaN stays a quiet NaN
    /// with the same sign and top payload bits), but branch-free so that rotation loops
    /// over bf16 activations vectorize.
    #[inline]
    fn from_f32_lossy(value: f32) -> Self {
        let bits = value.to_bits();
        let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
        let quiet_nan = (bits >> 16) | 0x40;
        let is_nan = (bits & 0x7FFF_FFFF) > 0x7F80_0000;
        // both candidates fit in 16 bits
        bf16::from_bits(if is_nan { quiet_nan } else { rounded } as u16)
    }
    fn from_f64_lossy(value: f64) -> Self {
        bf16::from_f64(value)
    }
    fn to_bits64(self) -> u64 {
        u64::from(self.to_bits())
    }
    // Documented: the low 2 bytes.
    fn from_bits64(bits: u64) -> Self {
        bf16::from_bits(bits as u16)
    }
}

/// `src` as a slice of `T` when `G` and `T` are the same type, `None` otherwise: for a
/// generic kernel that takes a faster path when its input and output types agree (a
/// gradient row copied into a gradient of its own dtype).
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{as_same_type, bf16};
///
/// let row = [1.0f32, -0.0, 2.5];
/// assert_eq!(as_same_type::<f32, f32>(&row), Some(&row[..]));
/// assert_eq!(as_same_type::<f32, bf16>(&row), None);
/// ```
pub fn as_same_type<G: Element, T: Element>(src: &[G]) -> Option<&[T]> {
    if std::any::TypeId::of::<G>() != std::any::TypeId::of::<T>() {
        return None;
    }
    // SAFETY: `G` and `T` are the same type (equal `TypeId`s), so this is `src` itself:
    // the same pointer, length, lifetime and borrow.
    #[allow(unsafe_code)]
    Some(unsafe { std::slice::from_raw_parts(src.as_ptr().cast::<T>(), src.len()) })
}

/// [`as_same_type`] for a mutable slice.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{as_same_type_mut, f16};
///
/// let mut grad = [0.0f64; 3];
/// as_same_type_mut::<f64, f64>(&mut grad).unwrap()[1] = 4.0;
/// assert_eq!(grad, [0.0, 4.0, 0.0]);
/// assert!(as_same_type_mut::<f64, f16>(&mut grad).is_none());
/// ```
pub fn as_same_type_mut<G: Element, T: Element>(dst: &mut [G]) -> Option<&mut [T]> {
    if std::any::TypeId::of::<G>() != std::any::TypeId::of::<T>() {
        return None;
    }
    // SAFETY: as in `as_same_type`; the unique borrow of `dst` moves to the result.
    #[allow(unsafe_code)]
    Some(unsafe { std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<T>(), dst.len()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The same-type views are the slice itself for equal types and `None` for every
    /// other pair (even of equal size: `f16` and `bf16`).
    #[test]
    fn same_type_views_only_for_the_same_type() {
        let mut halves = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let view = as_same_type::<f16, f16>(&halves).map(<[f16]>::as_ptr);
        assert_eq!(view, Some(halves.as_ptr()));
        assert!(as_same_type::<f16, bf16>(&halves).is_none());
        assert!(as_same_type::<f16, f32>(&halves).is_none());
        assert!(as_same_type_mut::<f16, bf16>(&mut halves).is_none());
        as_same_type_mut::<f16, f16>(&mut halves).unwrap()[0] = f16::from_f32(3.0);
        assert_eq!(halves[0].to_f32(), 3.0);
        assert!(as_same_type::<f32, f64>(&[1.0f32]).is_none());
    }

    #[test]
    fn dtype_tags_match_types() {
        assert_eq!(<f32 as Element>::DTYPE.size_in_bytes(), 4);
        assert_eq!(<bf16 as Element>::DTYPE.name(), "bf16");
        assert_eq!(<f16 as Element>::DTYPE.to_string(), "f16");
        assert_eq!(<f64 as Element>::DTYPE, DType::F64);
    }

    /// The branch-free bf16 conversions agree with `half` bit for bit, on a dense sample
    /// of all f32 bit patterns and on every rounding boundary.
    #[test]
    fn bf16_conversions_match_half() {
        let check = |bits: u32| {
            let x = f32::from_bits(bits);
            let ours = <bf16 as Element>::from_f32_lossy(x).to_bits();
            assert_eq!(ours, bf16::from_f32(x).to_bits(), "f32 bits {bits:#010x}");
            let b = bf16::from_bits((bits >> 16) as u16);
            assert_eq!(Element::as_f32(b).to_bits(), b.to_f32().to_bits());
        };
        (0..=u32::MAX).step_by(9973).for_each(check);
        for high in [
            0u32, 1, 0x3F80, 0x7F7F, 0x7F80, 0x7FC0, 0x8000, 0xFF7F, 0xFF80, 0xFFFF,
        ] {
            for low in [0u32, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF] {
                check((high << 16) | low);
            }
        }
    }

    #[test]
    fn lossy_conversions_round_to_nearest() {
        // 1 + 2^-11 lies exactly between two f16 values: ties go to even (1.0).
        let tie = 1.0 + 2f64.powi(-11);
        assert_eq!(<f16 as Element>::from_f64_lossy(tie).as_f64(), 1.0);
        assert!(<f16 as Element>::from_f32_lossy(1e6).is_infinite());
        assert!(<bf16 as Element>::from_f32_lossy(f32::NAN).is_nan());
        assert_eq!(<f32 as Element>::from_f64_lossy(0.1), 0.1f32);
    }
}
