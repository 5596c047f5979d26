//! The codebook formats IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M
//! (super-blocks of 256): each index selects 4 or 8 values of a fixed grid ([`grids`]),
//! with sign bits (IQ2, IQ3) or a ±1/8 shift (IQ1) and a scale per group.
//!
//! Arithmetic as gguf-py's `dequantize_blocks`, product for product in `f32`: for IQ2 and
//! IQ3 `(db · grid) · sign` with `db` the group scale, for IQ1 `dl · (grid + delta)`, so
//! the results are equal bit for bit.
//!
//! [`grids`]: super::grids

use super::grids::{IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KSIGNS};
use super::legacy::f16_at;

#[inline(always)]
fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

#[inline(always)]
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Byte `j` of a grid entry (IQ2/IQ3 grids hold small positive values).
#[inline(always)]
fn grid_value(entry: u64, j: usize) -> f32 {
    f32::from(entry.to_le_bytes()[j])
}

/// `len` values of a grid entry times `db`, negated where bit `j` of `signs` is set.
#[inline(always)]
fn signed(out: &mut [f32], db: f32, entry: u64, signs: u8) {
    for (j, o) in out.iter_mut().enumerate() {
        let v = db * grid_value(entry, j);
        *o = if (signs >> j) & 1 == 0 { v } else { -v };
    }
}

/// IQ2_XXS: `d | 8 × (aux0: u32, aux1: u32)`. Group `g` of 32: scale
/// `d · (0.5 + aux1 >> 28) · 0.25`; its four runs of 8 are grid entry `byte l of aux0`
/// with signs `KSIGNS[(aux1 >> 7l) & 127]`.
#[inline(always)]
pub(super) fn iq2_xxs(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    for (g, group) in out.chunks_exact_mut(32).enumerate() {
        let aux0 = u32_at(block, 2 + 8 * g);
        let aux1 = u32_at(block, 6 + 8 * g);
        let db = d * (0.5 + f32::from(u8::try_from(aux1 >> 28).unwrap_or(0))) * 0.25;
        for (l, run) in group.chunks_exact_mut(8).enumerate() {
            let entry = IQ2XXS_GRID[usize::from(aux0.to_le_bytes()[l])];
            let signs = KSIGNS[usize::try_from((aux1 >> (7 * l)) & 0x7F).unwrap_or(0)];
            signed(run, db, entry, signs);
        }
    }
}

/// The 4-bit group scales of IQ2_XS / IQ2_S (low nibble first): `d · (0.5 + s) · 0.25`.
#[inline(always)]
fn iq2_scale(d: f32, scales: &[u8], k: usize) -> f32 {
    let s = (scales[k / 2] >> (4 * (k % 2))) & 0x0F;
    d * (0.5 + f32::from(s)) * 0.25
}

/// IQ2_XS: `d | qs: 32 × u16 | scales[8]`. Run `k` of 8 is grid entry `qs[k] & 511` with
/// signs `KSIGNS[qs[k] >> 9]`, scaled by group scale `k / 2`.
#[inline(always)]
pub(super) fn iq2_xs(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let scales = &block[66..74];
    for (k, run) in out.chunks_exact_mut(8).enumerate() {
        let q = u16_at(block, 2 + 2 * k);
        let entry = IQ2XS_GRID[usize::from(q & 511)];
        let signs = KSIGNS[usize::from(q >> 9)];
        signed(run, iq2_scale(d, scales, k / 2), entry, signs);
    }
}

/// IQ2_S: `d | qs[32] | signs[32] | qh[8] | scales[8]`. Run `k` of 8 is grid entry
/// `qs[k] | ((qh[k / 4] >> 2(k % 4)) & 3) << 8` with the sign bits of `signs[k]`.
#[inline(always)]
pub(super) fn iq2_s(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let (qs, signs, qh, scales) = (
        &block[2..34],
        &block[34..66],
        &block[66..74],
        &block[74..82],
    );
    for (k, run) in out.chunks_exact_mut(8).enumerate() {
        let high = (qh[k / 4] >> (2 * (k % 4))) & 0x03;
        let entry = IQ2S_GRID[usize::from(qs[k]) | usize::from(high) << 8];
        signed(run, iq2_scale(d, scales, k / 2), entry, signs[k]);
    }
}

/// IQ3_XXS: `d | qs[64] | 8 × u32`. Group `g` of 32: scale `d · (0.5 + sc >> 28) · 0.5`;
/// run `l` of 8 is grid entries `qs[8g + 2l]`, `qs[8g + 2l + 1]` (4 values each) with
/// signs `KSIGNS[(sc >> 7l) & 127]`.
#[inline(always)]
pub(super) fn iq3_xxs(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..66];
    for (g, group) in out.chunks_exact_mut(32).enumerate() {
        let sc = u32_at(block, 66 + 4 * g);
        let db = d * (0.5 + f32::from(u8::try_from(sc >> 28).unwrap_or(0))) * 0.5;
        for (l, run) in group.chunks_exact_mut(8).enumerate() {
            let at = 8 * g + 2 * l;
            let entry = u64::from(IQ3XXS_GRID[usize::from(qs[at])])
                | u64::from(IQ3XXS_GRID[usize::from(qs[at + 1])]) << 32;
            let signs = KSIGNS[usize::try_from((sc >> (7 * l)) & 0x7F).unwrap_or(0)];
            signed(run, db, entry, signs);
        }
    }
}

