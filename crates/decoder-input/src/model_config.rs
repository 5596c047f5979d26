//! Typed access to a GGUF file's model-level metadata ([`GgufModelConfig`]), which the
//! model spec ([`crate::ModelSpec::from_gguf`]) reads.

use std::path::Path;

use tokenloom_io::{GgufFile, GgufValue};

use crate::error::DecoderInputError;

/// A required config or metadata key that is absent.
pub(crate) fn missing_key(path: &Path, key: impl Into<String>) -> DecoderInputError {
    DecoderInputError::MissingKey {
        path: path.to_path_buf(),
        key: key.into(),
    }
}

/// The model-level metadata of a GGUF file, read in place: `general.architecture` and
/// the `{arch}.`-prefixed sizes, each checked for its type where it is read. It borrows
/// the file, so the (possibly large) metadata — vocabularies, merges — is not copied.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::GgufModelConfig;
/// use tokenloom_io::{GgufFile, GgufWriteValue, gguf_bytes};
///
/// let file = GgufFile::from_bytes(gguf_bytes(
///     &[
///         ("general.architecture", GgufWriteValue::String("llama".into())),
///         ("llama.embedding_length", GgufWriteValue::U32(576)),
///         ("llama.context_length", GgufWriteValue::U32(8192)),
///     ],
///     &[],
/// ))?;
/// let config = GgufModelConfig::read(&file)?;
/// assert_eq!((config.architecture, config.n_embd()?), ("llama", 576));
/// assert_eq!(config.uint("attention.head_count")?, None);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct GgufModelConfig<'a> {
    /// `general.architecture`.
    pub architecture: &'a str,
    /// The file, for errors (`<GGUF bytes>` for a file read from memory).
    path: &'a Path,
    /// The file whose metadata is read.
    file: &'a GgufFile,
}

impl<'a> GgufModelConfig<'a> {
    /// The architecture and metadata of `file`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::MissingKey`] without `general.architecture`.
    pub fn read(file: &'a GgufFile) -> Result<Self, DecoderInputError> {
        let path = file.path().unwrap_or(Path::new("<GGUF bytes>"));
        let architecture = file
            .get("general.architecture")
            .and_then(GgufValue::as_str)
            .ok_or_else(|| missing_key(path, "general.architecture"))?;
        Ok(Self {
            architecture,
            path,
            file,
        })
    }

    /// The file's path (`<GGUF bytes>` for a file read from memory).
    #[must_use]
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// `{architecture}.{suffix}`.
    #[must_use]
    pub fn key(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.architecture)
    }

    /// The value of `{architecture}.{suffix}`, if present.
    #[must_use]
    pub fn get(&self, suffix: &str) -> Option<&'a GgufValue> {
        self.file.get(&self.key(suffix))
    }

    /// `{architecture}.{suffix}` as an unsigned integer, if present.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::BadValue`] for a value of another type.
    pub fn uint(&self, suffix: &str) -> Result<Option<usize>, DecoderInputError> {
        match self.get(suffix) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| DecoderInputError::BadValue {
                    path: self.path.to_path_buf(),
                    key: self.key(suffix),
                    value: format!("{v:?}"),
                    expected: "an unsigned integer",
                }),
        }
    }

    /// `{architecture}.{suffix}` as an unsigned integer, which the model needs.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::MissingKey`] when absent, and the errors of
    /// [`uint`](Self::uint).
    pub fn required(&self, suffix: &str) -> Result<usize, DecoderInputError> {
        self.uint(suffix)?
            .ok_or_else(|| missing_key(self.path, self.key(suffix)))
    }

    /// `{architecture}.{suffix}` as a float, which the model needs.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::MissingKey`] when absent or not numeric.
    pub fn required_float(&self, suffix: &str) -> Result<f64, DecoderInputError> {
        self.float(suffix)
            .ok_or_else(|| missing_key(self.path, self.key(suffix)))
    }

    /// `{architecture}.{suffix}` as a float, if present and numeric.
    #[must_use]
    pub fn float(&self, suffix: &str) -> Option<f64> {
        self.get(suffix).and_then(GgufValue::as_f64)
    }

    /// `{architecture}.{suffix}` as a string, if present and a string.
    #[must_use]
    pub fn string(&self, suffix: &str) -> Option<&'a str> {
        self.get(suffix).and_then(GgufValue::as_str)
    }

    /// `{architecture}.embedding_length`.
    ///
    /// # Errors
    ///
    /// As [`required`](Self::required).
    pub fn n_embd(&self) -> Result<usize, DecoderInputError> {
        self.required("embedding_length")
    }

    /// `{architecture}.context_length`.
    ///
    /// # Errors
    ///
    /// As [`required`](Self::required).
    pub fn context_length(&self) -> Result<usize, DecoderInputError> {
        self.required("context_length")
    }
}
