//! safetensors: reading named tensors (memory-mapped, with dtype conversion) and writing
//! them atomically.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::tensor::{Dtype, SafeTensors, View};
use tokenloom_tensor::files::write_atomic;
use tokenloom_tensor::{DType, Element, Tensor, TensorView};

use crate::error::{IoError, find_by_name};
use crate::format_error::SafetensorsFormatError as S;
use crate::fp8::{self, Fp8, scale_names};
use crate::mapped::FileBytes;

/// One tensor of a safetensors file: its name, stored dtype, shape and byte range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name, e.g. `model.embed_tokens.weight`.
    pub name: String,
    /// The stored dtype as safetensors writes it, e.g. `F32`, `BF16`, `I64`.
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The byte range of its data within the file.
    pub byte_range: std::ops::Range<usize>,
}

impl TensorInfo {
    /// The dtype as a tokenloom [`DType`], if it is a float type tokenloom reads.
    #[must_use]
    pub fn float_dtype(&self) -> Option<DType> {
        match self.dtype.as_str() {
            "F32" => Some(DType::F32),
            "F64" => Some(DType::F64),
            "F16" => Some(DType::F16),
            "BF16" => Some(DType::BF16),
            _ => None,
        }
    }

    /// [`float_dtype`](Self::float_dtype), or the error naming the tensor and its dtype.
    ///
    /// # Errors
    ///
    /// [`IoError::UnsupportedDType`] for integer and other dtypes.
    pub fn require_float_dtype(&self) -> Result<DType, IoError> {
        self.float_dtype().ok_or_else(|| IoError::UnsupportedDType {
            name: self.name.clone(),
            dtype: self.dtype.clone(),
        })
    }
}

/// A safetensors file opened for reading: the header is parsed and validated once
/// (every offset against the file length), and tensor data is read on demand from a
/// memory map.
///
/// # Examples
///
/// ```
/// use tokenloom_io::{SafetensorsFile, safetensors_bytes};
/// use tokenloom_tensor::{Tensor, bf16};
///
/// let weight = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2])?;
/// let bytes = safetensors_bytes(&[("model.embed_tokens.weight", weight.view())])?;
/// let file = SafetensorsFile::from_bytes(bytes)?;
/// assert_eq!(file.load::<f32>("model.embed_tokens.weight")?, weight);
/// // Converted on load: f32 → bf16.
/// assert_eq!(file.load::<bf16>("model.embed_tokens.weight")?.as_slice()[2], bf16::from_f32(3.0));
/// // A missing name lists what the file contains.
/// let err = file.load::<f32>("lm_head.weight").unwrap_err();
/// assert_eq!(err.to_string(), "no tensor named `lm_head.weight`; the file contains: `model.embed_tokens.weight`");
/// # Ok::<(), tokenloom_io::IoError>(())
/// ```
#[derive(Debug)]
pub struct SafetensorsFile {
    bytes: FileBytes,
    tensors: Vec<TensorInfo>,
    metadata: HashMap<String, String>,
    path: Option<PathBuf>,
}

/// A message of the `safetensors` crate, for the checks it makes beyond ours.
fn library_error(err: impl std::fmt::Display) -> IoError {
    S::Library {
        reason: err.to_string(),
    }
    .into()
}

