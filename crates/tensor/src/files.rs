//! Whole-file reads and atomic writes with errors that name the path (used by every
//! tokenloom writer; no serialization format involved).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::TensorError;

/// Writes `bytes` to `path` atomically: to a temporary file in the same directory, synced,
/// then renamed over `path`. A crash leaves either the old file or the new one, never a
/// mix.
///
/// # Errors
///
/// [`TensorError::Io`] with the path that failed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TensorError> {
    let file_name = path.file_name().ok_or_else(|| {
        TensorError::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path has no file name",
            ),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        TensorError::io(path, e)
    })
}

/// Reads a whole file.
///
/// # Errors
///
/// [`TensorError::Io`] with the path.
pub fn read_file(path: &Path) -> Result<Vec<u8>, TensorError> {
    fs::read(path).map_err(|e| TensorError::io(path, e))
}
