//! [`IoError`], the error type of the foreign-format readers and writers.

use std::path::PathBuf;

use tokenloom_tensor::TensorError;

/// Everything that can go wrong reading or writing a foreign checkpoint. Each variant
/// names the tensor or file and the numbers involved.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum IoError {
    /// An I/O error on a file; the operating system's error is its `source()`.
    #[error("{path}: {source}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: tokenloom_tensor::IoSource,
    },
    /// The bytes are not a valid GGUF file: what is wrong, with its numbers.
    #[error("not a valid GGUF file: {0}")]
    Gguf(#[from] crate::GgufFormatError),
    /// The bytes are not a valid safetensors file (or tensors cannot be written as one).
    #[error("not a valid safetensors file: {0}")]
    Safetensors(#[from] crate::SafetensorsFormatError),
    /// No tensor of that name; lists what the file does contain.
    #[error("no tensor named `{name}`; the file contains: {}", list_names(.available))]
    MissingTensor {
        /// The name asked for.
        name: String,
        /// The names present, sorted.
        available: Vec<String>,
    },
    /// A stored element type that cannot be converted to a float tensor.
    #[error("tensor `{name}` has dtype {dtype}, which cannot be read as f32, f64, f16 or bf16")]
    UnsupportedDType {
        /// The tensor.
        name: String,
        /// The stored dtype.
        dtype: String,
    },
    /// A tensor of the wrong rank.
    #[error("tensor `{name}` has shape {shape:?}, expected rank {expected}")]
    Rank {
        /// The tensor.
        name: String,
        /// The rank needed.
        expected: usize,
        /// The stored shape.
        shape: Vec<usize>,
    },
    /// A tensor of the wrong shape.
    #[error("tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// The shape needed.
        expected: Vec<usize>,
        /// The stored shape.
        got: Vec<usize>,
    },
    /// A number of values that is not a whole number of quantized blocks.
    #[error("{values} values are not a whole number of {qtype} blocks of {block_elems}")]
    QuantizedLength {
        /// The type, e.g. `Q4_K`.
        qtype: String,
        /// The number of values.
        values: usize,
        /// Values per block.
        block_elems: usize,
    },
    /// Quantized data of the wrong size (truncated, or too long).
    #[error("{values} values of {qtype} take {expected} bytes, but {bytes} were given")]
    QuantizedData {
        /// The type.
        qtype: String,
        /// The bytes given.
        bytes: usize,
        /// The bytes needed.
        expected: usize,
        /// The number of values.
        values: usize,
    },
    /// A sharded checkpoint's index file that is not JSON.
    #[error("{path}: not JSON: {reason} (line {line}, column {column})", path = .path.display())]
    IndexNotJson {
        /// The index file.
        path: PathBuf,
        /// serde_json's message.
        reason: String,
        /// Where it failed.
        line: usize,
        /// Where it failed.
        column: usize,
    },
    /// A sharded checkpoint's index file without a `weight_map` object.
    #[error("{path}: no `weight_map` object", path = .path.display())]
    IndexNoWeightMap {
        /// The index file.
        path: PathBuf,
    },
    /// A `weight_map` entry that is not a string.
    #[error("{path}: the weight_map entry of `{tensor}` is {entry}, not a string", path = .path.display())]
    IndexEntryNotString {
        /// The index file.
        path: PathBuf,
        /// The tensor whose entry it is.
        tensor: String,
        /// The entry, as JSON.
        entry: String,
    },
    /// An index entry that is not a plain file name inside the model directory.
    #[error(
        "{index}: the weight_map entry of `{tensor}` is {entry:?}, which is refused because {reason}: only plain file names inside the model directory are opened",
        index = .index.display()
    )]
    UnsafeIndexEntry {
        /// The index file.
        index: PathBuf,
        /// The tensor whose entry it is.
        tensor: String,
        /// The entry as written.
        entry: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A file of a model directory that resolves (through symlinks) outside it.
    #[error(
        "{path} resolves to {target}, outside the model directory {dir}",
        path = .path.display(),
        target = .target.display(),
        dir = .dir.display()
    )]
    EntryOutsideDirectory {
        /// The model directory.
        dir: PathBuf,
        /// The file as named in the directory.
        path: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
    },
    /// A model directory without a weight file tokenloom can read.
    #[error(
        "{dir}: no model.safetensors.index.json, model.safetensors or *.safetensors file, and {gguf_files} *.gguf files (need exactly one)",
        dir = .dir.display()
    )]
    NoWeights {
        /// The directory.
        dir: PathBuf,
        /// How many GGUF files it holds.
        gguf_files: usize,
    },
    /// An FP8 weight that has block scales beside it: its stored values alone are not the
    /// weight, so plain `load` refuses it.
    #[error(
        "tensor `{name}` is block-scaled FP8 (its scales are `{scales}`): load it with `SafetensorsFile::load_block_scaled`"
    )]
    ScaledFp8 {
        /// The FP8 tensor.
        name: String,
        /// The scale tensor found beside it.
        scales: String,
    },
    /// A block size that cannot tile a block-scaled weight.
    #[error("tensor `{name}`: block size {block:?} must be positive")]
    BlockSize {
        /// The weight.
        name: String,
        /// The block size asked for, `(rows, cols)`.
        block: [usize; 2],
    },
    /// An error reading a file, with the file's path.
    #[error("{path}: {source}", path = .path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong in it.
        source: Box<IoError>,
    },
    /// An error from the tensor crate (shapes, allocation, atomic writes).
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// At most 20 names, then a count of the rest.
fn list_names(names: &[String]) -> String {
    const SHOWN: usize = 20;
    let mut out = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.is_empty() {
        out.push_str("(no tensors)");
    } else if names.len() > SHOWN {
        out.push_str(&format!(" … and {} more", names.len() - SHOWN));
    }
    out
}

/// Finds `name` in a directory sorted by name, or [`IoError::MissingTensor`] listing the
/// names present.
pub(crate) fn find_by_name<'a, I>(
    tensors: &'a [I],
    name: &str,
    name_of: impl Fn(&I) -> &str,
) -> Result<&'a I, IoError> {
    tensors
        .binary_search_by(|t| name_of(t).cmp(name))
        .map(|i| &tensors[i])
        .map_err(|_| IoError::MissingTensor {
            name: name.to_owned(),
            available: tensors.iter().map(|t| name_of(t).to_owned()).collect(),
        })
}

impl IoError {
    /// Names the file an error happened in (an I/O error already names it).
    #[must_use]
    pub fn in_file(self, path: &std::path::Path) -> Self {
        match self {
            e @ (IoError::Io { .. } | IoError::InFile { .. }) => e,
            e => IoError::InFile {
                path: path.to_path_buf(),
                source: Box::new(e),
            },
        }
    }

    /// The error without the file it happened in.
    #[must_use]
    pub fn without_file(&self) -> &IoError {
        match self {
            IoError::InFile { source, .. } => source.without_file(),
            e => e,
        }
    }

    /// Wraps an I/O error with its path.
    #[must_use]
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source: tokenloom_tensor::IoSource::new(err),
        }
    }
}
