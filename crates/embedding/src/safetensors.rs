//! Importing and exporting the weight as a named safetensors tensor.

use std::path::Path;

use tokenloom_io::{SafetensorsFile, write_safetensors};
use tokenloom_tensor::Element;

use crate::error::EmbeddingError;
use crate::table::Embedding;

impl<T: Element> Embedding<T> {
    /// Loads the `(vocab_size, n_embd)` weight called `name` (e.g.
    /// `model.embed_tokens.weight`) from an open safetensors file, converting its dtype
    /// to `T`. The table is trainable, with default options.
    ///
    /// # Errors
    ///
    /// [`tokenloom_io::IoError::MissingTensor`] (listing the names the file contains),
    /// [`tokenloom_io::IoError::Rank`], [`tokenloom_io::IoError::UnsupportedDType`], and
    /// the table's own size checks.
    pub fn from_safetensors_file(
        file: &SafetensorsFile,
        name: &str,
    ) -> Result<Self, EmbeddingError> {
        Self::from_weight(file.load_matrix::<T>(name, None)?)
    }

    /// Opens (memory-maps) `path` and loads the weight called `name`; see
    /// [`Embedding::from_safetensors_file`].
    ///
    /// # Errors
    ///
    /// As [`Embedding::from_safetensors_file`], and I/O and format errors.
    pub fn from_safetensors(path: impl AsRef<Path>, name: &str) -> Result<Self, EmbeddingError> {
        Self::from_safetensors_file(&SafetensorsFile::open(path)?, name)
    }

    /// Writes the weight to a safetensors file (atomically) under `name`, in `T`'s dtype.
    ///
    /// # Errors
    ///
    /// I/O errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_embedding::{Embedding, Init};
    /// use tokenloom_tensor::bf16;
    ///
    /// let dir = std::env::temp_dir().join(format!("tokenloom-st-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("model.safetensors");
    /// let table = Embedding::<f32>::seeded(10, 4, Init::normal(0.02), 1)?;
    /// table.save_safetensors(&path, "model.embed_tokens.weight")?;
    /// let back = Embedding::<f32>::from_safetensors(&path, "model.embed_tokens.weight")?;
    /// assert_eq!(back.weight(), table.weight());
    /// let halved = Embedding::<bf16>::from_safetensors(&path, "model.embed_tokens.weight")?;
    /// assert_eq!(halved.weight(), &table.weight().to_dtype::<bf16>());
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
    /// ```
    pub fn save_safetensors(
        &self,
        path: impl AsRef<Path>,
        name: &str,
    ) -> Result<(), EmbeddingError> {
        Ok(write_safetensors(path, &[(name, self.weight().view())])?)
    }
}
