//! [`RopeCache`]: cos/sin for every position of a context, computed in `f64`.

use tokenloom_tensor::{Element, Shape, TensorLikeMut, TensorView, try_filled};

use super::config::RopeConfig;
use crate::error::PositionError;

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// The precision a [`RopeCache`] stores cos/sin in, and the rotation computes in: `f32`
/// or `f64`. Never a half type: angles are computed in `f64` and rounded once to this
/// type, even when the activations are `f16`/`bf16`.
pub trait CacheFloat: Element + private::Sealed {
    /// Converts an activation to the compute precision (exact from `f16`, `bf16` and
    /// `f32`; rounds an `f64` activation when the cache is `f32`).
    fn from_activation<T: Element>(x: T) -> Self;
    /// Rounds a rotated value back to the activation type.
    fn to_activation<T: Element>(self) -> T;
}

impl CacheFloat for f32 {
    #[inline]
    fn from_activation<T: Element>(x: T) -> Self {
        x.as_f32()
    }
    #[inline]
    fn to_activation<T: Element>(self) -> T {
        T::from_f32_lossy(self)
    }
}

impl CacheFloat for f64 {
    #[inline]
    fn from_activation<T: Element>(x: T) -> Self {
        x.as_f64()
    }
    #[inline]
    fn to_activation<T: Element>(self) -> T {
        T::from_f64_lossy(self)
    }
}

/// `2π` split in two `f64`s: `TAU_HI + TAU_LO` is `2π` to about 2⁻¹⁰⁶.
const TAU_HI: f64 = std::f64::consts::TAU;
const TAU_LO: f64 = 2.449_293_598_294_706_4e-16;

/// Reduces an angle to `[−π, π]` exactly enough that `sin`/`cos` of the result equal those
/// of the original angle to within an ulp, for angles up to ~10¹⁵ (Cody–Waite with a
/// two-part 2π and fused multiply-adds).
#[must_use]
pub fn reduce_angle(angle: f64) -> f64 {
    let turns = (angle / TAU_HI).round();
    (-turns).mul_add(TAU_LO, (-turns).mul_add(TAU_HI, angle))
}

/// `(s·cos θ, s·sin θ)` for `θ = position · inv_freq`, computed in `f64` with the angle
/// reduced modulo 2π first ([`reduce_angle`]); `s` is the attention factor. This is the
/// value a [`RopeCache`] stores, available for any single position without building a
/// cache (e.g. position 10⁶).
#[must_use]
pub fn cos_sin(position: usize, inv_freq: f64, attention_factor: f64) -> (f64, f64) {
    // positions are far below 2^53
    let (sin, cos) = reduce_angle(position as f64 * inv_freq).sin_cos();
    (cos * attention_factor, sin * attention_factor)
}

/// Fills `(rows, inv_freq.len())` tables with the cos/sin of positions `first..`.
fn write_cos_sin<T: Element>(
    inv_freq: &[f64],
    attention_factor: f64,
    first_position: usize,
    cos: &mut [T],
    sin: &mut [T],
) {
    let half = inv_freq.len();
    for (row, (cos_row, sin_row)) in cos
        .chunks_exact_mut(half)
        .zip(sin.chunks_exact_mut(half))
        .enumerate()
    {
        for ((c, s), &freq) in cos_row.iter_mut().zip(sin_row.iter_mut()).zip(inv_freq) {
            let (cos_value, sin_value) = cos_sin(first_position + row, freq, attention_factor);
            *c = T::from_f64_lossy(cos_value);
            *s = T::from_f64_lossy(sin_value);
        }
    }
}

