//! [`TokenizerError`].

use std::path::PathBuf;

/// What went wrong loading a tokenizer or encoding with it. Each variant names the file
/// (or GGUF key) and what was wrong or unsupported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A `tokenizer.json` that cannot be read or parsed.
    #[error("{path}: not a usable tokenizer.json: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The reader's or parser's error, kept whole (an `std::io::Error`, the
        /// `tokenizers` library's error, or tokenloom's message for a limit).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A GGUF file without the metadata a tokenizer needs, or with malformed metadata.
    #[error("{source_name}: {key}: {reason}")]
    Metadata {
        /// The file (or `<GGUF bytes>`).
        source_name: String,
        /// The metadata key, e.g. `tokenizer.ggml.tokens`.
        key: &'static str,
        /// What is missing or wrong.
        reason: String,
    },
    /// A tokenizer kind tokenloom does not build (it never substitutes another).
    #[error("{source_name}: tokenizer {what} `{value}` is not supported (supported: {supported})")]
    Unsupported {
        /// The file.
        source_name: String,
        /// What is unsupported: `model` or `pre-tokenizer`.
        what: &'static str,
        /// The value in the file.
        value: String,
        /// What tokenloom supports.
        supported: &'static str,
    },
    /// The tokenizers library refused to build or run the pipeline.
    #[error("{source_name}: {source}")]
    Tokenizers {
        /// The file.
        source_name: String,
        /// The library's error, kept whole.
        source: tokenizers::Error,
    },
    /// A token string that is not in the vocabulary.
    #[error("token `{token}` is not in the vocabulary of {source_name}")]
    UnknownToken {
        /// The token string.
        token: String,
        /// The file.
        source_name: String,
    },
    /// Reading the GGUF file failed.
    #[error(transparent)]
    Io(#[from] tokenloom_io::IoError),
}
