//! tokenloom turns token ids into the input of a LLaMA-style decoder: the token-embedding
//! table, rotary and absolute position encodings, and the batch that enters the first
//! decoder block.
//!
//! ```
//! use tokenloom::embedding::{Embedding, Init};
//!
//! // The word-level ids of "I love dogs", looked up in a (3000, 8) table.
//! let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 42)?;
//! let x = table.forward(&[73, 786, 2934])?;
//! assert_eq!(x.shape().to_string(), "(3, 8)");
//! assert_eq!(x.unsqueeze_batch()?.shape().to_string(), "(1, 3, 8)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This facade re-exports the workspace's crates:
//!
//! | module | crate | owns |
//! |---|---|---|
//! | [`tensor`] | `tokenloom-tensor` | shapes, element types, views, matmul, files |
//! | [`io`] | `tokenloom-io` | safetensors (and GGUF) checkpoints by tensor name |
//! | [`embedding`] | `tokenloom-embedding` | the `(vocab_size, n_embd)` table: lookup, backward, tied head, optimizers |
//! | [`positions`] | `tokenloom-positions` | RoPE and absolute position encodings |
//! | [`decoder_input`] | `tokenloom-decoder-input` | the batch entering the first decoder block |
//! | `candle` (feature `candle`) | — | tokenloom's ops inside candle's autograd |
//! | `tokenizer` (feature `tokenizers`) | `tokenloom-tokenizer` | text → ids: `tokenizer.json` files and GGUF vocabularies |
//!
//! The [`tutorial`] is compiled and run as doctests.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

/// Zero-copy adapters for other frameworks' tensors, enabled by the facade's features:
/// `ndarray` (arrays in standard layout are [`TensorLike`](tensor::TensorLike) /
/// [`TensorLikeMut`](tensor::TensorLikeMut) directly), `burn` (burn's `TensorData`, defined
/// in `burn_std` and re-exported by burn as `burn::tensor::TensorData`, is
/// [`TensorLike`](tensor::TensorLike) / [`TensorLikeMut`](tensor::TensorLikeMut) directly) and `candle`
/// ([`adapters::candle`](tokenloom_tensor::adapters) lends a CPU tensor's buffer to a
/// closure). The frameworks themselves are re-exported so their versions match.
pub mod adapters {
    #[cfg(feature = "burn")]
    pub use burn_std;
    #[cfg(feature = "candle")]
    pub use candle_core;
    #[cfg(feature = "ndarray")]
    pub use ndarray;
    #[cfg(feature = "candle")]
    pub use tokenloom_tensor::adapters::candle;
}

// tokenloom's kernels inside candle's autograd (feature `candle`); documented inside.
#[cfg(feature = "candle")]
pub mod candle;

pub use tokenloom_decoder_input as decoder_input;
pub use tokenloom_embedding as embedding;
pub use tokenloom_io as io;
pub use tokenloom_positions as positions;
pub use tokenloom_tensor as tensor;
/// Text to ids: `tokenizer.json` files and GGUF vocabularies (feature `tokenizers`).
#[cfg(feature = "tokenizers")]
pub use tokenloom_tokenizer as tokenizer;

// docs/tutorial.md with its figures inlined (build.rs): rustdoc shows them on the page.
#[doc = include_str!(concat!(env!("OUT_DIR"), "/tutorial.md"))]
pub mod tutorial {}

/// The testing guide's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../docs/testing.md")]
pub struct TestingDoctests;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
