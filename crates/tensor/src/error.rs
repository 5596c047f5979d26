//! [`TensorError`], the error type of the tensor crate.

use std::path::PathBuf;

use crate::element::DType;
use crate::shape::Shape;

/// Everything that can go wrong in the tensor crate. Each variant carries the numbers
/// that locate the problem.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TensorError {
    // === Shape errors ===
    /// A shape has more dimensions than [`crate::MAX_RANK`].
    #[error("shape has rank {rank}, more than the supported maximum {max_rank}")]
    RankTooLarge {
        /// The requested rank.
        rank: usize,
        /// [`crate::MAX_RANK`].
        max_rank: usize,
    },
    /// The element count of a shape overflows `usize`.
    #[error("shape {dims:?} has more elements than fit in usize")]
    ShapeOverflow {
        /// The requested dimensions.
        dims: Vec<usize>,
    },
    /// A buffer's length does not match the element count of its shape.
    #[error("{op}: buffer of {len} elements does not match shape {shape} ({expected} elements)")]
    ElementCountMismatch {
        /// The operation that checked.
        op: &'static str,
        /// The shape the buffer was given.
        shape: Shape,
        /// The shape's element count.
        expected: usize,
        /// The buffer's length.
        len: usize,
    },
    /// An operation needs a tensor of a specific rank.
    #[error("{op}: expected a rank-{expected} tensor, got shape {shape}")]
    RankMismatch {
        /// The operation that checked.
        op: &'static str,
        /// The rank it needs.
        expected: usize,
        /// The shape it got.
        shape: Shape,
    },
    /// A reshape changes the element count.
    #[error("reshape: cannot reshape {from} ({from_count} elements) into {to:?}")]
    ReshapeMismatch {
        /// The current shape.
        from: Shape,
        /// Its element count.
        from_count: usize,
        /// The requested dimensions.
        to: Vec<usize>,
    },
    /// `squeeze_batch` on a tensor whose leading dimension is not 1.
    #[error("squeeze_batch: the leading dimension of {shape} is not 1")]
    SqueezeNotOne {
        /// The tensor's shape.
        shape: Shape,
    },
    // === Foreign tensors (adapters) ===
    /// A foreign tensor that is not contiguous in row-major order: tokenloom never copies
    /// it silently.
    #[error(
        "{framework} tensor of shape {dims:?} with strides {strides:?} is not contiguous in row-major order; make it contiguous first (a copy you choose to pay)"
    )]
    NotContiguous {
        /// `ndarray`, `candle`, …
        framework: &'static str,
        /// Its dimensions.
        dims: Vec<usize>,
        /// Its strides, in elements.
        strides: Vec<isize>,
    },
    /// A foreign tensor of another element type than the kernel's.
    #[error("{framework} tensor has dtype {got}, expected {expected}")]
    ForeignDType {
        /// `ndarray`, `candle`, …
        framework: &'static str,
        /// The element type the kernel needs.
        expected: &'static str,
        /// The tensor's element type.
        got: String,
    },
    /// A foreign tensor whose memory the CPU kernels cannot read (another device).
    #[error("{framework} tensor lives on {device}; tokenloom's kernels need CPU memory")]
    ForeignDevice {
        /// `candle`, …
        framework: &'static str,
        /// The device.
        device: String,
    },
    /// A lending of foreign tensors refused because it would wait forever for a lock this
    /// thread already holds (a lending nested inside a mutable one, or writing a storage
    /// an enclosing lending reads), or would lend overlapping memory mutably twice.
    #[error("{framework}: {op}: {reason}")]
    LendingConflict {
        /// `candle`, …
        framework: &'static str,
        /// The lending function.
        op: &'static str,
        /// What conflicts, with the tensor indices.
        reason: String,
    },
    /// An error reported by the foreign framework itself.
    #[error("{framework}: {source}")]
    Foreign {
        /// `candle`, …
        framework: &'static str,
        /// The framework's error, kept whole (its `source()` chain included).
        source: ErrorSource,
    },
    /// A row index past the number of rows.
    #[error("{op}: row {index} is out of range for {n_rows} rows")]
    RowOutOfRange {
        /// The operation that checked.
        op: &'static str,
        /// The requested row.
        index: usize,
        /// The number of rows.
        n_rows: usize,
    },
    /// The inner dimensions of a matrix product disagree.
    #[error(
        "matmul: lhs {lhs}{lt} and rhs {rhs}{rt} have different inner dimensions",
        lt = if *.lhs_transposed { " (transposed)" } else { "" },
        rt = if *.rhs_transposed { " (transposed)" } else { "" }
    )]
    MatmulShapeMismatch {
        /// The left operand's shape as stored: `(m, k)`, or `(k, m)` when transposed.
        lhs: Shape,
        /// Whether the left operand is used transposed.
        lhs_transposed: bool,
        /// The right operand's shape as stored: `(k, n)`, or `(n, k)` when transposed.
        rhs: Shape,
        /// Whether the right operand is used transposed.
        rhs_transposed: bool,
    },
    /// A caller-provided output buffer has the wrong shape.
    #[error("{op}: output has shape {got}, expected {expected}")]
    OutputShapeMismatch {
        /// The operation that checked.
        op: &'static str,
        /// The shape the operation writes.
        expected: Shape,
        /// The shape of the caller's buffer.
        got: Shape,
    },
    /// Memory for a tensor could not be reserved.
    #[error("{op}: cannot allocate {bytes} bytes")]
    AllocationFailed {
        /// The operation that allocated.
        op: &'static str,
        /// The requested size.
        bytes: usize,
    },

    // === File errors ===
    /// An I/O error on a file; the operating system's error is its `source()`.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: IoSource,
    },
    /// The bytes do not start with the expected magic: not a tokenloom file of this kind.
    #[error("not a tokenloom {expected_kind} file: expected magic {expected:?}, found {found:?}")]
    BadMagic {
        /// What kind of file was expected, e.g. `tensor`.
        expected_kind: &'static str,
        /// The expected magic bytes.
        expected: [u8; 8],
        /// The first bytes found (at most 8).
        found: Vec<u8>,
    },
    /// The file was written by a format version this build cannot read.
    #[error("unsupported {kind} format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// What kind of file it is.
        kind: &'static str,
        /// The version in the file.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The file is shorter than its header says.
    #[error("truncated file: {needed} bytes needed, {available} available")]
    Truncated {
        /// Bytes the header promises.
        needed: u64,
        /// Bytes present.
        available: u64,
    },
    /// The file is longer than its header says.
    #[error("trailing data: {extra} unexpected bytes after the payload")]
    TrailingBytes {
        /// Bytes past the payload.
        extra: u64,
    },
    /// The payload's checksum does not match: the file is corrupted.
    #[error("corrupted file: payload crc32 is {found:#010x}, header says {expected:#010x}")]
    ChecksumMismatch {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the bytes read.
        found: u32,
    },
    /// The stored element type is not the one asked for.
    #[error("dtype mismatch: stored {found}, requested {expected}")]
    DTypeMismatch {
        /// The dtype asked for.
        expected: DType,
        /// The dtype stored.
        found: DType,
    },
    /// The payload is not a valid encoding.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error, kept whole.
        source: ErrorSource,
    },
    /// A value could not be encoded.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error, kept whole.
        source: ErrorSource,
    },
}

