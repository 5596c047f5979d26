//! The ternary format TQ2_0 (TriLM, BitNet b1.58 tables): super-blocks of 256 values, 2
//! bits a value, and one f16 scale.
//!
//! The decoder is the arithmetic of gguf-py's `TQ2_0.dequantize_blocks` (ggml's
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
