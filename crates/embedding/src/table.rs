//! [`Embedding`]: the `(vocab_size, n_embd)` table and its constructors.

#[cfg(feature = "rand")]
use rand::{Rng, SeedableRng};
#[cfg(feature = "rand")]
use rand_chacha::ChaCha8Rng;
#[cfg(feature = "serde")]
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokenloom_tensor::{Element, Tensor};

use crate::error::EmbeddingError;
#[cfg(feature = "rand")]
use crate::init::Init;
use crate::options::EmbeddingOptions;

/// A token-embedding table: a trainable `(vocab_size, n_embd)` weight whose row `i` is the
/// vector of token id `i`.
///
/// Invariant: the weight is rank 2 with `vocab_size ≥ 1` and `n_embd ≥ 1`, and the
/// [`EmbeddingOptions`] are valid for it; enforced by [`Embedding::from_weight`] and
/// [`Embedding::with_options`], through which every constructor (and deserialization)
/// goes. The sizes are read from the weight's shape, never stored twice.
///
/// A table can be frozen ([`Embedding::from_pretrained`], [`Embedding::set_frozen`]):
/// every operation that would modify it (optimizer steps, [`Embedding::renorm_in_place`],
/// [`Embedding::weight_data_mut`]) then returns [`EmbeddingError::Frozen`].
///
/// # Shapes
///
/// - weight: `(vocab_size, n_embd)`
/// - [`forward`](Embedding::forward): ids `(seq_len,)` → `(seq_len, n_embd)`; ids
///   `(batch, seq_len)` → `(batch, seq_len, n_embd)`
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{Embedding, Init};
///
/// let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 42)?;
/// assert_eq!((table.vocab_size(), table.n_embd()), (3000, 8));
/// let out = table.forward(&[73, 786, 2934])?;
/// assert_eq!(out.shape().to_string(), "(3, 8)");
/// assert_eq!(out.row(1)?, table.row(786)?);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding<T> {
    weight: Tensor<T>,
    options: EmbeddingOptions,
    frozen: bool,
}

impl<T: Element> Embedding<T> {
    /// A fresh table with rows drawn by `init` from `rng`.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::ZeroSize`] for a zero `vocab_size` or `n_embd`,
    /// [`EmbeddingError::TableTooLarge`] when `vocab_size * n_embd` overflows `usize`,
    /// [`EmbeddingError::InvalidInit`] for bad init parameters, and
    /// [`tokenloom_tensor::TensorError::AllocationFailed`] when the memory cannot be had.
    #[cfg(feature = "rand")]
    pub fn new<R: Rng + ?Sized>(
        vocab_size: usize,
        n_embd: usize,
        init: Init,
        rng: &mut R,
    ) -> Result<Self, EmbeddingError> {
        check_table_sizes(vocab_size, n_embd)?;
        let data = init.sample(vocab_size, n_embd, rng)?;
        Self::from_weight(Tensor::from_vec(data, &[vocab_size, n_embd])?)
    }

    /// A fresh table drawn from a ChaCha8 generator seeded with `seed`: the same seed gives
    /// the same table on every machine.
    ///
    /// # Errors
    ///
    /// As [`Embedding::new`].
    #[cfg(feature = "rand")]
    pub fn seeded(
        vocab_size: usize,
        n_embd: usize,
        init: Init,
        seed: u64,
    ) -> Result<Self, EmbeddingError> {
        Self::new(
            vocab_size,
            n_embd,
            init,
            &mut ChaCha8Rng::seed_from_u64(seed),
        )
    }

    /// Wraps an existing `(vocab_size, n_embd)` weight, e.g. one loaded from a checkpoint.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::WeightShape`] when the weight is not rank 2, and
    /// [`EmbeddingError::ZeroSize`] when a dimension is zero.
    pub fn from_weight(weight: Tensor<T>) -> Result<Self, EmbeddingError> {
        let (vocab_size, n_embd) =
            weight
                .shape()
                .dims2("Embedding::from_weight")
                .map_err(|_| EmbeddingError::WeightShape {
                    shape: weight.shape(),
                })?;
        check_table_sizes(vocab_size, n_embd)?;
        Ok(Self {
            weight,
            options: EmbeddingOptions::default(),
            frozen: false,
        })
    }

