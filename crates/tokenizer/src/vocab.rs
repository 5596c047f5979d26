//! [`Vocabulary`]: id ↔ token string, without a tokenizer pipeline.

use std::collections::HashMap;

use tokenloom_io::GgufFile;

use crate::error::TokenizerError;
use crate::gguf::GgufVocab;

/// The token strings of a vocabulary, by id: what every GGUF file stores
/// (`tokenizer.ggml.tokens`), whatever its tokenizer model — so ids can be shown as
/// tokens even where tokenloom cannot encode text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocabulary {
    tokens: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Vocabulary {
    /// The vocabulary of token strings `tokens` (id = index; a repeated string maps back
    /// to its first id).
    #[must_use]
    pub fn new(tokens: Vec<String>) -> Self {
        let mut ids = HashMap::with_capacity(tokens.len());
        for (id, token) in (0u32..).zip(&tokens) {
            ids.entry(token.clone()).or_insert(id);
        }
        Self { tokens, ids }
    }

    /// The vocabulary of a GGUF file.
    ///
    /// # Errors
    ///
    /// [`TokenizerError::Metadata`] when `tokenizer.ggml.tokens` is missing or not an
    /// array of strings.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, TokenizerError> {
        Ok(Self::new(GgufVocab::new(file)?.tokens.to_vec()))
    }

    /// The number of tokens.
    #[must_use]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there is no token.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token string of `id`.
    #[must_use]
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The id of a token string.
    #[must_use]
    pub fn id(&self, token: &str) -> Option<u32> {
        self.ids.get(token).copied()
    }
}
