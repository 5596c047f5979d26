//! The input of the first decoder block: token ids → embeddings (+ absolute positions),
//! with what attention needs beside them.
//!
//! ```
//! use tokenloom_decoder_input::embedding::{Embedding, Init};
//!
//! let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 42)?;
//! let hidden = table.forward(&[73, 786, 2934])?.unsqueeze_batch()?;
//! assert_eq!(hidden.shape().to_string(), "(1, 3, 8)");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This crate sits on top of `tokenloom-embedding` and `tokenloom-positions` and re-exports
//! them. Batching (token streams, ragged sequences with padding, masks and position ids),
//! the `DecoderInput` composition and checkpoint loading are built here next (tracked as
//! the decoder-input issue).

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub use tokenloom_embedding as embedding;
pub use tokenloom_positions as positions;
pub use tokenloom_tensor as tensor;
