//! One row of logits: the transform (scale, softcapping), its log-sum-exp, the loss of
//! its target, and the gradient written over the row in place.
//!
//! Sums are in `f64` and in a fixed order (eight interleaved partial sums, then their
//! total), so a row's results do not depend on which thread computes it. `f64` rows use
//! the standard library's `exp`; narrower rows an `f32` `exp` (`exp_f32`, 1–2 ulp) that
//! the compiler vectorizes, as PyTorch's own `f32` softmax does.

use tokenloom_tensor::{DType, Element};

/// What turns a raw product `x = h · w_j` into the logit `z_j` the loss sees, and the
/// loss's own settings.
#[derive(Clone, Copy, Debug)]
pub(super) struct RowMath {
    /// `u = x · multiplier` (or `x / divisor` when `divide`).
    pub scale: f64,
    /// Whether `scale` divides (Granite's `logits_scaling`) instead of multiplying.
    pub divide: bool,
    /// `z = cap · tanh(u / cap)` (Gemma 2), or `z = u`.
    pub softcap: Option<f64>,
    /// PyTorch's `label_smoothing` α.
    pub label_smoothing: f64,
    /// The z-loss weight λ of `λ · lse²`.
    pub z_loss: f64,
}

/// A row's statistics over the columns one rank holds (or all of them): what a
/// vocabulary-parallel loss gathers and combines ([`VocabCombine`](super::VocabCombine)).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShardStats {
    /// The largest logit.
    pub max: f64,
    /// `Σ exp(z_j − max)`.
    pub sum_exp: f64,
    /// `Σ z_j` (`0` without label smoothing).
    pub sum_z: f64,
    /// The target's logit, `0` where the target's column is elsewhere (or ignored).
    pub target_logit: f64,
    /// The global column of the first largest logit.
    pub argmax: u64,
}

/// The forward results of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct RowForward {
    /// The row's loss before its weight: `lse − (1 − α) z_t − (α / K) Σ z + λ lse²`.
    pub loss: f64,
    /// `log Σ exp z_j`.
    pub lse: f64,
    /// The first column of the largest logit.
    pub argmax: u32,
    /// The target's logit `z_t` (`0` for an ignored row).
    pub target_logit: f64,
    /// `Σ exp(z_j − max)`, when the row was overwritten with `exp(z_j − max)` for the
    /// backward pass (no softcapping); `0` otherwise.
    pub sum_exp: f64,
}

const LANES: usize = 8;

/// `exp(x)` in `f32` for `x ≤ 0` (Cephes' `expf`: `2^n · p(r)`, `|r| ≤ ln 2 / 2`), written
/// without branches or calls so that a loop over it vectorizes. Below −87.3 it returns
/// `exp(−87.3)` (≈ 1e-38, nothing next to the row's largest term, `1`); NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.3, 0.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5; // Cephes' 5.0000001201e-1, which is 0.5 in f32
    let e = p * r * r + r + 1.0;
    // n is in [−126, 0]: a normal power of two.
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `Σ exp(z_j − max)` over `row` in `f64` (fixed order), writing each term over `row`
/// when `store`.
fn sum_exp<T: Element>(row: &mut [T], max: f64, store: bool) -> f64 {
    let mut partial = [0.0f64; LANES];
    if T::DTYPE == DType::F64 {
        for chunk in row.chunks_mut(LANES) {
            for (p, z) in partial.iter_mut().zip(chunk.iter_mut()) {
                let e = (z.as_f64() - max).exp();
                *p += e;
                if store {
                    *z = T::from_f64_lossy(e);
                }
            }
        }
    } else {
        let max = max as f32;
        for chunk in row.chunks_mut(LANES) {
            for (p, z) in partial.iter_mut().zip(chunk.iter_mut()) {
                let e = exp_f32(z.as_f32() - max);
                *p += f64::from(e);
                if store {
                    *z = T::from_f32_lossy(e);
                }
            }
        }
    }
    partial.iter().sum()
}

impl RowMath {
    /// The logit of a raw product.
    #[inline]
    fn logit(&self, x: f64) -> f64 {
        let u = if self.divide {
            x / self.scale
        } else {
            x * self.scale
        };
        match self.softcap {
            Some(cap) => cap * (u / cap).tanh(),
            None => u,
        }
    }

    /// `du/dx`.
    fn dscale(&self) -> f64 {
        if self.divide {
            1.0 / self.scale
        } else {
            self.scale
        }
    }

    /// Whether the row must be rewritten as logits (anything but the identity).
    fn transforms(&self) -> bool {
        self.scale != 1.0 || self.softcap.is_some()
    }

    /// Turns the raw products of `row` into logits in place.
    pub(super) fn transform<T: Element>(&self, row: &mut [T]) {
        if self.transforms() {
            for x in row.iter_mut() {
                *x = T::from_f64_lossy(self.logit(x.as_f64()));
            }
        }
    }

