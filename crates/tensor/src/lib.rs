//! The minimal tensor layer of tokenloom: shapes, element types, borrowed views, an owned
//! row-major tensor, matmul, and serde + bincode files.
//!
//! ```
//! use tokenloom_tensor::{Tensor, TensorView, matmul_transposed};
//!
//! // A framework's own buffer, wrapped without copying.
//! let table = [1.0f32, 0.0, 0.0, 1.0, 1.0, 1.0]; // (vocab_size = 3, n_embd = 2)
//! let table = TensorView::new(&table, &[3, 2])?;
//!
//! // An owned tensor of hidden states (seq_len = 1, n_embd = 2).
//! let hidden = Tensor::from_vec(vec![2.0f32, 3.0], &[1, 2])?;
//!
//! // Tied output projection: logits = hidden @ tableᵀ, shape (1, 3).
//! let logits = matmul_transposed(hidden.view(), table)?;
//! assert_eq!(logits.shape().to_string(), "(1, 3)");
//! assert_eq!(logits.as_slice(), &[2.0, 3.0, 5.0]);
//! # Ok::<(), tokenloom_tensor::TensorError>(())
//! ```
//!
//! # Data model
//!
//! Every tensor is contiguous and row-major. A [`Shape`] is a small `Copy` value whose
//! element count is checked against `usize` overflow once, when it is built. A
//! [`TensorView`] / [`TensorViewMut`] pairs a shape with a borrowed slice of exactly that
//! many elements; every kernel in tokenloom takes views. [`Tensor`] owns its storage and
//! hands out views.
//!
//! # Element types
//!
//! [`Element`] is sealed and implemented for `f32`, `f64`, [`half::f16`] and
//! [`half::bf16`]. The half types are storage types: arithmetic widens them to `f32` and
//! rounds once at the end.
//!
//! # Errors and panics
//!
//! Everything that depends on runtime data — shapes, buffer lengths, file bytes — returns
//! [`TensorError`], whose variants carry the numbers. Panics are reserved for broken
//! internal invariants.

// `unsafe` is allowed at each use, with its `// SAFETY:` comment: the `gemm` call in
// matmul.rs, the non-temporal stores in stream.rs, the AVX row copy in copy.rs (AVX
// code called with an `isa::Avx` proof), the same-type slice views of element.rs (after
// a `TypeId` check) and the CPU masks of pinned.rs; the candle
// adapter reaches candle's storage through candle's safe API.
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

pub mod adapters;
#[doc(hidden)]
pub mod copy;
mod element;
mod error;
#[cfg(feature = "envelope")]
pub mod envelope;
pub mod files;
mod gemv;
// Plumbing for the sibling crates (hidden from the docs, not a promise to users; see
// docs/architecture.md, "Public surface"): the instruction-set proofs, the non-temporal
// stores, the row copy, the same-type slice views, the work-splitting helpers and the
// fallible fill.
#[doc(hidden)]
pub mod isa;
mod like;
mod matmul;
mod parallel;
#[cfg(feature = "parallel")]
mod pinned;
#[cfg(feature = "parallel")]
mod pool_pin;
#[cfg(feature = "serde")]
mod serde_impl;
mod shape;
#[cfg(feature = "parallel")]
mod spread;
#[doc(hidden)]
pub mod stream;
mod tensor;
mod token_id;
mod view;

pub use element::{DType, Element, MaybeSerde};
#[doc(hidden)]
pub use element::{as_same_type, as_same_type_mut};
pub use error::{ErrorSource, IoSource, TensorError};
pub use gemv::dot;
pub use like::{TensorLike, TensorLikeMut};
pub use matmul::{Accumulate, Operand, matmul, matmul_into, matmul_transposed};
#[doc(hidden)]
pub use parallel::{
    PARALLEL_MIN_BYTES, TASKS_PER_THREAD, for_each_chunk_mut_by_work, tasks_for, threads_for,
};
pub use parallel::{Par, current_par, for_each_chunk_mut, with_par};
#[cfg(feature = "parallel")]
pub use pinned::{PinError, pinned_pool};
#[cfg(feature = "parallel")]
pub use pool_pin::{PIN_THREADS_ENV, pin_current_pool, pin_threads_failure, pin_threads_requested};
#[cfg(feature = "serde")]
pub use serde_impl::TENSOR_SERDE_VERSION;
pub use shape::{MAX_RANK, Shape};
#[cfg(feature = "parallel")]
pub use spread::{set_spread_threads, spread_threads};
pub use tensor::Tensor;
#[doc(hidden)]
pub use tensor::{try_filled, try_with_capacity};
pub use token_id::TokenId;
pub use view::{TensorView, TensorViewMut};

pub use half::{bf16, f16};
