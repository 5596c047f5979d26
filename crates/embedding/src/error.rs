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
        /// The offending id (negative ids come from `i32`/`i64` inputs).
        token: i64,
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
    /// A vocabulary whose row ids do not fit the `u32` rows of a sparse gradient.
    #[error(
        "vocab_size {vocab_size} has row ids past {}, the largest row id a sparse gradient stores (u32)",
        u32::MAX
    )]
    RowIdsTooLarge {
        /// The vocabulary size.
        vocab_size: usize,
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

    /// `padding_idx` outside `[-vocab_size, vocab_size)`.
    #[error("padding_idx {padding_idx} must be within vocab_size {vocab_size}")]
    PaddingIdxOutOfRange {
        /// The padding index as given (PyTorch allows negative values).
        padding_idx: i64,
        /// The table's vocabulary size.
        vocab_size: usize,
    },
    /// Caller buffers too small for a sparse gradient.
    #[error(
        "the batch touches {needed} rows: rows has room for {rows} and values has shape {values}, need ({needed} or more, {n_embd})"
    )]
    SparseCapacity {
        /// The number of distinct rows the batch touches.
        needed: usize,
        /// The gradient's row width.
        n_embd: usize,
        /// The length of the rows buffer.
        rows: usize,
        /// The shape of the values buffer.
        values: Shape,
    },
    /// An offset of an embedding bag that does not cut the ids into bags.
    #[error("embedding_bag: offsets[{index}] = {offset} (of {n_ids} ids) {requirement}")]
    InvalidOffset {
        /// Its index in the offsets.
        index: usize,
        /// Its value (-1 when there is none).
        offset: i64,
        /// The number of ids.
        n_ids: usize,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// An embedding-bag argument that does not fit the call.
    #[error("embedding_bag: {option} {requirement}")]
    BagOption {
        /// The argument.
        option: &'static str,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// An option with an invalid value.
    #[error("invalid option {name} = {value}: {requirement}")]
    InvalidOption {
        /// The option's name.
        name: &'static str,
        /// Its value.
        value: f64,
        /// What it must satisfy.
        requirement: &'static str,
    },
    /// The table is frozen and an update was attempted.
    #[error("the embedding table is frozen: {operation} would modify it (unfreeze it first)")]
    Frozen {
        /// What was attempted.
        operation: &'static str,
    },

    // === Outputs and gradients ===
    /// A caller's output buffer has the wrong shape for the lookup.
    #[error("lookup output has shape {got}, expected {expected} (ids shape + (n_embd,))")]
    OutputShape {
        /// `ids.shape + (n_embd,)`.
        expected: Shape,
        /// The buffer's shape.
        got: Shape,
    },

    /// A gradient tensor with the wrong shape.
    #[error("{what} has shape {got}, expected {expected}")]
    GradShape {
        /// Which gradient, e.g. `grad_output`.
        what: &'static str,
        /// The shape it must have.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// An optimizer whose state was built for another parameter count.
    #[error(
        "optimizer state holds {state_len} parameters, this step has {n_params}: use one optimizer per model"
    )]
    OptimizerStateMismatch {
        /// The state's length.
        state_len: usize,
        /// The parameters of this step.
        n_params: usize,
    },
    /// Gradient buffers made for the other arrangement (tied vs untied).
    #[error("gradient buffers do not match the model: it is {}, so grads.head must be {}", if *.tied { "tied" } else { "untied" }, if *.tied { "None" } else { "Some" })]
    GradientsMismatch {
        /// Whether the model is tied.
        tied: bool,
    },
    /// A sparse gradient that does not belong to this table.
    #[error(
        "sparse gradient for a ({vocab_size}, {n_embd}) table applied to a ({table_vocab_size}, {table_n_embd}) table"
    )]
    SparseGradMismatch {
        /// The gradient's vocabulary size.
        vocab_size: usize,
        /// The gradient's row width.
        n_embd: usize,
        /// The table's vocabulary size.
        table_vocab_size: usize,
        /// The table's row width.
        table_n_embd: usize,
    },
    /// Tying at this init would start training with logits far above unit scale.
    #[error(
        "tied output head: expected initial logit std {expected_logit_std:.3} exceeds {limit} \
         (weight std {weight_std:.4} × hidden std {hidden_std} × √n_embd {sqrt_n_embd:.3} × logit scale {logit_scale}); \
         use a smaller init (e.g. N(0, 0.02)), a logit scale of 1/√n_embd, or raise the limit"
    )]
    LogitStdTooLarge {
        /// `weight_std · hidden_std · √n_embd · logit_scale`.
        expected_logit_std: f64,
        /// The accepted maximum.
        limit: f64,
        /// The RMS of the weight's entries.
        weight_std: f64,
        /// The assumed std of the hidden states' entries.
        hidden_std: f64,
        /// √n_embd.
        sqrt_n_embd: f64,
        /// The logit scale.
        logit_scale: f64,
    },
    /// An operation that needs a dense, trainable table was asked of a quantized one.
    #[error(
        "{operation} needs a dense table, but this one is stored as {qtype}: dequantize it first (QuantizedEmbedding::to_dense)"
    )]
    Quantized {
        /// The operation.
        operation: &'static str,
        /// The storage format, e.g. `Q8_0`.
        qtype: String,
    },

    // === The loss ===
    /// A target that is neither below `vocab_size` nor the `ignore_index`.
    #[error(
        "target {target} of token {row} is outside vocab_size {vocab_size} (and is not the ignore_index)"
    )]
    TargetOutOfRange {
        /// The target as given.
        target: i64,
        /// The token (row of the flattened hidden states).
        row: usize,
        /// The head's vocabulary size.
        vocab_size: usize,
    },
    /// A mean loss over no tokens: every target is the `ignore_index` (or every weight 0).
    #[error("mean loss over {n_tokens} tokens, none of which counts (all ignored or weight 0)")]
    NoTargets {
        /// The number of tokens given.
        n_tokens: usize,
    },
    /// A token weight that is negative or not finite.
    #[error("token weight {value} of token {row} is not finite and ≥ 0")]
    BadTokenWeight {
        /// The token.
        row: usize,
        /// Its weight.
        value: f64,
    },
    /// A loss that is not finite (NaN or infinite logits): reported, never returned.
    #[error("the loss of token {row} is {value} (non-finite logits in its row)")]
    NonFiniteLoss {
        /// The first token whose loss is not finite.
        row: usize,
        /// Its loss.
        value: f64,
    },
    /// An element type an operation does not take (yet).
    #[error("{op} does not take {dtype} tensors; {hint}")]
    UnsupportedDType {
        /// The operation.
        op: &'static str,
        /// The element type given.
        dtype: tokenloom_tensor::DType,
        /// What to do instead.
        hint: &'static str,
    },

    // === From the other crates ===
    /// An error reading or writing a foreign checkpoint (safetensors, GGUF).
    #[cfg(feature = "io")]
    #[error(transparent)]
    Io(#[from] tokenloom_io::IoError),
    /// An error from the tensor crate (shapes, files).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
