//! The rotation loop over rows of heads, and its dispatch to the widest instruction set
//! the CPU supports.
//!
//! The loop is written once, in portable Rust. On x86-64 it is also compiled with AVX2
//! enabled (the same source, inlined into a `#[target_feature]` function) and chosen at
//! run time when the CPU has AVX2. That matters for `f16`/`bf16` activations: their
//! widening and rounding only vectorize with AVX2's 256-bit integer operations, not with
//! the SSE2 baseline. The arithmetic is the same IEEE operations in the same order (Rust
//! never contracts `a*b + c` into a fused multiply-add), so both versions give
//! bit-identical results; the tests in this module check that.
//!
//! `f16` activations with an `f32` cache convert eight at a time with the F16C
//! instructions on that path (`f16c.rs`); elsewhere they go through `half`'s conversions,
//! which are exact but convert one value at a time.
//!
//! `bf16` activations take a shorter conversion than [`Element::as_f32`] and
//! [`Element::from_f32_lossy`], without their NaN handling, which the rotation does not
//! need (see [`widen`] and [`narrow`]); together with AVX2 this makes a `bf16` rotation
//! cost about what an `f32` one does.

use tokenloom_tensor::{DType, Element};

use super::cache::CacheFloat;
use super::config::RopeLayout;
#[cfg(target_arch = "x86_64")]
use tokenloom_tensor::isa::Avx2F16c;

/// The instruction set a rotation runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// The build target's baseline (SSE2 on x86-64).
    Baseline,
    /// x86-64 with AVX2 and F16C (every AVX2 CPU has it), with the proof that this CPU
    /// has them.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2F16c),
}

impl Isa {
    /// The widest instruction set this CPU supports (a cached check after the first call).
    pub(super) fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        if let Some(proof) = Avx2F16c::detect() {
            return Isa::Avx2(proof);
        }
        Isa::Baseline
    }

    /// The instruction set for rotating `head_dim`-element heads of `T` activations held
    /// in `dst` (and read from `src`): [`detect`](Isa::detect)'s, except that `f32` and
    /// `f64` activations take the baseline build unless every buffer starts on a 32-byte
    /// boundary and a head is a whole number of 32-byte blocks.
    ///
    /// Why: for these types the AVX2 build only widens the loads and stores, and a
    /// 256-bit access that straddles two cache lines costs extra on Intel cores. A large
    /// `Vec` from glibc's `malloc` starts 16 bytes past a page, so every other 256-bit
    /// access of a half-split head straddles: the (1, 2048, 32, 128) `f32` rotation was
    /// 1.10–1.14× the SSE2 plain loop on 2 threads with AVX2 and 0.97–1.04× with the
    /// baseline build, while on 64-byte-aligned buffers AVX2 was 0.88–0.96×
    /// (docs/benchmarks/row-copies-and-streams.md, "RoPE and 32-byte alignment").
    /// `f16`/`bf16` keep AVX2 at any alignment: their conversions only vectorize with it.
    /// Both builds give the same bits.
    pub(super) fn for_buffers<T: Element>(dst: &[T], src: Option<&[T]>, head_dim: usize) -> Isa {
        let isa = Isa::detect();
        if matches!(T::DTYPE, DType::F16 | DType::BF16) {
            return isa;
        }
        let aligned = |buffer: &[T]| (buffer.as_ptr() as usize).is_multiple_of(32);
        let whole_blocks = (head_dim * std::mem::size_of::<T>()).is_multiple_of(32);
        if whole_blocks && aligned(dst) && src.is_none_or(aligned) {
            isa
        } else {
            Isa::Baseline
        }
    }
}

/// The rotation applied to every head: `x ↦ scale·R(sign·θ)·x`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rotation<C> {
    /// Which elements pair up.
    pub(super) pairing: RopeLayout,
    /// `+1` for the forward rotation, `−1` for its transpose or inverse.
    pub(super) sign: C,
    /// A factor applied after rotating.
    pub(super) scale: C,
}

/// How one pair turns, given its cos and sin: the loops are generic over it so that the
/// common case, [`Forward`], compiles without the sign and scale multiplications.
pub(super) trait Turn<C>: Copy {
    /// The turned pair.
    fn pair(self, x: C, y: C, c: C, s: C) -> (C, C);
}

/// The forward rotation at unit scale, `R(θ)`: [`Rotation`] with sign and scale 1, whose
/// products by 1 are exact, so it gives the same values with two fewer multiplications.
#[derive(Clone, Copy, Debug)]
pub(super) struct Forward;

