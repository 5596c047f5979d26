//! Resolving a model directory to the files that hold its weights: a sharded safetensors
//! checkpoint (`model.safetensors.index.json`), a single `model.safetensors`, loose
//! `*.safetensors` files, or a lone `*.gguf` file — one implementation for the library's
//! loaders and the command-line tool.
//!
//! # What may be opened
//!
//! Only plain file names inside the directory. An index entry (a `weight_map` value) is
//! refused when it is empty, `.` or `..`, holds a `/` or `\` separator or a NUL byte, or is
//! absolute: `../../etc/passwd`, `/etc/passwd` and `shards\evil` never reach the file
//! system. Every file the directory resolves to (shards, `config.json`, a GGUF file) is
//! then checked after following symlinks: it must stay inside the directory, with one
//! exception — a HuggingFace hub cache snapshot (`<repo>/snapshots/<revision>/`), whose
//! files are symlinks into `<repo>/blobs/` by design, may point into that `blobs` folder.
//! A symlink anywhere else outside the directory is [`IoError::EntryOutsideDirectory`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::IoError;

/// The index file of a sharded safetensors checkpoint.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// The single-file safetensors checkpoint.
pub const SAFETENSORS_SINGLE: &str = "model.safetensors";

/// Where a model directory keeps its weights.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightFiles {
    /// Safetensors files, sorted, each checked to be inside the directory.
    Safetensors {
        /// The files (one for `model.safetensors`, the shards of an index, or every
        /// `*.safetensors` file of the directory).
        files: Vec<PathBuf>,
        /// For a sharded checkpoint, the index's tensor name → file map.
        weight_map: Option<BTreeMap<String, PathBuf>>,
    },
    /// The directory's only `*.gguf` file.
    Gguf(PathBuf),
}

/// A model directory, resolved: its weight files and the config files it has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDir {
    dir: PathBuf,
    weights: WeightFiles,
    config_json: Option<PathBuf>,
    params_json: Option<PathBuf>,
    tokenizer_json: Option<PathBuf>,
}

impl ModelDir {
    /// Resolves `dir`: `model.safetensors.index.json` first, then `model.safetensors`, then
    /// every `*.safetensors` file, then a single `*.gguf` file. No tensor is read.
    ///
    /// # Errors
    ///
    /// [`IoError::Io`] when the directory or the index cannot be read,
    /// [`IoError::IndexNotJson`], [`IoError::IndexNoWeightMap`] and
    /// [`IoError::IndexEntryNotString`] for an index that cannot be used,
    /// [`IoError::UnsafeIndexEntry`] for a `weight_map` value that is not a plain file
    /// name, [`IoError::EntryOutsideDirectory`] for a file that resolves outside the
    /// directory, and [`IoError::NoWeights`] when nothing above is found.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_io::{IoError, ModelDir};
    ///
    /// let dir = std::env::temp_dir().join(format!("tokenloom-model-dir-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(
    ///     dir.join("model.safetensors.index.json"),
    ///     r#"{"weight_map": {"model.embed_tokens.weight": "../../secret.safetensors"}}"#,
    /// ).unwrap();
    /// assert!(matches!(ModelDir::open(&dir), Err(IoError::UnsafeIndexEntry { .. })));
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, IoError> {
        let dir = dir.as_ref().to_path_buf();
        let guard = Containment::new(&dir)?;
        // Every entry present under a known name is checked for containment first (a
        // symlink to /dev/zero or to a file elsewhere is refused, not skipped); only
        // regular files are then used.
        let optional = |name: &str| -> Result<Option<PathBuf>, IoError> {
            let path = dir.join(name);
            if path.symlink_metadata().is_err() {
                return Ok(None);
            }
            guard.check(&path)?;
            Ok(path.is_file().then_some(path))
        };
        let weights = if let Some(index) = optional(SAFETENSORS_INDEX)? {
            let weight_map = read_index(&index, &dir, &guard)?;
            let mut files: Vec<PathBuf> = weight_map.values().cloned().collect();
            files.sort();
            files.dedup();
            WeightFiles::Safetensors {
                files,
                weight_map: Some(weight_map),
            }
        } else if let Some(single) = optional(SAFETENSORS_SINGLE)? {
            WeightFiles::Safetensors {
                files: vec![single],
                weight_map: None,
            }
        } else {
            let loose = files_with_extension(&dir, "safetensors")?;
            if loose.is_empty() {
                match files_with_extension(&dir, "gguf")?.as_slice() {
                    [single] => WeightFiles::Gguf(single.clone()),
                    ggufs => {
                        return Err(IoError::NoWeights {
                            dir,
                            gguf_files: ggufs.len(),
                        });
                    }
                }
            } else {
                WeightFiles::Safetensors {
                    files: loose,
                    weight_map: None,
                }
            }
        };
        for path in weights.paths() {
            guard.check(path)?;
        }
        Ok(Self {
            weights,
            config_json: optional("config.json")?,
            params_json: optional("params.json")?,
            tokenizer_json: optional("tokenizer.json")?,
            dir,
        })
    }