    /// Wraps a pretrained weight, frozen or trainable, as `nn.Embedding.from_pretrained`.
    /// The rows are kept as stored (a padding row set later is not zeroed).
    ///
    /// # Errors
    ///
    /// As [`Embedding::from_weight`].
    pub fn from_pretrained(weight: Tensor<T>, freeze: bool) -> Result<Self, EmbeddingError> {
        let mut table = Self::from_weight(weight)?;
        table.frozen = freeze;
        Ok(table)
    }

    /// Sets the options (padding row, max norm, gradient scaling). The weight is not
    /// modified.
    ///
    /// # Errors
    ///
    /// As [`EmbeddingOptions::validate`].
    pub fn with_options(mut self, options: EmbeddingOptions) -> Result<Self, EmbeddingError> {
        options.validate(self.vocab_size())?;
        self.options = options;
        Ok(self)
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &EmbeddingOptions {
        &self.options
    }

    /// Whether updates are refused.
    #[must_use]
    pub fn is_frozen(&self) -> bool {
        self.frozen
    }

    /// Freezes or unfreezes the table.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.frozen = frozen;
    }

    /// The weight's elements, mutably (row-major `(vocab_size, n_embd)`); the shape cannot
    /// change through it.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::Frozen`] when the table is frozen.
    pub fn weight_data_mut(&mut self) -> Result<&mut [T], EmbeddingError> {
        self.check_trainable("weight_data_mut")?;
        Ok(self.weight.as_mut_slice())
    }

    /// [`EmbeddingError::Frozen`] naming `operation` when the table is frozen.
    pub(crate) fn check_trainable(&self, operation: &'static str) -> Result<(), EmbeddingError> {
        if self.frozen {
            Err(EmbeddingError::Frozen { operation })
        } else {
            Ok(())
        }
    }

    /// The weight's elements, mutably, for crate-internal updates that have already
    /// checked [`Embedding::check_trainable`].
    pub(crate) fn weight_data_unchecked(&mut self) -> &mut [T] {
        self.weight.as_mut_slice()
    }

    /// The number of rows: ids must be below it.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.weight.dims()[0]
    }

    /// The width of each row.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        self.weight.dims()[1]
    }

    /// The `(vocab_size, n_embd)` weight.
    #[must_use]
    pub fn weight(&self) -> &Tensor<T> {
        &self.weight
    }

    /// Gives up the table, returning its weight.
    #[must_use]
    pub fn into_weight(self) -> Tensor<T> {
        self.weight
    }

    /// The row of token `id`.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::TokenOutOfRange`] (reported at batch 0, position 0) when
    /// `id >= vocab_size`.
    pub fn row(&self, id: u32) -> Result<&[T], EmbeddingError> {
        let out_of_range = || EmbeddingError::TokenOutOfRange {
            token: i64::from(id),
            batch: 0,
            position: 0,
            vocab_size: self.vocab_size(),
        };
        let index = usize::try_from(id).map_err(|_| out_of_range())?;
        self.weight.row(index).map_err(|_| out_of_range())
    }
}

/// Checks that a `(vocab_size, n_embd)` table is non-empty and addressable.
///
/// # Errors
///
/// [`EmbeddingError::ZeroSize`] or [`EmbeddingError::TableTooLarge`].
pub(crate) fn check_table_sizes(vocab_size: usize, n_embd: usize) -> Result<(), EmbeddingError> {
    if vocab_size == 0 {
        return Err(EmbeddingError::ZeroSize { name: "vocab_size" });
    }
    if n_embd == 0 {
        return Err(EmbeddingError::ZeroSize { name: "n_embd" });
    }
    if vocab_size.checked_mul(n_embd).is_none() {
        return Err(EmbeddingError::TableTooLarge { vocab_size, n_embd });
    }
    Ok(())
}

#[cfg(feature = "serde")]
#[derive(Serialize)]
struct EmbeddingReprRef<'a, T: Element> {
    options: &'a EmbeddingOptions,
    frozen: bool,
    weight: &'a Tensor<T>,
}