/// Checks a safetensors header with messages that name the tensor and the numbers (the
/// `safetensors` crate, which checks again after this, names neither).
fn check_header(bytes: &[u8]) -> Result<(), IoError> {
    let len = bytes.len();
    let Some(prefix) = bytes.get(..8) else {
        return Err(S::TooShort { len }.into());
    };
    let header_len = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
    let data_start = usize::try_from(header_len)
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= len)
        .ok_or(S::HeaderLength {
            header_len,
            available: len - 8,
        })?;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..data_start]).map_err(|e| S::HeaderNotJson {
            header_len,
            reason: e.to_string(),
        })?;
    let Some(entries) = header.as_object() else {
        return Err(S::HeaderNotObject.into());
    };
    let data_len = len - data_start;
    for (name, entry) in entries.iter().filter(|(k, _)| k.as_str() != "__metadata__") {
        let dtype = entry["dtype"].as_str().unwrap_or("?");
        let shape: Option<Vec<u64>> = entry["shape"]
            .as_array()
            .and_then(|dims| dims.iter().map(serde_json::Value::as_u64).collect());
        let offsets: Option<Vec<u64>> = entry["data_offsets"]
            .as_array()
            .and_then(|o| o.iter().map(serde_json::Value::as_u64).collect());
        let (Some(shape), Some([start, end])) = (shape, offsets.as_deref()) else {
            return Err(S::Entry {
                tensor: name.clone(),
                entry: entry.to_string(),
            }
            .into());
        };
        let (start, end) = (*start, *end);
        let Ok(parsed) = parse_st_dtype(dtype) else {
            return Err(S::UnknownDType {
                tensor: name.clone(),
                dtype: dtype.to_owned(),
            }
            .into());
        };
        if parsed.bitsize() % 8 != 0 {
            continue; // sub-byte dtypes: the safetensors crate checks them below
        }
        let needed = shape
            .iter()
            .try_fold((parsed.bitsize() / 8) as u64, |n, &d| n.checked_mul(d));
        if end < start || needed != Some(end - start) {
            return Err(S::DataSize {
                tensor: name.clone(),
                dtype: dtype.to_owned(),
                shape,
                needed,
                start,
                end,
            }
            .into());
        }
        if end > data_len as u64 {
            return Err(S::DataPastEnd {
                tensor: name.clone(),
                start,
                end,
                data_len,
            }
            .into());
        }
    }
    Ok(())
}

