//! [`DecoderInputError`], the error type of the decoder-input crate.

use tokenloom_embedding::EmbeddingError;
use tokenloom_io::IoError;
use tokenloom_positions::PositionError;
use tokenloom_tensor::{DType, Shape, TensorError};

/// Everything that can go wrong building the input of the first decoder block. Each
/// variant carries the numbers (or file and field) that locate the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DecoderInputError {
    // === Batches ===
    /// No sequences at all.
    #[error("the batch is empty: need at least one sequence")]
    EmptyBatch,
    /// A sequence without tokens.
    #[error("sequence {index} of the batch is empty")]
    EmptySequence {
        /// Its index in the batch.
        index: usize,
    },
    /// A sequence longer than the model's context.
    #[error("sequence {index} has {len} tokens, more than max_positions {max_positions}")]
    SequenceTooLong {
        /// Its index in the batch.
        index: usize,
        /// Its length.
        len: usize,
        /// The model's context length.
        max_positions: usize,
    },
    /// A position id at or past the model's context.
    #[error(
        "position {position} at batch {batch}, index {index} is outside max_positions {max_positions}"
    )]
    PositionOutOfRange {
        /// The position id.
        position: usize,
        /// Its batch index.
        batch: usize,
        /// Its index along seq_len.
        index: usize,
        /// The model's context length.
        max_positions: usize,
    },
    /// A token stream too short for one `(seq_len + 1)`-token window.
    #[error(
        "a token stream of {stream_len} tokens is too short for one window: seq_len {seq_len} needs {needed} (inputs + the shifted target)"
    )]
    StreamTooShort {
        /// The stream's length.
        stream_len: usize,
        /// The window length.
        seq_len: usize,
        /// `seq_len + 1`.
        needed: usize,
    },
    /// A size that must be positive is zero.
    #[error("{name} must be at least 1, got 0")]
    ZeroSize {
        /// The parameter's name.
        name: &'static str,
    },
    /// Parts of a batch (ids, mask, position ids) whose shapes disagree.
    #[error("{what} has shape {got}, expected {expected}")]
    BatchShape {
        /// Which part.
        what: &'static str,
        /// The shape it must have.
        expected: Shape,
        /// The shape given.
        got: Shape,
    },
    /// An attention mask entry other than 0 or 1.
    #[error("attention mask value {value} at batch {batch}, index {index} is not 0 or 1")]
    MaskValue {
        /// The value.
        value: u8,
        /// Its batch index.
        batch: usize,
        /// Its index along seq_len.
        index: usize,
    },
    /// A RoPE operation on a decoder input whose position scheme is not RoPE.
    #[error("the position scheme is {scheme}, not RoPE: there is nothing to rotate")]
    NotRope {
        /// The scheme in use.
        scheme: &'static str,
    },
    /// Logits of a model without a language-model head (a BERT encoder).
    #[error("this model has no output head ({reason}): there are no logits to compute")]
    NoHead {
        /// Why, e.g. `a BERT encoder`.
        reason: &'static str,
    },
    /// An architecture tokenloom does not know: nothing is assumed about it.
    #[error(
        "{path}: architecture `{architecture}` is not one tokenloom knows (it builds RoPE decoders such as llama, mistral, qwen2, phi3, gemma; bert; gpt2); nothing is assumed about its positions or head"
    )]
    UnknownModelType {
        /// The checkpoint.
        path: std::path::PathBuf,
        /// `model_type` (or the `architectures` class) of its config.
        architecture: String,
    },

    // === Configs and checkpoints ===
    /// The config's dtype is not the element type asked for.
    #[error("the config says dtype {config}, but the decoder input was requested as {requested}")]
    DTypeMismatch {
        /// The config's dtype.
        config: DType,
        /// The element type requested.
        requested: DType,
    },
    /// A config value that cannot work.
    #[error("config field `{field}` is invalid: {reason}")]
    Config {
        /// The field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint that does not fit its config, or a missing file.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file or directory.
        path: String,
        /// What is wrong.
        reason: String,
    },

    /// A GGUF architecture that tokenloom's table (mirroring llama.cpp's
    /// `llama_model_rope_type`) does not list: its RoPE layout is unknown.
    #[error(
        "{path}: general.architecture `{architecture}` is not in tokenloom's table of GGUF architectures, so its RoPE layout (interleaved or half-split) is unknown; pass the layout yourself instead of trusting a default",
        path = .path.display()
    )]
    UnknownArchitecture {
        /// The file.
        path: std::path::PathBuf,
        /// The architecture name.
        architecture: String,
    },
    /// A GGUF architecture whose positions tokenloom cannot express as RoPE settings.
    #[error(
        "{path}: architecture `{architecture}` uses llama.cpp rope type {rope_type}: {reason}",
        path = .path.display()
    )]
    UnsupportedRope {
        /// The file.
        path: std::path::PathBuf,
        /// The architecture name.
        architecture: String,
        /// llama.cpp's rope type (`NONE`, `MROPE`, …).
        rope_type: &'static str,
        /// Why tokenloom stops here.
        reason: &'static str,
    },

    // === From the other crates ===
    /// An embedding error (ids, sizes, gradients).
    #[error(transparent)]
    Embedding(#[from] EmbeddingError),
    /// A position-encoding error (RoPE config, cache, config parsing).
    #[error(transparent)]
    Position(#[from] PositionError),
    /// A checkpoint-format error (safetensors, GGUF).
    #[error(transparent)]
    Io(#[from] IoError),
    /// A tensor error (shapes, allocation).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}
