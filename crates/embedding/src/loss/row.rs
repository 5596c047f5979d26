//! One row of logits: the transform (scale, softcapping), its log-sum-exp, the loss of
//! its target, and the gradient written over the row in place.
//!
//! All arithmetic is in `f64`, whatever the storage type, and in column order, so a row's
//! results do not depend on which thread computes it.

use tokenloom_tensor::Element;

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

/// The forward results of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct RowForward {
    /// The row's loss before its weight: `lse − (1 − α) z_t − (α / K) Σ z + λ lse²`.
    pub loss: f64,
    /// `log Σ exp z_j`.
    pub lse: f64,
    /// The first column of the largest logit.
    pub argmax: u32,
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

    /// `dz/dx` at the logit `z`.
    #[inline]
    fn dlogit(&self, z: f64) -> f64 {
        let du = if self.divide {
            1.0 / self.scale
        } else {
            self.scale
        };
        match self.softcap {
            Some(cap) => {
                let t = z / cap;
                (1.0 - t * t) * du
            }
            None => du,
        }
    }

    /// Whether the row must be rewritten as logits (anything but the identity).
    fn transforms(&self) -> bool {
        self.scale != 1.0 || self.softcap.is_some()
    }

    /// Turns the raw products of `row` into logits in place and returns the row's
    /// forward results for `target` (any column for an ignored row: its loss is not
    /// used).
    pub(super) fn forward<T: Element>(&self, row: &mut [T], target: usize) -> RowForward {
        if self.transforms() {
            for x in row.iter_mut() {
                *x = T::from_f64_lossy(self.logit(x.as_f64()));
            }
        }
        let (mut max, mut argmax) = (f64::NEG_INFINITY, 0usize);
        let mut sum_z = 0.0;
        for (j, z) in row.iter().enumerate() {
            let z = z.as_f64();
            // `!(z <= max)` also takes a NaN, so a NaN row reports NaN.
            if z > max || (z.is_nan() && !max.is_nan()) {
                max = z;
                argmax = j;
            }
            sum_z += z;
        }
        let sum_exp: f64 = row.iter().map(|z| (z.as_f64() - max).exp()).sum();
        let lse = max + sum_exp.ln();
        let k = row.len() as f64;
        let alpha = self.label_smoothing;
        let z_t = row.get(target).map_or(0.0, |z| z.as_f64());
        let mut loss = lse - (1.0 - alpha) * z_t;
        if alpha != 0.0 {
            loss -= alpha / k * sum_z;
        }
        if self.z_loss != 0.0 {
            loss += self.z_loss * lse * lse;
        }
        RowForward {
            loss,
            lse,
            argmax: u32::try_from(argmax).unwrap_or(u32::MAX),
        }
    }

    /// Overwrites the logits of `row` with `d(g · loss)/dx` for its target: `g` is the
    /// row's share of the upstream gradient (`0` for an ignored row).
    pub(super) fn backward<T: Element>(&self, row: &mut [T], target: usize, lse: f64, g: f64) {
        if g == 0.0 {
            row.fill(T::zero());
            return;
        }
        let k = row.len() as f64;
        let alpha = self.label_smoothing;
        let p_scale = g * (1.0 + 2.0 * self.z_loss * lse);
        let smooth = g * alpha / k;
        for (j, x) in row.iter_mut().enumerate() {
            let z = x.as_f64();
            let mut dz = p_scale * (z - lse).exp() - smooth;
            if j == target {
                dz -= g * (1.0 - alpha);
            }
            *x = T::from_f64_lossy(dz * self.dlogit(z));
        }
    }
}
