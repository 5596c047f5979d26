//! PyTorch's `EmbeddingBag` on borrowed memory: the rows of each bag of ids reduced to
//! one row (sum, mean or max), without materialising the per-token rows, and the
//! backward into the caller's gradient.
//!
//! The bags are given as PyTorch gives them ([`Bags`]): a 2-D id tensor (each row a
//! bag) or 1-D ids with offsets (`include_last_offset` as in PyTorch). Ids equal to
//! `padding_idx` are left out of their bag (not summed, not counted by the mean, not
//! candidates of the max); an empty bag gives a zero row. Sums run in `f64` and are
//! rounded once.

mod backward;

use tokenloom_tensor::{Element, TensorLike, TensorLikeMut, TensorView, TokenId, try_filled};

use crate::error::EmbeddingError;
use crate::lookup::{check_ids, table_dims};

pub use backward::{embedding_bag_backward, embedding_bag_per_sample_weights_backward};

/// How a bag's rows are reduced (PyTorch's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum BagMode {
    /// The sum of the rows (weighted by `per_sample_weights` when given).
    Sum,
    /// The mean of the rows; PyTorch's default.
    #[default]
    Mean,
    /// The element-wise maximum; the backward needs the arg-max ids the forward wrote.
    Max,
}

/// The options of an embedding bag: PyTorch's `nn.EmbeddingBag` arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BagOptions {
    /// The reduction.
    pub mode: BagMode,
    /// Ids equal to it are left out of their bag and get no gradient.
    pub padding_idx: Option<usize>,
    /// Divide each row's gradient by its id's count in the batch (not with
    /// [`BagMode::Max`], as PyTorch).
    pub scale_grad_by_freq: bool,
}

impl BagOptions {
    /// The options of `mode`, no padding row, no scaling.
    #[must_use]
    pub fn new(mode: BagMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// `self` with `padding_idx`.
    #[must_use]
    pub fn with_padding_idx(mut self, padding_idx: usize) -> Self {
        self.padding_idx = Some(padding_idx);
        self
    }

    /// `self` with `scale_grad_by_freq`.
    #[must_use]
    pub fn with_scale_grad_by_freq(mut self, scale_grad_by_freq: bool) -> Self {
        self.scale_grad_by_freq = scale_grad_by_freq;
        self
    }
}

/// Checked ids split into bags: bag `b` is `ids[starts[b]..ends[b]]`.
#[derive(Clone, Debug)]
pub struct Bags<'a, I> {
    ids: TensorView<'a, I>,
    /// `(start, end)` of each bag in `ids`.
    ranges: Vec<(usize, usize)>,
}

impl<'a, I: TokenId> Bags<'a, I> {
    /// Each row of 2-D ids `(n_bags, bag_len)` is a bag (PyTorch's 2-D `input`, no
    /// offsets).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::IdsRank`] for ids that are not 2-D, [`EmbeddingError::EmptyIds`]
    /// for a zero dimension, and allocation errors.
    pub fn from_rows(ids: impl TensorLike<'a, I>) -> Result<Self, EmbeddingError> {
        let ids = ids.try_view()?;
        let shape = ids.shape();
        let [n_bags, bag_len] = *shape.dims() else {
            return Err(EmbeddingError::IdsRank { shape });
        };
        if n_bags == 0 || bag_len == 0 {
            return Err(EmbeddingError::EmptyIds { shape });
        }
        let mut ranges = try_vec(n_bags)?;
        ranges.extend((0..n_bags).map(|b| (b * bag_len, (b + 1) * bag_len)));
        Ok(Self { ids, ranges })
    }

