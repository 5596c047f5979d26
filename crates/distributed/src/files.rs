//! Sharded loading and saving: each rank memory-maps the checkpoint and decodes only its
//! own rows; each rank writes its shard to its own file, and [`merge_shards`] joins the
//! files into one table.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenloom_embedding::EmbeddingOptions;
use tokenloom_io::{
    GgmlType, GgufFile, IoError, RawTensor, SafetensorsFile, decode_le, write_raw_safetensors,
    write_raw_safetensors_with_metadata,
};
use tokenloom_tensor::{DType, Element, Tensor, try_filled};

use crate::agree::agree;
use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::shard::VocabShard;

/// Header key of a shard file: the first row it holds.
pub const SHARD_START_KEY: &str = "tokenloom.shard.start";
/// Header key of a shard file: one past the last row it holds.
pub const SHARD_END_KEY: &str = "tokenloom.shard.end";
/// Header key of a shard file: the whole table's vocabulary size.
pub const SHARD_VOCAB_SIZE_KEY: &str = "tokenloom.shard.vocab_size";

/// A checkpoint opened for reading rows of one table: safetensors or GGUF (by its magic).
enum Checkpoint {
    Safetensors(SafetensorsFile),
    Gguf(GgufFile),
}

impl Checkpoint {
    fn open(path: &Path) -> Result<Self, IoError> {
        let mut magic = [0u8; 4];
        let is_gguf = std::fs::File::open(path)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && &magic == b"GGUF";
        Ok(if is_gguf {
            Self::Gguf(GgufFile::open(path)?)
        } else {
            Self::Safetensors(SafetensorsFile::open(path)?)
        })
    }

    /// `(vocab_size, n_embd)` of table `name`.
    fn dims(&self, name: &str) -> Result<(usize, usize), IoError> {
        let shape = match self {
            Self::Safetensors(f) => &f.info(name)?.shape,
            Self::Gguf(f) => &f.info(name)?.shape,
        };
        match shape[..] {
            [vocab_size, n_embd] => Ok((vocab_size, n_embd)),
            _ => Err(IoError::Rank {
                name: name.to_owned(),
                expected: 2,
                shape: shape.clone(),
            }),
        }
    }

    /// Rows `shard.range()` of table `name` as `T`, touching only their bytes.
    fn rows<T: Element>(
        &self,
        name: &str,
        shard: VocabShard,
        n_embd: usize,
    ) -> Result<Tensor<T>, IoError> {
        let dims = [shard.len(), n_embd];
        let plain = |dtype: DType, bytes: &[u8]| {
            let size = dtype.size_in_bytes();
            let rows = &bytes[shard.start() * n_embd * size..shard.end() * n_embd * size];
            Tensor::from_vec(decode_le::<T>(dtype, rows), &dims)
        };
        Ok(match self {
            Self::Safetensors(f) => {
                let dtype = f.info(name)?.require_float_dtype()?;
                plain(dtype, f.raw_bytes(name)?)?
            }
            Self::Gguf(f) => match f.info(name)?.ggml_type {
                GgmlType::F32 => plain(DType::F32, f.raw_bytes(name)?)?,
                GgmlType::F16 => plain(DType::F16, f.raw_bytes(name)?)?,
                GgmlType::BF16 => plain(DType::BF16, f.raw_bytes(name)?)?,
                GgmlType::F64 => plain(DType::F64, f.raw_bytes(name)?)?,
                _ => {
                    // Block-quantized: the matrix stays mapped; only our rows are decoded.
                    let matrix = f.quantized(name)?;
                    let mut data = try_filled(shard.len() * n_embd, T::zero(), "shard rows")?;
                    for (local, out) in data.chunks_exact_mut(n_embd).enumerate() {
                        matrix.row_into(shard.start() + local, out)?;
                    }
                    Tensor::from_vec(data, &dims)?
                }
            },
        })
    }
}

/// Reads this rank's rows of a `(vocab_size, n_embd)` table from a checkpoint.
fn read_local<T: Element>(
    rank: usize,
    n_ranks: usize,
    path: &Path,
    name: &str,
) -> Result<(usize, Tensor<T>), DistributedError> {
    let file = Checkpoint::open(path)?;
    let (vocab_size, n_embd) = file.dims(name)?;
    let shard = VocabShard::new(vocab_size, rank, n_ranks)?;
    Ok((vocab_size, file.rows(name, shard, n_embd)?))
}

impl<T: Element> VocabParallelEmbedding<T> {
    /// Every rank memory-maps the checkpoint at `path` (safetensors, or GGUF in any float
    /// or block-quantized type tokenloom reads) and decodes only the rows of its shard of
    /// table `name` (`model.embed_tokens.weight`, `token_embd.weight`, …): no rank reads
    /// or holds the whole table. The file's other pages are never touched (the operating
    /// system may still read ahead around our rows).
    ///
    /// # Errors
    ///
    /// The file's [`IoError`] on the rank that met it and
    /// [`DistributedError::PeerFailed`] on the others, and the errors of
    /// [`new`](Self::new).
    pub fn load<C: Communicator + ?Sized>(
        comm: &C,
        path: impl AsRef<Path>,
        name: &str,
        options: EmbeddingOptions,
    ) -> Result<Self, DistributedError> {
        let local = read_local::<T>(comm.rank(), comm.size(), path.as_ref(), name);
        let (vocab_size, rows) = agree(comm, "loading", &[], &[], local)?;
        Self::new(comm, vocab_size, rows, options)
    }