#[cfg(feature = "serde")]
#[derive(Deserialize)]
#[serde(bound = "T: Element")]
struct EmbeddingRepr<T: Element> {
    options: EmbeddingOptions,
    frozen: bool,
    weight: Tensor<T>,
}

#[cfg(feature = "serde")]
impl<T: Element> Serialize for Embedding<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EmbeddingReprRef {
            options: &self.options,
            frozen: self.frozen,
            weight: &self.weight,
        }
        .serialize(serializer)
    }
}

#[cfg(feature = "serde")]
impl<'de, T: Element> Deserialize<'de> for Embedding<T> {
    /// Deserializes through [`Embedding::from_pretrained`] and [`Embedding::with_options`],
    /// so the invariant holds.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = EmbeddingRepr::<T>::deserialize(deserializer)?;
        Embedding::from_pretrained(repr.weight, repr.frozen)
            .and_then(|table| table.with_options(repr.options))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        let e = Embedding::<f32>::seeded(0, 8, Init::default(), 1).unwrap_err();
        assert_eq!(e.to_string(), "vocab_size must be at least 1, got 0");
        let e = Embedding::<f32>::seeded(4, 0, Init::default(), 1).unwrap_err();
        assert_eq!(e, EmbeddingError::ZeroSize { name: "n_embd" });
        let e = Embedding::<f32>::seeded(usize::MAX, 2, Init::default(), 1).unwrap_err();
        assert!(
            matches!(e, EmbeddingError::TableTooLarge { n_embd: 2, .. }),
            "{e}"
        );
        let flat = Tensor::from_vec(vec![0.0f32; 4], &[4]).unwrap();
        assert!(matches!(
            Embedding::from_weight(flat),
            Err(EmbeddingError::WeightShape { .. })
        ));
    }

    #[test]
    fn seeds_are_reproducible_and_distinct() {
        let a = Embedding::<f64>::seeded(10, 4, Init::default(), 7).unwrap();
        let b = Embedding::<f64>::seeded(10, 4, Init::default(), 7).unwrap();
        let c = Embedding::<f64>::seeded(10, 4, Init::default(), 8).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        // The same seed in f32 is the f64 table rounded once.
        let d = Embedding::<f32>::seeded(10, 4, Init::default(), 7).unwrap();
        assert_eq!(d.weight(), &a.weight().to_dtype::<f32>());
    }

    #[test]
    fn init_statistics_match_their_parameters() {
        let (vocab_size, n_embd) = (400, 50);
        for init in [
            Init::default(),
            Init::normal(0.02),
            Init::Uniform {
                low: -0.5,
                high: 1.5,
            },
            Init::XavierUniform { gain: 1.0 },
            Init::XavierNormal { gain: 2.0 },
        ] {
            let t = Embedding::<f64>::seeded(vocab_size, n_embd, init, 3).unwrap();
            let xs = t.weight().as_slice();
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let std = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            let want = init.std(vocab_size, n_embd);
            assert!(
                (std / want - 1.0).abs() < 0.03,
                "{init:?}: std {std} vs {want}"
            );
        }
    }

    #[test]
    fn bad_init_parameters_are_errors() {
        for init in [
            Init::normal(0.0),
            Init::normal(f64::NAN),
            Init::Uniform {
                low: 1.0,
                high: 1.0,
            },
            Init::Uniform {
                low: -f64::MAX,
                high: f64::MAX,
            },
            Init::XavierUniform { gain: -1.0 },
        ] {
            let e = Embedding::<f32>::seeded(4, 4, init, 0).unwrap_err();
            assert!(
                matches!(e, EmbeddingError::InvalidInit { .. }),
                "{init:?}: {e}"
            );
        }
    }

    #[test]
    fn row_checks_the_id() {
        let t = Embedding::<f32>::seeded(5, 3, Init::default(), 0).unwrap();
        assert_eq!(t.row(4).unwrap(), &t.weight().as_slice()[12..15]);
        assert_eq!(
            t.row(5).unwrap_err().to_string(),
            "token id 5 at batch 0, position 0 is outside vocab_size 5"
        );
    }
}
