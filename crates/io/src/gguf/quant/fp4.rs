//! The 4-bit float (E2M1) formats with power-of-two or E4M3 block scales: MXFP4 (OCP
//! microscaling, gpt-oss; blocks of 32 with an E8M0 scale) and NVFP4 (blocks of 64 in
//! four groups of 16, each with an unsigned E4M3 scale).
//!
//! Codes index [`KVALUES`], the E2M1 values doubled (ggml's `kvalues_mxfp4`); the scales
//! are decoded at half their value to match. Arithmetic as gguf-py's
//! `MXFP4.dequantize_blocks` / `NVFP4.dequantize_blocks`: one `f32` product of the decoded
//! scale and the code's value, so the results are equal bit for bit.

use super::legacy::nibbles;

/// ggml's `kvalues_mxfp4`: the E2M1 values times two, by 4-bit code.
const KVALUES: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// Half the value of an E8M0 scale (`2^(e − 127) / 2`), as ggml's
/// `ggml_e8m0_to_fp32_half`: the bit pattern `0x00200000 << e` for `e < 2` (subnormal),
/// `(e − 1) << 23` otherwise.
#[inline(always)]
fn e8m0_half(e: u8) -> f32 {
    let e = u32::from(e);
    f32::from_bits(if e < 2 {
        0x0020_0000 << e
    } else {
        (e - 1) << 23
    })
}

/// Half the value of an unsigned E4M3 scale (bias 7; bit 7 ignored), as gguf-py's
/// `NVFP4.ue4m3_to_fp32`: `man · 2⁻⁹` for exponent 0, `(1 + man/8) · 2^(exp − 7)`
/// otherwise, and 0 for the codes 0x00 and 0x7F. Every value is exact in `f32`.
#[inline(always)]
fn ue4m3_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = i32::from((x >> 3) & 0x0F);
    let man = f32::from(x & 0x07);
    let raw = if exp == 0 {
        man * (1.0 / 512.0)
    } else {
        (1.0 + man / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

/// `2^n` for `-7 ≤ n ≤ 8`, exactly.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(u32::try_from(127 + n).unwrap_or(127) << 23)
}

/// The 32 codes of 16 bytes, low nibbles first, each times `d`.
#[inline(always)]
fn decode_nibbles(d: f32, qs: &[u8], out: &mut [f32]) {
    for (o, code) in out.iter_mut().zip(nibbles(qs)) {
        *o = d * f32::from(KVALUES[usize::from(code & 0x0F)]);
    }
}

/// MXFP4: `e (E8M0) | qs[16]`; value `e8m0_half(e) · KVALUES[code]`, low nibbles first.
#[inline(always)]
pub(super) fn mxfp4(block: &[u8], out: &mut [f32]) {
    decode_nibbles(e8m0_half(block[0]), &block[1..17], out);
}

/// NVFP4: `d[4] (UE4M3) | qs[32]`; group `g` of 16 values is `ue4m3_half(d[g]) ·
/// KVALUES[code]` over `qs[8g ..][..8]`, low nibbles first.
#[inline(always)]
pub(super) fn nvfp4(block: &[u8], out: &mut [f32]) {
    let (scales, qs) = block.split_at(4);
    for ((group, &d), q) in out.chunks_exact_mut(16).zip(scales).zip(qs.chunks_exact(8)) {
        decode_nibbles(ue4m3_half(d), q, group);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_decode_as_the_reference_formulas() {
        // E8M0 127 is 1.0, so half of it 0.5; 128 is 2 → 1.0; 0 and 1 are subnormal.
        assert_eq!(e8m0_half(127), 0.5);
        assert_eq!(e8m0_half(128), 1.0);
        assert_eq!(e8m0_half(1), 2f32.powi(-127));
        assert_eq!(e8m0_half(0), 2f32.powi(-128));
        assert_eq!(e8m0_half(255), 2f32.powi(127));
        // UE4M3: 0x38 is exp 7, man 0 → 1.0, halved; 0x01 is the smallest subnormal.
        assert_eq!(ue4m3_half(0x38), 0.5);
        assert_eq!(ue4m3_half(0x01), 0.5 / 512.0);
        assert_eq!(ue4m3_half(0x7E), 0.5 * 448.0);
        assert_eq!(ue4m3_half(0x7F), 0.0);
        assert_eq!(ue4m3_half(0xB8), 0.5, "bit 7 is not part of the code");
    }
}