impl TensorError {
    /// Wraps an I/O error with the path it happened on.
    #[must_use]
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        TensorError::Io {
            path: path.into(),
            source: IoSource::new(err),
        }
    }
}

/// An operating-system I/O error kept whole, as the `source()` of a file error: shared
/// (so the error stays `Clone`) and compared by kind and message (so it stays
/// `PartialEq`).
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use tokenloom_tensor::{TensorError, files::read_file};
///
/// let err = read_file("/nonexistent/table.tl".as_ref()).unwrap_err();
/// let TensorError::Io { source, .. } = &err else { panic!("{err}") };
/// assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
/// assert!(err.source().is_some());
/// ```
#[derive(Clone, Debug)]
pub struct IoSource(std::sync::Arc<std::io::Error>);

impl IoSource {
    /// Wraps an I/O error.
    #[must_use]
    pub fn new(err: std::io::Error) -> Self {
        Self(std::sync::Arc::new(err))
    }

    /// The error's kind.
    #[must_use]
    pub fn kind(&self) -> std::io::ErrorKind {
        self.0.kind()
    }

    /// The error itself.
    #[must_use]
    pub fn get(&self) -> &std::io::Error {
        &self.0
    }
}

impl PartialEq for IoSource {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for IoSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Another library's error kept whole, as the `source()` of a [`TensorError`] (a
/// decoder's, an encoder's, a foreign framework's): shared, so the error stays `Clone`,
/// and compared by message, so it stays `PartialEq`, as [`IoSource`] does for I/O.
///
/// # Examples
///
/// ```
/// use std::error::Error as _;
/// use tokenloom_tensor::{ErrorSource, TensorError};
///
/// let err = TensorError::Decode { what: "tensor header", source: ErrorSource::new("truncated") };
/// assert_eq!(err.to_string(), "cannot decode tensor header: truncated");
/// assert_eq!(err.source().unwrap().to_string(), "truncated");
/// ```
#[derive(Clone, Debug)]
pub struct ErrorSource(std::sync::Arc<dyn std::error::Error + Send + Sync>);

impl ErrorSource {
    /// Wraps an error (or a message: `&str` and `String` convert).
    #[must_use]
    pub fn new(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(std::sync::Arc::from(err.into()))
    }

    /// The error itself (downcast it to the library's type with `downcast_ref`).
    #[must_use]
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl PartialEq for ErrorSource {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for ErrorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ErrorSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}