    /// Writes this rank's rows as a safetensors file holding tensor `name` of shape
    /// `(shard.len(), n_embd)` in `T`'s dtype, with the shard's rows and the vocabulary
    /// size in its header ([`SHARD_START_KEY`], …). Each rank writes its own `path`;
    /// [`merge_shards`] joins them. Written atomically (temporary file + rename).
    ///
    /// # Errors
    ///
    /// [`IoError`] for a file that cannot be written.
    pub fn save_shard(&self, path: impl AsRef<Path>, name: &str) -> Result<(), DistributedError> {
        save_rows(path.as_ref(), name, self.shard(), self.weight())
    }
}

fn save_rows<T: Element>(
    path: &Path,
    name: &str,
    shard: VocabShard,
    rows: &Tensor<T>,
) -> Result<(), DistributedError> {
    let tensor = RawTensor::from_view(name, rows.view());
    let metadata = HashMap::from([
        (SHARD_START_KEY.to_owned(), shard.start().to_string()),
        (SHARD_END_KEY.to_owned(), shard.end().to_string()),
        (
            SHARD_VOCAB_SIZE_KEY.to_owned(),
            shard.vocab_size().to_string(),
        ),
    ]);
    write_raw_safetensors_with_metadata(path, &[tensor], metadata)?;
    Ok(())
}

/// What [`merge_shards`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergedTable {
    /// The rows of the merged table.
    pub vocab_size: usize,
    /// Its width.
    pub n_embd: usize,
    /// The safetensors dtype, as the shards stored it.
    pub dtype: String,
}

/// Joins the shard files written by [`VocabParallelEmbedding::save_shard`] (in any order)
/// into one safetensors file holding tensor `name` of shape `(vocab_size, n_embd)`, bit
/// for bit. Runs in one process (a tool, or rank 0 after a barrier) and holds the whole
/// table in memory once.
///
/// # Errors
///
/// [`DistributedError::NotAShard`] for a file without the shard header or with a tensor
/// whose shape disagrees with it, [`DistributedError::ShardsDoNotTile`] for gaps,
/// overlaps, different vocabulary sizes, widths or dtypes, and [`IoError`]s.
pub fn merge_shards(
    shards: &[PathBuf],
    name: &str,
    out: impl AsRef<Path>,
) -> Result<MergedTable, DistributedError> {
    let mut parts = shards
        .iter()
        .map(|path| open_shard(path, name))
        .collect::<Result<Vec<_>, _>>()?;
    parts.sort_by_key(|p| p.start);
    let Some(first) = parts.first() else {
        return Err(DistributedError::ShardsDoNotTile {
            vocab_size: 0,
            expected_start: 0,
            found: "no shard files".into(),
        });
    };
    let (vocab_size, n_embd, dtype) = (first.vocab_size, first.n_embd, first.dtype.clone());
    let mut data = Vec::new();
    let mut next = 0;
    for p in &parts {
        if p.start != next || p.vocab_size != vocab_size || p.n_embd != n_embd || p.dtype != dtype {
            return Err(DistributedError::ShardsDoNotTile {
                vocab_size,
                expected_start: next,
                found: format!(
                    "{}: rows {}..{} of {}, n_embd {}, {}",
                    p.path.display(),
                    p.start,
                    p.end,
                    p.vocab_size,
                    p.n_embd,
                    p.dtype
                ),
            });
        }
        data.extend_from_slice(p.file.raw_bytes(name)?);
        next = p.end;
    }
    if next != vocab_size {
        return Err(DistributedError::ShardsDoNotTile {
            vocab_size,
            expected_start: next,
            found: "the end of the shard list".into(),
        });
    }
    let tensor = RawTensor {
        name: name.to_owned(),
        dtype: dtype.clone(),
        shape: vec![vocab_size, n_embd],
        data: Cow::Owned(data),
    };
    write_raw_safetensors(out, &[tensor])?;
    Ok(MergedTable {
        vocab_size,
        n_embd,
        dtype,
    })
}

struct ShardFile {
    path: PathBuf,
    file: SafetensorsFile,
    start: usize,
    end: usize,
    vocab_size: usize,
    n_embd: usize,
    dtype: String,
}

fn open_shard(path: &Path, name: &str) -> Result<ShardFile, DistributedError> {
    let file = SafetensorsFile::open(path)?;
    let not_a_shard = |reason: String| DistributedError::NotAShard {
        path: path.to_owned(),
        reason,
    };
    let number = |key: &str| {
        file.metadata()
            .get(key)
            .ok_or_else(|| not_a_shard(format!("no `{key}` in its header")))?
            .parse::<usize>()
            .map_err(|e| not_a_shard(format!("`{key}`: {e}")))
    };
    let (start, end, vocab_size) = (
        number(SHARD_START_KEY)?,
        number(SHARD_END_KEY)?,
        number(SHARD_VOCAB_SIZE_KEY)?,
    );
    // A missing tensor names the file it is missing from.
    let info = file.info(name).map_err(|_| {
        let names: Vec<&str> = file
            .tensors()
            .iter()
            .take(5)
            .map(|t| t.name.as_str())
            .collect();
        not_a_shard(format!(
            "no tensor `{name}` (it holds {})",
            if names.is_empty() {
                "no tensor".to_owned()
            } else {
                names.join(", ")
            }
        ))
    })?;
    let (shape, dtype) = (info.shape.clone(), info.dtype.clone());
    let [rows, n_embd] = shape[..] else {
        return Err(not_a_shard(format!(
            "tensor `{name}` has shape {shape:?}, not (rows, n_embd)"
        )));
    };
    if start >= end || end > vocab_size || rows != end - start {
        return Err(not_a_shard(format!(
            "rows {start}..{end} of {vocab_size} in the header, {rows} rows in tensor `{name}`"
        )));
    }
    Ok(ShardFile {
        path: path.to_owned(),
        file,
        start,
        end,
        vocab_size,
        n_embd,
        dtype,
    })
}
