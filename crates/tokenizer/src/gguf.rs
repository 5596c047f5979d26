//! Tokenizers from the vocabulary of a GGUF file (`tokenizer.ggml.*`), built from the
//! `tokenizers` crate's models — the pipelines HuggingFace's converters build for the same
//! vocabularies, never a tokenizer written by hand.
//!
//! | `tokenizer.ggml.model` | pipeline |
//! |---|---|
//! | `gpt2` (byte-level BPE: SmolLM2, GPT-2, …) | BPE over `tokens` + `merges`; pre-tokenizer by `tokenizer.ggml.pre`: `default` / `gpt-2` → ByteLevel (GPT-2's regex), `smollm` → single digits, then ByteLevel (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`); ByteLevel decoder |
//! | `llama` (SentencePiece BPE: LLaMA 1/2, Gemma, …) | BPE over `tokens` with merges derived from `scores` (as transformers' `SentencePieceExtractor`), byte fallback to the `<0xXX>` tokens; normalizer `▁` for spaces (and a leading `▁` when `tokenizer.ggml.add_space_prefix`, default true) |
//!
//! Both: tokens of type CONTROL (3) are special added tokens (matched in text, e.g.
//! `<|im_start|>`), USER_DEFINED (4) are added tokens; `tokenizer.ggml.add_bos_token` /
//! `add_eos_token` put BOS / EOS around the encoding (defaults as llama.cpp: BOS yes
//! for `llama`, no for `gpt2`; EOS no). Other models (`bert`, `t5`, `rwkv`, …) and
//! pre-tokenizers are [`TokenizerError::Unsupported`].

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, Tokenizer};
use tokenloom_io::{GgufFile, GgufValue};

use crate::error::TokenizerError;

/// GGUF token types (llama.cpp's `llama_token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

/// The tokenizer metadata of a GGUF file.
pub(crate) struct GgufVocab<'a> {
    source_name: String,
    file: &'a GgufFile,
    pub(crate) tokens: &'a [String],
}

impl<'a> GgufVocab<'a> {
    pub(crate) fn new(file: &'a GgufFile) -> Result<Self, TokenizerError> {
        let source_name = file
            .path()
            .map_or("<GGUF bytes>".to_owned(), |p| p.display().to_string());
        let tokens = file
            .get("tokenizer.ggml.tokens")
            .and_then(GgufValue::as_strings)
            .ok_or_else(|| TokenizerError::Metadata {
                source_name: source_name.clone(),
                key: "tokenizer.ggml.tokens",
                reason: "missing, or not an array of strings".to_owned(),
            })?;
        Ok(Self {
            source_name,
            file,
            tokens,
        })
    }

    pub(crate) fn source_name(&self) -> &str {
        &self.source_name
    }

    fn metadata_error(&self, key: &'static str, reason: impl Into<String>) -> TokenizerError {
        TokenizerError::Metadata {
            source_name: self.source_name.clone(),
            key,
            reason: reason.into(),
        }
    }

