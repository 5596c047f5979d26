//! The arithmetic of the scatter's rows: a repeated id's rows summed in `S`, a few
//! columns at a time in registers, a single token written straight, and the rounding at
//! the end. Every path performs the operations of one running sum per element in position
//! order, so the bits depend neither on how the tokens are batched into flushes nor on
//! how the columns are split.

use tokenloom_tensor::Element;

use super::Mode;

/// How [`flush`] starts and ends a sum.
#[derive(Clone, Copy, Debug)]
pub(super) struct Flush<S> {
    /// Start from the stored sum (earlier tokens were flushed into it); otherwise from
    /// zero, or, in [`Mode::Plain`] adding, from the row's value (the plain loop's
    /// arithmetic).
    pub(super) from_sum: bool,
    /// These are the id's last tokens: finish the sum into the row ([`finish`]);
    /// otherwise store it back.
    pub(super) to_row: bool,
    pub(super) mode: Mode,
    /// Adding into the row's value ([`tokenloom_tensor::Accumulate::Add`]).
    pub(super) add: bool,
    /// The id's token count, with scale_grad_by_freq.
    pub(super) count: Option<usize>,
    /// The factor of each term (`1 / count` in the plain loop's arithmetic with
    /// scale_grad_by_freq, else 1).
    pub(super) term: S,
}

/// Adds the rows of `grad_output` at `positions` (increasing) to an id's sum,
/// [`LANES`] columns at a time: those columns' partial sum stays in registers while the
/// tokens are added, so a flush of `k` tokens reads and writes the `sum` row once
/// instead of `k` times, and stores each partial sum once instead of `k` times — with
/// the same operations, in the same order, as a running sum.
#[inline(always)]
pub(super) fn flush<G: Element, T: Element, S: SumFloat>(
    row: &mut [T],
    sum: &mut [S],
    grad_output: &[G],
    positions: &[usize],
    how: Flush<S>,
) {
    let full = row.len() / LANES * LANES;
    for start in (0..full).step_by(LANES) {
        flush_columns::<LANES, _, _, _>(row, sum, grad_output, positions, how, start);
    }
    for start in full..row.len() {
        flush_columns::<1, _, _, _>(row, sum, grad_output, positions, how, start);
    }
}

/// The columns summed in registers at a time by [`flush`]: sixteen `f64` are four AVX2
/// registers; 8 and 32 were slower (docs/benchmarks/next-to-pytorch.md, "Sums in
/// registers").
const LANES: usize = 16;

/// [`flush`] of the `L` columns from `start`.
#[inline(always)]
fn flush_columns<const L: usize, G: Element, T: Element, S: SumFloat>(
    row: &mut [T],
    sum: &mut [S],
    grad_output: &[G],
    positions: &[usize],
    how: Flush<S>,
    start: usize,
) {
    let n_embd = row.len();
    let out = &mut row[start..start + L];
    // The sum so far: the stored one (started there at an earlier flush), or from zero,
    // or, in `Mode::Plain` adding, from the row's value (the plain loop's arithmetic).
    let mut acc = [S::ZERO; L];
    if how.from_sum {
        acc.copy_from_slice(&sum[start..start + L]);
    } else if how.mode == Mode::Plain && how.add {
        acc.iter_mut().zip(&*out).for_each(|(a, &o)| *a = S::of(o));
    }
    for &p in positions {
        let x = &grad_output[p * n_embd + start..p * n_embd + start + L];
        add_term(&mut acc, x, how.term);
    }
    if how.to_row {
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = finish(*o, a, how.mode, how.add, how.count);
        }
    } else {
        sum[start..start + L].copy_from_slice(&acc);
    }
}

/// `sum += x · term` element by element in `S` (without the product when `term` is 1).
#[inline(always)]
fn add_term<T: Element, S: SumFloat>(sum: &mut [S], x: &[T], term: S) {
    if term == S::ONE {
        sum.iter_mut().zip(x).for_each(|(s, &x)| *s = *s + S::of(x));
    } else {
        sum.iter_mut()
            .zip(x)
            .for_each(|(s, &x)| *s = *s + S::of(x) * term);
    }
}

