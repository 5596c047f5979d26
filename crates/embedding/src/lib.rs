//! The token-embedding table of tokenloom: a `(vocab_size, n_embd)` lookup table whose
//! row `i` is the vector of token id `i`, generic over `f32`, `f64`, `f16` and `bf16`.
//!
//! ```
//! use tokenloom_embedding::{Embedding, Init};
//! use tokenloom_tensor::Tensor;
//!
//! // "I love dogs" → ids [73, 786, 2934] in a word-level vocabulary of 3000 words.
//! let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 42)?;
//! let ids = Tensor::from_vec(vec![73, 786, 2934], &[3])?;
//! let x = table.forward(&ids)?;
//! assert_eq!(x.shape().to_string(), "(3, 8)");
//!
//! // With the batch dimension first: (batch, seq_len) → (batch, seq_len, n_embd).
//! let batched = table.forward(&ids.reshape(&[1, 3])?)?;
//! assert_eq!(batched.shape().to_string(), "(1, 3, 8)");
//! assert_eq!(batched.as_slice(), x.as_slice());
//! # Ok::<(), tokenloom_embedding::EmbeddingError>(())
//! ```
//!
//! # What is here
//!
//! - [`Embedding`]: the table, with `torch.nn.Embedding`'s options ([`EmbeddingOptions`]:
//!   `padding_idx`, `max_norm`/`norm_type`, `scale_grad_by_freq`), frozen tables
//!   ([`Embedding::from_pretrained`]), and [`EmbeddingConfig`] for fresh ones.
//! - The lookup ([`Embedding::forward`], allocation-free [`Embedding::forward_into`]);
//!   `max_norm` renormalises the returned rows without touching the table, and
//!   [`Embedding::renorm_in_place`] is PyTorch's in-place side effect as an explicit step.
//! - The backward: dense ([`Embedding::backward_dense_into`], accumulating or replacing)
//!   and row-sparse ([`SparseGrad`]), summed in `f64` in position order by default, or
//!   in the plain loop's `f32` arithmetic ([`GradSum`]) — deterministic either way.
//! - The output head ([`EmbeddingAndHead`]): untied, or tied to the table with one
//!   parameter, one gradient and one optimizer state; tying refuses setups whose initial
//!   logits would be far above unit scale ([`TieOptions`]).
//! - Quantized tables ([`QuantizedEmbedding`]): GGUF block formats (Q8_0, Q4_K, …) kept
//!   as stored, rows decoded only when looked up, logits from the stored blocks.
//! - Optimizers ([`Sgd`], [`AdamW`]) for dense and lazy sparse steps; padding rows and
//!   frozen tables are never updated.
//! - Persistence: tokenloom checkpoints ([`Embedding::save`], checked and atomic) and
//!   safetensors by tensor name ([`Embedding::from_safetensors`],
//!   [`Embedding::save_safetensors`]).
//!
//! # Errors, not panics
//!
//! Token ids come from tokenizers and files, so a bad id is an
//! [`EmbeddingError::TokenOutOfRange`] naming the id, its batch index and position, and
//! `vocab_size`. Zero sizes, overflowing tables, empty ids, wrong buffers, wrong gradient
//! shapes and updates of frozen tables are errors too. Nothing in this crate panics on
//! user input.
//!
//! # Initialisation
//!
//! [`Init`] follows PyTorch: the default is N(0, 1) as `nn.Embedding`; N(0, σ), uniform
//! and Xavier/Glorot are available. Randomness is a parameter: [`Embedding::new`] takes
//! any `rand::Rng`, and [`Embedding::seeded`] uses ChaCha8 so a seed gives the same
//! table on every machine.

// One `unsafe` call: the AVX2 build of the scatter, behind a proof of AVX2
// (`scatter/dispatch.rs`).
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

