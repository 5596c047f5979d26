//! [`Init`]: how a fresh table's rows are drawn.

#[cfg(feature = "rand")]
use rand::Rng;
#[cfg(feature = "rand")]
use rand_distr::{Distribution, Normal, Uniform};
#[cfg(feature = "rand")]
use tokenloom_tensor::{Element, TensorError};

use crate::error::EmbeddingError;

/// How the rows of a fresh `(vocab_size, n_embd)` table are drawn.
///
/// The default is PyTorch's `nn.Embedding` init, N(0, 1). GPT-2 and LLaMA-family training
/// code use N(0, 0.02) instead ([`Init::normal`]), which keeps a tied output projection's
/// initial logits small; see the crate docs.
///
/// Values are drawn in `f64` and rounded once to the element type, row by row, so a seed
/// gives the same table on every machine and for every dtype (up to that rounding).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
/// Serialized externally tagged (`{"variant": {...}}`), which both JSON and bincode
/// support.
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Init {
    /// N(`mean`, `std`²). `std` must be positive and finite.
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
    },
    /// U(`low`, `high`). Requires `low < high`, both finite.
    Uniform {
        /// Lower bound (inclusive).
        low: f64,
        /// Upper bound (exclusive).
        high: f64,
    },
    /// Xavier/Glorot uniform, as `torch.nn.init.xavier_uniform_` on a `(vocab_size, n_embd)`
    /// tensor: U(−a, a) with `a = gain·√(6 / (n_embd + vocab_size))`.
    XavierUniform {
        /// The gain (1.0 for linear layers).
        gain: f64,
    },
    /// Xavier/Glorot normal, as `torch.nn.init.xavier_normal_`: N(0, σ²) with
    /// `σ = gain·√(2 / (n_embd + vocab_size))`.
    XavierNormal {
        /// The gain (1.0 for linear layers).
        gain: f64,
    },
}

impl Default for Init {
    /// N(0, 1), as `torch.nn.Embedding`.
    fn default() -> Self {
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        }
    }
}

impl Init {
    /// N(0, `std`²), e.g. `Init::normal(0.02)` as in GPT-2 and LLaMA training code.
    #[must_use]
    pub fn normal(std: f64) -> Self {
        Init::Normal { mean: 0.0, std }
    }

    /// The standard deviation of the values this init draws for a `(vocab_size, n_embd)`
    /// table.
    #[must_use]
    pub fn std(&self, vocab_size: usize, n_embd: usize) -> f64 {
        match *self {
            Init::Normal { std, .. } => std,
            Init::Uniform { low, high } => (high - low) / 12f64.sqrt(),
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => {
                gain * (2.0 / fan_sum(vocab_size, n_embd)).sqrt()
            }
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::InvalidInit`] naming the parameter.
    pub fn validate(&self) -> Result<(), EmbeddingError> {
        let invalid = |parameter, value, requirement| {
            Err(EmbeddingError::InvalidInit {
                parameter,
                value,
                requirement,
            })
        };
        match *self {
            Init::Normal { mean, std } => {
                if !mean.is_finite() {
                    return invalid("mean", mean, "must be finite");
                }
                if !(std.is_finite() && std > 0.0) {
                    return invalid("std", std, "must be positive and finite");
                }
            }
            Init::Uniform { low, high } => {
                if !(low.is_finite() && high.is_finite()) {
                    return invalid("low", low, "low and high must be finite");
                }
                if low >= high {
                    return invalid("low", low, "must be below high");
                }
            }
            Init::XavierUniform { gain } | Init::XavierNormal { gain } => {
                if !(gain.is_finite() && gain > 0.0) {
                    return invalid("gain", gain, "must be positive and finite");
                }
            }
        }
        Ok(())
    }

    /// Draws `vocab_size * n_embd` values, row-major.
    #[cfg(feature = "rand")]
    pub(crate) fn sample<T: Element, R: Rng + ?Sized>(
        &self,
        vocab_size: usize,
        n_embd: usize,
        rng: &mut R,
    ) -> Result<Vec<T>, EmbeddingError> {
        self.validate()?;
        let len = vocab_size
            .checked_mul(n_embd)
            .ok_or(EmbeddingError::TableTooLarge { vocab_size, n_embd })?;
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| TensorError::AllocationFailed {
                op: "Embedding::new",
                bytes: len.saturating_mul(std::mem::size_of::<T>()),
            })?;
        let round = |x: f64| T::from_f64_lossy(x);
        let bad_std = |std: f64| EmbeddingError::InvalidInit {
            parameter: "std",
            value: std,
            requirement: "must be a finite, non-negative standard deviation",
        };
        let bad_range = |low: f64, high: f64| EmbeddingError::InvalidInit {
            parameter: "high - low",
            value: high - low,
            requirement: "the range must be finite and non-empty",
        };
        match *self {
            Init::Normal { mean, std } => {
                let dist = Normal::new(mean, std).map_err(|_| bad_std(std))?;
                data.extend(dist.sample_iter(rng).take(len).map(round));
            }
            Init::XavierNormal { .. } => {
                let std = self.std(vocab_size, n_embd);
                let dist = Normal::new(0.0, std).map_err(|_| bad_std(std))?;
                data.extend(dist.sample_iter(rng).take(len).map(round));
            }
            Init::Uniform { low, high } => {
                let dist = Uniform::new(low, high).map_err(|_| bad_range(low, high))?;
                data.extend(dist.sample_iter(rng).take(len).map(round));
            }
            Init::XavierUniform { gain } => {
                let bound = gain * (6.0 / fan_sum(vocab_size, n_embd)).sqrt();
                let dist = Uniform::new(-bound, bound).map_err(|_| bad_range(-bound, bound))?;
                data.extend(dist.sample_iter(rng).take(len).map(round));
            }
        }
        Ok(data)
    }
}

/// `fan_in + fan_out` of a `(vocab_size, n_embd)` tensor as PyTorch computes it
/// (`fan_in = n_embd`, `fan_out = vocab_size`), in f64.
// Table sizes are far below 2^53.
fn fan_sum(vocab_size: usize, n_embd: usize) -> f64 {
    vocab_size as f64 + n_embd as f64
}
