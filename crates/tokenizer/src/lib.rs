//! Text to token ids and back, for the models tokenloom loads: HuggingFace
//! `tokenizer.json` files and the vocabularies inside GGUF files, through HuggingFace's
//! own `tokenizers` crate (with its pure-Rust regex backend: no C library).
//!
//! ```
//! use tokenloom_io::{GgufFile, GgufWriteValue, gguf_bytes};
//! use tokenloom_tokenizer::{TextTokenizer, Vocabulary};
//!
//! // A tiny byte-level BPE vocabulary in a GGUF file: "I", "Ġlove", "Ġdogs" and their parts.
//! let tokens: Vec<String> = ["I", "Ġ", "l", "o", "v", "e", "d", "g", "s", "lo", "ve", "Ġlo", "Ġlove", "do", "gs", "Ġdo", "Ġdogs"]
//!     .map(String::from).to_vec();
//! let merges: Vec<String> = ["l o", "v e", "Ġ lo", "Ġlo ve", "d o", "g s", "Ġ do", "Ġdo gs"].map(String::from).to_vec();
//! let file = GgufFile::from_bytes(gguf_bytes(&[
//!     ("tokenizer.ggml.model", GgufWriteValue::String("gpt2".into())),
//!     ("tokenizer.ggml.tokens", GgufWriteValue::StringArray(tokens)),
//!     ("tokenizer.ggml.merges", GgufWriteValue::StringArray(merges)),
//! ], &[]))?;
//!
//! let tokenizer = TextTokenizer::from_gguf(&file)?;
//! let encoded = tokenizer.encode("I love dogs")?;
//! assert_eq!(encoded.ids, [0, 12, 16]);
//! assert_eq!(encoded.tokens, ["I", "Ġlove", "Ġdogs"]);
//! assert_eq!(tokenizer.decode(&encoded.ids)?, "I love dogs");
//!
//! // Token strings by id, for any GGUF file.
//! assert_eq!(Vocabulary::from_gguf(&file)?.token(16), Some("Ġdogs"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`TextTokenizer`]: `tokenizer.json` ([`TextTokenizer::from_file`]) or a GGUF
//!   vocabulary ([`TextTokenizer::from_gguf`]: `gpt2` byte-level BPE and `llama`
//!   SentencePiece BPE, built from the library's models as HuggingFace's converters build
//!   them); ids equal to the Python `tokenizers` package's (tested on a list of texts).
//! - [`Vocabulary`]: id ↔ token string for any GGUF file.
//! - Errors name the file and what is missing or unsupported ([`TokenizerError`]); an
//!   unsupported tokenizer is never replaced by another.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod gguf;
mod text;
mod vocab;

pub use error::TokenizerError;
pub use text::{Encoded, MAX_TOKENIZER_BYTES, TextTokenizer};
pub use vocab::Vocabulary;
