//! The legacy block formats of 32 values: Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
//!
//! Each decoder is the arithmetic of gguf-py's `dequantize_blocks` (which matches
//! ggml's `dequantize_row_*`), in the same `f32` operations in the same order, so the
//! results are equal bit for bit: a scale `d` (and min `m`) widened exactly from `f16`,
//! `d · q` rounded once, `+ m` rounded once.

use half::f16;

/// The f16 at `bytes[at..at + 2]`, widened exactly.
#[inline(always)]
pub(super) fn f16_at(bytes: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32()
}

/// The `2n` 4-bit codes of the first `n ≤ 16` bytes of `qs`: the `n` low nibbles first,
/// then the `n` high nibbles (the rest of the array is zero). An array, not a chained
/// iterator: the decoders that zip over it vectorize (a `chain` kept them element by
/// element, 2.5× slower).
#[inline(always)]
pub(super) fn nibbles(qs: &[u8]) -> [u8; 32] {
    let mut codes = [0u8; 32];
    let n = qs.len().min(16);
    let (low, high) = codes.split_at_mut(n);
    for ((l, h), &b) in low.iter_mut().zip(high.iter_mut()).zip(&qs[..n]) {
        *l = b & 0x0F;
        *h = b >> 4;
    }
    codes
}

/// Q4_0: `d · (q − 8)`; 2 bytes of scale, 16 of nibbles.
#[inline(always)]
pub(super) fn q4_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (o, q) in out.iter_mut().zip(nibbles(&block[2..18])) {
        *o = d * f32::from(i8::try_from(q).unwrap_or(0) - 8);
    }
}

/// Q4_1: `d · q + m`; scale, min, 16 bytes of nibbles.
#[inline(always)]
pub(super) fn q4_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    for (o, q) in out.iter_mut().zip(nibbles(&block[4..20])) {
        *o = d * f32::from(q) + m;
    }
}

/// The fifth bits of a Q5 block: bit `i` of the little-endian `u32` belongs to value `i`.
#[inline(always)]
fn high_bits(qh: &[u8]) -> u32 {
    u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]])
}

/// Q5_0: `d · (q − 16)`; scale, 4 bytes of high bits, 16 of nibbles.
#[inline(always)]
pub(super) fn q5_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qh = high_bits(&block[2..6]);
    for (i, (o, low)) in out.iter_mut().zip(nibbles(&block[6..22])).enumerate() {
        let q = low | (u8::from((qh >> i) & 1 == 1) << 4);
        *o = d * f32::from(i8::try_from(q).unwrap_or(0) - 16);
    }
}

/// Q5_1: `d · q + m`; scale, min, 4 bytes of high bits, 16 of nibbles.
#[inline(always)]
pub(super) fn q5_1(block: &[u8], out: &mut [f32]) {
    let (d, m) = (f16_at(block, 0), f16_at(block, 2));
    let qh = high_bits(&block[4..8]);
    for (i, (o, low)) in out.iter_mut().zip(nibbles(&block[8..24])).enumerate() {
        let q = low | (u8::from((qh >> i) & 1 == 1) << 4);
        *o = d * f32::from(q) + m;
    }
}

/// Q8_0: `q · d`; scale, 32 `i8`.
#[inline(always)]
pub(super) fn q8_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (o, &q) in out.iter_mut().zip(&block[2..34]) {
        *o = f32::from(i8::from_le_bytes([q])) * d;
    }
}

/// Quantises values to Q8_0 as ggml's reference `quantize_row_q8_0`: per block of 32,
/// `d = max|x| / 127` (stored as f16), `q = round(x / d)`. `values.len()` must be a
/// multiple of 32 (a shorter tail is dropped). For writing test files.
#[must_use]
#[cfg(feature = "testing")]
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / 32 * 34);
    for block in values.chunks_exact(32) {
        let amax = block.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
        out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        // |x·inv| ≤ 127 by construction
        out.extend(
            block
                .iter()
                .map(|&x| ((x * inv).round() as i8).to_le_bytes()[0]),
        );
    }
    out
}
