//! [`DistributedError`], the error type of the distributed crate.

use tokenloom_embedding::EmbeddingError;
use tokenloom_io::IoError;
use tokenloom_tensor::TensorError;

use crate::comm::CommError;

/// Everything that can go wrong in the vocab-parallel layer. Errors found from data every
/// rank holds (replicated ids, targets, gradients) are found identically on every rank;
/// an error only one rank can see (its file, its buffer) is reported there in full and as
/// [`DistributedError::PeerFailed`] on the others, so no rank is left waiting.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DistributedError {
    /// A split of the vocabulary that cannot be made.
    #[error(
        "cannot give rank {rank} of {n_ranks} a shard of a vocabulary of {vocab_size} rows \
         (need 0 <= rank < n_ranks <= vocab_size)"
    )]
    BadShard {
        /// The vocabulary size.
        vocab_size: usize,
        /// The rank asked for.
        rank: usize,
        /// The number of ranks.
        n_ranks: usize,
    },
    /// The ranks were built with different configurations (found by one collective check
    /// at construction).
    #[error("{field} differs across ranks: from {min} to {max}")]
    ConfigMismatch {
        /// The setting (`vocab_size`, `n_embd`, `dtype`, `padding_idx`, …).
        field: &'static str,
        /// Its smallest value over the ranks.
        min: u64,
        /// Its largest value over the ranks.
        max: u64,
    },
    /// An input that must be the same on every rank (ids, targets, the output gradient)
    /// differs between ranks.
    #[error("{what} differ across ranks: every rank must pass the same {what}")]
    NotReplicated {
        /// What differs.
        what: &'static str,
    },
    /// Another rank failed at this step with an error only it could see.
    #[error("rank {rank} failed at {step}; see its error")]
    PeerFailed {
        /// The lowest rank that failed.
        rank: usize,
        /// The step.
        step: &'static str,
    },
    /// A local shard buffer of the wrong shape.
    #[error("{what} must have shape ({rows}, {n_embd}) for rows {start}..{end}, got {got:?}")]
    ShardShape {
        /// Which buffer.
        what: &'static str,
        /// The rows the shard owns.
        rows: usize,
        /// The embedding width.
        n_embd: usize,
        /// The first row owned.
        start: usize,
        /// One past the last row owned.
        end: usize,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A target id of the cross-entropy outside the vocabulary (and not `ignore_index`).
    #[error("target {target} at row {row} is outside vocab_size {vocab_size}")]
    TargetOutOfRange {
        /// The target.
        target: i64,
        /// Its row of the hidden states.
        row: usize,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// Targets and hidden states (or logits) whose row counts differ.
    #[error("{targets} targets for {rows} rows of hidden states")]
    TargetCount {
        /// The number of targets.
        targets: usize,
        /// The number of rows.
        rows: usize,
    },
    /// Every target is `ignore_index`: the mean loss is undefined.
    #[error("every target is ignore_index {ignore_index}: the mean loss is undefined")]
    NoTargets {
        /// The ignored id.
        ignore_index: i64,
    },
    /// A shard file without the shard description tokenloom writes.
    #[error("{path}: not a tokenloom shard file ({reason})")]
    NotAShard {
        /// The file.
        path: std::path::PathBuf,
        /// What is missing or malformed.
        reason: String,
    },
    /// Shard files that do not tile the vocabulary exactly once.
    #[error(
        "shard files do not tile rows 0..{vocab_size}: expected a shard starting at row {expected_start}, found {found}"
    )]
    ShardsDoNotTile {
        /// The vocabulary size.
        vocab_size: usize,
        /// The row the next shard should start at.
        expected_start: usize,
        /// What was found instead.
        found: String,
    },
    /// An option the vocab-parallel layer does not support.
    #[error("not supported across ranks: {what}")]
    Unsupported {
        /// The option, and what to do instead.
        what: &'static str,
    },
    /// A collective failed.
    #[error(transparent)]
    Comm(#[from] CommError),
    /// A local kernel's error (ids, shapes, options).
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    /// A file error.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A tensor error (allocation, shape).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
