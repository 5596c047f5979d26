//! Past one machine: the token embedding and the output head split by vocabulary over
//! the ranks of a communicator (Megatron-LM's `VocabParallelEmbedding` and vocab-parallel
//! cross-entropy, fused with the head and chunked: [`linear_cross_entropy`]), on MPI (feature `mpi`: rsmpi over the system's MPI) or on threads of
//! one process ([`ThreadGroup`], for tests and for trying it without MPI).
//!
//! ```
//! use tokenloom_distributed::{Communicator, ThreadGroup, VocabParallelEmbedding, VocabParallelHead};
//! use tokenloom_embedding::{EmbeddingOptions, Sgd};
//! use tokenloom_tensor::Accumulate;
//!
//! // A (vocab_size = 7, n_embd = 4) table on 3 ranks: rows 0..3, 3..5, 5..7.
//! let table: Vec<f32> = (0..28).map(|x| (x as f32 * 0.37).sin()).collect();
//! let ids = [[6u32, 0, 3]];
//! let losses = ThreadGroup::run(3, |comm| {
//!     let mut emb = VocabParallelEmbedding::from_full(&comm, (&table[..], [7, 4]), EmbeddingOptions::default())?;
//!     let mut head = VocabParallelHead::tied(0.5);
//!     // Forward: the full (batch = 1, seq_len = 3, n_embd = 4) output on every rank.
//!     let x = emb.forward(&comm, (&ids.concat()[..], [1, 3]))?;
//!     assert_eq!(x.dims(), &[1, 3, 4]);
//!     // Loss of predicting the next id from each row (tied head), and its backward.
//!     let step = head.loss_and_backward(&comm, &mut emb, &x, &[0i64, 3, -100])?;
//!     emb.backward(&comm, (&ids.concat()[..], [1, 3]), &step.grad_hidden, Accumulate::Add)?;
//!     emb.step(&mut Sgd::new(0.1))?; // each rank updates its own rows
//!     Ok::<_, tokenloom_distributed::DistributedError>((comm.rank(), step.loss))
//! })
//! .unwrap();
//! // Every rank computed the same loss.
//! let losses: Vec<f64> = losses.into_iter().map(|r| r.unwrap().1).collect();
//! assert!(losses.iter().all(|&l| l == losses[0]));
//! ```
//!
//! Every call that communicates first runs one small collective in which the ranks agree
//! that their configurations match and their replicated inputs (ids, targets, gradients)
//! are the same, and whether any rank failed: an error is returned on every rank or on
//! none, so no rank is left waiting in a collective its peers never enter. A rank that
//! panics under MPI aborts the job (`abort_on_panic`, feature `mpi`).
//!
//! The `checks` module (feature `checks`, off by default) compares every operation with
//! the single-process layer (the tests run it on 1, 2 and 3 ranks, over threads and over
//! MPI); see docs/distributed.md for the design, the bytes moved and the cost model.

#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod agree;
#[cfg(feature = "checks")]
pub mod checks;
mod comm;
mod embedding;
mod error;
mod files;
mod fused_loss;
mod head;
mod loss;
#[cfg(feature = "mpi")]
mod mpi_comm;
mod shard;
mod threads;

pub use comm::{CommError, Communicator};
pub use embedding::VocabParallelEmbedding;
pub use error::DistributedError;
pub use files::{MergedTable, SHARD_END_KEY, SHARD_START_KEY, SHARD_VOCAB_SIZE_KEY, merge_shards};
pub use fused_loss::linear_cross_entropy;
pub use head::{HeadStep, VocabParallelHead};
pub use loss::{CrossEntropy, DEFAULT_IGNORE_INDEX, cross_entropy};
#[cfg(feature = "mpi")]
pub use mpi_comm::{MpiComm, abort_on_panic};
pub use shard::VocabShard;
pub use threads::{RankPanicked, ThreadComm, ThreadGroup};
