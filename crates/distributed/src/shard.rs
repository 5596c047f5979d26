//! [`VocabShard`]: which contiguous rows of the vocabulary a rank owns.

use crate::error::DistributedError;

/// The rows `[start, end)` of a `(vocab_size, n_embd)` table that one rank owns.
///
/// The vocabulary is split into `n_ranks` contiguous shards whose sizes differ by at most
/// one: the first `vocab_size % n_ranks` ranks own one extra row (as `torch.chunk`-style
/// splits do, where Megatron-LM instead requires a divisible vocabulary).
///
/// # Examples
///
/// ```
/// use tokenloom_distributed::VocabShard;
///
/// // 10 rows over 3 ranks: 4 + 3 + 3.
/// let shards: Vec<_> = (0..3).map(|r| VocabShard::new(10, r, 3).unwrap().range()).collect();
/// assert_eq!(shards, [0..4, 4..7, 7..10]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VocabShard {
    vocab_size: usize,
    rank: usize,
    n_ranks: usize,
    start: usize,
    end: usize,
}

impl VocabShard {
    /// Rank `rank`'s shard of `vocab_size` rows over `n_ranks` ranks.
    ///
    /// # Errors
    ///
    /// [`DistributedError::BadShard`] when `n_ranks` is 0, `rank >= n_ranks`, or there
    /// are more ranks than rows (every rank must own at least one row).
    pub fn new(vocab_size: usize, rank: usize, n_ranks: usize) -> Result<Self, DistributedError> {
        if n_ranks == 0 || rank >= n_ranks || vocab_size < n_ranks {
            return Err(DistributedError::BadShard {
                vocab_size,
                rank,
                n_ranks,
            });
        }
        let base = vocab_size / n_ranks;
        let extra = vocab_size % n_ranks;
        let start = rank * base + rank.min(extra);
        let end = start + base + usize::from(rank < extra);
        Ok(Self {
            vocab_size,
            rank,
            n_ranks,
            start,
            end,
        })
    }

    /// The whole vocabulary's size.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The owning rank.
    #[must_use]
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of ranks the vocabulary is split over.
    #[must_use]
    pub fn n_ranks(&self) -> usize {
        self.n_ranks
    }

    /// The first row owned.
    #[must_use]
    pub fn start(&self) -> usize {
        self.start
    }

    /// One past the last row owned.
    #[must_use]
    pub fn end(&self) -> usize {
        self.end
    }

    /// The rows owned, `start..end`.
    #[must_use]
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// The number of rows owned.
    #[must_use]
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Always `false`: every shard owns at least one row.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The local row of global row `id`, if this shard owns it.
    #[must_use]
    pub fn local_row(&self, id: usize) -> Option<usize> {
        (self.start..self.end)
            .contains(&id)
            .then(|| id - self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_tile_the_vocabulary_with_sizes_differing_by_at_most_one() {
        for vocab_size in 1..40 {
            for n_ranks in 1..=vocab_size.min(7) {
                let shards: Vec<_> = (0..n_ranks)
                    .map(|r| VocabShard::new(vocab_size, r, n_ranks).unwrap())
                    .collect();
                assert_eq!(shards[0].start(), 0);
                assert_eq!(shards[n_ranks - 1].end(), vocab_size);
                for w in shards.windows(2) {
                    assert_eq!(w[0].end(), w[1].start());
                    assert!(w[0].len() == w[1].len() || w[0].len() == w[1].len() + 1);
                }
            }
        }
    }

    #[test]
    fn impossible_splits_are_errors() {
        for (v, r, n) in [(10, 0, 0), (10, 3, 3), (2, 0, 3)] {
            assert_eq!(
                VocabShard::new(v, r, n),
                Err(DistributedError::BadShard {
                    vocab_size: v,
                    rank: r,
                    n_ranks: n
                })
            );
        }
    }
}
