//! [`PositionError`], the error type of the positions crate.

use tokenloom_tensor::TensorError;

/// Everything that can go wrong in the positions crate. Each variant carries the numbers
/// that locate the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionError {
    /// A size that must be positive is zero.
    #[error("{name} must be at least 1, got 0")]
    ZeroSize {
        /// The parameter's name, e.g. `n_embd` or `max_positions`.
        name: &'static str,
    },
    /// A parameter outside its valid range.
    #[error("invalid {name} = {value}: {requirement}")]
    InvalidParameter {
        /// The parameter's name, e.g. `theta`.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// An error from the tensor crate (shapes, allocation).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
