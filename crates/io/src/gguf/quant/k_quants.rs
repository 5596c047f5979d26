//! The K-quant super-blocks of 256 values: Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
//!
//! Each decoder follows gguf-py's `dequantize_blocks` (equal to ggml's
//! `dequantize_row_*_K`): the same packed-bit layout, and the same `f32` operations in the
//! same order (`d · sc` rounded, times `q`, minus `dmin · m`), so results are equal bit for
//! bit. The layouts are spelled out per format below.

use super::legacy::f16_at;

/// Q2_K: `scales[16] | qs[64] | d | dmin`. Value `v = 128·half + 32·shift + l` takes bits
/// `2·shift` of `qs[32·half + l]`; its group of 16 has scale `d · (sc & 15)` and min
/// `dmin · (sc >> 4)`.
#[inline(always)]
pub(super) fn q2_k(block: &[u8], out: &mut [f32]) {
    let (scales, qs) = (&block[..16], &block[16..80]);
    let (d, dmin) = (f16_at(block, 80), f16_at(block, 82));
    for (group, (o, &sc)) in out.chunks_exact_mut(16).zip(scales).enumerate() {
        // Group `group` holds v = 16·group ..: half = group / 8, shift = (group / 2) % 4,
        // l from 16·(group % 2).
        let (half, shift, first) = (group / 8, 2 * ((group / 2) % 4), 16 * (group % 2));
        let dl = d * f32::from(sc & 0x0F);
        let ml = dmin * f32::from(sc >> 4);
        let q = &qs[32 * half + first..32 * half + first + 16];
        for (o, &b) in o.iter_mut().zip(q) {
            *o = dl * f32::from((b >> shift) & 3) - ml;
        }
    }
}

/// The 16 6-bit scales of Q3_K, packed in 12 bytes (low nibbles in bytes 0–7, high pairs
/// in bytes 8–11), each minus 32.
fn q3_k_scales(packed: &[u8]) -> [f32; 16] {
    let mut scales = [0.0f32; 16];
    for (j, s) in scales.iter_mut().enumerate() {
        let low = (packed[j % 8] >> (4 * (j / 8))) & 0x0F;
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 0x03;
        let raw = low | (high << 4); // 0..=63
        *s = f32::from(i8::try_from(raw).unwrap_or(0) - 32);
    }
    scales
}

/// Q3_K: `hmask[32] | qs[64] | scales[12] | d`. Value `v` takes 2 low bits from `qs` as in
/// Q2_K and, from bit `v / 32` of `hmask[v % 32]`, a high bit that subtracts 4 when it is
/// clear; group `v / 16` has scale `d · s`.
#[inline(always)]
pub(super) fn q3_k(block: &[u8], out: &mut [f32]) {
    let (hmask, qs) = (&block[..32], &block[32..96]);
    let scales = q3_k_scales(&block[96..108]);
    let d = f16_at(block, 108);
    for (group, (o, &scale)) in out.chunks_exact_mut(16).zip(&scales).enumerate() {
        let (half, shift, first) = (group / 8, 2 * ((group / 2) % 4), 16 * (group % 2));
        let high_bit = group / 2; // v / 32
        let dl = d * scale;
        let q = &qs[32 * half + first..32 * half + first + 16];
        let h = &hmask[first..first + 16];
        for ((o, &b), &hm) in o.iter_mut().zip(q).zip(h) {
            let low = i8::try_from((b >> shift) & 3).unwrap_or(0);
            let q = low - if (hm >> high_bit) & 1 == 0 { 4 } else { 0 };
            *o = dl * f32::from(q);
        }
    }
}

/// The 8 6-bit scales and mins of Q4_K and Q5_K, packed in 12 bytes.
fn k_scale_min(packed: &[u8]) -> ([u8; 8], [u8; 8]) {
    let (mut sc, mut m) = ([0u8; 8], [0u8; 8]);
    for j in 0..4 {
        let (d, mn, md) = (packed[j], packed[4 + j], packed[8 + j]);
        sc[j] = d & 0x3F;
        m[j] = mn & 0x3F;
        sc[4 + j] = (md & 0x0F) | ((d >> 2) & 0x30);
        m[4 + j] = (md >> 4) | ((mn >> 2) & 0x30);
    }
    (sc, m)
}

/// Q4_K: `d | dmin | scales[12] | qs[128]`. Group `g` of 32 (`g = 2·chunk + nibble`)
/// takes the low (`g` even) or high nibbles of `qs[32·chunk ..][..32]`; value
/// `(d · sc[g]) · q − dmin · m[g]`.
#[inline(always)]
pub(super) fn q4_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (sc, m) = k_scale_min(&block[4..16]);
    let qs = &block[16..144];
    for (g, group) in out.chunks_exact_mut(32).enumerate() {
        let (chunk, shift) = (g / 2, 4 * (g % 2));
        let dl = d * f32::from(sc[g]);
        let ml = dmin * f32::from(m[g]);
        for (o, &b) in group.iter_mut().zip(&qs[32 * chunk..32 * chunk + 32]) {
            *o = dl * f32::from((b >> shift) & 0x0F) - ml;
        }
    }
}

/// Q5_K: `d | dmin | scales[12] | qh[32] | qs[128]`: Q4_K's nibbles plus a fifth bit,
/// bit `g` of `qh[l]` for value `l` of group `g`.
#[inline(always)]
pub(super) fn q5_k(block: &[u8], out: &mut [f32]) {
    let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
    let (sc, m) = k_scale_min(&block[4..16]);
    let (qh, qs) = (&block[16..48], &block[48..176]);
    for (g, group) in out.chunks_exact_mut(32).enumerate() {
        let (chunk, shift) = (g / 2, 4 * (g % 2));
        let dl = d * f32::from(sc[g]);
        let ml = dmin * f32::from(m[g]);
        for (l, o) in group.iter_mut().enumerate() {
            let q = ((qs[32 * chunk + l] >> shift) & 0x0F) | (((qh[l] >> g) & 1) << 4);
            *o = dl * f32::from(q) - ml;
        }
    }
}

/// Q6_K: `ql[128] | qh[64] | scales[16] (i8) | d`. Value `v = 128·chunk + 64·nibble + l`
/// (`l < 64`) takes nibble `nibble` of `ql[64·chunk + l]` and, as `v = 128·chunk + 32·s +
/// l'` (`l' < 32`), bits `2s` of `qh[32·chunk + l']`; `q − 32` times `d · scales[v / 16]`.
#[inline(always)]
pub(super) fn q6_k(block: &[u8], out: &mut [f32]) {
    let (ql, qh, scales) = (&block[..128], &block[128..192], &block[192..208]);
    let d = f16_at(block, 208);
    for (group, (o, &sc)) in out.chunks_exact_mut(16).zip(scales).enumerate() {
        // v = 16·group ..: chunk = group / 8, s = (group / 2) % 4 (= 2·nibble + (l ≥ 32)),
        // l' from 16·(group % 2).
        let (chunk, s) = (group / 8, (group / 2) % 4);
        let (nibble, upper) = (s / 2, s % 2);
        let first = 16 * (group % 2);
        let ds = d * f32::from(i8::from_le_bytes([sc]));
        let low = &ql[64 * chunk + 32 * upper + first..][..16];
        let high = &qh[32 * chunk + first..][..16];
        for ((o, &l), &h) in o.iter_mut().zip(low).zip(high) {
            let q6 = ((l >> (4 * nibble)) & 0x0F) | (((h >> (2 * s)) & 0x03) << 4);
            *o = ds * f32::from(i8::try_from(q6).unwrap_or(0) - 32);
        }
    }
}
