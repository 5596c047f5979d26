//! The input of the first decoder block: token ids → `(batch, seq_len, n_embd)` hidden
//! states (+ absolute positions), with the position ids, attention mask and RoPE cache
//! that attention needs, built from scratch or loaded from real checkpoints.
//!
//! ```
//! use tokenloom_decoder_input::{DecoderInput, DecoderInputConfig, TokenBatch};
//! use tokenloom_tensor::Tensor;
//!
//! let config = DecoderInputConfig::new(3000, 8, 64)
//!     .with_position_scheme(tokenloom_decoder_input::PositionSchemeConfig::Rope {
//!         rope: tokenloom_positions::RopeConfig::new(4, 10000.0, tokenloom_positions::RopeLayout::HalfSplit),
//!     });
//! let input = DecoderInput::<f32>::from_config(&config, 42)?;
//! let batch = TokenBatch::new(Tensor::from_vec(vec![73, 786, 2934], &[1, 3])?)?;
//! let out = input.forward(&batch)?;
//! assert_eq!(out.hidden().shape().to_string(), "(1, 3, 8)");
//! assert_eq!(out.position_ids().as_slice(), &[0, 1, 2]);
//! # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
//! ```
//!
//! - Batching ([`TokenBatch`]): ragged sequences padded left or right with an attention
//!   mask and HuggingFace's position ids, unpadded batches at an offset (KV-cache
//!   decoding), and pretraining windows cut from a token stream ([`stream_batches`]).
//! - [`DecoderInput`]: embedding + position scheme ([`PositionSchemeConfig`]: RoPE — not
//!   added to the embeddings —, sinusoidal, learned, or none) + optional embedding scale,
//!   with backward, and the tied/untied output head for logits.
//! - [`DecoderInputConfig`]: the whole setup as serde data (JSON, bincode).
//! - Real checkpoints: [`load_hf_dir`] for a HuggingFace LLaMA directory (safetensors,
//!   single or sharded) and [`load_gguf`] for llama.cpp files.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod architecture;
mod batch;
mod config;
mod error;
pub mod functional;
mod gguf_arch;
mod input;
mod model_config;
mod pretrained;
mod scheme;
mod tables;

pub use batch::{PaddingSide, StreamBatch, TokenBatch, stream_batches};
pub use config::DecoderInputConfig;
pub use error::DecoderInputError;
pub use gguf_arch::{GgufRopeType, gguf_rope_type};
pub use input::{DecoderInput, DecoderInputGrads, DecoderInputOutput};
pub use model_config::{GgufModelConfig, HfModelConfig};
pub use pretrained::{
    GgufLoadOptions, HF_EMBED_NAME, HF_HEAD_NAME, PretrainedModel, gguf_rope_settings, load_gguf,
    load_gguf_with, load_hf_dir,
};
pub use scheme::{PositionEncoding, PositionSchemeConfig};
pub use tables::{QuantizedHead, QuantizedTables, TokenTables};

/// The former name of [`PretrainedModel`], kept for code written against it.
#[deprecated(since = "0.1.0", note = "renamed to `PretrainedModel`")]
pub type Pretrained<T, C = f32> = PretrainedModel<T, C>;

pub use tokenloom_embedding as embedding;
pub use tokenloom_positions as positions;
pub use tokenloom_tensor as tensor;
