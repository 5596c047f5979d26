//! tokenloom's binary files: a small checked envelope around a bincode payload, written
//! atomically.
//!
//! Layout (all integers little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 0..8 | magic, one per file kind (e.g. `TLTENSOR`) |
//! | 8..12 | format version (`u32`) |
//! | 12..20 | payload length in bytes (`u64`) |
//! | 20..24 | CRC-32 of the payload (`u32`) |
//! | 24.. | payload: bincode 2 (`config::standard()`) encoding of the serde value |
//!
//! The wrong kind of file, a newer version, a truncated or extended file and a flipped
//! bit are all distinct errors, detected before the payload is decoded.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::element::Element;
use crate::error::TensorError;
use crate::files::{read_file, write_atomic};
use crate::tensor::Tensor;

const HEADER_LEN: usize = 24;

/// Identifies one kind of tokenloom file: its magic, the name used in messages and the
/// format version this build writes and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKind {
    /// The first eight bytes of the file.
    pub magic: [u8; 8],
    /// A short name for messages, e.g. `tensor`.
    pub name: &'static str,
    /// The format version.
    pub version: u32,
}

/// A single tensor saved by [`Tensor::save`].
pub const TENSOR_FILE: FileKind = FileKind {
    magic: *b"TLTENSOR",
    name: "tensor",
    version: 1,
};

/// Wraps `payload` in the envelope of `kind`.
#[must_use]
pub fn encode_envelope(kind: FileKind, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(&kind.magic);
    bytes.extend_from_slice(&kind.version.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// Checks the envelope of `kind` and returns the payload it guards.
///
/// # Errors
///
/// [`TensorError::BadMagic`], [`TensorError::UnsupportedVersion`],
/// [`TensorError::Truncated`], [`TensorError::TrailingBytes`] or
/// [`TensorError::ChecksumMismatch`].
pub fn decode_envelope(kind: FileKind, bytes: &[u8]) -> Result<&[u8], TensorError> {
    let magic_len = bytes.len().min(8);
    if bytes[..magic_len] != kind.magic[..magic_len] {
        return Err(TensorError::BadMagic {
            expected_kind: kind.name,
            expected: kind.magic,
            found: bytes[..magic_len].to_vec(),
        });
    }
    let Some((header, payload)) = bytes.split_at_checked(HEADER_LEN) else {
        return Err(TensorError::Truncated {
            needed: HEADER_LEN as u64,
            available: bytes.len() as u64,
        });
    };
    let field = |range: std::ops::Range<usize>| &header[range];
    let version = u32::from_le_bytes(field(8..12).try_into().expect("4 bytes"));
    if version != kind.version {
        return Err(TensorError::UnsupportedVersion {
            kind: kind.name,
            found: version,
            supported: kind.version,
        });
    }
    let payload_len = u64::from_le_bytes(field(12..20).try_into().expect("8 bytes"));
    let available = payload.len() as u64;
    if payload_len > available {
        return Err(TensorError::Truncated {
            // Saturating: a hostile length near u64::MAX must not overflow the message.
            needed: (HEADER_LEN as u64).saturating_add(payload_len),
            available: bytes.len() as u64,
        });
    }
    if payload_len < available {
        return Err(TensorError::TrailingBytes {
            extra: available - payload_len,
        });
    }
    let expected = u32::from_le_bytes(field(20..24).try_into().expect("4 bytes"));
    let found = crc32fast::hash(payload);
    if found != expected {
        return Err(TensorError::ChecksumMismatch { expected, found });
    }
    Ok(payload)
}

/// Encodes `value` with bincode 2 (`config::standard()`, serde).
///
/// # Errors
///
/// [`TensorError::Encode`] naming `what`.
pub fn encode_bincode<S: Serialize>(what: &'static str, value: &S) -> Result<Vec<u8>, TensorError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).map_err(|e| {
        TensorError::Encode {
            what,
            source: crate::ErrorSource::new(e),
        }
    })
}

/// Decodes a bincode 2 payload that must be consumed entirely.
///
/// Memory stays bounded on hostile input: sequence lengths in the payload only grow
/// buffers as elements actually arrive (serde caps preallocation), and the payload is
/// already in memory.
///
/// # Errors
///
/// [`TensorError::Decode`] naming `what` for malformed bytes or bytes left over.
pub fn decode_bincode<D: DeserializeOwned>(
    what: &'static str,
    payload: &[u8],
) -> Result<D, TensorError> {
    let (value, used) = bincode::serde::decode_from_slice(payload, bincode::config::standard())
        .map_err(|e| TensorError::Decode {
            what,
            source: crate::ErrorSource::new(e),
        })?;
    if used != payload.len() {
        return Err(TensorError::Decode {
            what,
            source: crate::ErrorSource::new(format!(
                "{} bytes left over after the value",
                payload.len() - used
            )),
        });
    }
    Ok(value)
}

impl<T: Element> Tensor<T> {
    /// Encodes the tensor as the bytes of a tensor file (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`TensorError::Encode`] if bincode fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TensorError> {
        Ok(encode_envelope(
            TENSOR_FILE,
            &encode_bincode("tensor", self)?,
        ))
    }

    /// Decodes the bytes of a tensor file.
    ///
    /// # Errors
    ///
    /// The envelope errors of [`decode_envelope`], [`TensorError::Decode`] for a malformed
    /// payload, [`TensorError::DTypeMismatch`] when the file holds another dtype, and the
    /// shape errors of [`Tensor::from_vec`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TensorError> {
        let payload = decode_envelope(TENSOR_FILE, bytes)?;
        check_tensor_head::<T>(payload)?;
        decode_bincode("tensor", payload)
    }

    /// Saves the tensor to `path` atomically.
    ///
    /// # Errors
    ///
    /// [`TensorError::Io`] or [`TensorError::Encode`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_tensor::Tensor;
    ///
    /// let dir = std::env::temp_dir().join(format!("tokenloom-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("t.tlt");
    /// let t = Tensor::from_vec(vec![1.5f32, -0.0, 3.25], &[3])?;
    /// t.save(&path)?;
    /// assert_eq!(Tensor::<f32>::load(&path)?, t);
    /// assert!(Tensor::<f64>::load(&path).is_err()); // wrong dtype
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), tokenloom_tensor::TensorError>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), TensorError> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a tensor saved by [`Tensor::save`].
    ///
    /// # Errors
    ///
    /// [`TensorError::Io`], and everything [`Tensor::from_bytes`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TensorError> {
        Self::from_bytes(&read_file(path.as_ref())?)
    }
}

/// Reads the leading `v` and `dtype` fields of an encoded tensor, so that a file of another
/// dtype is reported as [`TensorError::DTypeMismatch`] rather than as a decode message.
fn check_tensor_head<T: Element>(payload: &[u8]) -> Result<(), TensorError> {
    #[derive(serde::Deserialize)]
    struct Head {
        v: u32,
        dtype: crate::DType,
    }
    let (head, _): (Head, usize) =
        bincode::serde::decode_from_slice(payload, bincode::config::standard()).map_err(|e| {
            TensorError::Decode {
                what: "tensor header",
                source: crate::ErrorSource::new(e),
            }
        })?;
    if head.v != crate::TENSOR_SERDE_VERSION {
        return Err(TensorError::UnsupportedVersion {
            kind: "tensor serde",
            found: head.v,
            supported: crate::TENSOR_SERDE_VERSION,
        });
    }
    if head.dtype != T::DTYPE {
        return Err(TensorError::DTypeMismatch {
            expected: T::DTYPE,
            found: head.dtype,
        });
    }
    Ok(())
}
