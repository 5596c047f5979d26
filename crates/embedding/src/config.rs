//! [`EmbeddingConfig`]: everything needed to build a fresh table.

#[cfg(feature = "rand")]
use rand::{Rng, SeedableRng};
#[cfg(feature = "rand")]
use rand_chacha::ChaCha8Rng;
#[cfg(feature = "rand")]
use tokenloom_tensor::Element;

#[cfg(feature = "rand")]
use crate::error::EmbeddingError;
use crate::init::Init;
use crate::options::{EmbeddingOptions, MaxNorm, NormType};
#[cfg(feature = "rand")]
use crate::table::Embedding;

/// The configuration of a fresh embedding table, as `torch.nn.Embedding`'s constructor:
/// sizes, init and options. Plain data with `with_*` setters, validated once by
/// [`EmbeddingConfig::init`].
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{EmbeddingConfig, Init};
///
/// let table = EmbeddingConfig::new(100, 16)
///     .with_init(Init::normal(0.02))
///     .with_padding_idx(0)
///     .init_seeded::<f32>(7)?;
/// assert!(table.row(0)?.iter().all(|&x| x == 0.0)); // the padding row starts at zero
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct EmbeddingConfig {
    /// The number of rows.
    pub vocab_size: usize,
    /// The width of each row.
    pub n_embd: usize,
    /// How rows are drawn (default N(0, 1), as PyTorch).
    pub init: Init,
    /// Padding row, max norm, gradient scaling.
    pub options: EmbeddingOptions,
}

impl EmbeddingConfig {
    /// A `(vocab_size, n_embd)` table with PyTorch's defaults: N(0, 1), no options.
    #[must_use]
    pub fn new(vocab_size: usize, n_embd: usize) -> Self {
        Self {
            vocab_size,
            n_embd,
            init: Init::default(),
            options: EmbeddingOptions::default(),
        }
    }

    /// Sets the init.
    #[must_use]
    pub fn with_init(mut self, init: Init) -> Self {
        self.init = init;
        self
    }

    /// Sets the padding row.
    #[must_use]
    pub fn with_padding_idx(mut self, padding_idx: usize) -> Self {
        self.options.padding_idx = Some(padding_idx);
        self
    }

    /// Sets `max_norm` and `norm_type`.
    #[must_use]
    pub fn with_max_norm(mut self, max_norm: f64, norm_type: NormType) -> Self {
        self.options.max_norm = Some(MaxNorm {
            max_norm,
            norm_type,
        });
        self
    }

    /// Sets `scale_grad_by_freq`.
    #[must_use]
    pub fn with_scale_grad_by_freq(mut self, scale_grad_by_freq: bool) -> Self {
        self.options.scale_grad_by_freq = scale_grad_by_freq;
        self
    }

    /// Builds the table, drawing rows from `rng` and zeroing the padding row (as
    /// `nn.Embedding`).
    ///
    /// # Errors
    ///
    /// As [`Embedding::new`] and [`EmbeddingOptions::validate`].
    #[cfg(feature = "rand")]
    pub fn init<T: Element, R: Rng + ?Sized>(
        &self,
        rng: &mut R,
    ) -> Result<Embedding<T>, EmbeddingError> {
        self.options.validate(self.vocab_size.max(1))?;
        let mut table = Embedding::new(self.vocab_size, self.n_embd, self.init, rng)?
            .with_options(self.options)?;
        if let Some(p) = self.options.padding_idx {
            let n_embd = self.n_embd;
            table.weight_data_unchecked()[p * n_embd..(p + 1) * n_embd].fill(T::zero());
        }
        Ok(table)
    }

    /// [`EmbeddingConfig::init`] with a ChaCha8 generator seeded with `seed`.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingConfig::init`].
    #[cfg(feature = "rand")]
    pub fn init_seeded<T: Element>(&self, seed: u64) -> Result<Embedding<T>, EmbeddingError> {
        self.init(&mut ChaCha8Rng::seed_from_u64(seed))
    }
}
