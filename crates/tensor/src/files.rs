//! Whole-file reads and atomic writes with errors that name the path (used by every
//! tokenloom writer; no serialization format involved).

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::TensorError;

/// Writes `bytes` to `path` atomically: to a new temporary file in the same directory,
/// synced, then renamed over `path`. A crash leaves either the old file or the new one,
/// never a mix.
///
/// The temporary file is created exclusively (`create_new`: never an existing file, never
/// through a symlink planted at its name) under a name with a per-call random part, so a
/// link planted beside the destination cannot redirect the write.
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
    let (tmp, mut file) =
        create_temporary(path, file_name).map_err(|e| TensorError::io(path, e))?;
    let result = (|| {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        // Ours: created by create_new above.
        let _ = fs::remove_file(&tmp);
        TensorError::io(path, e)
    })
}

/// A new file `.NAME.tmp-PID-RANDOM` beside `path`, created exclusively; a few names are
/// tried when one exists.
fn create_temporary(
    path: &Path,
    file_name: &std::ffi::OsStr,
) -> std::io::Result<(std::path::PathBuf, fs::File)> {
    let mut last = None;
    for attempt in 0..16u32 {
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(file_name);
        tmp_name.push(format!(
            ".tmp-{}-{:016x}",
            std::process::id(),
            random_suffix(attempt)
        ));
        let tmp = path.with_file_name(tmp_name);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temporary file name was free")))
}

/// 64 bits that differ between calls: the standard library's per-process random hash
/// keys, mixed with the time and an attempt counter (not cryptographic; the exclusive
/// create is what keeps a planted file out).
fn random_suffix(attempt: u32) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.write_u32(attempt);
    hasher.finish()
}

/// Reads a whole file.
///
/// # Errors
///
/// [`TensorError::Io`] with the path.
pub fn read_file(path: &Path) -> Result<Vec<u8>, TensorError> {
    fs::read(path).map_err(|e| TensorError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_symlink_planted_at_the_old_temporary_name_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("tokenloom-atomic-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let out = dir.join("out.bin");
        // The name the writer used to pick, predictable from the pid.
        let planted = dir.join(format!(".out.bin.tmp-{}", std::process::id()));
        std::os::unix::fs::symlink(&victim, &planted).unwrap();
        write_atomic(&out, b"new").unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        // No temporary file is left behind.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-") && *n != planted.file_name().unwrap())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