    /// The directory as given.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the weights are.
    #[must_use]
    pub fn weights(&self) -> &WeightFiles {
        &self.weights
    }

    /// `config.json` (HuggingFace), if present.
    #[must_use]
    pub fn config_json(&self) -> Option<&Path> {
        self.config_json.as_deref()
    }

    /// `params.json` (Meta), if present.
    #[must_use]
    pub fn params_json(&self) -> Option<&Path> {
        self.params_json.as_deref()
    }

    /// `tokenizer.json` (HuggingFace tokenizers), if present.
    #[must_use]
    pub fn tokenizer_json(&self) -> Option<&Path> {
        self.tokenizer_json.as_deref()
    }
}

impl WeightFiles {
    /// Every weight file.
    #[must_use]
    pub fn paths(&self) -> &[PathBuf] {
        match self {
            WeightFiles::Safetensors { files, .. } => files,
            WeightFiles::Gguf(path) => std::slice::from_ref(path),
        }
    }
}

/// Checks that a `weight_map` value is one plain file name.
///
/// # Errors
///
/// [`IoError::UnsafeIndexEntry`] with the reason.
pub(crate) fn check_plain_file_name(
    index: &Path,
    tensor: &str,
    entry: &str,
) -> Result<(), IoError> {
    let reason = if entry.is_empty() {
        Some("it is empty")
    } else if entry.contains('\0') {
        Some("it contains a NUL byte")
    } else if entry.contains('/') || entry.contains('\\') {
        Some("it contains a path separator")
    } else if entry == "." || entry == ".." {
        Some("it names a directory")
    } else if Path::new(entry).is_absolute() {
        Some("it is an absolute path")
    } else if !matches!(
        Path::new(entry).components().collect::<Vec<_>>().as_slice(),
        [std::path::Component::Normal(_)]
    ) {
        Some("it is not a plain file name")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(IoError::UnsafeIndexEntry {
            index: index.to_path_buf(),
            tensor: tensor.to_owned(),
            entry: entry.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// The `weight_map` of an index file, each entry checked and joined to `dir`.
fn read_index(
    index: &Path,
    dir: &Path,
    guard: &Containment,
) -> Result<BTreeMap<String, PathBuf>, IoError> {
    let text = std::fs::read_to_string(index).map_err(|e| IoError::io(index, e))?;
    let json: Value = serde_json::from_str(&text).map_err(|e| IoError::IndexNotJson {
        path: index.to_path_buf(),
        reason: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    let map = json
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| IoError::IndexNoWeightMap {
            path: index.to_path_buf(),
        })?;
    map.iter()
        .map(|(tensor, entry)| {
            let entry = entry.as_str().ok_or_else(|| IoError::IndexEntryNotString {
                path: index.to_path_buf(),
                tensor: tensor.clone(),
                entry: entry.to_string(),
            })?;
            check_plain_file_name(index, tensor, entry)?;
            let path = dir.join(entry);
            guard.check(&path)?;
            Ok((tensor.clone(), path))
        })
        .collect()
}

/// The directory's regular files (or symlinks to them) with `extension`, sorted.
fn files_with_extension(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, IoError> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| IoError::io(dir, e))?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension) && p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

/// The directories a resolved file may live in: the model directory, and for a
/// HuggingFace hub snapshot also the repository's `blobs` folder.
struct Containment {
    dir: PathBuf,
    allowed: Vec<PathBuf>,
}

impl Containment {
    fn new(dir: &Path) -> Result<Self, IoError> {
        let canonical = dir.canonicalize().map_err(|e| IoError::io(dir, e))?;
        let mut allowed = vec![canonical.clone()];
        // `<repo>/snapshots/<revision>` → `<repo>/blobs`, the hub cache's layout.
        if let Some(snapshots) = canonical.parent()
            && snapshots.file_name().is_some_and(|n| n == "snapshots")
            && let Some(repo) = snapshots.parent()
        {
            allowed.push(repo.join("blobs"));
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            allowed,
        })
    }

    /// Follows symlinks from `path` and checks where it ends.
    fn check(&self, path: &Path) -> Result<(), IoError> {
        let target = path.canonicalize().map_err(|e| IoError::io(path, e))?;
        if self.allowed.iter().any(|dir| target.starts_with(dir)) {
            Ok(())
        } else {
            Err(IoError::EntryOutsideDirectory {
                dir: self.dir.clone(),
                path: path.to_path_buf(),
                target,
            })
        }
    }
}
