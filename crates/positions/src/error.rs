//! [`PositionError`], the error type of the positions crate.

use tokenloom_tensor::{Shape, TensorError};

/// Everything that can go wrong in the positions crate. Each variant carries the numbers
/// (or the config field) that locate the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PositionError {
    // === Sizes and parameters ===
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
    /// `rotary_dim` must be even, positive and at most `head_dim`.
    #[error("rotary_dim {rotary_dim} must be even, at least 2 and at most head_dim {head_dim}")]
    InvalidRotaryDim {
        /// The requested rotary dimension.
        rotary_dim: usize,
        /// The head dimension.
        head_dim: usize,
    },
    /// A per-pair factor list (LongRoPE) of the wrong length.
    #[error("{name} has {got} entries, expected rotary_dim / 2 = {expected}")]
    FactorCount {
        /// `short_factor` or `long_factor`.
        name: &'static str,
        /// `rotary_dim / 2`.
        expected: usize,
        /// The list's length.
        got: usize,
    },

    // === Positions ===
    /// A position at or past the end of the cos/sin cache.
    #[error(
        "position {position} at batch {batch}, index {index} is outside the RoPE cache of max_positions {max_positions}"
    )]
    PositionOutOfRange {
        /// The requested absolute position.
        position: usize,
        /// Its batch index.
        batch: usize,
        /// Its index along seq_len.
        index: usize,
        /// The number of cached positions.
        max_positions: usize,
    },

    /// A negative position id (i64 or i32 ids).
    #[error("position id {position} at batch {batch}, index {index} is negative")]
    NegativePosition {
        /// The id.
        position: i64,
        /// Its batch index.
        batch: usize,
        /// Its index along seq_len.
        index: usize,
    },

    // === Tensor shapes ===
    /// A q/k tensor that is not rank 4 with the configured head_dim.
    #[error("q/k tensor of shape {shape} does not match {layout} with head_dim {head_dim}")]
    QkShape {
        /// The shape given.
        shape: Shape,
        /// The layout it was declared as.
        layout: &'static str,
        /// The configured head dimension.
        head_dim: usize,
    },
    /// A q/k tensor whose heads are narrower than the rotary dimension of the tables.
    #[error(
        "q/k tensor of shape {shape} ({layout}) has heads narrower than rotary_dim {rotary_dim}"
    )]
    QkTooNarrow {
        /// The shape given.
        shape: Shape,
        /// The layout it was declared as.
        layout: &'static str,
        /// The rotary dimension of the cos/sin tables (twice their width).
        rotary_dim: usize,
    },
    /// cos/sin tables that are not both `(max_positions, rotary_dim / 2)`.
    #[error(
        "cos {cos} and sin {sin} must both have shape (max_positions, rotary_dim / 2), non-empty"
    )]
    RopeTablesShape {
        /// The cos table's shape.
        cos: Shape,
        /// The sin table's shape.
        sin: Shape,
    },
    /// Strided cos/sin tables that do not hold `max_positions` rows of `half` values
    /// `row_stride` apart.
    #[error(
        "rope tables of {max_positions} rows of {half} values, {row_stride} apart, need {half} ≤ row_stride and that many elements; cos has {cos_len}, sin {sin_len}"
    )]
    RopeTablesStride {
        /// The rows asked for.
        max_positions: usize,
        /// Values per row (`rotary_dim / 2`).
        half: usize,
        /// Elements from one row to the next.
        row_stride: usize,
        /// Elements of the cos slice.
        cos_len: usize,
        /// Elements of the sin slice.
        sin_len: usize,
    },
    /// An output buffer of the wrong shape.
    #[error("{what} has shape {got}, expected {expected}")]
    OutputShape {
        /// Which buffer.
        what: &'static str,
        /// The shape it must have.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// Position ids whose shape is not `(batch, seq_len)` of the tensor.
    #[error("position ids of shape {got} do not match (batch, seq_len) = {expected}")]
    PositionIdsShape {
        /// `(batch, seq_len)` of the q/k tensor.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// A projection weight whose rows do not split into heads.
    #[error("{name} of shape {shape} does not have n_heads {n_heads} × head_dim {head_dim} rows")]
    WeightRows {
        /// Which weight, e.g. `q_proj weight` (the message adds nothing to it).
        name: &'static str,
        /// Its shape.
        shape: Shape,
        /// The number of heads it should hold.
        n_heads: usize,
        /// The head dimension.
        head_dim: usize,
    },

    // === Config files ===
    /// A config file that is not valid JSON or has a field of the wrong type.
    #[error("config is not valid: {message}")]
    ConfigSyntax {
        /// serde_json's message, with line and column.
        message: String,
    },
    /// A required field is missing.
    #[error("config is missing the required field `{field}`")]
    ConfigMissingField {
        /// The field's path, e.g. `rope_scaling.factor`.
        field: String,
    },
    /// A field this parser does not know and would otherwise silently ignore.
    #[error("config field `{field}` is not understood and would be silently ignored")]
    ConfigUnknownField {
        /// The field's path, e.g. `rope_scaling.beta_fast`.
        field: String,
    },
    /// A rope type this crate does not implement.
    #[error(
        "unknown rope type `{rope_type}` (known: default, linear, dynamic, yarn, llama3, longrope)"
    )]
    ConfigUnknownRopeType {
        /// The type found.
        rope_type: String,
    },
    /// A field with a value of the wrong type, out of range, or contradicting another.
    #[error("config field `{field}` is invalid: {problem}")]
    ConfigBadValue {
        /// The field's path.
        field: String,
        /// What is wrong with it.
        problem: ConfigValueProblem,
    },

    // === From the tensor crate ===
    /// An error from the tensor crate (shapes, allocation).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// What is wrong with a config value ([`PositionError::ConfigBadValue`]).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigValueProblem {
    /// A value of another JSON type than the field takes.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field takes, e.g. `a number`.
        expected: &'static str,
        /// The value found, as JSON text.
        found: String,
    },
    /// A number outside the field's range.
    #[error("{value} is not in {range}")]
    OutOfRange {
        /// The value found.
        value: f64,
        /// The allowed range, e.g. `(0, 1]`.
        range: &'static str,
    },
    /// A value that contradicts another field's.
    #[error("{value} contradicts {other_field} {other_value}")]
    Contradicts {
        /// The value found, as JSON text.
        value: String,
        /// The other field's path.
        other_field: String,
        /// The other field's value, as JSON text.
        other_value: String,
    },
}
