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

mod batch;
mod config;
mod error;
pub mod functional;
mod input;
mod input_spec;
mod layer_rope;
mod logit_head;
mod model_config;
mod output;
mod pretrained;
mod scheme;
pub mod spec;
mod tables;

pub use batch::{PaddingSide, StreamBatch, TokenBatch, stream_batches};
pub use config::DecoderInputConfig;
pub use error::DecoderInputError;

pub use input::{DecoderInput, DecoderInputGrads};
pub use layer_rope::LongRopeChoice;
pub use model_config::GgufModelConfig;
pub use output::DecoderInputOutput;
pub use pretrained::{
    GgufLoadOptions, PretrainedModel, load_gguf, load_gguf_with, load_hf_dir, load_hf_dir_with,
};
pub use scheme::{PositionEncoding, PositionSchemeConfig};
pub use spec::{
    AbsolutePositions, Architecture, AttentionTemperature, EmbeddingScale, GgufRopeType,
    LayerAttention, LayerPositions, LogitTransform, ModelFamily, ModelSpec, OutputHead, SpecSource,
    TensorNames, gguf_rope_type,
};
pub use tables::{QuantizedHead, QuantizedTables, TokenTables};

pub use tokenloom_embedding as embedding;
pub use tokenloom_positions as positions;
pub use tokenloom_tensor as tensor;
