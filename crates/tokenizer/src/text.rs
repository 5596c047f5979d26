//! [`TextTokenizer`]: text → ids (and back) for a model's own vocabulary.

use std::path::Path;

use tokenloom_io::GgufFile;

use crate::error::TokenizerError;
use crate::gguf::GgufVocab;

/// The encoding of one text: ids, their token strings, and which positions are real
/// tokens (1) rather than the file's padding (0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// The token ids, special tokens included.
    pub ids: Vec<u32>,
    /// The token string of each id, as the vocabulary spells it (`ĠHello`, `▁dogs`).
    pub tokens: Vec<String>,
    /// 1 for a token of the text (or a special token), 0 for padding.
    pub attention_mask: Vec<u32>,
}

/// A tokenizer built on HuggingFace's `tokenizers` crate: from a `tokenizer.json`
/// ([`from_file`](TextTokenizer::from_file)) or from the vocabulary of a GGUF file
/// ([`from_gguf`](TextTokenizer::from_gguf); see the `gguf` module for the pipelines).
///
/// [`encode`](TextTokenizer::encode) does what `tokenizers.Tokenizer.encode(text)` does in
/// Python: the file's normalizer, pre-tokenizer, model and post-processor (special tokens
/// such as `[CLS]`/`[SEP]` or BOS), and the file's own padding and truncation when it
/// sets them (MiniLM's `tokenizer.json` pads every text to 128 tokens: the padding shows
/// in [`Encoded::attention_mask`]).
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    source_name: String,
}

impl TextTokenizer {
    /// Loads a HuggingFace `tokenizer.json`.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::File`] naming the file for one that cannot be read or parsed
    /// (including a model type the library does not know).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let text = read_bounded(path)?;
        let inner =
            text.parse::<tokenizers::Tokenizer>()
                .map_err(|source| TokenizerError::File {
                    path: path.to_path_buf(),
                    source,
                })?;
        Ok(Self {
            inner,
            source_name: path.display().to_string(),
        })
    }

    /// The tokenizer of a GGUF file's vocabulary (`tokenizer.ggml.*`).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Metadata`] for missing or malformed metadata,
    /// [`TokenizerError::Unsupported`] for a tokenizer model or pre-tokenizer tokenloom
    /// does not build, and [`TokenizerError::Tokenizers`] when the library refuses the
    /// vocabulary.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        let vocab = GgufVocab::new(file)?;
        Ok(Self {
            inner: vocab.build()?,
            source_name: vocab.source_name().to_owned(),
        })
    }

    /// The file the tokenizer came from.
    #[must_use]
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// The number of ids, added tokens included.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encodes `text` with the special tokens the file asks for.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Tokenizers`] when the pipeline fails (e.g. a character with no
    /// token and no unknown token).
    pub fn encode(&self, text: &str) -> Result<Encoded, TokenizerError> {
        let encoding =
            self.inner
                .encode(text, true)
                .map_err(|source| TokenizerError::Tokenizers {
                    source_name: self.source_name.clone(),
                    source,
                })?;
        Ok(Encoded {
            ids: encoding.get_ids().to_vec(),
            tokens: encoding.get_tokens().to_vec(),
            attention_mask: encoding.get_attention_mask().to_vec(),
        })
    }

    /// Decodes ids to text (special tokens skipped).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Tokenizers`] when the decoder fails.
    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        self.inner
            .decode(ids, true)
            .map_err(|source| TokenizerError::Tokenizers {
                source_name: self.source_name.clone(),
                source,
            })
    }

    /// The token string of `id`, if it is in the vocabulary.
    #[must_use]
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The id of a token string (as the vocabulary spells it).
    ///
    /// # Errors
    ///
    /// [`TokenizerError::UnknownToken`] for a string that is not a token.
    pub fn token_to_id(&self, token: &str) -> Result<u32, TokenizerError> {
        self.inner
            .token_to_id(token)
            .ok_or_else(|| TokenizerError::UnknownToken {
                token: token.to_owned(),
                source_name: self.source_name.clone(),
            })
    }

    /// The underlying `tokenizers::Tokenizer`, for anything else the library offers.
    #[must_use]
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// The largest `tokenizer.json` read (real ones reach a few tens of MB for vocabularies of
/// a few hundred thousand tokens).
pub const MAX_TOKENIZER_BYTES: u64 = 512 << 20;

/// A regular file's text, at most [`MAX_TOKENIZER_BYTES`] (`/dev/zero` or a pipe is
/// refused before anything is read).
fn read_bounded(path: &Path) -> Result<String, TokenizerError> {
    use std::io::Read;
    let file_error = |source: Box<dyn std::error::Error + Send + Sync>| TokenizerError::File {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(|e| file_error(e.into()))?;
    let meta = file.metadata().map_err(|e| file_error(e.into()))?;
    if !meta.is_file() {
        return Err(file_error("not a regular file".into()));
    }
    if meta.len() > MAX_TOKENIZER_BYTES {
        return Err(file_error(
            format!(
                "{} bytes is larger than the {MAX_TOKENIZER_BYTES}-byte limit of a tokenizer file",
                meta.len()
            )
            .into(),
        ));
    }
    let mut text = String::new();
    file.take(MAX_TOKENIZER_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| file_error(e.into()))?;
    if text.len() as u64 > MAX_TOKENIZER_BYTES {
        return Err(file_error(
            format!("larger than the {MAX_TOKENIZER_BYTES}-byte limit of a tokenizer file").into(),
        ));
    }
    Ok(text)
}

#[cfg(all(test, unix))]
mod bounded_tests {
    use super::*;

    #[test]
    fn dev_zero_is_refused_before_it_is_read() {
        let err = TextTokenizer::from_file("/dev/zero").unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }
}
