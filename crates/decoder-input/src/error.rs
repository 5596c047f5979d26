//! [`DecoderInputError`], the error type of the decoder-input crate.

use std::path::PathBuf;
use tokenloom_embedding::EmbeddingError;
use tokenloom_io::IoError;
use tokenloom_positions::PositionError;

use tokenloom_tensor::{DType, IoSource, Shape, TensorError};

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
    /// An embedding LayerNorm weight or bias that is not `(n_embd,)`.
    #[error(
        "the embedding norm's weight or bias has shape {got:?}, expected (n_embd,) = ({n_embd},)"
    )]
    EmbeddingNormShape {
        /// Its shape.
        got: Vec<usize>,
        /// The embedding width.
        n_embd: usize,
    },
    /// The backward of a decoder input that ends with a LayerNorm.
    #[error(
        "the backward of a decoder input with an embedding LayerNorm (BERT, RoBERTa, ModernBERT) is not implemented: differentiate the norm in your first layer and call backward on a decoder input built without it"
    )]
    EmbeddingNormBackward,
    /// A head bias that is not `(vocab_size,)`.
    #[error("the head bias has shape {got:?}, expected (vocab_size,) = ({vocab_size},)")]
    HeadBiasShape {
        /// Its shape.
        got: Vec<usize>,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// A layer index past the model's last layer.
    #[error("layer {layer} is outside the model's {n_layers} layers")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: usize,
        /// The number of layers.
        n_layers: usize,
    },
    /// One rotation asked of a model whose layers rotate differently.
    #[error(
        "the layers of this model treat q and k differently ({}): rotate each layer with apply_rope_layer(layer, …)",
        .layers.join("; ")
    )]
    LayerDependentRope {
        /// The per-layer picture, one entry per group of layers.
        layers: Vec<String>,
    },
    /// q or k of another rank than 4.
    #[error(
        "q/k must be (batch, n_heads, seq_len, head_dim) or (batch, seq_len, n_heads, head_dim), got {got} dimensions"
    )]
    QkRank {
        /// The rank given.
        got: usize,
    },
    /// Position ids that are not `(batch, seq_len)` of q.
    #[error("position ids of shape {got:?} do not match (batch, seq_len) = {expected:?} of q")]
    PositionIdsShape {
        /// `(batch, seq_len)` of q.
        expected: [usize; 2],
        /// The shape given.
        got: Vec<usize>,
    },
    /// Logits of a model without a language-model head (a BERT encoder).
    #[error("this model has no output head ({reason}): there are no logits to compute")]
    NoHead {
        /// Why, e.g. `a BERT encoder`.
        reason: &'static str,
    },
    /// An architecture tokenloom does not know: nothing is assumed about it.
    #[error(
        "{path}: architecture `{architecture}` is not one tokenloom knows (its model spec covers llama, mistral, mixtral, qwen2, qwen2_moe, qwen3, qwen3_moe, qwen2_vl, gemma, gemma2, gemma3, phi3, phi, gpt_neox, gptj, stablelm, olmo, olmo2, granite, cohere, deepseek_v2, deepseek_v3, llama4, smollm3, starcoder2, falcon, exaone4, bert, gpt2); nothing is assumed about its positions or head",
        path = .path.display()
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
    /// A padding id outside the vocabulary.
    #[error("config field `pad_id` is invalid: {pad_id} is outside vocab_size {vocab_size}")]
    PadIdOutOfRange {
        /// The padding id.
        pad_id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
    /// Ragged sequences to pad, and no padding id.
    #[error(
        "config field `pad_id` is invalid: the model has no padding id; set one to pad ragged sequences"
    )]
    NoPadId,
    /// A scale that is not positive and finite.
    #[error("config field `{name}` is invalid: {value} must be positive and finite")]
    BadScale {
        /// `embedding_scale` or `logit_scale`.
        name: &'static str,
        /// The value.
        value: f64,
    },
    /// An additive position table of the wrong shape.
    #[error(
        "config field `position table` is invalid: shape {got} is not (max_positions {max_positions}, n_embd {n_embd})"
    )]
    PositionTableShape {
        /// The table's shape.
        got: Shape,
        /// Positions needed.
        max_positions: usize,
        /// The embedding width.
        n_embd: usize,
    },
    /// A RoPE cache shorter than the model's positions.
    #[error(
        "config field `rope cache` is invalid: covers {covers} positions, fewer than max_positions {max_positions}"
    )]
    RopeCacheTooShort {
        /// Positions the cache covers.
        covers: usize,
        /// Positions needed.
        max_positions: usize,
    },
    /// A token-type table of another width than the embeddings.
    #[error(
        "config field `token types` is invalid: the table is {table} wide, the embeddings {n_embd}"
    )]
    TokenTypesWidth {
        /// The token-type table's width.
        table: usize,
        /// The embeddings' width.
        n_embd: usize,
    },

    // === Checkpoints: files and their metadata ===
    /// A model config (`config.json`) that cannot be read.
    #[error("checkpoint {path}: {source}", path = .path.display())]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: IoSource,
    },
    /// A model config path that is not a regular file (a directory, a device, a pipe).
    #[error("checkpoint {path}: not a regular file", path = .path.display())]
    ConfigNotAFile {
        /// The path.
        path: PathBuf,
    },
    /// A model config larger than any real one.
    #[error("checkpoint {path}: {bytes} bytes is larger than the {limit}-byte limit of a config file", path = .path.display())]
    ConfigTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size (at least).
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// A config key the model spec neither handles nor knows to be harmless: it may change
    /// the numbers, so it is not ignored.
    #[error(
        "checkpoint {path}: key `{key}` is not one tokenloom's model spec of {architecture} handles; it may change the numbers, so it is not ignored",
        path = .path.display()
    )]
    UnknownConfigKey {
        /// The config file.
        path: PathBuf,
        /// The key, with its object's path (`text_config.logits_softcap`).
        key: String,
        /// The architecture read.
        architecture: &'static str,
    },
    /// A model config that is not JSON.
    #[error("checkpoint {path}: {reason} (line {line}, column {column})", path = .path.display())]
    ConfigJson {
        /// The file.
        path: PathBuf,
        /// serde_json's message.
        reason: String,
        /// Where it failed.
        line: usize,
        /// Where it failed.
        column: usize,
    },
    /// A required config or metadata key that is absent.
    #[error("checkpoint {path}: missing {key}", path = .path.display())]
    MissingKey {
        /// The config file or GGUF file.
        path: PathBuf,
        /// The key (`vocab_size`, `llama.context_length`, …).
        key: String,
    },
    /// A config or metadata value of the wrong type.
    #[error("checkpoint {path}: {key} = {value} is not {expected}", path = .path.display())]
    BadValue {
        /// The config file or GGUF file.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value, as written.
        value: String,
        /// What it must be (`a non-negative integer`, `a bool`).
        expected: &'static str,
    },
    /// A setting tokenloom does not implement (never silently ignored).
    #[error("checkpoint {path}: {key} = {value} is not supported ({reason})", path = .path.display())]
    UnsupportedSetting {
        /// The config file or GGUF file.
        path: PathBuf,
        /// The key.
        key: String,
        /// Its value.
        value: String,
        /// What tokenloom supports instead.
        reason: &'static str,
    },
    /// Two settings that are both set where tokenloom will not guess how they combine.
    #[error("checkpoint {path}: {first} and {second} are both set; llama.cpp would apply both, tokenloom does not guess how", path = .path.display())]
    ConflictingSettings {
        /// The file.
        path: PathBuf,
        /// One setting.
        first: String,
        /// The other (with its value).
        second: String,
    },
    /// Attention heads that do not divide the embedding width.
    #[error("checkpoint {path}: head_count {n_heads} does not divide embedding_length {n_embd}", path = .path.display())]
    HeadsDoNotDivide {
        /// The file.
        path: PathBuf,
        /// Query heads.
        n_heads: usize,
        /// The embedding width.
        n_embd: usize,
    },
    /// None of the tensor names an architecture uses is in the checkpoint.
    #[error(
        "checkpoint {path}: none of the tensors {} is in the checkpoint ({available} tensors, e.g. {})",
        .names.join(", "), .examples.join(", "), path = .path.display()
    )]
    MissingTensor {
        /// The checkpoint.
        path: PathBuf,
        /// The names looked for.
        names: Vec<String>,
        /// How many tensors the checkpoint has.
        available: usize,
        /// A few of them.
        examples: Vec<String>,
    },
    /// A tensor whose shape does not fit the config.
    #[error("checkpoint {path}: {tensor} has shape {got:?}, expected {expected}", path = .path.display())]
    TensorShape {
        /// The checkpoint.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// Its shape.
        got: Vec<usize>,
        /// The shape needed, e.g. `(vocab_size, 576)` or `(rotary_dim / 2,) = (32,)`.
        expected: String,
    },
    /// The same tensor name in two files of one checkpoint: which one is meant is not
    /// guessed.
    #[error("tensor `{tensor}` is in both {first} and {second}", first = .first.display(), second = .second.display())]
    DuplicateTensor {
        /// The tensor.
        tensor: String,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A directory whose weights are a GGUF file, given to the safetensors loader.
    #[error("checkpoint {dir}: holds a GGUF file ({gguf}), not safetensors: load it with load_gguf", dir = .dir.display(), gguf = .gguf.display())]
    GgufInDirectory {
        /// The directory.
        dir: PathBuf,
        /// The GGUF file.
        gguf: PathBuf,
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
    //
    // One path per source: the conversions below unwrap a `TensorError` or an `IoError`
    // nested in another crate's error, so a caller matches `Tensor(_)` for every tensor
    // error and `Io(_)` for every checkpoint-format error.
    /// An embedding error (ids, sizes, gradients); never its `Tensor` or `Io` variant,
    /// which arrive as [`DecoderInputError::Tensor`] and [`DecoderInputError::Io`].
    #[error(transparent)]
    Embedding(EmbeddingError),
    /// A position-encoding error (RoPE config, cache, config parsing); never its `Tensor`
    /// variant, which arrives as [`DecoderInputError::Tensor`].
    #[error(transparent)]
    Position(PositionError),
    /// A checkpoint-format error (safetensors, GGUF); never its `Tensor` variant, which
    /// arrives as [`DecoderInputError::Tensor`].
    #[error(transparent)]
    Io(IoError),
    /// A tensor error (shapes, allocation, files), from whichever crate it came.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

impl From<IoError> for DecoderInputError {
    fn from(err: IoError) -> Self {
        match err {
            IoError::Tensor(t) => Self::Tensor(t),
            other => Self::Io(other),
        }
    }
}

impl From<EmbeddingError> for DecoderInputError {
    fn from(err: EmbeddingError) -> Self {
        match err {
            EmbeddingError::Tensor(t) => Self::Tensor(t),
            EmbeddingError::Io(io) => Self::from(io),
            other => Self::Embedding(other),
        }
    }
}

impl From<PositionError> for DecoderInputError {
    fn from(err: PositionError) -> Self {
        match err {
            PositionError::Tensor(t) => Self::Tensor(t),
            other => Self::Position(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tensor error nested in any sibling crate's error arrives as `Tensor`, and an
    /// I/O error nested in an embedding error as `Io`: one path each.
    #[test]
    fn nested_errors_arrive_by_one_path() {
        let tensor = || TensorError::ShapeOverflow {
            dims: vec![usize::MAX, 2],
        };
        for err in [
            DecoderInputError::from(tensor()),
            DecoderInputError::from(EmbeddingError::Tensor(tensor())),
            DecoderInputError::from(EmbeddingError::Io(IoError::Tensor(tensor()))),
            DecoderInputError::from(PositionError::Tensor(tensor())),
            DecoderInputError::from(IoError::Tensor(tensor())),
        ] {
            assert_eq!(err.to_string(), tensor().to_string());
            assert!(matches!(err, DecoderInputError::Tensor(_)), "{err:?}");
        }
        let io = || IoError::NoWeights {
            dir: "model".into(),
            gguf_files: 0,
        };
        assert!(matches!(
            DecoderInputError::from(EmbeddingError::Io(io())),
            DecoderInputError::Io(IoError::NoWeights { .. })
        ));
        assert!(matches!(
            DecoderInputError::from(EmbeddingError::ZeroSize { name: "vocab_size" }),
            DecoderInputError::Embedding(EmbeddingError::ZeroSize { .. })
        ));
    }
}