impl SafetensorsFile {
    /// Memory-maps and validates `path`.
    ///
    /// # Errors
    ///
    /// [`IoError::Io`] for a file that cannot be opened, [`IoError::Safetensors`] for one that
    /// is not valid safetensors.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let mut file = Self::parse(FileBytes::map(path)?).map_err(|e| e.in_file(path))?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Validates bytes already in memory.
    ///
    /// # Errors
    ///
    /// [`IoError::Safetensors`] for bytes that are not valid safetensors.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, IoError> {
        Self::parse(FileBytes::Owned(bytes))
    }

    fn parse(bytes: FileBytes) -> Result<Self, IoError> {
        check_header(&bytes)?;
        let (header_len, metadata) = SafeTensors::read_metadata(&bytes).map_err(library_error)?;
        let data_start = 8 + header_len;
        let mut tensors: Vec<TensorInfo> = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| TensorInfo {
                name,
                dtype: format!("{:?}", info.dtype),
                shape: info.shape.clone(),
                byte_range: data_start + info.data_offsets.0..data_start + info.data_offsets.1,
            })
            .collect();
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        let metadata_map = metadata.metadata().clone().unwrap_or_default();
        Ok(Self {
            bytes,
            tensors,
            metadata: metadata_map,
            path: None,
        })
    }

    /// The path the file was opened from, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Every tensor, sorted by name.
    #[must_use]
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The free-form `__metadata__` of the header.
    #[must_use]
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The tensor called `name`.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`] listing the names present.
    pub fn info(&self, name: &str) -> Result<&TensorInfo, IoError> {
        find_by_name(&self.tensors, name, |t| &t.name)
    }

    /// The raw little-endian bytes of a tensor, as stored.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`].
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8], IoError> {
        let info = self.info(name)?;
        Ok(&self.bytes[info.byte_range.clone()])
    }

    /// Loads a float tensor, converting its stored dtype (F32, F64, F16, BF16, and the
    /// 8-bit F8_E4M3, F8_E5M2, F8_E8M0 as PyTorch's `.float()` does) to `T` (exact when
    /// widening, round-to-nearest when narrowing).
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`], [`IoError::UnsupportedDType`] for integer and other
    /// dtypes, [`IoError::ScaledFp8`] for an FP8 weight with block scales beside it
    /// (`{name}_scale_inv` or `{name}_scale`: see
    /// [`load_block_scaled`](SafetensorsFile::load_block_scaled)), and tensor errors for
    /// shapes tokenloom cannot hold.
    pub fn load<T: Element>(&self, name: &str) -> Result<Tensor<T>, IoError> {
        let info = self.info(name)?;
        let bytes = &self.bytes[info.byte_range.clone()];
        let data = match Fp8::of(&info.dtype) {
            Some(format) => {
                self.refuse_scaled_fp8(name, |s| self.info(s).is_ok())?;
                fp8::decode::<T>(format, bytes)?
            }
            None => decode_le::<T>(info.require_float_dtype()?, bytes),
        };
        Ok(Tensor::from_vec(data, &info.shape)?)
    }

    /// Refuses tensor `name` when it is FP8 and its block scales (`{name}_scale_inv` or
    /// `{name}_scale`) are in the checkpoint — anywhere `checkpoint_holds` says, so the
    /// scales of a sharded checkpoint are found in another shard too. [`load`] checks
    /// this file alone; a loader reading one shard of several calls this first with the
    /// names of every shard (the index's `weight_map`).
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`] when this file does not hold `name`,
    /// [`IoError::ScaledFp8`] naming the scales found.
    ///
    /// [`load`]: SafetensorsFile::load
    pub fn refuse_scaled_fp8(
        &self,
        name: &str,
        checkpoint_holds: impl Fn(&str) -> bool,
    ) -> Result<(), IoError> {
        if Fp8::of(&self.info(name)?.dtype).is_none() {
            return Ok(());
        }
        match scale_names(name).into_iter().find(|s| checkpoint_holds(s)) {
            Some(scales) => Err(IoError::ScaledFp8 {
                name: name.to_owned(),
                scales,
            }),
            None => Ok(()),
        }
    }

    /// Loads a rank-2 float tensor, checking its shape when `expected` is given.
    ///
    /// # Errors
    ///
    /// As [`SafetensorsFile::load`], and [`IoError::Rank`] / [`IoError::ShapeMismatch`]
    /// checked before any data is read.
    pub fn load_matrix<T: Element>(
        &self,
        name: &str,
        expected: Option<[usize; 2]>,
    ) -> Result<Tensor<T>, IoError> {
        let info = self.info(name)?;
        if info.shape.len() != 2 {
            return Err(IoError::Rank {
                name: name.to_owned(),
                expected: 2,
                shape: info.shape.clone(),
            });
        }
        if let Some(expected) = expected
            && info.shape != expected
        {
            return Err(IoError::ShapeMismatch {
                name: name.to_owned(),
                expected: expected.to_vec(),
                got: info.shape.clone(),
            });
        }
        self.load(name)
    }
}

/// Decodes little-endian elements of a float `dtype` into `T`: bit-exact when `dtype`
/// is `T`'s own, otherwise widened exactly or rounded to nearest. A trailing partial
/// element is ignored.
///
/// # Examples
///
/// ```
/// use tokenloom_io::{decode_le, encode_le};
/// use tokenloom_tensor::{DType, bf16};
///
/// let bytes = encode_le(&[1.5f32, -0.0]);
/// assert_eq!(bytes, [0, 0, 0xc0, 0x3f, 0, 0, 0, 0x80]);
/// assert_eq!(decode_le::<f64>(DType::F32, &bytes), [1.5, -0.0]);
/// assert_eq!(decode_le::<bf16>(DType::F32, &bytes)[0], bf16::from_f32(1.5));
/// ```
#[must_use]
pub fn decode_le<T: Element>(dtype: DType, bytes: &[u8]) -> Vec<T> {
    let size = dtype.size_in_bytes();
    let bits = bytes.chunks_exact(size).map(|b| {
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(b);
        u64::from_le_bytes(raw)
    });
    if dtype == T::DTYPE {
        return bits.map(T::from_bits64).collect();
    }
    match dtype {
        DType::F32 => bits
            .map(|b| T::from_f32_lossy(f32::from_bits64(b)))
            .collect(),
        DType::F64 => bits
            .map(|b| T::from_f64_lossy(f64::from_bits64(b)))
            .collect(),
        DType::F16 => bits
            .map(|b| T::from_f32_lossy(f16::from_bits64(b).to_f32()))
            .collect(),
        DType::BF16 => bits
            .map(|b| T::from_f32_lossy(bf16::from_bits64(b).to_f32()))
            .collect(),
    }
}