    fn string(&self, key: &'static str) -> Result<Option<&'a str>, TokenizerError> {
        match self.file.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.metadata_error(key, format!("{v:?} is not a string"))),
        }
    }

    fn flag(&self, key: &'static str, default: bool) -> Result<bool, TokenizerError> {
        match self.file.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.metadata_error(key, format!("{v:?} is not a bool"))),
        }
    }

    /// A token id from `key`, checked against the vocabulary.
    fn token_id(&self, key: &'static str) -> Result<Option<u32>, TokenizerError> {
        let Some(v) = self.file.get(key) else {
            return Ok(None);
        };
        let id = v
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .filter(|&id| (id as usize) < self.tokens.len())
            .ok_or_else(|| {
                self.metadata_error(
                    key,
                    format!("{v:?} is not a token id below {}", self.tokens.len()),
                )
            })?;
        Ok(Some(id))
    }

    /// One number per token (`scores`, `token_type`), or `None` when absent.
    fn per_token(&self, key: &'static str) -> Result<Option<&'a [f64]>, TokenizerError> {
        match self.file.get(key) {
            None => Ok(None),
            Some(v) => match v.as_numbers() {
                Some(values) if values.len() == self.tokens.len() => Ok(Some(values)),
                Some(values) => Err(self.metadata_error(
                    key,
                    format!("{} values for {} tokens", values.len(), self.tokens.len()),
                )),
                None => Err(self.metadata_error(key, "not a numeric array")),
            },
        }
    }

    fn vocab(&self) -> Vocab {
        // Later duplicates do not replace earlier ids (as HF's converters).
        let mut vocab = Vocab::with_capacity(self.tokens.len());
        for (id, token) in (0u32..).zip(self.tokens) {
            vocab.entry(token.clone()).or_insert(id);
        }
        vocab
    }

    fn tokenizers_error(&self, e: impl Into<tokenizers::Error>) -> TokenizerError {
        TokenizerError::Tokenizers {
            source_name: self.source_name.clone(),
            source: e.into(),
        }
    }

    /// The tokenizer of the file's `tokenizer.ggml.model`.
    pub(crate) fn build(&self) -> Result<Tokenizer, TokenizerError> {
        let model = self
            .string("tokenizer.ggml.model")?
            .ok_or_else(|| self.metadata_error("tokenizer.ggml.model", "missing"))?;
        let (mut tokenizer, default_bos) = match model {
            "gpt2" => (self.byte_level_bpe()?, false),
            "llama" => (self.sentencepiece_bpe()?, true),
            other => {
                return Err(TokenizerError::Unsupported {
                    source_name: self.source_name.clone(),
                    what: "model",
                    value: other.to_owned(),
                    supported: "gpt2 (byte-level BPE), llama (SentencePiece BPE)",
                });
            }
        };
        self.add_tokens(&mut tokenizer)?;
        let bos = self
            .flag("tokenizer.ggml.add_bos_token", default_bos)?
            .then(|| self.token_id("tokenizer.ggml.bos_token_id"))
            .transpose()?
            .flatten();
        let eos = self
            .flag("tokenizer.ggml.add_eos_token", false)?
            .then(|| self.token_id("tokenizer.ggml.eos_token_id"))
            .transpose()?
            .flatten();
        if bos.is_some() || eos.is_some() {
            let special = |id: u32| (self.tokens[id as usize].clone(), id);
            let mut template = Vec::new();
            let mut specials = Vec::new();
            if let Some(id) = bos {
                template.push(special(id).0);
                specials.push(special(id));
            }
            template.push("$A".to_owned());
            if let Some(id) = eos {
                template.push(special(id).0);
                specials.push(special(id));
            }
            let processor = TemplateProcessing::builder()
                .try_single(template.join(" "))
                .map_err(|e| self.tokenizers_error(e))?
                .special_tokens(specials)
                .build()
                .map_err(|e| self.tokenizers_error(e))?;
            tokenizer.with_post_processor(Some(processor));
        }
        Ok(tokenizer)
    }

    /// CONTROL tokens as special added tokens, USER_DEFINED ones as added tokens.
    fn add_tokens(&self, tokenizer: &mut Tokenizer) -> Result<(), TokenizerError> {
        let Some(types) = self.per_token("tokenizer.ggml.token_type")? else {
            return Ok(());
        };
        let (mut special, mut user) = (Vec::new(), Vec::new());
        for (token, &kind) in self.tokens.iter().zip(types) {
            // token types are small integers
            match kind as i64 {
                CONTROL => special.push(AddedToken::from(token.clone(), true)),
                USER_DEFINED => user.push(AddedToken::from(token.clone(), false).normalized(false)),
                _ => {}
            }
        }
        tokenizer
            .add_special_tokens(special)
            .map_err(|e| self.tokenizers_error(e))?;
        tokenizer
            .add_tokens(user)
            .map_err(|e| self.tokenizers_error(e))?;
        Ok(())
    }

    /// `gpt2`: byte-level BPE over the file's merges.
    fn byte_level_bpe(&self) -> Result<Tokenizer, TokenizerError> {
        let merges = self
            .file
            .get("tokenizer.ggml.merges")
            .and_then(GgufValue::as_strings)
            .ok_or_else(|| {
                self.metadata_error(
                    "tokenizer.ggml.merges",
                    "missing, or not an array of strings",
                )
            })?;
        let merges = merges
            .iter()
            .enumerate()
            .map(|(i, m)| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .ok_or_else(|| {
                        self.metadata_error(
                            "tokenizer.ggml.merges",
                            format!("merge {i} `{m}` is not two tokens separated by a space"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(self.vocab(), merges)
            .build()
            .map_err(|e| self.tokenizers_error(e))?;
        let pre = self.string("tokenizer.ggml.pre")?.unwrap_or("default");
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            "default" | "gpt-2" | "gpt2" => byte_level.into(),
            "smollm" => {
                PreTokenizerSequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
            }
            other => {
                return Err(TokenizerError::Unsupported {
                    source_name: self.source_name.clone(),
                    what: "pre-tokenizer",
                    value: other.to_owned(),
                    supported: "default, gpt-2, smollm",
                });
            }
        };
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
        tokenizer.with_decoder(Some(DecoderWrapper::from(byte_level)));
        Ok(tokenizer)
    }

    /// `llama`: SentencePiece BPE, merges derived from the scores.
    fn sentencepiece_bpe(&self) -> Result<Tokenizer, TokenizerError> {
        let scores = self
            .per_token("tokenizer.ggml.scores")?
            .ok_or_else(|| self.metadata_error("tokenizer.ggml.scores", "missing"))?;
        let vocab = self.vocab();
        let merges = sentencepiece_merges(self.tokens, scores, &vocab);
        let mut builder = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .byte_fallback(true)
            .fuse_unk(true);
        if let Some(unk) = self.token_id("tokenizer.ggml.unknown_token_id")? {
            builder = builder.unk_token(self.tokens[unk as usize].clone());
        }
        let bpe = builder.build().map_err(|e| self.tokenizers_error(e))?;
        let add_space_prefix = self.flag("tokenizer.ggml.add_space_prefix", true)?;
        let replace = Replace::new(" ", "▁").map_err(|e| self.tokenizers_error(e))?;
        let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
        if add_space_prefix {
            normalizers.push(Prepend::new("▁".to_owned()).into());
        }
        normalizers.push(replace.clone().into());
        let mut decoders: Vec<DecoderWrapper> = vec![
            Replace::new("▁", " ")
                .map_err(|e| self.tokenizers_error(e))?
                .into(),
            ByteFallback::new().into(),
            Fuse::new().into(),
        ];
        if add_space_prefix {
            decoders.push(Strip::new(' ', 1, 0).into());
        }
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer
            .with_normalizer(Some(NormalizerSequence::new(normalizers)))
            .map_err(|e| self.tokenizers_error(e))?;
        tokenizer.with_decoder(Some(DecoderSequence::new(decoders)));
        Ok(tokenizer)
    }
}

/// The merges of a SentencePiece BPE vocabulary, as transformers'
/// `SentencePieceExtractor.extract` derives them: for every token (in id order), each
/// split into two tokens of the vocabulary, ordered by the two parts' ids; then all merges
/// ordered by the merged token's score, highest first (a stable sort: ties keep that
/// order).
fn sentencepiece_merges(tokens: &[String], scores: &[f64], vocab: &Vocab) -> Vec<(String, String)> {
    let mut merges: Vec<(u32, u32, f64)> = Vec::new();
    for (token, &score) in tokens.iter().zip(scores) {
        let mut local: Vec<(u32, u32, f64)> = token
            .char_indices()
            .skip(1)
            .filter_map(|(at, _)| {
                let (left, right) = token.split_at(at);
                Some((*vocab.get(left)?, *vocab.get(right)?, score))
            })
            .collect();
        local.sort_by_key(|&(l, r, _)| (l, r));
        merges.extend(local);
    }
    merges.sort_by(|a, b| b.2.total_cmp(&a.2));
    merges
        .into_iter()
        .map(|(l, r, _)| (tokens[l as usize].clone(), tokens[r as usize].clone()))
        .collect()
}
