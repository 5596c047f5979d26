//! Row kernels over whole blocks — decode a row into `f32`, dot a row with a few vectors —
//! built once per format from its block decoder, with an AVX2 build chosen at run time.
//!
//! Each format is a [`Format`]: its block size and an `#[inline(always)]` decoder. The
//! kernels are generic over it, so the decoder is inlined and the compiler vectorizes the
//! whole row loop; the AVX2 build is the same code compiled with `avx2` enabled (no FMA:
//! every product and sum is the one the portable build computes, so both give the same
//! bits — tested below).

use tokenloom_tensor::dot;
#[cfg(target_arch = "x86_64")]
use tokenloom_tensor::isa::Avx2;

/// A block format: its size and how one block decodes.
pub(super) trait Format {
    /// Values per block.
    const BLOCK_ELEMS: usize;
    /// Bytes per block.
    const BLOCK_BYTES: usize;
    /// Decodes one block (`BLOCK_BYTES` bytes) into `BLOCK_ELEMS` values.
    fn decode(block: &[u8], out: &mut [f32]);
}

/// Decodes whole blocks into `out` (`bytes` and `out` hold the same blocks).
pub(super) type DecodeRow = fn(bytes: &[u8], out: &mut [f32]);

/// `out[i] = a[i] · row` for the row in `bytes`, decoded into `scratch` (`cols` values)
/// and dotted with each of the `out.len()` rows of `a` by [`tokenloom_tensor::dot`].
pub(super) type DotRow = fn(bytes: &[u8], a: &[f32], scratch: &mut [f32], out: &mut [f32]);

#[inline(always)]
fn decode_body<F: Format>(bytes: &[u8], out: &mut [f32]) {
    for (block, dst) in bytes
        .chunks_exact(F::BLOCK_BYTES)
        .zip(out.chunks_exact_mut(F::BLOCK_ELEMS))
    {
        F::decode(block, dst);
    }
}

#[inline(always)]
fn dot_body<F: Format>(bytes: &[u8], a: &[f32], scratch: &mut [f32], out: &mut [f32]) {
    decode_body::<F>(bytes, scratch);
    for (o, a_row) in out.iter_mut().zip(a.chunks_exact(scratch.len())) {
        *o = dot(a_row, scratch).expect("a row of `a` and the scratch row are both cols long");
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn decode_avx2<F: Format>(bytes: &[u8], out: &mut [f32]) {
    decode_body::<F>(bytes, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2<F: Format>(bytes: &[u8], a: &[f32], scratch: &mut [f32], out: &mut [f32]) {
    dot_body::<F>(bytes, a, scratch, out);
}

/// The portable row decoder of `F` (also the reference the AVX2 build is tested against).
pub(super) fn decode_portable<F: Format>(bytes: &[u8], out: &mut [f32]) {
    decode_body::<F>(bytes, out);
}

/// The portable row dot of `F`.
pub(super) fn dot_portable<F: Format>(
    bytes: &[u8],
    a: &[f32],
    scratch: &mut [f32],
    out: &mut [f32],
) {
    dot_body::<F>(bytes, a, scratch, out);
}

/// The row decoder of `F`: the AVX2 build on CPUs that have it.
pub(super) fn decode_row<F: Format>(bytes: &[u8], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(_proof) = Avx2::detect() {
        // SAFETY: `decode_avx2` is safe code compiled with `avx2` enabled; calling it is
        // sound exactly when the CPU supports AVX2, which the `Avx2` proof says it does.
        #[allow(unsafe_code)]
        unsafe {
            decode_avx2::<F>(bytes, out);
        }
        return;
    }
    decode_portable::<F>(bytes, out);
}

/// The row dot of `F`: the AVX2 build on CPUs that have it.
pub(super) fn dot_row<F: Format>(bytes: &[u8], a: &[f32], scratch: &mut [f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(_proof) = Avx2::detect() {
        // SAFETY: as in `decode_row`: safe code compiled for AVX2, called with the proof
        // that the CPU supports it.
        #[allow(unsafe_code)]
        unsafe {
            dot_avx2::<F>(bytes, a, scratch, out);
        }
        return;
    }
    dot_portable::<F>(bytes, a, scratch, out);
}

/// Declares a zero-sized [`Format`] for a block decoder; its block size comes from the
/// one table of them, [`GgmlType::block_layout`](crate::gguf::GgmlType::block_layout).
macro_rules! format {
    ($name:ident, $qtype:expr, $decode:path) => {
        #[doc = concat!("The `", stringify!($decode), "` block format.")]
        pub(super) struct $name;
        impl $crate::gguf::quant::kernels::Format for $name {
            const BLOCK_ELEMS: usize = match $qtype.block_layout() {
                Some((elems, _)) => elems as usize,
                None => panic!("a quantized format without a block layout"),
            };
            const BLOCK_BYTES: usize = match $qtype.block_layout() {
                Some((_, bytes)) => bytes as usize,
                None => panic!("a quantized format without a block layout"),
            };
            #[inline(always)]
            fn decode(block: &[u8], out: &mut [f32]) {
                $decode(block, out)
            }
        }
    };
}
pub(super) use format;

#[cfg(test)]
mod tests {
    use super::super::BlockCodec;

    /// Random blocks of every format: the AVX2 build (when this CPU has it) and the
    /// portable build decode and dot them to the same bits.
    #[test]
    fn the_avx2_build_gives_the_bits_of_the_portable_build() {
        for &qtype in super::super::BLOCK_FORMATS {
            let codec = BlockCodec::of(qtype).unwrap();
            let cols = codec.block_elems() * 4;
            let bytes: Vec<u8> = (0..codec.bytes_for(cols).unwrap())
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
                .collect();
            let (mut fast, mut portable) = (vec![0.0f32; cols], vec![0.0f32; cols]);
            (codec.kernels.decode_row)(&bytes, &mut fast);
            (codec.kernels.decode_portable)(&bytes, &mut portable);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&fast), bits(&portable), "{qtype:?} decode");
            let a: Vec<f32> = (0..3 * cols).map(|i| (i % 7) as f32 - 3.0).collect();
            let mut scratch = vec![0.0f32; cols];
            let (mut fast, mut portable) = ([0.0f32; 3], [0.0f32; 3]);
            (codec.kernels.dot_row)(&bytes, &a, &mut scratch, &mut fast);
            (codec.kernels.dot_portable)(&bytes, &a, &mut scratch, &mut portable);
            assert_eq!(bits(&fast), bits(&portable), "{qtype:?} dot");
        }
    }
}
