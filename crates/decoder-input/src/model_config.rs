//! Model-level configuration, one home and one typed struct per format:
//! HuggingFace `config.json` ([`HfModelConfig`]) and GGUF metadata
//! ([`GgufModelConfig`]). The RoPE parameters inside them are parsed by the positions
//! crate ([`tokenloom_positions::parse_hf_config`] for `config.json`, which also reads
//! Meta's `params.json`), which owns `RopeConfig`/`RopeScaling`.

use std::path::{Path, PathBuf};

use tokenloom_io::{GgufFile, GgufValue};
use tokenloom_positions::{AttentionConfig, parse_hf_config};

use crate::architecture::{ModelFamily, hf_model_family};
use crate::error::DecoderInputError;

/// The model-level fields of a HuggingFace `config.json` that tokenloom reads (the RoPE
/// fields are read by [`HfModelConfig::attention`]). Every field is optional here; the
/// loader says which ones a family requires ([`DecoderInputError::MissingKey`]). A field
/// of the wrong type is an error naming its line and column.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::architecture::ModelFamily;
/// use tokenloom_decoder_input::HfModelConfig;
///
/// let config = HfModelConfig::parse(
///     r#"{"architectures": ["BertModel"], "vocab_size": 30522, "hidden_size": 384, "pad_token_id": 0}"#,
///     "config.json".as_ref(),
/// )?;
/// assert_eq!(config.model_type().as_deref(), Some("bert"));
/// assert_eq!(config.family(), Some(ModelFamily::BertEncoder));
/// assert_eq!((config.vocab_size, config.pad_token_id), (Some(30522), Some(0)));
///
/// let err = HfModelConfig::parse(r#"{"vocab_size": "many"}"#, "config.json".as_ref()).unwrap_err();
/// assert!(err.to_string().contains("line 1"), "{err}");
/// # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
pub struct HfModelConfig {
    /// `model_type` (`llama`, `bert`, `gpt2`, …).
    pub model_type: Option<String>,
    /// `architectures` (`LlamaForCausalLM`, …).
    pub architectures: Option<Vec<String>>,
    /// `vocab_size`.
    pub vocab_size: Option<usize>,
    /// `hidden_size` (the embedding width of LLaMA-style and BERT configs).
    pub hidden_size: Option<usize>,
    /// `n_embd` (GPT-2's embedding width).
    pub n_embd: Option<usize>,
    /// `max_position_embeddings`.
    pub max_position_embeddings: Option<usize>,
    /// `n_positions` (GPT-2's position count).
    pub n_positions: Option<usize>,
    /// `type_vocab_size` (BERT's segment count).
    pub type_vocab_size: Option<usize>,
    /// `pad_token_id`.
    pub pad_token_id: Option<usize>,
    /// `tie_word_embeddings`.
    pub tie_word_embeddings: Option<bool>,
    /// `position_embedding_type` (BERT: only `absolute` is supported).
    pub position_embedding_type: Option<String>,
    /// The file's text, for the RoPE parser.
    #[serde(skip)]
    text: String,
    /// The file, for errors.
    #[serde(skip)]
    path: PathBuf,
}

impl HfModelConfig {
    /// Reads and parses a `config.json`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ConfigRead`] and the errors of [`parse`](Self::parse).
    pub fn read(path: &Path) -> Result<Self, DecoderInputError> {
        let text = std::fs::read_to_string(path).map_err(|e| DecoderInputError::ConfigRead {
            path: path.to_path_buf(),
            source: tokenloom_tensor::IoSource::new(e),
        })?;
        Self::parse(&text, path)
    }

    /// Parses the text of a `config.json` read from `path`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ConfigJson`] for text that is not JSON or a field of the wrong
    /// type, with its line and column.
    pub fn parse(text: &str, path: &Path) -> Result<Self, DecoderInputError> {
        let mut config: Self =
            serde_json::from_str(text).map_err(|e| DecoderInputError::ConfigJson {
                path: path.to_path_buf(),
                reason: e.to_string(),
                line: e.line(),
                column: e.column(),
            })?;
        config.text = text.to_owned();
        config.path = path.to_path_buf();
        Ok(config)
    }

    /// The file it was read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `model_type`: the field itself, or else derived from the first `architectures`
    /// entry (`LlamaForCausalLM` → `llama`, `BertModel` → `bert`, `GPT2LMHeadModel` →
    /// `gpt2`). `None` when neither says.
    #[must_use]
    pub fn model_type(&self) -> Option<String> {
        if let Some(t) = &self.model_type {
            return Some(t.clone());
        }
        let class = self.architectures.as_ref()?.first()?;
        let known = [
            ("Llama", "llama"),
            ("Mistral", "mistral"),
            ("Mixtral", "mixtral"),
            ("Qwen2", "qwen2"),
            ("Qwen3", "qwen3"),
            ("Phi3", "phi3"),
            ("Gemma3", "gemma3"),
            ("Gemma2", "gemma2"),
            ("Gemma", "gemma"),
            ("Bert", "bert"),
            ("GPT2", "gpt2"),
        ];
        known
            .iter()
            .find(|(prefix, _)| class.starts_with(prefix))
            .map(|(_, t)| (*t).to_owned())
    }

    /// The family of its model type, or `None` for one tokenloom does not know.
    #[must_use]
    pub fn family(&self) -> Option<ModelFamily> {
        hf_model_family(&self.model_type()?)
    }

    /// The attention settings RoPE needs (RoPE config, head counts, context length,
    /// local layers), parsed strictly by the positions crate.
    ///
    /// # Errors
    ///
    /// The positions crate's config errors (in [`DecoderInputError::Position`]).
    pub fn attention(&self) -> Result<AttentionConfig, DecoderInputError> {
        Ok(parse_hf_config(&self.text)?)
    }

    /// `value` of the field `key`, which this model needs.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::MissingKey`] when it is absent.
    pub fn required(&self, value: Option<usize>, key: &str) -> Result<usize, DecoderInputError> {
        value.ok_or_else(|| missing_key(&self.path, key))
    }
}

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
