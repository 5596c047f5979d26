//! The non-linear 4-bit formats: IQ4_NL (blocks of 32) and IQ4_XS (super-blocks of 256).
//! Codes index the fixed table [`KVALUES`]; arithmetic as gguf-py's `dequantize_blocks`.

use super::legacy::{f16_at, nibbles};

/// ggml's `kvalues_iq4nl`.
const KVALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// IQ4_NL: `d | qs[16]`; value `d · KVALUES[code]`, low nibbles first.
#[inline(always)]
pub(super) fn iq4_nl(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..18];
    for (o, code) in out.iter_mut().zip(nibbles(qs)) {
        *o = d * f32::from(KVALUES[usize::from(code & 0x0F)]);
    }
}

/// IQ4_XS: `d | scales_h (u16) | scales_l[4] | qs[128]`. Sub-block `j` of 32 has the
/// 6-bit scale `(nibble j of scales_l) | (bits 2j of scales_h) << 4`, minus 32, and the
/// codes of `qs[16j ..][..16]` (low nibbles, then high).
#[inline(always)]
pub(super) fn iq4_xs(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let scales_h = u16::from_le_bytes([block[2], block[3]]);
    let (scales_l, qs) = (&block[4..8], &block[8..136]);
    for (j, sub) in out.chunks_exact_mut(32).enumerate() {
        let low = (scales_l[j / 2] >> (4 * (j % 2))) & 0x0F;
        let high = u8::try_from((scales_h >> (2 * j)) & 0x03).unwrap_or(0);
        let scale = i8::try_from(low | (high << 4)).unwrap_or(0) - 32;
        let dl = d * f32::from(scale);
        let bytes = &qs[16 * j..16 * j + 16];
        for (o, code) in sub.iter_mut().zip(nibbles(bytes)) {
            *o = dl * f32::from(KVALUES[usize::from(code & 0x0F)]);
        }
    }
}