    /// 1-D ids cut into bags at `offsets` (PyTorch's 1-D `input` with `offsets`): bag `b`
    /// starts at `offsets[b]` and ends where the next starts; the last bag ends at the
    /// end of `ids`, or, with `include_last_offset`, `offsets` has one entry more and its
    /// last entry is the end (then `offsets.len() - 1` bags). Bags may be empty.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::IdsRank`] for ids that are not 1-D, [`EmbeddingError::InvalidOffset`]
    /// for a first offset that is not 0, a decreasing, negative or past-the-end offset, or
    /// no bags, and allocation errors.
    pub fn from_offsets(
        ids: impl TensorLike<'a, I>,
        offsets: &[I],
        include_last_offset: bool,
    ) -> Result<Self, EmbeddingError> {
        let ids = ids.try_view()?;
        let shape = ids.shape();
        let [n_ids] = *shape.dims() else {
            return Err(EmbeddingError::IdsRank { shape });
        };
        let bad = |index: usize, requirement: &'static str| EmbeddingError::InvalidOffset {
            index,
            offset: offsets.get(index).map_or(-1, |o| o.to_i64()),
            n_ids,
            requirement,
        };
        let n_bags = if include_last_offset {
            offsets.len().saturating_sub(1)
        } else {
            offsets.len()
        };
        if n_bags == 0 {
            return Err(bad(
                0,
                "offsets must name at least one bag (two entries with include_last_offset)",
            ));
        }
        let mut ranges = try_vec(n_bags)?;
        let mut previous = 0usize;
        for (index, &offset) in offsets.iter().enumerate() {
            let offset = offset.to_i64();
            if index == 0 && offset != 0 {
                return Err(bad(
                    index,
                    "must be 0 (the first bag starts at the first id)",
                ));
            }
            let Some(at) = usize::try_from(offset).ok().filter(|&at| at <= n_ids) else {
                return Err(bad(index, "must be within 0..=the number of ids"));
            };
            if at < previous {
                return Err(bad(index, "must not be below the offset before it"));
            }
            if index > 0 {
                ranges.push((previous, at));
            }
            previous = at;
        }
        if !include_last_offset {
            ranges.push((previous, n_ids));
        }
        Ok(Self { ids, ranges })
    }

    /// The number of bags, the rows of the output.
    #[must_use]
    pub fn n_bags(&self) -> usize {
        self.ranges.len()
    }

    /// The ids, 1-D or 2-D as given.
    #[must_use]
    pub fn ids(&self) -> TensorView<'a, I> {
        self.ids
    }

    /// The ids of bag `b` (`b < n_bags`).
    fn bag(&self, b: usize) -> &'a [I] {
        let (start, end) = self.ranges[b];
        &self.ids.as_slice()[start..end]
    }

    /// The ranges of the bags in the flat ids.
    fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Checks every id against the table and `per_sample_weights` against the ids and
    /// the mode.
    fn check<T>(
        &self,
        vocab_size: usize,
        n_embd: usize,
        per_sample_weights: Option<&[T]>,
        options: &BagOptions,
    ) -> Result<(), EmbeddingError> {
        if let Some(p) = options.padding_idx
            && p >= vocab_size
        {
            return Err(EmbeddingError::PaddingIdxOutOfRange {
                padding_idx: i64::try_from(p).unwrap_or(i64::MAX),
                vocab_size,
            });
        }
        let n_ids = self.ids.as_slice().len();
        if n_ids > 0 {
            check_ids(self.ids, vocab_size, n_embd)?;
        }
        if let Some(weights) = per_sample_weights {
            if options.mode != BagMode::Sum {
                return Err(EmbeddingError::BagOption {
                    option: "per_sample_weights",
                    requirement: "are only allowed with mode sum (as in PyTorch)",
                });
            }
            if weights.len() != n_ids {
                return Err(EmbeddingError::BagOption {
                    option: "per_sample_weights",
                    requirement: "must have one weight per id (the ids' shape)",
                });
            }
        }
        if options.scale_grad_by_freq && options.mode == BagMode::Max {
            return Err(EmbeddingError::BagOption {
                option: "scale_grad_by_freq",
                requirement: "is not allowed with mode max (as in PyTorch)",
            });
        }
        Ok(())
    }
}

/// An empty vector with room for `len` elements, allocated fallibly.
fn try_vec<X>(len: usize) -> Result<Vec<X>, EmbeddingError> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| tokenloom_tensor::TensorError::AllocationFailed {
            op: "embedding_bag",
            bytes: len.saturating_mul(std::mem::size_of::<X>()),
        })?;
    Ok(v)
}

/// Whether `id` takes part in its bag.
fn counts(id: usize, padding_idx: Option<usize>) -> bool {
    padding_idx != Some(id)
}

/// The bags reduced into `out` `(n_bags, n_embd)`: PyTorch's `F.embedding_bag` forward.
/// With [`BagMode::Max`], `max_indices` `(n_bags, n_embd)` receives, per column, the id
/// whose row gave the maximum (the first one on ties, as PyTorch's CPU kernel; 0 for an
/// empty bag, as PyTorch) — the backward needs it.
///
/// # Shapes
///
/// - table: `(vocab_size, n_embd)`
/// - per_sample_weights: one per id (mode sum only)
/// - out, max_indices: `(n_bags, n_embd)`
///
/// # Errors
///
/// The id errors of [`check_ids`], [`EmbeddingError::PaddingIdxOutOfRange`],
/// [`EmbeddingError::BagOption`] for `per_sample_weights` with another mode or of
/// another length, or a missing `max_indices` in max mode, and
/// [`EmbeddingError::OutputShape`] for a wrongly shaped `out`. Nothing is written on
/// error.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::functional::{BagMode, BagOptions, Bags, embedding_bag_into};
///
/// // A (vocab_size 3, n_embd 2) table; ids [0, 2 | 1] as 1-D ids with offsets [0, 2].
/// let table = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let bags = Bags::from_offsets(&[0u32, 2, 1], &[0, 2], false)?;
/// let mut out = [0.0f32; 4];
/// let options = BagOptions::new(BagMode::Mean);
/// embedding_bag_into((&table[..], [3, 2]), &bags, None, &options, (&mut out[..], [2, 2]), None)?;
/// assert_eq!(out, [3.0, 4.0, 3.0, 4.0]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn embedding_bag_into<'t, 'o, T: Element, I: TokenId>(
    table: impl TensorLike<'t, T>,
    bags: &Bags<'_, I>,
    per_sample_weights: Option<&[T]>,
    options: &BagOptions,
    out: impl TensorLikeMut<'o, T>,
    max_indices: Option<&mut [i64]>,
) -> Result<(), EmbeddingError> {
    let table = table.try_view()?;
    let (vocab_size, n_embd) = table_dims(table)?;
    let rows = table.as_slice();
    reduce_bags(
        (vocab_size, n_embd),
        &mut DenseRows { rows, n_embd },
        bags,
        per_sample_weights,
        options,
        out,
        max_indices,
    )
}