/// IQ3_S: `d | qs[64] | qh[8] | signs[32] | scales[4]`. Group `g` of 32 has scale
/// `d · (1 + 2s)` (nibble `g` of `scales`); index `k` of 64 selects grid entry
/// `qs[k] | (bit k of qh) << 8` (4 values); run `r` of 8 has the sign bits of `signs[r]`.
#[inline(always)]
pub(super) fn iq3_s(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let (qs, qh, signs, scales) = (
        &block[2..66],
        &block[66..74],
        &block[74..106],
        &block[106..110],
    );
    for (r, run) in out.chunks_exact_mut(8).enumerate() {
        let g = r / 4;
        let s = (scales[g / 2] >> (4 * (g % 2))) & 0x0F;
        let db = d * f32::from(1 + 2 * s);
        let index = |k: usize| usize::from(qs[k]) | usize::from((qh[k / 8] >> (k % 8)) & 1) << 8;
        let entry =
            u64::from(IQ3S_GRID[index(2 * r)]) | u64::from(IQ3S_GRID[index(2 * r + 1)]) << 32;
        signed(run, db, entry, signs[r]);
    }
}

/// The IQ1 delta: `+1/8`, or `−1/8` where the flag is set.
#[inline(always)]
fn iq1_delta(negative: bool) -> f32 {
    if negative { -0.125 } else { 0.125 }
}

/// `dl · (grid + delta)` for the 8 values of an IQ1 grid entry (−1, 0, 1 as `i8` bytes).
#[inline(always)]
fn iq1_run(out: &mut [f32], dl: f32, index: usize, delta: f32) {
    let entry = IQ1S_GRID[index].to_le_bytes();
    for (o, &b) in out.iter_mut().zip(&entry) {
        *o = dl * (f32::from(i8::from_le_bytes([b])) + delta);
    }
}

/// IQ1_S: `d | qs[32] | qh: 8 × u16`. Group `g` of 32: `dl = d · (2·((qh >> 12) & 7) + 1)`,
/// delta `∓1/8` by bit 15; run `l` of 8 is grid entry `qs[4g + l] | ((qh >> 3l) & 7) << 8`.
#[inline(always)]
pub(super) fn iq1_s(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 0);
    let qs = &block[2..34];
    for (g, group) in out.chunks_exact_mut(32).enumerate() {
        let qh = u16_at(block, 34 + 2 * g);
        let dl = d * f32::from(2 * ((qh >> 12) & 7) + 1);
        let delta = iq1_delta(qh & 0x8000 != 0);
        for (l, run) in group.chunks_exact_mut(8).enumerate() {
            let index = usize::from(qs[4 * g + l]) | usize::from((qh >> (3 * l)) & 7) << 8;
            iq1_run(run, dl, index, delta);
        }
    }
}

/// IQ1_M: `qs[32] | qh[16] | scales: 4 × u16`; the f16 `d` is the top nibbles of the four
/// scale words (first word lowest). Scale `k` of 16 (3 bits at `3(k % 4)` of word `k / 4`)
/// gives `dl = d · (2s + 1)` for 16 values; run `r` of 8 has the index
/// `qs[r] | (f & 7) << 8` and delta `∓1/8` by `f & 8`, `f` nibble `r % 2` of `qh[r / 2]`
/// (the low nibble unmasked above bit 3, as in gguf-py).
#[inline(always)]
pub(super) fn iq1_m(block: &[u8], out: &mut [f32]) {
    let (qs, qh) = (&block[..32], &block[32..48]);
    let words: [u16; 4] = std::array::from_fn(|i| u16_at(block, 48 + 2 * i));
    let d_bits = (words[0] & 0xF000) >> 12
        | (words[1] & 0xF000) >> 8
        | (words[2] & 0xF000) >> 4
        | (words[3] & 0xF000);
    let d = half::f16::from_bits(d_bits).to_f32();
    for (r, run) in out.chunks_exact_mut(8).enumerate() {
        let k = r / 2;
        let s = (words[k / 4] >> (3 * (k % 4))) & 0x07;
        let dl = d * f32::from(2 * s + 1);
        let field = qh[r / 2] >> (4 * (r % 2));
        let index = usize::from(qs[r]) | usize::from(field & 0x07) << 8;
        iq1_run(run, dl, index, iq1_delta(field & 0x08 != 0));
    }
}