/// Encodes elements as the little-endian bytes of their own dtype, bit for bit (see
/// [`decode_le`] for an example).
#[must_use]
pub fn encode_le<T: Element>(data: &[T]) -> Vec<u8> {
    let size = T::DTYPE.size_in_bytes();
    let mut out = Vec::with_capacity(data.len() * size);
    for &x in data {
        out.extend_from_slice(&x.to_bits64().to_le_bytes()[..size]);
    }
    out
}

fn st_dtype(dtype: DType) -> Dtype {
    match dtype {
        DType::F32 => Dtype::F32,
        DType::F64 => Dtype::F64,
        DType::F16 => Dtype::F16,
        DType::BF16 => Dtype::BF16,
    }
}

/// A tensor to write: name, safetensors dtype name, shape and little-endian bytes. Lets a
/// writer copy tensors of any dtype (integers included) unchanged.
#[derive(Clone, Debug)]
pub struct RawTensor<'a> {
    /// The tensor's name.
    pub name: String,
    /// The safetensors dtype name, e.g. `F32` or `I64`.
    pub dtype: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The little-endian data.
    pub data: Cow<'a, [u8]>,
}

impl RawTensor<'static> {
    /// A float tensor's bytes in its own dtype, bit for bit (as [`write_safetensors`]
    /// stores it), to write beside raw tensors or with metadata.
    #[must_use]
    pub fn from_view<T: Element>(name: &str, view: TensorView<'_, T>) -> Self {
        Self {
            name: name.to_owned(),
            dtype: format!("{:?}", st_dtype(T::DTYPE)),
            shape: view.dims().to_vec(),
            data: Cow::Owned(encode_le(view.as_slice())),
        }
    }
}

struct RawView<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: &'a [u8],
}

impl View for RawView<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The size in bytes of one element of a safetensors dtype (`F32` → 4, `BF16` → 2, ...).
///
/// # Examples
///
/// ```
/// use tokenloom_io::safetensors_dtype_size;
///
/// assert_eq!(safetensors_dtype_size("BF16")?, 2);
/// assert_eq!(safetensors_dtype_size("I64")?, 8);
/// assert!(safetensors_dtype_size("F7").is_err());
/// # Ok::<(), tokenloom_io::IoError>(())
/// ```
///
/// # Errors
///
/// [`IoError::UnsupportedDType`] for an unknown name or a sub-byte type (F4, F6).
pub fn safetensors_dtype_size(name: &str) -> Result<usize, IoError> {
    let dtype = parse_st_dtype(name)?;
    if dtype.bitsize() % 8 == 0 {
        Ok(dtype.bitsize() / 8)
    } else {
        Err(IoError::UnsupportedDType {
            name: name.to_owned(),
            dtype: name.to_owned(),
        })
    }
}

/// Parses a safetensors dtype name (`F32`, `I64`, ...) with the format's own spelling.
fn parse_st_dtype(name: &str) -> Result<Dtype, IoError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned())).map_err(|_| {
        IoError::UnsupportedDType {
            name: name.to_owned(),
            dtype: name.to_owned(),
        }
    })
}

