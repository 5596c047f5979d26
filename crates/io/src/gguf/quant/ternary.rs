//! The ternary formats (TriLM, BitNet b1.58 tables): super-blocks of 256 values with one
//! f16 scale, TQ2_0 at 2 bits a value and TQ1_0 at 1.6 (five base-3 digits a byte).
//!
//! The TQ2_0 decoder is the arithmetic of gguf-py's `TQ2_0.dequantize_blocks` (ggml's
//! `dequantize_row_tq2_0`): value `128·j + 32·l + m` is `((qs[32·j + m] >> 2·l) & 3) − 1`
//! times the scale, one `f32` product, so the results are equal bit for bit. A code of 3
//! (which ggml's quantizer never writes) decodes to `2·d`, as in gguf-py.

use super::legacy::f16_at;

/// TQ2_0: 64 bytes of 2-bit codes, then the f16 scale `d`.
#[inline(always)]
pub(super) fn tq2_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 64);
    for (j, half) in out.chunks_exact_mut(128).enumerate() {
        let qs = &block[32 * j..32 * j + 32];
        for (l, quarter) in half.chunks_exact_mut(32).enumerate() {
            for (o, &q) in quarter.iter_mut().zip(qs) {
                *o = (f32::from((q >> (2 * l)) & 3) - 1.0) * d;
            }
        }
    }
}

/// Powers of three by digit: byte `q · 3ⁿ` (wrapping, as numpy's `uint8` product) holds
/// digit `n` of `q`'s base-3 fixed-point code in its top bits.
const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// The ternary value of one digit byte: `((q · 3) >> 8) − 1`, as gguf-py.
#[inline(always)]
fn trit(q: u8) -> f32 {
    f32::from(u8::try_from((u16::from(q) * 3) >> 8).unwrap_or(0)) - 1.0
}

/// TQ1_0: `qs[48] | qh[4] | d (f16)`, as gguf-py's `TQ1_0.dequantize_blocks` (ggml's
/// `dequantize_row_tq1_0`). Values `0..160` are digit `n` of `qs[0..32]` (index
/// `32n + m`), `160..240` digit `n` of `qs[32..48]` (`160 + 16n + m`), `240..256` digit
/// `n < 4` of `qh` (`240 + 4n + m`); each `trit(byte · 3ⁿ) · d`.
#[inline(always)]
pub(super) fn tq1_0(block: &[u8], out: &mut [f32]) {
    let d = f16_at(block, 52);
    let (qs, qh) = (&block[..48], &block[48..52]);
    let (head, rest) = out.split_at_mut(160);
    let (middle, tail) = rest.split_at_mut(80);
    for (digits, bytes, n_digits) in [
        (head, &qs[..32], 5),
        (middle, &qs[32..48], 5),
        (tail, qh, 4),
    ] {
        for (chunk, &p) in digits.chunks_exact_mut(bytes.len()).zip(&POW3[..n_digits]) {
            for (o, &q) in chunk.iter_mut().zip(bytes) {
                *o = trit(q.wrapping_mul(p)) * d;
            }
        }
    }
}