impl RopeConfig {
    /// Writes tokenloom's cos/sin — any scaling variant, angles in `f64` reduced modulo
    /// 2π, attention factor applied, rounded once to `T` — for positions
    /// `first_position .. first_position + rows` into the caller's `(rows, rotary_dim /
    /// 2)` buffers. `seq_len` is the sequence length the context-dependent scalings
    /// (dynamic NTK, LongRoPE) compute their frequencies for, as for
    /// [`RopeCache::new`]'s `max_positions`.
    ///
    /// Any [`Element`] type: `f32`/`f64` for [`RopeTables`](crate::RopeTables), or the
    /// activation's own type for a framework whose kernels want cos/sin in `bf16`.
    ///
    /// # Errors
    ///
    /// As [`RopeConfig::validate`], [`PositionError::OutputShape`] for buffers that are
    /// not `(rows, rotary_dim / 2)`, [`PositionError::PositionOutOfRange`] when a
    /// position overflows, and tensor errors for sources that are not contiguous
    /// row-major buffers.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_positions::{RopeConfig, RopeLayout, RopeScaling};
    ///
    /// let config = RopeConfig::new(8, 10000.0, RopeLayout::HalfSplit)
    ///     .with_scaling(RopeScaling::Linear { factor: 4.0 });
    /// let (mut cos, mut sin) = (vec![0.0f32; 3 * 4], vec![0.0f32; 3 * 4]);
    /// // Positions 100, 101, 102 into the caller's (3, 4) buffers.
    /// config.cos_sin_into(4096, 100, (&mut cos[..], [3, 4]), (&mut sin[..], [3, 4]))?;
    /// assert_eq!(cos[0], (100.0f64 / 4.0).cos() as f32);
    /// # Ok::<(), tokenloom_positions::PositionError>(())
    /// ```
    pub fn cos_sin_into<'c, 's, T: Element>(
        &self,
        seq_len: usize,
        first_position: usize,
        cos: impl TensorLikeMut<'c, T>,
        sin: impl TensorLikeMut<'s, T>,
    ) -> Result<(), PositionError> {
        let (mut cos, mut sin) = (cos.try_view_mut()?, sin.try_view_mut()?);
        // The output shapes first: a rotary_dim that does not fit the caller's tables is
        // refused before anything is computed or allocated for it.
        self.validate()?;
        let rows = cos.dims().first().copied().unwrap_or(0);
        let expected = Shape::new(&[rows, self.rotary_dim / 2])?;
        for (what, got) in [("cos", cos.shape()), ("sin", sin.shape())] {
            if got != expected {
                return Err(PositionError::OutputShape {
                    what,
                    expected,
                    got,
                });
            }
        }
        if rows > 0 && first_position.checked_add(rows - 1).is_none() {
            return Err(PositionError::PositionOutOfRange {
                position: usize::MAX,
                batch: 0,
                index: rows - 1,
                max_positions: usize::MAX,
            });
        }
        let inv_freq = self.inv_freq(seq_len)?;
        write_cos_sin(
            &inv_freq,
            self.attention_factor(),
            first_position,
            cos.as_mut_slice(),
            sin.as_mut_slice(),
        );
        Ok(())
    }
}

/// cos/sin of every position in `[0, max_positions)` for one [`RopeConfig`], with the
/// scaling's attention factor already applied (as HuggingFace does).
///
/// Angles `position · inv_freq_i` are computed in `f64`, reduced modulo 2π
/// ([`reduce_angle`]), and only then rounded to the cache precision `C` (`f32` or `f64`).
///
/// Positions at or past `max_positions` are an error
/// ([`PositionError::PositionOutOfRange`]), never a wrap-around or an out-of-bounds read.
/// To serve longer contexts, build a larger cache.
///
/// For the context-dependent scalings (dynamic NTK, LongRoPE) the frequencies are those
/// for a sequence of `max_positions` tokens: HuggingFace's result for a batch whose
/// `max(position_ids) + 1 = L` equals a cache built with `max_positions = L`.
///
/// # Shapes
///
/// [`cos`](RopeCache::cos) and [`sin`](RopeCache::sin): `(max_positions, rotary_dim / 2)`,
/// one value per pair (not duplicated as in HF's `cat(freqs, freqs)`).
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{RopeCache, RopeConfig, RopeLayout};
///
/// let config = RopeConfig::new(8, 10000.0, RopeLayout::HalfSplit);
/// let cache = RopeCache::<f64>::new(&config, 16)?;
/// assert_eq!(cache.cos().dims(), &[16, 4]);
/// assert_eq!(cache.cos_row(0)?, &[1.0; 4]); // position 0 is the identity
/// assert_eq!(cache.inv_freq()[1], 10000f64.powf(-2.0 / 8.0));
/// assert!(cache.cos_row(16).is_err());
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct RopeCache<C> {
    config: RopeConfig,
    max_positions: usize,
    inv_freq: Vec<f64>,
    attention_factor: f64,
    cos: Vec<C>,
    sin: Vec<C>,
}

impl<C: CacheFloat> RopeCache<C> {
    /// Validates `config` and computes cos/sin for positions `[0, max_positions)`.
    ///
    /// # Errors
    ///
    /// As [`RopeConfig::validate`], [`PositionError::ZeroSize`] for `max_positions = 0`,
    /// and tensor errors when the tables do not fit in memory.
    pub fn new(config: &RopeConfig, max_positions: usize) -> Result<Self, PositionError> {
        Self::new_for_seq_len(config, max_positions, max_positions)
    }