/// The bytes of a safetensors file holding `tensors` (raw, any dtype), in memory: for a
/// file sent elsewhere than a local path, or checked before it is written.
///
/// # Examples
///
/// ```
/// use tokenloom_io::{RawTensor, SafetensorsFile, raw_safetensors_bytes};
///
/// let positions = RawTensor {
///     name: "position_ids".into(),
///     dtype: "I64".into(),
///     shape: vec![1, 2],
///     data: [0i64, 1].iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>().into(),
/// };
/// let file = SafetensorsFile::from_bytes(raw_safetensors_bytes(&[positions])?)?;
/// assert_eq!(file.info("position_ids")?.dtype, "I64");
/// # Ok::<(), tokenloom_io::IoError>(())
/// ```
///
/// # Errors
///
/// [`IoError::Safetensors`] when a tensor's byte length does not match its shape and dtype,
/// or names repeat; [`IoError::UnsupportedDType`] for an unknown dtype name.
pub fn raw_safetensors_bytes(tensors: &[RawTensor<'_>]) -> Result<Vec<u8>, IoError> {
    raw_bytes_with_metadata(tensors, None)
}

/// [`raw_safetensors_bytes`] with a `__metadata__` map of strings in the header.
fn raw_bytes_with_metadata(
    tensors: &[RawTensor<'_>],
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>, IoError> {
    let views = tensors
        .iter()
        .map(|t| {
            Ok((
                t.name.clone(),
                RawView {
                    dtype: parse_st_dtype(&t.dtype)?,
                    shape: &t.shape,
                    data: &t.data,
                },
            ))
        })
        .collect::<Result<Vec<_>, IoError>>()?;
    let mut names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(S::DuplicateName {
            tensor: w[0].to_owned(),
        }
        .into());
    }
    for (name, view) in &views {
        let elements: usize = view.shape.iter().product();
        if elements * view.dtype.bitsize() / 8 != view.data.len() {
            return Err(S::WriteSize {
                tensor: name.clone(),
                bytes: view.data.len(),
                shape: view.shape.to_vec(),
                dtype: format!("{:?}", view.dtype),
            }
            .into());
        }
    }
    safetensors::serialize(views, metadata).map_err(library_error)
}

/// The bytes of a safetensors file holding float tensors of one element type.
///
/// # Errors
///
/// As [`raw_safetensors_bytes`].
pub fn safetensors_bytes<T: Element>(
    tensors: &[(&str, TensorView<'_, T>)],
) -> Result<Vec<u8>, IoError> {
    let raw: Vec<RawTensor<'_>> = tensors
        .iter()
        .map(|(name, view)| RawTensor::from_view(name, *view))
        .collect();
    raw_safetensors_bytes(&raw)
}

/// Writes float tensors to a safetensors file atomically (temporary file + rename).
///
/// # Errors
///
/// As [`safetensors_bytes`], and I/O errors.
pub fn write_safetensors<T: Element>(
    path: impl AsRef<Path>,
    tensors: &[(&str, TensorView<'_, T>)],
) -> Result<(), IoError> {
    Ok(write_atomic(path.as_ref(), &safetensors_bytes(tensors)?)?)
}

/// [`write_raw_safetensors`] with string metadata in the header's `__metadata__` (read
/// back by [`SafetensorsFile::metadata`]), e.g. which rows of a table a shard file holds.
///
/// # Errors
///
/// As [`write_raw_safetensors`].
pub fn write_raw_safetensors_with_metadata(
    path: impl AsRef<Path>,
    tensors: &[RawTensor<'_>],
    metadata: HashMap<String, String>,
) -> Result<(), IoError> {
    Ok(write_atomic(
        path.as_ref(),
        &raw_bytes_with_metadata(tensors, Some(metadata))?,
    )?)
}

/// Writes raw tensors to a safetensors file atomically.
///
/// # Errors
///
/// As [`raw_safetensors_bytes`], and I/O errors.
pub fn write_raw_safetensors(
    path: impl AsRef<Path>,
    tensors: &[RawTensor<'_>],
) -> Result<(), IoError> {
    Ok(write_atomic(
        path.as_ref(),
        &raw_safetensors_bytes(tensors)?,
    )?)
}
