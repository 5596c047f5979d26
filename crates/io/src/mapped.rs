//! Read-only file contents, memory-mapped or owned.

use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

use crate::error::IoError;

/// The bytes of a file: memory-mapped (large checkpoints are paged in on demand, never
/// read whole), or owned (bytes already in memory, e.g. in tests or fuzzing).
#[derive(Debug)]
pub enum FileBytes {
    /// A read-only memory map of a file.
    Mapped(Mmap),
    /// Bytes owned in memory.
    Owned(Vec<u8>),
}

impl FileBytes {
    /// Memory-maps `path` read-only.
    ///
    /// # Errors
    ///
    /// [`IoError::Io`] when the file cannot be opened or mapped.
    pub fn map(path: &Path) -> Result<Self, IoError> {
        let file = File::open(path).map_err(|e| IoError::io(path, e))?;
        let len = file.metadata().map_err(|e| IoError::io(path, e))?.len();
        if len == 0 {
            // mmap of an empty file fails on Linux; an empty buffer says the same.
            return Ok(FileBytes::Owned(Vec::new()));
        }
        // SAFETY: the map is read-only and lives as long as this value. Memory-mapping is
        // only unsound if another process truncates or rewrites the file while it is
        // mapped; like every mmap-based checkpoint loader (safetensors, candle, llama.cpp)
        // we document that the file must not be modified while a reader holds it.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(&file) }.map_err(|e| IoError::io(path, e))?;
        Ok(FileBytes::Mapped(map))
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            FileBytes::Mapped(map) => map,
            FileBytes::Owned(bytes) => bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_files_and_reports_missing_ones() {
        let dir = std::env::temp_dir().join(format!("tokenloom-io-mapped-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bytes.bin");
        std::fs::write(&path, [1u8, 2, 3, 4, 5]).unwrap();
        let bytes = FileBytes::map(&path).unwrap();
        assert!(matches!(bytes, FileBytes::Mapped(_)));
        assert_eq!(&bytes[..], &[1, 2, 3, 4, 5]);
        let empty = dir.join("empty.bin");
        std::fs::write(&empty, []).unwrap();
        assert!(FileBytes::map(&empty).unwrap().is_empty());
        let err = FileBytes::map(&dir.join("missing.bin")).unwrap_err();
        assert!(
            matches!(
                err,
                IoError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
