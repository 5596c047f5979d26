//! Candle custom ops with a backward for the embedding lookup ([`embedding`]), RoPE
//! ([`rope`]), the tied or untied output head ([`logits`]) and the fused head and
//! cross-entropy ([`linear_cross_entropy`], no logits materialised), and candle-style
//! modules over them ([`Embedding`], [`Rotary`]). A candle model built from them trains
//! with candle's `backward()`: the
//! gradients are tokenloom's (the exact `f64` sum of repeated ids, `padding_idx`,
//! `scale_grad_by_freq`, RoPE's transpose), computed on candle's buffers without a copy.
//!
//! ```
//! use tokenloom::adapters::candle_core::{Device, Tensor, Var};
//! use tokenloom::candle::{embedding, logits};
//! use tokenloom::embedding::EmbeddingOptions;
//!
//! let device = Device::Cpu;
//! // A (vocab_size 5, n_embd 3) table candle owns, and (batch 1, seq_len 3) ids.
//! let table = Var::randn(0f32, 1.0, (5, 3), &device)?;
//! let ids = Tensor::new(&[[1u32, 4, 1]], &device)?;
//! let x = embedding(table.as_tensor(), &ids, &EmbeddingOptions::default())?; // (1, 3, 3)
//! let scores = logits(&x, table.as_tensor(), 1.0)?; // tied head: (1, 3, 5)
//! let grads = scores.sum_all()?.backward()?;
//! let grad = grads.get(table.as_tensor()).expect("the table is a variable");
//! assert_eq!(grad.dims(), [5, 3]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The ops run on CPU tensors. Inputs that are not contiguous are made contiguous first
//! (candle's `contiguous`, tracked by its autograd). Errors are candle errors wrapping
//! tokenloom's typed errors ([`op_error`] finds them).

mod embedding;
mod head;
mod loss;
mod rope;

pub use embedding::{Embedding, embedding};
pub use head::logits;
pub use loss::linear_cross_entropy;
pub use rope::{RopePositions, Rotary, rope};

use candle_core::{CpuStorage, DType, WithDType};
use tokenloom_tensor::adapters::candle::CandleElement;
use tokenloom_tensor::{Element, TensorError};

/// A float element both sides know: tokenloom's kernels and candle's storage.
trait Float: Element + WithDType + CandleElement {}
impl<T: Element + WithDType + CandleElement> Float for T {}

/// A tokenloom error raised inside a candle op, as the candle error carries it
/// (`candle_core::Error::WrappedContext`, context `"tokenloom"`; no backtrace is added).
/// [`op_error`] finds it in a candle error; [`downcast_ref`](OpError::downcast_ref) gives
/// the typed error ([`EmbeddingError`](tokenloom_embedding::EmbeddingError),
/// [`PositionError`](tokenloom_positions::PositionError) or
/// [`TensorError`]).
pub struct OpError(Box<dyn std::error::Error + Send + Sync>);

impl OpError {
    /// The tokenloom error as `E`, if it is one.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

/// The message, as [`Display`](std::fmt::Display) gives it: candle prints a wrapped
/// error with `{:?}`.
impl std::fmt::Debug for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The tokenloom error inside a candle error returned by one of this module's ops (through
/// candle's backtrace, context and path wrappers), or `None` for candle's own errors.
///
/// # Examples
///
/// ```
/// use tokenloom::adapters::candle_core::{DType, Device, Tensor};
/// use tokenloom::candle::{embedding, op_error};
/// use tokenloom::embedding::{EmbeddingError, EmbeddingOptions};
///
/// let table = Tensor::zeros((5, 2), DType::F32, &Device::Cpu)?;
/// let ids = Tensor::new(&[1u32, 9], &Device::Cpu)?;
/// let err = embedding(&table, &ids, &EmbeddingOptions::default()).unwrap_err();
/// let typed = op_error(&err).and_then(|e| e.downcast_ref::<EmbeddingError>());
/// assert!(matches!(typed, Some(EmbeddingError::TokenOutOfRange { token: 9, .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub fn op_error(err: &candle_core::Error) -> Option<&OpError> {
    use candle_core::Error;
    match err {
        Error::WrappedContext { wrapped, .. } => wrapped.downcast_ref::<OpError>(),
        Error::WithBacktrace { inner, .. }
        | Error::Context { inner, .. }
        | Error::WithPath { inner, .. } => op_error(inner),
        _ => None,
    }
}

/// A tokenloom error as a candle error (typed, see [`OpError`]).
fn wrap(err: impl std::error::Error + Send + Sync + 'static) -> candle_core::Error {
    candle_core::Error::WrappedContext {
        wrapped: Box::new(OpError(Box::new(err))),
        context: "tokenloom".to_owned(),
    }
}

/// The error for a storage of a dtype an op does not take.
fn unsupported(operand: &'static str, expected: &'static str, dtype: DType) -> candle_core::Error {
    wrap(TensorError::ForeignDType {
        framework: "candle",
        expected,
        got: format!("{dtype:?} ({operand})"),
    })
}

/// The dtype of a CPU storage.
fn dtype_of(storage: &CpuStorage) -> DType {
    candle_core::backend::BackendStorage::dtype(storage)
}

/// Runs `$body` with `$t` the element type of a float storage (`f32`, `f64`, `f16`,
/// `bf16`), or returns the dtype error naming `$operand`.
macro_rules! for_float {
    ($storage:expr, $operand:literal, $t:ident => $body:expr) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => {
                type $t = f32;
                $body
            }
            candle_core::CpuStorage::F64(_) => {
                type $t = f64;
                $body
            }
            candle_core::CpuStorage::F16(_) => {
                type $t = tokenloom_tensor::f16;
                $body
            }
            candle_core::CpuStorage::BF16(_) => {
                type $t = tokenloom_tensor::bf16;
                $body
            }
            other => {
                return Err($crate::candle::unsupported(
                    $operand,
                    "f32, f64, f16 or bf16",
                    $crate::candle::dtype_of(other),
                ));
            }
        }
    };
}

/// Runs `$body` with `$t` the element type of a token-id storage (`u32`, `i64`, `i32`),
/// or returns the dtype error naming `$operand`.
macro_rules! for_ids {
    ($storage:expr, $operand:literal, $t:ident => $body:expr) => {
        match $storage {
            candle_core::CpuStorage::U32(_) => {
                type $t = u32;
                $body
            }
            candle_core::CpuStorage::I64(_) => {
                type $t = i64;
                $body
            }
            candle_core::CpuStorage::I32(_) => {
                type $t = i32;
                $body
            }
            other => {
                return Err($crate::candle::unsupported(
                    $operand,
                    "u32, i64 or i32",
                    $crate::candle::dtype_of(other),
                ));
            }
        }
    };
}

pub(crate) use {for_float, for_ids};