impl<C: CacheFloat> Turn<C> for Forward {
    #[inline(always)]
    fn pair(self, x: C, y: C, c: C, s: C) -> (C, C) {
        (c * x - s * y, s * x + c * y)
    }
}

impl<C: CacheFloat> Turn<C> for Rotation<C> {
    #[inline(always)]
    fn pair(self, x: C, y: C, c: C, s: C) -> (C, C) {
        rotate_pair(x, y, c, self.sign * s, self.scale)
    }
}

/// Rotates every head of `rows` (consecutive heads of `head_dim` elements); head `i` turns
/// by the cos/sin rows `angles(i)` returns. With `src` (as long as `rows`), head `i` is
/// rotated from `src` into `rows` in one pass: each element is read once from `src` and
/// written once to `rows` (the elements past `rotary_dim` are copied).
pub(super) fn rotate_rows<'c, T, C, A>(
    isa: Isa,
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
    debug_assert!(src.is_none_or(|src| src.len() == rows.len()));
    match isa {
        Isa::Baseline => rotate_rows_portable(rows, src, head_dim, rotation, angles),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2(_proof) if T::DTYPE == DType::F16 && C::DTYPE == DType::F32 => {
            // SAFETY: an `Avx2F16c` value exists only after `Avx2F16c::detect` found AVX2
            // and F16C on this CPU (tokenloom_tensor::isa): the CPU executes the instructions the function contains, which is safe to
            // call otherwise.
            #[allow(unsafe_code)]
            unsafe {
                super::f16c::rotate_rows_f16(rows, src, head_dim, rotation, angles);
            }
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above: the `Avx2F16c` proof says the CPU has AVX2.
        #[allow(unsafe_code)]
        Isa::Avx2(_proof) => unsafe { rotate_rows_avx2(rows, src, head_dim, rotation, angles) },
    }
}

/// [`rotate_rows_portable`] compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn rotate_rows_avx2<'c, T, C, A>(
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
    rotate_rows_portable(rows, src, head_dim, rotation, angles);
}

#[inline(always)]
fn rotate_rows_portable<'c, T, C, A>(
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
    if rotation.sign == C::one() && rotation.scale == C::one() {
        rotate_heads(rows, src, head_dim, rotation.pairing, Forward, angles);
    } else {
        rotate_heads(rows, src, head_dim, rotation.pairing, rotation, angles);
    }
}

/// The loops of [`rotate_rows_portable`] for one [`Turn`].
#[inline(always)]
fn rotate_heads<'c, T, C, A>(
    rows: &mut [T],
    src: Option<&[T]>,
    head_dim: usize,
    pairing: RopeLayout,
    turn: impl Turn<C>,
    angles: A,
) where
    T: Element,
    C: CacheFloat,
    A: Fn(usize) -> (&'c [C], &'c [C]),
{
    // Two plain loops rather than one with a closure: the body must be inlined into the
    // AVX2 build (a closure would be compiled for the baseline).
    match src {
        None => {
            for (i, head) in rows.chunks_exact_mut(head_dim).enumerate() {
                rotate_head(head, angles(i), pairing, turn);
            }
        }
        Some(src) => {
            let pairs = rows
                .chunks_exact_mut(head_dim)
                .zip(src.chunks_exact(head_dim));
            for (i, (head, from)) in pairs.enumerate() {
                rotate_head_from(head, from, angles(i), pairing, turn);
            }
        }
    }
}

/// Rotates one head by its cos/sin rows.
#[inline(always)]
fn rotate_head<T: Element, C: CacheFloat>(
    head: &mut [T],
    (cos, sin): (&[C], &[C]),
    pairing: RopeLayout,
    turn: impl Turn<C>,
) {
    match pairing {
        RopeLayout::Interleaved => rotate_interleaved(head, cos, sin, turn),
        RopeLayout::HalfSplit => {
            let half = cos.len();
            let (first, rest) = head.split_at_mut(half);
            rotate_split_pairs(first, &mut rest[..half], cos, sin, turn);
        }
    }
}

