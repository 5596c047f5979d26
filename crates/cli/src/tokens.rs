//! Token strings for the commands: a model's tokenizer (its `tokenizer.json`, or the
//! vocabulary of its GGUF file) to encode `--text` and to name ids, or a bare vocabulary
//! (every GGUF file has one) to name ids where text cannot be encoded.

use std::path::Path;

use tokenloom_io::GgufFile;
use tokenloom_tokenizer::{Encoded, TextTokenizer, Vocabulary};

use crate::error::CliError;

/// What a checkpoint offers to turn text into ids and ids into strings.
pub struct TokenNames {
    /// The tokenizer, or why there is none (shown when `--text` needs one).
    tokenizer: Result<TextTokenizer, String>,
    /// A GGUF file's token strings (also when its tokenizer model is not supported).
    vocabulary: Option<Vocabulary>,
}

impl TokenNames {
    /// No tokenizer: `reason` says why.
    pub fn none(reason: impl Into<String>) -> Self {
        Self {
            tokenizer: Err(reason.into()),
            vocabulary: None,
        }
    }

    /// The tokenizer of a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self, CliError> {
        Ok(Self {
            tokenizer: Ok(TextTokenizer::from_file(path)?),
            vocabulary: None,
        })
    }

    /// A GGUF file's vocabulary and, when `with_tokenizer` and tokenloom builds its model,
    /// its tokenizer (building one for a 1M-token vocabulary takes seconds: only done when
    /// text is to be encoded).
    pub fn from_gguf(file: &GgufFile, with_tokenizer: bool) -> Self {
        Self {
            tokenizer: if with_tokenizer {
                TextTokenizer::from_gguf(file).map_err(|e| e.to_string())
            } else {
                Err("no tokenizer was built: no text to encode".to_owned())
            },
            vocabulary: Vocabulary::from_gguf(file).ok(),
        }
    }

    /// A model directory's `tokenizer.json`, if it has one (a file that is there but
    /// broken is an error).
    pub fn from_dir(dir: &Path) -> Result<Self, CliError> {
        let file = dir.join("tokenizer.json");
        if file.is_file() {
            Self::from_file(&file)
        } else {
            Ok(Self::none(format!(
                "{} has no tokenizer.json (pass --tokenizer FILE)",
                dir.display()
            )))
        }
    }

    /// The token string of `id`, if known.
    pub fn token(&self, id: u32) -> Option<String> {
        match &self.tokenizer {
            Ok(t) => t.id_to_token(id),
            Err(_) => self
                .vocabulary
                .as_ref()
                .and_then(|v| v.token(id))
                .map(str::to_owned),
        }
    }

    /// The id of a token string.
    pub fn id(&self, token: &str) -> Result<u32, CliError> {
        if let Ok(t) = &self.tokenizer {
            return Ok(t.token_to_id(token)?);
        }
        let vocabulary = self.vocabulary.as_ref().ok_or_else(|| {
            CliError(format!(
                "cannot look up token `{token}`: {}",
                self.missing_reason()
            ))
        })?;
        vocabulary
            .id(token)
            .ok_or_else(|| CliError(format!("token `{token}` is not in the vocabulary")))
    }

    /// Encodes text with the model's tokenizer.
    pub fn encode(&self, text: &str) -> Result<Encoded, CliError> {
        match &self.tokenizer {
            Ok(t) => Ok(t.encode(text)?),
            Err(_) => Err(CliError(format!(
                "cannot encode text: {}",
                self.missing_reason()
            ))),
        }
    }

    fn missing_reason(&self) -> &str {
        match &self.tokenizer {
            Ok(_) => "",
            Err(reason) => reason,
        }
    }
}