// In the order a reader meets them (rustdoc lists `Embedding`'s methods in this order):
// the table and its constructors, the lookup, the backward, the head, the optimizers,
// and persistence last.
mod table;
mod init;
mod config;
mod options;
mod lookup;
mod renorm;
mod bag;
mod grad;
mod scatter;
mod head;
mod logits;
mod loss;
#[cfg(feature = "io")]
mod quantized;
mod optim;
#[cfg(feature = "serde")]
mod checkpoint;
#[cfg(feature = "io")]
mod safetensors;
mod error;

#[cfg(feature = "serde")]
pub use checkpoint::EMBEDDING_FILE;
pub use config::EmbeddingConfig;
pub use error::EmbeddingError;
pub use grad::SparseGrad;
pub use head::{EmbeddingAndHead, EmbeddingAndHeadGrads, LogitStdReport, TieOptions};

pub use init::Init;
pub use lookup::check_ids;
pub use optim::{AdamW, Optimizer, Sgd, StateBuffer};
pub use options::{EmbeddingOptions, GradSum, MaxNorm, NormType};
#[cfg(feature = "io")]
pub use quantized::QuantizedEmbedding;
pub use table::Embedding;

/// Every operation on memory the caller owns: the table, the ids (`u32`, `i32` or
/// `i64`), the gradients and the outputs are borrowed ([`tokenloom_tensor::TensorLike`]),
/// never copied. [`Embedding`] and [`EmbeddingAndHead`] own their storage and call these.
///
/// | operation | function |
/// |---|---|
/// | lookup, fresh output / into a buffer | [`lookup`](functional::lookup), [`lookup_into`](functional::lookup_into) |
/// | `max_norm` renorm of the caller's table | [`renorm`](functional::renorm) |
/// | dense / row-sparse backward | [`backward_dense`](functional::backward_dense), [`backward_sparse`](functional::backward_sparse), into caller buffers [`backward_sparse_into`](functional::backward_sparse_into); a half output gradient into an `f32` gradient: [`backward_dense_cast`](functional::backward_dense_cast) |
/// | PyTorch's `EmbeddingBag` (sum / mean / max, offsets or 2-D ids, per-sample weights, padding) and its backward | [`embedding_bag_into`](functional::embedding_bag_into), [`embedding_bag_backward`](functional::embedding_bag_backward), [`embedding_bag_per_sample_weights_backward`](functional::embedding_bag_per_sample_weights_backward); quantized tables: `QuantizedEmbedding::embedding_bag_into` |
/// | logits `h @ Wᵀ` (tied: `W` is the table) and backward | [`logits`](functional::logits), [`logits_into`](functional::logits_into), [`logits_backward`](functional::logits_backward) |
/// | fused head + cross-entropy, chunked (dense or quantized head) | [`linear_cross_entropy`](functional::linear_cross_entropy), `linear_cross_entropy_quantized` (feature `io`) |
/// | optimizer steps on the caller's parameter (state in the optimizer or the caller's buffers: [`AdamW::with_state`], [`Sgd::with_velocity`]) | [`step_dense`](functional::step_dense), [`step_sparse`](functional::step_sparse), [`step_sparse_rows`](functional::step_sparse_rows) |
pub mod functional {
    pub use crate::bag::{
        BagMode, BagOptions, Bags, embedding_bag_backward, embedding_bag_into,
        embedding_bag_per_sample_weights_backward,
    };
    pub use crate::grad::{
        backward_dense, backward_dense_cast, backward_sparse, backward_sparse_into,
    };
    pub use crate::logits::{logits, logits_backward, logits_into};
    pub use crate::lookup::{lookup, lookup_cast_into, lookup_into, renorm};
    #[cfg(feature = "io")]
    pub use crate::loss::linear_cross_entropy_quantized;
    pub use crate::loss::{
        CrossEntropyOptions, DEFAULT_CHUNK_BYTES, LinearCrossEntropy, LinearCrossEntropyGrads,
        LogitScale, Reduction, ShardStats, VocabCombine, default_chunk_tokens,
        linear_cross_entropy, linear_cross_entropy_sharded,
    };
    pub use crate::optim::{step_dense, step_sparse, step_sparse_rows};
}