/// Where the forward reads a table's rows.
pub(crate) trait BagRows<T> {
    /// Row `id` (checked below `vocab_size`): a slice of the table, or `scratch` filled by
    /// decoding a quantized row.
    fn row<'s>(&'s mut self, id: usize, scratch: &'s mut [T]) -> Result<&'s [T], EmbeddingError>;
}

/// The rows of a dense table.
struct DenseRows<'t, T> {
    rows: &'t [T],
    n_embd: usize,
}

impl<T> BagRows<T> for DenseRows<'_, T> {
    fn row<'s>(&'s mut self, id: usize, _: &'s mut [T]) -> Result<&'s [T], EmbeddingError> {
        Ok(&self.rows[id * self.n_embd..(id + 1) * self.n_embd])
    }
}

/// The forward over any source of rows.
pub(crate) fn reduce_bags<'o, T: Element, I: TokenId>(
    (vocab_size, n_embd): (usize, usize),
    rows: &mut impl BagRows<T>,
    bags: &Bags<'_, I>,
    per_sample_weights: Option<&[T]>,
    options: &BagOptions,
    out: impl TensorLikeMut<'o, T>,
    mut max_indices: Option<&mut [i64]>,
) -> Result<(), EmbeddingError> {
    let mut out = out.try_view_mut()?;
    bags.check(vocab_size, n_embd, per_sample_weights, options)?;
    let expected = tokenloom_tensor::Shape::new(&[bags.n_bags(), n_embd])?;
    if out.shape() != expected {
        return Err(EmbeddingError::OutputShape {
            expected,
            got: out.shape(),
        });
    }
    let max = options.mode == BagMode::Max;
    match &max_indices {
        Some(m) if m.len() != bags.n_bags() * n_embd => {
            return Err(EmbeddingError::BagOption {
                option: "max_indices",
                requirement: "must have (n_bags, n_embd) elements",
            });
        }
        None if max => {
            return Err(EmbeddingError::BagOption {
                option: "max_indices",
                requirement: "are needed in mode max (the backward reads them)",
            });
        }
        _ => {}
    }
    let mut acc = try_filled(n_embd, 0.0f64, "embedding_bag")?;
    let mut scratch = try_filled(n_embd, T::zero(), "embedding_bag")?;
    for (b, out_row) in out.as_mut_slice().chunks_exact_mut(n_embd).enumerate() {
        let start = bags.ranges()[b].0;
        acc.fill(0.0);
        let mut arg: Option<&mut [i64]> = max_indices
            .as_deref_mut()
            .map(|m| &mut m[b * n_embd..(b + 1) * n_embd]);
        if let Some(arg) = arg.as_deref_mut() {
            // PyTorch's value for a bag with nothing in it (its backward skips the bag).
            arg.fill(0);
        }
        let mut taken = 0usize;
        for (k, &id) in bags.bag(b).iter().enumerate() {
            let id = id.checked_index();
            if !counts(id, options.padding_idx) {
                continue;
            }
            let r = rows.row(id, &mut scratch)?;
            match (options.mode, per_sample_weights) {
                (BagMode::Max, _) => {
                    let arg = arg
                        .as_deref_mut()
                        .expect("checked above: max_indices in mode max");
                    for ((a, i), &x) in acc.iter_mut().zip(arg.iter_mut()).zip(r) {
                        // The first maximum wins (strictly greater replaces).
                        if taken == 0 || x.as_f64() > *a {
                            *a = x.as_f64();
                            *i = id as i64;
                        }
                    }
                }
                (_, Some(w)) => {
                    let w = w[start + k].as_f64();
                    acc.iter_mut()
                        .zip(r)
                        .for_each(|(a, &x)| *a += w * x.as_f64());
                }
                _ => acc.iter_mut().zip(r).for_each(|(a, &x)| *a += x.as_f64()),
            }
            taken += 1;
        }
        let divisor = if options.mode == BagMode::Mean && taken > 0 {
            taken as f64
        } else {
            1.0
        };
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = T::from_f64_lossy(a / divisor);
        }
    }
    Ok(())
}
