//! Checkpoints of a whole [`Embedding`] (options, frozen flag and weight) in tokenloom's
//! checked bincode envelope.

use std::path::Path;

use tokenloom_tensor::envelope::{
    FileKind, decode_bincode, decode_envelope, encode_bincode, encode_envelope,
};
use tokenloom_tensor::files::{read_file, write_atomic};
use tokenloom_tensor::{DType, Element, TensorError};

use crate::error::EmbeddingError;
use crate::table::Embedding;

/// An embedding checkpoint written by [`Embedding::save`].
pub const EMBEDDING_FILE: FileKind = FileKind {
    magic: *b"TLEMBED\0",
    name: "embedding checkpoint",
    version: 1,
};

#[derive(serde::Serialize)]
struct CheckpointRef<'a, T: Element> {
    dtype: DType,
    embedding: &'a Embedding<T>,
}

#[derive(serde::Deserialize)]
#[serde(bound = "T: Element")]
struct Checkpoint<T: Element> {
    dtype: DType,
    embedding: Embedding<T>,
}

impl<T: Element> Embedding<T> {
    /// Encodes the layer as the bytes of a checkpoint file.
    ///
    /// # Errors
    ///
    /// [`TensorError::Encode`] (wrapped) if bincode fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EmbeddingError> {
        let payload = encode_bincode(
            "embedding checkpoint",
            &CheckpointRef {
                dtype: T::DTYPE,
                embedding: self,
            },
        )?;
        Ok(encode_envelope(EMBEDDING_FILE, &payload))
    }

    /// Decodes the bytes of a checkpoint file.
    ///
    /// # Errors
    ///
    /// The envelope errors of [`decode_envelope`] (wrong magic, version, truncation,
    /// corruption), [`TensorError::DTypeMismatch`] when the file holds another dtype, and
    /// [`TensorError::Decode`] or the table's invariant errors for a malformed payload.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EmbeddingError> {
        let payload = decode_envelope(EMBEDDING_FILE, bytes)?;
        let (stored, _): (DType, usize) =
            bincode::serde::decode_from_slice(payload, bincode::config::standard()).map_err(
                |e| TensorError::Decode {
                    what: "embedding checkpoint dtype",
                    source: tokenloom_tensor::ErrorSource::new(e),
                },
            )?;
        if stored != T::DTYPE {
            return Err(TensorError::DTypeMismatch {
                expected: T::DTYPE,
                found: stored,
            }
            .into());
        }
        let checkpoint: Checkpoint<T> = decode_bincode("embedding checkpoint", payload)?;
        debug_assert_eq!(checkpoint.dtype, T::DTYPE);
        Ok(checkpoint.embedding)
    }

    /// Saves the layer to `path` atomically (temporary file, sync, rename).
    ///
    /// # Errors
    ///
    /// [`TensorError::Io`] or [`TensorError::Encode`], wrapped.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), EmbeddingError> {
        Ok(write_atomic(path.as_ref(), &self.to_bytes()?)?)
    }

    /// Loads a layer saved by [`Embedding::save`].
    ///
    /// # Errors
    ///
    /// [`TensorError::Io`], and everything [`Embedding::from_bytes`] reports.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, EmbeddingError> {
        Self::from_bytes(&read_file(path.as_ref())?)
    }
}
