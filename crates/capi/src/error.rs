//! Status codes, the thread-local error message, and the panic barrier.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use tokenloom_embedding::EmbeddingError;
use tokenloom_positions::PositionError;
use tokenloom_tensor::TensorError;

/// What a call returns. Anything but `TOKENLOOM_OK` leaves a one-line message for
/// `tokenloom_last_error_message`, and leaves the output buffers unchanged unless the
/// function's documentation says otherwise.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomStatus {
    /// Success.
    Ok = 0,
    /// A required pointer is null.
    NullPointer = 1,
    /// A data pointer is not aligned for its dtype.
    Misaligned = 2,
    /// An output's memory overlaps an input's.
    Aliased = 3,
    /// A dtype tag that is unknown, or not the one the operation needs.
    BadDtype = 4,
    /// A rank, shape or size that does not fit the operation.
    BadShape = 5,
    /// A token id that is negative or not below `vocab_size`.
    TokenOutOfRange = 6,
    /// A position past the cos/sin tables or a position table.
    PositionOutOfRange = 7,
    /// Any other invalid argument (an option, a config, a layout tag).
    InvalidArgument = 8,
    /// A bug in tokenloom: a panic was caught at the boundary.
    InternalPanic = 9,
}

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: TokenloomStatus,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: TokenloomStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
}

fn tensor_status(err: &TensorError) -> TokenloomStatus {
    match err {
        TensorError::AllocationFailed { .. } => TokenloomStatus::InvalidArgument,
        _ => TokenloomStatus::BadShape,
    }
}

impl From<TensorError> for Failure {
    fn from(err: TensorError) -> Self {
        Failure::new(tensor_status(&err), err.to_string())
    }
}

impl From<EmbeddingError> for Failure {
    fn from(err: EmbeddingError) -> Self {
        let status =
            match &err {
                EmbeddingError::TokenOutOfRange { .. }
                | EmbeddingError::TargetOutOfRange { .. } => TokenloomStatus::TokenOutOfRange,
                EmbeddingError::NoTargets { .. }
                | EmbeddingError::BadTokenWeight { .. }
                | EmbeddingError::NonFiniteLoss { .. } => TokenloomStatus::InvalidArgument,
                EmbeddingError::Tensor(e) => tensor_status(e),
                EmbeddingError::InvalidOption { .. }
                | EmbeddingError::PaddingIdxOutOfRange { .. } => TokenloomStatus::InvalidArgument,
                EmbeddingError::UnsupportedDType { .. } => TokenloomStatus::BadDtype,
                _ => TokenloomStatus::BadShape,
            };
        Failure::new(status, err.to_string())
    }
}

impl From<PositionError> for Failure {
    fn from(err: PositionError) -> Self {
        let status = match &err {
            PositionError::PositionOutOfRange { .. } | PositionError::NegativePosition { .. } => {
                TokenloomStatus::PositionOutOfRange
            }
            PositionError::Tensor(e) => tensor_status(e),
            PositionError::QkShape { .. }
            | PositionError::QkTooNarrow { .. }
            | PositionError::RopeTablesShape { .. }
            | PositionError::RopeTablesStride { .. }
            | PositionError::OutputShape { .. }
            | PositionError::PositionIdsShape { .. }
            | PositionError::WeightRows { .. } => TokenloomStatus::BadShape,
            _ => TokenloomStatus::InvalidArgument,
        };
        Failure::new(status, err.to_string())
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    // A message with an interior NUL (never produced by tokenloom) is cut there.
    let message = message.split('\0').next().unwrap_or_default();
    let message = CString::new(message).expect("NUL bytes were removed");
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs one API call: catches panics, records the message of a failure.
pub(crate) fn run(f: impl FnOnce() -> Result<(), Failure>) -> TokenloomStatus {
    let result =
        catch_unwind(AssertUnwindSafe(|| crate::config::on_threads(f))).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            Err(Failure::new(
                TokenloomStatus::InternalPanic,
                format!("internal error (please report): {what}"),
            ))
        });
    match result {
        Ok(()) => {
            set_last_error("");
            TokenloomStatus::Ok
        }
        Err(failure) => {
            set_last_error(&failure.message);
            failure.status
        }
    }
}

/// The message of the last failed call on this thread, as a NUL-terminated UTF-8
/// string; empty after a successful call. The pointer stays valid until the next
/// tokenloom call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_last_error_message() -> *const c_char {
    LAST_ERROR.with(|last| last.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last() -> String {
        // SAFETY: the pointer is valid until the next call on this thread.
        unsafe { CStr::from_ptr(tokenloom_last_error_message()) }
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn panics_are_caught_and_messages_kept() {
        let status = run(|| panic!("boom"));
        assert_eq!(status, TokenloomStatus::InternalPanic);
        assert!(last().contains("boom"), "{}", last());
        let status = run(|| Err(Failure::new(TokenloomStatus::BadShape, "a\0b")));
        assert_eq!(status, TokenloomStatus::BadShape);
        assert_eq!(last(), "a");
        assert_eq!(run(|| Ok(())), TokenloomStatus::Ok);
        assert_eq!(last(), "");
    }
}