/// The value a finished sum `s` leaves in a row holding `o`: in [`Mode::Exact`], `s`
/// divided by the count with scale_grad_by_freq (`count`), then added to `o` when
/// accumulating, rounded once; otherwise `s` already holds everything (the plain loop's
/// arithmetic), rounded.
#[inline(always)]
fn finish<T: Element, S: SumFloat>(o: T, s: S, mode: Mode, add: bool, count: Option<usize>) -> T {
    match mode {
        Mode::Exact => {
            let s = count.map_or(s, |c| s.div_count(c));
            if add { (S::of(o) + s).to() } else { s.to() }
        }
        _ => s.to(),
    }
}

/// Writes one token's gradient row `x` straight into `row`: `0 + x` when it is the row's
/// first token and the gradient is replaced (−0 becomes +0, as in a sum), `o + x`
/// otherwise. With `count` (scale_grad_by_freq) the plain loop's arithmetic multiplies
/// each term by `1 / count` ([`Mode::Direct`] and [`Mode::Plain`]); a single token of the
/// exact sum ([`Mode::Exact`]) adds `0 + x`, the value its `f64` sum rounds to.
#[inline(always)]
pub(super) fn write_straight<G: Element, T: Element>(
    row: &mut [T],
    x: &[G],
    first_replace: bool,
    mode: Mode,
    count: Option<usize>,
) {
    let term = count
        .filter(|&c| c > 1 && mode != Mode::Exact)
        .map(|c| T::from_f64_lossy(1.0 / c as f64));
    let pairs = row.iter_mut().zip(x.iter().map(|&x| widen::<G, T>(x)));
    match (first_replace, term, mode) {
        (true, None, _) => pairs.for_each(|(o, x)| *o = T::zero() + x),
        (true, Some(t), _) => pairs.for_each(|(o, x)| *o = T::zero() + x * t),
        (false, None, Mode::Exact) => pairs.for_each(|(o, x)| *o = *o + (T::zero() + x)),
        (false, None, _) => pairs.for_each(|(o, x)| *o = *o + x),
        (false, Some(t), _) => pairs.for_each(|(o, x)| *o = *o + x * t),
    }
}

/// `x` as a `T`: the same bits when the types are the same (no conversion is compiled),
/// otherwise through `f64`, to which every float widens exactly (one rounding, to `T`; a
/// half gradient into an `f32`/`f64` gradient is exact).
#[inline(always)]
fn widen<G: Element, T: Element>(x: G) -> T {
    if G::DTYPE == T::DTYPE {
        T::from_bits64(x.to_bits64())
    } else {
        T::from_f64_lossy(x.as_f64())
    }
}

/// The float a repeated id's rows are summed in: `f64` ([`GradSum::F64`](crate::GradSum::F64)) or
/// `f32` ([`GradSum::F32`](crate::GradSum::F32)).
pub(super) trait SumFloat:
    Copy + Send + Sync + PartialEq + std::ops::Add<Output = Self> + std::ops::Mul<Output = Self>
{
    const ZERO: Self;
    const ONE: Self;
    fn of<T: Element>(x: T) -> Self;
    fn to<T: Element>(self) -> T;
    /// `self / count` (counts are far below 2^24, exact in both).
    fn div_count(self, count: usize) -> Self;
}

impl SumFloat for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of<T: Element>(x: T) -> Self {
        x.as_f64()
    }
    #[inline(always)]
    fn to<T: Element>(self) -> T {
        T::from_f64_lossy(self)
    }
    #[inline(always)]
    fn div_count(self, count: usize) -> Self {
        self / count as f64
    }
}

impl SumFloat for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    #[inline(always)]
    fn of<T: Element>(x: T) -> Self {
        x.as_f32()
    }
    #[inline(always)]
    fn to<T: Element>(self) -> T {
        T::from_f32_lossy(self)
    }
    #[inline(always)]
    fn div_count(self, count: usize) -> Self {
        self / count as f32
    }
}