/// Rotates one head of `from` into `head` by its cos/sin rows; the elements past
/// `rotary_dim` are copied.
#[inline(always)]
fn rotate_head_from<T: Element, C: CacheFloat>(
    head: &mut [T],
    from: &[T],
    (cos, sin): (&[C], &[C]),
    pairing: RopeLayout,
    turn: impl Turn<C>,
) {
    let half = cos.len();
    let (rotated, rest) = head.split_at_mut(2 * half);
    let (from, from_rest) = from.split_at(2 * half);
    // Most models rotate the whole head: no call into `memcpy` for nothing, once per head
    // (the half-split case of vs_plain: 1.04–1.06× the plain loop before, 1.00–1.05× after).
    if !rest.is_empty() {
        rest.copy_from_slice(from_rest);
    }
    match pairing {
        RopeLayout::Interleaved => {
            let pairs = rotated.chunks_exact_mut(2).zip(from.chunks_exact(2));
            for ((out, pair), (&c, &s)) in pairs.zip(cos.iter().zip(sin)) {
                (out[0], out[1]) = rotated_pair(turn, pair[0], pair[1], c, s);
            }
        }
        RopeLayout::HalfSplit => {
            let (out_x, out_y) = rotated.split_at_mut(half);
            let (xs, ys) = from.split_at(half);
            let outs = out_x.iter_mut().zip(out_y.iter_mut());
            for (((out_x, out_y), (&x, &y)), (&c, &s)) in
                outs.zip(xs.iter().zip(ys)).zip(cos.iter().zip(sin))
            {
                (*out_x, *out_y) = rotated_pair(turn, x, y, c, s);
            }
        }
    }
}

/// Rotates the pairs `(x[2i], x[2i+1])` of one head.
#[inline(always)]
pub(super) fn rotate_interleaved<T: Element, C: CacheFloat>(
    head: &mut [T],
    cos: &[C],
    sin: &[C],
    turn: impl Turn<C>,
) {
    for ((pair, &c), &s) in head.chunks_exact_mut(2).zip(cos).zip(sin) {
        (pair[0], pair[1]) = rotated_pair(turn, pair[0], pair[1], c, s);
    }
}

/// Rotates the pairs `(xs[i], ys[i])`.
#[inline(always)]
pub(super) fn rotate_split_pairs<T: Element, C: CacheFloat>(
    xs: &mut [T],
    ys: &mut [T],
    cos: &[C],
    sin: &[C],
    turn: impl Turn<C>,
) {
    for (((a, b), &c), &s) in xs.iter_mut().zip(ys).zip(cos).zip(sin) {
        (*a, *b) = rotated_pair(turn, *a, *b, c, s);
    }
}

/// `scale · [[c, −s], [s, c]] · (x, y)`.
#[inline(always)]
pub(super) fn rotate_pair<C: CacheFloat>(x: C, y: C, c: C, s: C, scale: C) -> (C, C) {
    ((c * x - s * y) * scale, (s * x + c * y) * scale)
}

/// The pair `(x, y)` of activations turned in the compute precision `C` and rounded
/// back: the one body of every portable loop.
#[inline(always)]
fn rotated_pair<T: Element, C: CacheFloat>(turn: impl Turn<C>, x: T, y: T, c: C, s: C) -> (T, T) {
    let (x, y) = turn.pair(widen(x), widen(y), c, s);
    (narrow(x), narrow(y))
}

/// Whether activations of type `T` rotate through the short `bf16` ↔ `f32` conversions.
#[inline(always)]
fn is_bf16_in_f32<T: Element, C: CacheFloat>() -> bool {
    T::DTYPE == DType::BF16 && C::DTYPE == DType::F32
}

/// Widens an activation to the compute precision, as [`CacheFloat::from_activation`].
///
/// For `bf16` into an `f32` cache this is the bare shift: a signalling NaN stays
/// signalling here (`as_f32` would quiet it), and the first multiplication of the
/// rotation quiets it exactly as `as_f32` would have. Every other pair converts through
/// [`CacheFloat::from_activation`].
#[inline(always)]
fn widen<T: Element, C: CacheFloat>(x: T) -> C {
    if is_bf16_in_f32::<T, C>() {
        // a bf16's bits fit in 16 bits
        let bits = x.to_bits64() as u32;
        C::from_f32_lossy(f32::from_bits(bits << 16))
    } else {
        C::from_activation(x)
    }
}

