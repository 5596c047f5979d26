//! [`EmbeddingError`], the error type of the embedding crate.

use tokenloom_tensor::{Shape, TensorError};

/// Everything that can go wrong in the embedding crate. Each variant carries the numbers
/// that locate the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddingError {
    // === Token ids ===
    /// A token id is not below `vocab_size`. Rank-1 ids `(seq_len,)` report batch 0.
    #[error(
        "token id {token} at batch {batch}, position {position} is outside vocab_size {vocab_size}"
    )]
    TokenOutOfRange {
        /// The offending id.
        token: u32,
        /// Its batch index.
        batch: usize,
        /// Its position in the sequence.
        position: usize,
        /// The table's vocabulary size.
        vocab_size: usize,
    },
    /// Ids must have shape `(seq_len,)` or `(batch, seq_len)`.
    #[error("token ids must have shape (seq_len,) or (batch, seq_len), got {shape}")]
    IdsRank {
        /// The shape given.
        shape: Shape,
    },
    /// Ids with a zero dimension: nothing to look up.
    #[error("token ids of shape {shape} are empty: need at least one token")]
    EmptyIds {
        /// The shape given.
        shape: Shape,
    },

    // === Table sizes and weights ===
    /// A size that must be positive is zero.
    #[error("{name} must be at least 1, got 0")]
    ZeroSize {
        /// `vocab_size` or `n_embd`.
        name: &'static str,
    },
    /// `vocab_size * n_embd` does not fit in `usize`.
    #[error(
        "a table of vocab_size {vocab_size} × n_embd {n_embd} has more elements than fit in usize"
    )]
    TableTooLarge {
        /// The requested vocabulary size.
        vocab_size: usize,
        /// The requested embedding width.
        n_embd: usize,
    },
    /// A weight tensor that is not `(vocab_size, n_embd)`.
    #[error("an embedding weight must have shape (vocab_size, n_embd), got {shape}")]
    WeightShape {
        /// The shape given.
        shape: Shape,
    },
    /// An initialiser with parameters that cannot produce a table.
    #[error("invalid init: {parameter} = {value} ({requirement})")]
    InvalidInit {
        /// The parameter's name.
        parameter: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy.
        requirement: &'static str,
    },

    // === Outputs ===
    /// A caller's output buffer has the wrong shape for the lookup.
    #[error("lookup output has shape {got}, expected {expected} (ids shape + (n_embd,))")]
    OutputShape {
        /// `ids.shape + (n_embd,)`.
        expected: Shape,
        /// The buffer's shape.
        got: Shape,
    },

    // === From the tensor crate ===
    /// An error from the tensor crate (shapes, files).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
