//! 8-bit float tensors of safetensors files: `F8_E4M3` (PyTorch's `float8_e4m3fn`),
//! `F8_E5M2` (`float8_e5m2`) and `F8_E8M0` (`float8_e8m0fnu`, the power-of-two scales of
//! the microscaling formats), converted exactly as PyTorch's `.float()` converts them
//! (every value is an `f32`), and block-scaled FP8 weights (DeepSeek-V3 and the
//! checkpoints made like it: a `weight` in `F8_E4M3` and its `weight_scale_inv` of one
//! `f32` scale per 128×128 block) dequantized as their reference code does,
//! `f32(weight) · scale` rounded once to the output type.

use tokenloom_tensor::{Element, Tensor, try_filled};

use crate::error::IoError;
use crate::safetensors_file::SafetensorsFile;

/// An 8-bit float storage type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fp8 {
    /// 4 exponent bits (bias 7), 3 mantissa bits, no infinities; `S1111111` is NaN.
    E4M3,
    /// 5 exponent bits (bias 15), 2 mantissa bits: the top byte of an IEEE `f16`.
    E5M2,
    /// 8 exponent bits (bias 127), no sign, no mantissa; `0xFF` is NaN.
    E8M0,
}

impl Fp8 {
    /// The type of a safetensors dtype name.
    pub(crate) fn of(dtype: &str) -> Option<Self> {
        match dtype {
            "F8_E4M3" => Some(Self::E4M3),
            "F8_E5M2" => Some(Self::E5M2),
            "F8_E8M0" => Some(Self::E8M0),
            _ => None,
        }
    }

    /// The value of one byte.
    pub(crate) fn to_f32(self, bits: u8) -> f32 {
        match self {
            Self::E4M3 => e4m3fn_to_f32(bits),
            Self::E5M2 => half::f16::from_bits(u16::from(bits) << 8).to_f32(),
            Self::E8M0 => e8m0_to_f32(bits),
        }
    }
}

fn e4m3fn_to_f32(bits: u8) -> f32 {
    let sign = if bits & 0x80 == 0 { 1.0 } else { -1.0 };
    let (exp, man) = (u32::from((bits >> 3) & 0x0F), u32::from(bits & 0x07));
    let magnitude = match (exp, man) {
        (15, 7) => f32::NAN,
        // Subnormal: man · 2⁻⁹ (exact).
        (0, _) => f32::from(bits & 0x07) / 512.0,
        // (1 + man/8) · 2^(exp − 7): f32 exponent exp + 120, mantissa man << 20.
        _ => f32::from_bits(((exp + 120) << 23) | (man << 20)),
    };
    sign * magnitude
}

fn e8m0_to_f32(bits: u8) -> f32 {
    match bits {
        0xFF => f32::NAN,
        // 2⁻¹²⁷ is an f32 subnormal.
        0 => f32::from_bits(0x0040_0000),
        e => f32::from_bits(u32::from(e) << 23),
    }
}

/// Decodes FP8 bytes into `T` through their exact `f32` values (one rounding to `T`, as
/// PyTorch's `.to(dtype)` of an FP8 tensor).
pub(crate) fn decode<T: Element>(format: Fp8, bytes: &[u8]) -> Result<Vec<T>, IoError> {
    let mut out = try_filled(bytes.len(), T::zero(), "FP8 tensor")?;
    for (o, &b) in out.iter_mut().zip(bytes) {
        *o = T::from_f32_lossy(format.to_f32(b));
    }
    Ok(out)
}

/// The names of the scales a block-scaled weight `name` can have beside it: DeepSeek's
/// `…_scale_inv` (multiplied) and compressed-tensors' `…_scale`.
pub(crate) fn scale_names(name: &str) -> [String; 2] {
    [format!("{name}_scale_inv"), format!("{name}_scale")]
}

impl SafetensorsFile {
    /// Loads a block-scaled FP8 weight `(rows, cols)` (`F8_E4M3` or `F8_E5M2`) with its
    /// scales `{name}_scale_inv` of shape `(⌈rows/block[0]⌉, ⌈cols/block[1]⌉)` (any float
    /// dtype of the file): entry `(i, j)` is `f32(weight[i, j]) ·
    /// scale[i / block[0], j / block[1]]`, computed in `f32` and rounded once to `T`, as
    /// DeepSeek-V3's `weight_dequant` and transformers' FP8 dequantization compute it.
    /// `block` is the checkpoint's `weight_block_size` (`[128, 128]` for DeepSeek-V3):
    /// given, never guessed.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`] for a missing weight or scale tensor,
    /// [`IoError::UnsupportedDType`] for a weight that is not FP8 or scales that are not
    /// floats, [`IoError::Rank`] / [`IoError::ShapeMismatch`] for shapes that do not tile,
    /// [`IoError::BlockSize`] for a zero block size, and allocation errors.
    pub fn load_block_scaled<T: Element>(
        &self,
        name: &str,
        block: [usize; 2],
    ) -> Result<Tensor<T>, IoError> {
        self.load_fp8_matrix(name, block)?.to_dense()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e4m3fn_has_the_reference_extremes() {
        assert_eq!(e4m3fn_to_f32(0x7E), 448.0);
        assert_eq!(e4m3fn_to_f32(0xFE), -448.0);
        assert_eq!(e4m3fn_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(e4m3fn_to_f32(0x08), 2f32.powi(-6));
        assert_eq!(e4m3fn_to_f32(0x80).to_bits(), (-0.0f32).to_bits());
        assert!(e4m3fn_to_f32(0x7F).is_nan() && e4m3fn_to_f32(0xFF).is_nan());
        assert_eq!(Fp8::E5M2.to_f32(0x7C), f32::INFINITY);
        assert_eq!(e8m0_to_f32(127), 1.0);
        assert_eq!(e8m0_to_f32(0), 2f32.powi(-127));
        assert!(e8m0_to_f32(255).is_nan());
    }
}