/// Rounds a rotated value to the activation type, as [`CacheFloat::to_activation`].
///
/// For `bf16` from an `f32` cache this is round-to-nearest-even on the bits, without
/// `from_f32_lossy`'s NaN branch. That branch only matters for a NaN whose low 16 bits are
/// not all zero (the rounding increment would carry into the exponent), and the rotation
/// never makes one: its NaNs are either an input NaN carried through (a widened `bf16`,
/// low bits zero) or the CPU's default NaN (low bits zero on x86 and ARM), since the
/// cos/sin values and the scale are finite.
#[inline(always)]
fn narrow<T: Element, C: CacheFloat>(x: C) -> T {
    if is_bf16_in_f32::<T, C>() {
        let bits = x.as_f32().to_bits();
        let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
        T::from_bits64(u64::from(rounded))
    } else {
        x.to_activation()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tokenloom_tensor::{bf16, f16};

    use super::*;

    /// The rotation written with the public conversions, one pair at a time: what the
    /// kernel must equal bit for bit.
    fn oracle<T: Element, C: CacheFloat>(
        head: &mut [T],
        cos: &[C],
        sin: &[C],
        rotation: Rotation<C>,
    ) {
        let half = cos.len();
        for i in 0..half {
            let (a, b) = match rotation.pairing {
                RopeLayout::Interleaved => (2 * i, 2 * i + 1),
                RopeLayout::HalfSplit => (i, i + half),
            };
            let (x, y) = (C::from_activation(head[a]), C::from_activation(head[b]));
            let s = rotation.sign * sin[i];
            head[a] = ((cos[i] * x - s * y) * rotation.scale).to_activation();
            head[b] = ((s * x + cos[i] * y) * rotation.scale).to_activation();
        }
    }

    /// Equal bits, or both NaN: which payload survives an operation on two NaNs depends on
    /// operand order, which the compiler may swap (it treats `a * b` as commutative).
    fn same<T: Element>(a: T, b: T) -> bool {
        a.to_bits64() == b.to_bits64() || (a.is_nan() && b.is_nan())
    }

    /// Any bit pattern of `T`: NaNs (signalling and quiet), infinities, subnormals.
    fn any_values<T: Element>(len: usize) -> impl Strategy<Value = Vec<T>> {
        proptest::collection::vec(any::<u64>(), len)
            .prop_map(|bits| bits.into_iter().map(T::from_bits64).collect())
    }

    fn check<T: Element, C: CacheFloat>(
        values: &[T],
        n_heads: usize,
        head_dim: usize,
        angles: &[f64],
        pairing: RopeLayout,
        sign: f64,
        scale: f64,
    ) -> Result<(), TestCaseError> {
        let cos: Vec<C> = angles.iter().map(|a| C::from_f64_lossy(a.cos())).collect();
        let sin: Vec<C> = angles.iter().map(|a| C::from_f64_lossy(a.sin())).collect();
        let rotation = Rotation {
            pairing,
            sign: C::from_f64_lossy(sign),
            scale: C::from_f64_lossy(scale),
        };
        let rows = &values[..n_heads * head_dim];
        let mut expected = rows.to_vec();
        for head in expected.chunks_exact_mut(head_dim) {
            oracle(head, &cos, &sin, rotation);
        }
        let mut isas = vec![Isa::Baseline];
        if Isa::detect() != Isa::Baseline {
            isas.push(Isa::detect());
        }
        for isa in isas {
            let mut got = rows.to_vec();
            rotate_rows(isa, &mut got, None, head_dim, rotation, |_| {
                (&cos[..], &sin[..])
            });
            // Out of place, from `rows` into a buffer of other values.
            let mut out = vec![T::max_value(); rows.len()];
            rotate_rows(isa, &mut out, Some(rows), head_dim, rotation, |_| {
                (&cos[..], &sin[..])
            });
            for (i, ((&g, &o), &e)) in got.iter().zip(&out).zip(&expected).enumerate() {
                prop_assert!(
                    same(g, e) && same(o, e),
                    "{isa:?}, {}/{}: element {i} is {g:?} ({:#x}) in place and {o:?} ({:#x}) out of place, the oracle gives {e:?} ({:#x})",
                    T::DTYPE,
                    C::DTYPE,
                    g.to_bits64(),
                    o.to_bits64(),
                    e.to_bits64()
                );
            }
        }
        Ok(())
    }

    fn pairing() -> impl Strategy<Value = RopeLayout> {
        prop_oneof![Just(RopeLayout::Interleaved), Just(RopeLayout::HalfSplit)]
    }

    /// Head sizes around the vector widths (4 and 8 lanes), so that the vector loops and
    /// their scalar tails both run.
    fn head_shape() -> impl Strategy<Value = (usize, usize)> {
        (1usize..4, 1usize..21).prop_map(|(n_heads, half)| (n_heads, 2 * half))
    }

    macro_rules! kernel_matches_oracle {
        ($name:ident, $t:ty, $c:ty) => {
            proptest! {
                #[test]
                fn $name(
                    ((n_heads, head_dim), values, angles) in head_shape().prop_flat_map(|(n, d)| (
                        Just((n, d)),
                        any_values::<$t>(n * d),
                        // Angle 0 (cos 1, sin 0) with a dyadic scale makes exact
                        // rounding ties, which ties-to-even must break right.
                        proptest::collection::vec(prop_oneof![Just(0.0f64), -1.0e4f64..1.0e4], d / 2),
                    )),
                    pairing in pairing(),
                    sign in prop_oneof![Just(1.0f64), Just(-1.0)],
                    scale in prop_oneof![Just(1.0f64), Just(1.5), Just(0.75), 0.5f64..2.0],
                ) {
                    check::<$t, $c>(&values, n_heads, head_dim, &angles, pairing, sign, scale)?;
                }
            }
        };
    }

    kernel_matches_oracle!(bf16_in_f32_matches_the_public_conversions, bf16, f32);
    kernel_matches_oracle!(bf16_in_f64_matches_the_public_conversions, bf16, f64);
    kernel_matches_oracle!(f16_in_f32_matches_the_public_conversions, f16, f32);
    kernel_matches_oracle!(f32_in_f32_matches_the_public_conversions, f32, f32);
    kernel_matches_oracle!(f64_in_f32_matches_the_public_conversions, f64, f32);
    kernel_matches_oracle!(f64_in_f64_matches_the_public_conversions, f64, f64);

    /// The NaN cases the short bf16 conversions must get right, spelled out: signalling
    /// and quiet NaNs of both signs with payloads, infinities times a zero sine.
    #[test]
    fn bf16_nan_and_infinity_cases_match_the_public_conversions() {
        let specials: Vec<bf16> = [0x7F81u16, 0xFF81, 0x7FC1, 0xFFFF, 0x7FBF, 0x7F80, 0xFF80]
            .into_iter()
            .map(bf16::from_bits)
            .collect();
        for &a in &specials {
            for &b in &specials {
                for angle in [0.0, 1.0, std::f64::consts::FRAC_PI_2] {
                    for pairing in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
                        check::<bf16, f32>(&[a, b], 1, 2, &[angle], pairing, 1.0, 1.0).unwrap();
                    }
                }
            }
        }
    }

    #[test]
    fn misaligned_f32_and_f64_take_the_baseline_build() {
        let storage = vec![0.0f32; 512];
        // The first element on a 32-byte boundary (one of any 8 consecutive f32s is).
        let start = (0..8)
            .find(|&i| (storage[i..].as_ptr() as usize).is_multiple_of(32))
            .unwrap();
        let at = |offset: usize| &storage[start + offset..start + offset + 256];
        let detected = Isa::detect();
        assert_eq!(Isa::for_buffers(at(0), None, 128), detected);
        assert_eq!(Isa::for_buffers(at(0), Some(at(8)), 128), detected);
        // 16 bytes past the boundary: the start of a large Vec from glibc's malloc.
        assert_eq!(Isa::for_buffers(at(4), None, 128), Isa::Baseline);
        assert_eq!(Isa::for_buffers(at(0), Some(at(4)), 128), Isa::Baseline);
        // A head of 36 f32 is not a whole number of 32-byte blocks.
        assert_eq!(Isa::for_buffers(at(0), None, 36), Isa::Baseline);
        // f64 heads of 3 (24 bytes) at any address.
        let doubles = [0.0f64; 63];
        assert_eq!(Isa::for_buffers(&doubles, None, 3), Isa::Baseline);
        let halves = [bf16::ZERO; 64];
        assert_eq!(Isa::for_buffers(&halves[1..], None, 63), detected);
        let f16s = [f16::ZERO; 64];
        assert_eq!(Isa::for_buffers(&f16s[1..], None, 63), detected);
    }

    #[test]
    fn detect_finds_avx2_where_the_cpu_has_it() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(
            matches!(Isa::detect(), Isa::Avx2(_)),
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("f16c")
        );
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(Isa::detect(), Isa::Baseline);
    }
}
