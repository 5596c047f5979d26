//! The command's error: one line that says what to fix.

use std::fmt;

/// An error reported as `error: <message>` with a non-zero exit code.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line: newlines in wrapped messages become spaces.
        f.write_str(&self.0.replace('\n', " "))
    }
}

macro_rules! from_error {
    ($($t:ty),*) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                CliError(e.to_string())
            }
        }
    )*};
}

from_error!(
    tokenloom_tensor::TensorError,
    tokenloom_io::IoError,
    tokenloom_embedding::EmbeddingError,
    tokenloom_positions::PositionError,
    tokenloom_decoder_input::DecoderInputError,
    tokenloom_tokenizer::TokenizerError,
    tokenloom_distributed::DistributedError,
    serde_json::Error
);

/// `Err(CliError(message))`.
pub fn fail<T>(message: impl Into<String>) -> Result<T, CliError> {
    Err(CliError(message.into()))
}