    /// [`RopeCache::new`] with the frequencies of a sequence of `seq_len` tokens, which
    /// only dynamic NTK and LongRoPE read (see [`RopeScaling::inv_freq`](crate::RopeScaling::inv_freq)):
    /// LongRoPE's short-factor cache is `new_for_seq_len(config, original, original)`,
    /// its long-factor cache `new_for_seq_len(config, max_positions, original + 1)`.
    ///
    /// # Errors
    ///
    /// As [`RopeCache::new`].
    pub fn new_for_seq_len(
        config: &RopeConfig,
        max_positions: usize,
        seq_len: usize,
    ) -> Result<Self, PositionError> {
        if max_positions == 0 {
            return Err(PositionError::ZeroSize {
                name: "max_positions",
            });
        }
        config.validate()?;
        // The tables (sized by the caller's numbers) are reserved, fallibly, before any
        // frequency is computed.
        let half = config.rotary_dim / 2;
        let len = max_positions.checked_mul(half).ok_or(
            tokenloom_tensor::TensorError::ShapeOverflow {
                dims: vec![max_positions, half],
            },
        )?;
        let mut cos = try_filled(len, C::zero(), "RopeCache::new")?;
        let mut sin = try_filled(len, C::zero(), "RopeCache::new")?;
        let inv_freq = config.inv_freq(seq_len)?;
        let attention_factor = config.attention_factor();
        write_cos_sin(&inv_freq, attention_factor, 0, &mut cos, &mut sin);
        Ok(Self {
            config: config.clone(),
            max_positions,
            inv_freq,
            attention_factor,
            cos,
            sin,
        })
    }

    /// The configuration the cache was built from.
    #[must_use]
    pub fn config(&self) -> &RopeConfig {
        &self.config
    }

    /// The number of cached positions.
    #[must_use]
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The inverse frequencies, `rotary_dim / 2` of them, in `f64`.
    #[must_use]
    pub fn inv_freq(&self) -> &[f64] {
        &self.inv_freq
    }

    /// The factor already applied to cos and sin.
    #[must_use]
    pub fn attention_factor(&self) -> f64 {
        self.attention_factor
    }

    /// The cos table `(max_positions, rotary_dim / 2)`.
    #[must_use]
    pub fn cos(&self) -> TensorView<'_, C> {
        TensorView::new(&self.cos, &[self.max_positions, self.inv_freq.len()])
            .expect("RopeCache invariant: cos has max_positions × rotary_dim/2 entries")
    }

    /// The sin table `(max_positions, rotary_dim / 2)`.
    #[must_use]
    pub fn sin(&self) -> TensorView<'_, C> {
        TensorView::new(&self.sin, &[self.max_positions, self.inv_freq.len()])
            .expect("RopeCache invariant: sin has max_positions × rotary_dim/2 entries")
    }

    /// cos of each pair at `position`.
    ///
    /// # Errors
    ///
    /// [`PositionError::PositionOutOfRange`] when `position >= max_positions`.
    pub fn cos_row(&self, position: usize) -> Result<&[C], PositionError> {
        Ok(self.rows(position, 0, 0)?.0)
    }

    /// sin of each pair at `position`.
    ///
    /// # Errors
    ///
    /// [`PositionError::PositionOutOfRange`] when `position >= max_positions`.
    pub fn sin_row(&self, position: usize) -> Result<&[C], PositionError> {
        Ok(self.rows(position, 0, 0)?.1)
    }

    /// The cos and sin rows of `position`, reporting `batch` and `index` on error.
    pub(crate) fn rows(
        &self,
        position: usize,
        batch: usize,
        index: usize,
    ) -> Result<(&[C], &[C]), PositionError> {
        self.tables().rows(position, batch, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduction_matches_direct_evaluation() {
        for &angle in &[0.0, 1.0, -3.5, 1e3, 123_456.789, 1e6 * 0.75, 3.0e9] {
            let r = reduce_angle(angle);
            assert!(r.abs() <= std::f64::consts::PI + 1e-12, "{angle} → {r}");
            // glibc reduces exactly too: the two agree to a few ulps of 1.
            assert!((r.sin() - angle.sin()).abs() < 1e-15, "sin at {angle}");
            assert!((r.cos() - angle.cos()).abs() < 1e-15, "cos at {angle}");
        }
    }

    #[test]
    fn zero_positions_is_an_error() {
        let config = RopeConfig::new(8, 1e4, super::super::RopeLayout::Interleaved);
        assert_eq!(
            RopeCache::<f32>::new(&config, 0).unwrap_err(),
            PositionError::ZeroSize {
                name: "max_positions"
            }
        );
    }
}
