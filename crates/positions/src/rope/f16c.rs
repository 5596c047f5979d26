//! The rotation of `f16` activations with an `f32` cache on x86-64 with AVX2 and F16C:
//! eight values widen or round in one instruction (`vcvtph2ps`, `vcvtps2ph`), instead of
//! one at a time. The rounding is the hardware's round-to-nearest-even, which is what
//! `half::f16::from_f32` computes, so results equal the portable path's bit for bit (NaNs
//! stay NaN; their payloads are not promised).

use std::arch::x86_64::{
    __m128i, _MM_FROUND_TO_NEAREST_INT, _mm_loadu_si128, _mm_storeu_si128, _mm256_cvtph_ps,
    _mm256_cvtps_ph, _mm256_loadu_ps, _mm256_storeu_ps,
};

use tokenloom_tensor::{DType, Element};

use super::cache::CacheFloat;
use super::config::RopeLayout;
use super::kernel::{Rotation, rotate_interleaved, rotate_pair, rotate_split_pairs};

/// Eight pairs per block.
const LANES: usize = 8;

/// [`super::kernel::rotate_rows`] for `T = f16`, `C = f32`: every head in blocks of eight
/// pairs through F16C, the remaining pairs (when `rotary_dim / 2` is not a multiple of
/// eight) one at a time.
///
/// # Panics
///
/// In debug builds, if `T` is not `f16` or `C` is not `f32` (the caller dispatches on it).
#[target_feature(enable = "avx2,f16c")]
pub(super) fn rotate_rows_f16<'c, T, C, A>(
    rows: &mut [T],
    src: Option<&[T]>,
    head_dim: usize,
    rotation: Rotation<C>,
    angles: A,
) where
    T: Element,
    C: CacheFloat,
    A: Fn(usize) -> (&'c [C], &'c [C]),
{
    debug_assert!(T::DTYPE == DType::F16 && C::DTYPE == DType::F32);
    // Two plain loops (no closure: the body stays in this AVX2 + F16C build).
    match src {
        None => {
            for (i, head) in rows.chunks_exact_mut(head_dim).enumerate() {
                rotate_head_f16(head, angles(i), rotation);
            }
        }
        Some(src) => {
            let pairs = rows
                .chunks_exact_mut(head_dim)
                .zip(src.chunks_exact(head_dim));
            for (i, (head, from)) in pairs.enumerate() {
                head.copy_from_slice(from);
                rotate_head_f16(head, angles(i), rotation);
            }
        }
    }
}

/// One head of [`rotate_rows_f16`].
#[target_feature(enable = "avx2,f16c")]
fn rotate_head_f16<T: Element, C: CacheFloat>(
    head: &mut [T],
    (cos, sin): (&[C], &[C]),
    rotation: Rotation<C>,
) {
    let Rotation {
        pairing,
        sign,
        scale,
    } = rotation;
    let half = cos.len();
    let blocked = half - half % LANES;
    // Whole blocks.
    let block_angles = cos[..blocked]
        .chunks_exact(LANES)
        .zip(sin[..blocked].chunks_exact(LANES));
    match pairing {
        RopeLayout::Interleaved => {
            let (body, tail) = head[..2 * half].split_at_mut(2 * blocked);
            for (pairs, (c, s)) in body.chunks_exact_mut(2 * LANES).zip(block_angles) {
                let (lo, hi) = pairs.split_at_mut(LANES);
                let mut values = [0.0f32; 2 * LANES];
                values[..LANES].copy_from_slice(&widen8(lo));
                values[LANES..].copy_from_slice(&widen8(hi));
                for (j, pair) in values.chunks_exact_mut(2).enumerate() {
                    let (x, y) = rotate_pair(
                        pair[0],
                        pair[1],
                        c[j].as_f32(),
                        sign.as_f32() * s[j].as_f32(),
                        scale.as_f32(),
                    );
                    pair[0] = x;
                    pair[1] = y;
                }
                narrow8(&values[..LANES], lo);
                narrow8(&values[LANES..], hi);
            }
            rotate_interleaved(tail, &cos[blocked..], &sin[blocked..], rotation);
        }
        RopeLayout::HalfSplit => {
            let (first, rest) = head.split_at_mut(half);
            let rest = &mut rest[..half];
            let (xs_body, xs_tail) = first.split_at_mut(blocked);
            let (ys_body, ys_tail) = rest.split_at_mut(blocked);
            for ((xs, ys), (c, s)) in xs_body
                .chunks_exact_mut(LANES)
                .zip(ys_body.chunks_exact_mut(LANES))
                .zip(block_angles)
            {
                let (x, y) = (widen8(xs), widen8(ys));
                let (mut new_x, mut new_y) = ([0.0f32; LANES], [0.0f32; LANES]);
                for j in 0..LANES {
                    (new_x[j], new_y[j]) = rotate_pair(
                        x[j],
                        y[j],
                        c[j].as_f32(),
                        sign.as_f32() * s[j].as_f32(),
                        scale.as_f32(),
                    );
                }
                narrow8(&new_x, xs);
                narrow8(&new_y, ys);
            }
            rotate_split_pairs(xs_tail, ys_tail, &cos[blocked..], &sin[blocked..], rotation);
        }
    }
}

/// Eight `f16` values (`T = f16`) widened exactly to `f32`.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn widen8<T: Element>(values: &[T]) -> [f32; LANES] {
    // an f16's bits fit in 16 bits
    let bits: [u16; LANES] = std::array::from_fn(|j| values[j].to_bits64() as u16);
    let mut out = [0.0f32; LANES];
    // SAFETY: `bits` is 16 readable bytes and `out` 32 writable bytes; both accesses are
    // the unaligned forms.
    #[allow(unsafe_code)]
    unsafe {
        let halves = _mm_loadu_si128(bits.as_ptr().cast::<__m128i>());
        _mm256_storeu_ps(out.as_mut_ptr(), _mm256_cvtph_ps(halves));
    }
    out
}

/// Rounds eight `f32` values to `f16` (nearest, ties to even) into `out` (`T = f16`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn narrow8<T: Element>(values: &[f32], out: &mut [T]) {
    assert!(values.len() >= LANES, "a block holds {LANES} values");
    let mut bits = [0u16; LANES];
    // SAFETY: `values` has at least 8 readable f32 (asserted above) and `bits` is 16
    // writable bytes; both accesses are the unaligned forms.
    #[allow(unsafe_code)]
    unsafe {
        let rounded =
            _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(values.as_ptr()));
        _mm_storeu_si128(bits.as_mut_ptr().cast::<__m128i>(), rounded);
    }
    for (o, b) in out[..LANES].iter_mut().zip(bits) {
        *o = T::from_bits64(u64::from(b));
    }
}