    /// Turns the raw products of `row` into logits in place and returns its statistics
    /// over the columns it holds; `target` is the target's column among them, if there;
    /// `first_column` the global column of `row[0]`. With `store` (never with
    /// softcapping), the row is left holding `exp(z_j − max)` for
    /// [`backward`](Self::backward).
    pub(super) fn stats<T: Element>(
        &self,
        row: &mut [T],
        target: Option<usize>,
        store: bool,
        first_column: usize,
    ) -> ShardStats {
        self.transform(row);
        // The maximum in eight lanes (a NaN anywhere makes the sum of exponentials, and
        // so the loss, NaN), then its first column.
        let mut lanes = [f64::NEG_INFINITY; LANES];
        for chunk in row.chunks(LANES) {
            for (m, z) in lanes.iter_mut().zip(chunk) {
                let z = z.as_f64();
                *m = if z > *m { z } else { *m };
            }
        }
        let max = lanes
            .iter()
            .fold(f64::NEG_INFINITY, |m, &l| if l > m { l } else { m });
        let argmax = row.iter().position(|z| z.as_f64() == max).unwrap_or(0);
        let sum_z = if self.label_smoothing != 0.0 {
            let mut sums = [0.0f64; LANES];
            for chunk in row.chunks(LANES) {
                for (s, z) in sums.iter_mut().zip(chunk) {
                    *s += z.as_f64();
                }
            }
            sums.iter().sum()
        } else {
            0.0
        };
        let target_logit = target.and_then(|t| row.get(t)).map_or(0.0, |z| z.as_f64());
        let sum_exp = sum_exp(row, max, store && self.softcap.is_none());
        ShardStats {
            max,
            sum_exp,
            sum_z,
            target_logit,
            argmax: (first_column + argmax) as u64,
        }
    }

    /// The loss of a row from its statistics over the whole vocabulary of
    /// `vocab_size` columns.
    pub(super) fn finish(&self, stats: &ShardStats, vocab_size: usize) -> RowForward {
        let alpha = self.label_smoothing;
        let lse = stats.max + stats.sum_exp.ln();
        let mut loss = lse - (1.0 - alpha) * stats.target_logit;
        if alpha != 0.0 {
            loss -= alpha / vocab_size as f64 * stats.sum_z;
        }
        if self.z_loss != 0.0 {
            loss += self.z_loss * lse * lse;
        }
        RowForward {
            loss,
            lse,
            argmax: u32::try_from(stats.argmax).unwrap_or(u32::MAX),
            target_logit: stats.target_logit,
            sum_exp: stats.sum_exp,
        }
    }

    /// Overwrites `row` with `d(g · loss)/dx`: `g` is the row's share of the upstream
    /// gradient (`0` for an ignored row), `target` the target's column if the row holds
    /// it, `vocab_size` the whole vocabulary's. `stored`: the row holds `exp(z − max)`
    /// (see [`stats`](Self::stats)) and `fwd.sum_exp` their sum over the whole
    /// vocabulary; otherwise it holds the logits and the probabilities are recomputed
    /// from `fwd.lse`.
    pub(super) fn backward<T: Element>(
        &self,
        row: &mut [T],
        target: Option<usize>,
        fwd: &RowForward,
        g: f64,
        vocab_size: usize,
        stored: bool,
    ) {
        if g == 0.0 {
            row.fill(T::zero());
            return;
        }
        let alpha = self.label_smoothing;
        let du = self.dscale();
        let p_scale = g * (1.0 + 2.0 * self.z_loss * fwd.lse);
        let smooth = g * alpha / vocab_size as f64;
        if stored && self.softcap.is_none() {
            let a = p_scale * du / fwd.sum_exp;
            let b = smooth * du;
            if T::DTYPE == DType::F64 {
                for e in row.iter_mut() {
                    *e = T::from_f64_lossy(a * e.as_f64() - b);
                }
            } else {
                let (a, b) = (a as f32, b as f32);
                for e in row.iter_mut() {
                    *e = T::from_f32_lossy(a * e.as_f32() - b);
                }
            }
        } else {
            for z in row.iter_mut() {
                let zf = z.as_f64();
                let p = if T::DTYPE == DType::F64 {
                    (zf - fwd.lse).exp()
                } else {
                    f64::from(exp_f32((zf - fwd.lse) as f32))
                };
                let dzdu = self.softcap.map_or(1.0, |cap| {
                    let t = zf / cap;
                    1.0 - t * t
                });
                *z = T::from_f64_lossy((p_scale * p - smooth) * dzdu * du);
            }
        }
        if let Some(x) = target.and_then(|t| row.get_mut(t)) {
            let dzdu = self.softcap.map_or(1.0, |cap| {
                let t = fwd.target_logit / cap;
                1.0 - t * t
            });
            *x = T::from_f64_lossy(x.as_f64() - g * (1.0 - alpha) * dzdu * du);
        }
    }
}
