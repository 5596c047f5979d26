//! Reading GGUF: the header, metadata and tensor directory, every count and offset
//! bounds-checked before anything is allocated; tensor data read on demand from a memory
//! map.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenloom_tensor::{DType, Element, Tensor};

use super::ggml_type::GgmlType;
use super::quant::BlockCodec;
use super::quantized::QuantizedMatrix;
use crate::error::{IoError, find_by_name};
use crate::format_error::GgufFormatError as G;
use crate::mapped::FileBytes;
use crate::safetensors_file::decode_le;

pub(super) const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;
/// GGML's maximum number of dimensions.
const MAX_DIMS: u32 = 4;

/// A GGUF metadata value. Numeric and string arrays (tokenizer vocabularies, scores,
/// merges) keep their elements; arrays of booleans or of arrays are only counted.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GgufValue {
    /// An unsigned integer (u8, u16, u32 or u64).
    Uint(u64),
    /// A signed integer (i8, i16, i32 or i64).
    Int(i64),
    /// A float (f32 or f64).
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A UTF-8 string.
    String(String),
    /// A numeric array, as f64.
    NumberArray(Vec<f64>),
    /// An array of strings (e.g. `tokenizer.ggml.tokens`).
    StringArray(Vec<String>),
    /// An array of booleans or of arrays: only its length is kept.
    OpaqueArray {
        /// The number of elements.
        len: u64,
    },
}

impl GgufValue {
    /// The value's type in words, for messages: `an unsigned integer`, `a string`, ….
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            GgufValue::Uint(_) => "an unsigned integer",
            GgufValue::Int(_) => "a signed integer",
            GgufValue::Float(_) => "a float",
            GgufValue::Bool(_) => "a bool",
            GgufValue::String(_) => "a string",
            GgufValue::NumberArray(_)
            | GgufValue::StringArray(_)
            | GgufValue::OpaqueArray { .. } => "an array",
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    #[must_use]
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::Uint(v) => Some(v),
            GgufValue::Int(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, if it is a number.
    #[must_use]
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::Float(v) => Some(v),
            GgufValue::Uint(v) => Some(v as f64),
            GgufValue::Int(v) => Some(v as f64),
            _ => None,
        }
    }

    /// The value as a string, if it is one.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    #[must_use]
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The elements of a string array.
    #[must_use]
    pub fn as_strings(&self) -> Option<&[String]> {
        match self {
            GgufValue::StringArray(items) => Some(items),
            _ => None,
        }
    }

    /// The elements of a numeric array (as f64).
    #[must_use]
    pub fn as_numbers(&self) -> Option<&[f64]> {
        match self {
            GgufValue::NumberArray(items) => Some(items),
            _ => None,
        }
    }
}

/// One tensor of a GGUF file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorInfo {
    /// The tensor's name, e.g. `token_embd.weight`.
    pub name: String,
    /// Its GGML type.
    pub ggml_type: GgmlType,
    /// GGML's dimensions, fastest first (`ne`).
    pub ne: Vec<u64>,
    /// The PyTorch-order shape: `ne` reversed (`token_embd.weight` ne `[576, 49152]` is
    /// `(49152, 576)`).
    pub shape: Vec<usize>,
    /// The absolute byte offset of its data in the file.
    pub offset: u64,
    /// The size of its data in bytes, when the type's layout is known.
    pub n_bytes: Option<u64>,
}

/// A bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], IoError> {
        let n = usize::try_from(n).map_err(|_| G::LengthTooLarge {
            what: what.to_owned(),
            length: n,
        })?;
        if n > self.remaining() {
            return Err(G::Truncated {
                what: what.to_owned(),
                needed: n as u64,
                offset: self.pos as u64,
                remaining: self.remaining() as u64,
            }
            .into());
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], IoError> {
        Ok(self.take(N as u64, what)?.try_into().expect("took N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32, IoError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64, IoError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String, IoError> {
        let len = self.u64(what)?;
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            G::NotUtf8 {
                what: what.to_owned(),
            }
            .into()
        })
    }

    /// Checks that `count` items of at least `min_size` bytes can fit in what remains,
    /// before anything is allocated for them.
    fn check_count(&self, count: u64, min_size: u64, what: &str) -> Result<usize, IoError> {
        let fits = count
            .checked_mul(min_size)
            .is_some_and(|bytes| bytes <= self.remaining() as u64);
        if !fits {
            return Err(G::TooManyEntries {
                what: what.to_owned(),
                count,
                remaining: self.remaining() as u64,
            }
            .into());
        }
        usize::try_from(count).map_err(|_| {
            G::LengthTooLarge {
                what: what.to_owned(),
                length: count,
            }
            .into()
        })
    }

    fn value(&mut self, value_type: u32, key: &str, depth: u32) -> Result<GgufValue, IoError> {
        Ok(match value_type {
            0 => GgufValue::Uint(u64::from(self.array::<1>(key)?[0])),
            1 => GgufValue::Int(i64::from(i8::from_le_bytes(self.array(key)?))),
            2 => GgufValue::Uint(u64::from(u16::from_le_bytes(self.array(key)?))),
            3 => GgufValue::Int(i64::from(i16::from_le_bytes(self.array(key)?))),
            4 => GgufValue::Uint(u64::from(self.u32(key)?)),
            5 => GgufValue::Int(i64::from(i32::from_le_bytes(self.array(key)?))),
            6 => GgufValue::Float(f64::from(f32::from_le_bytes(self.array(key)?))),
            7 => match self.array::<1>(key)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                byte => {
                    return Err(G::InvalidBool {
                        key: key.to_owned(),
                        byte,
                    }
                    .into());
                }
            },
            8 => GgufValue::String(self.string(key)?),
            9 => {
                if depth > 1 {
                    return Err(G::NestedArray {
                        key: key.to_owned(),
                    }
                    .into());
                }
                let item_type = self.u32(key)?;
                let len = self.u64(key)?;
                let min_size = match item_type {
                    0 | 1 | 7 => 1,
                    2 | 3 => 2,
                    4..=6 => 4,
                    8 | 10..=12 => 8,
                    9 => 12,
                    other => {
                        return Err(G::UnknownValueType {
                            key: key.to_owned(),
                            type_id: other,
                            in_array: true,
                        }
                        .into());
                    }
                };
                let count = self.check_count(len, min_size, key)?;
                match item_type {
                    8 => {
                        let mut strings = Vec::with_capacity(count);
                        for _ in 0..count {
                            strings.push(self.string(key)?);
                        }
                        GgufValue::StringArray(strings)
                    }
                    7 | 9 => {
                        for _ in 0..count {
                            self.value(item_type, key, depth + 1)?;
                        }
                        GgufValue::OpaqueArray { len }
                    }
                    _ => {
                        let mut numbers = Vec::with_capacity(count);
                        for _ in 0..count {
                            let item = self.value(item_type, key, depth + 1)?;
                            numbers.push(
                                item.as_f64()
                                    .expect("numeric element types read as numbers"),
                            );
                        }
                        GgufValue::NumberArray(numbers)
                    }
                }
            }
            10 => GgufValue::Uint(self.u64(key)?),
            11 => GgufValue::Int(i64::from_le_bytes(self.array(key)?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.array(key)?)),
            other => {
                return Err(G::UnknownValueType {
                    key: key.to_owned(),
                    type_id: other,
                    in_array: false,
                }
                .into());
            }
        })
    }
}

/// A GGUF file opened for reading: header and tensor directory parsed and checked once;
/// tensor data read on demand from a memory map.
#[derive(Debug)]
pub struct GgufFile {
    bytes: Arc<FileBytes>,
    version: u32,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
    path: Option<PathBuf>,
}

impl GgufFile {
    /// Memory-maps and parses `path`.
    ///
    /// # Errors
    ///
    /// [`IoError::Io`] and [`IoError::Gguf`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, IoError> {
        let path = path.as_ref();
        let mut file = Self::parse(FileBytes::map(path)?).map_err(|e| e.in_file(path))?;
        file.path = Some(path.to_path_buf());
        Ok(file)
    }

    /// Parses bytes already in memory.
    ///
    /// # Errors
    ///
    /// [`IoError::Gguf`] for anything that is not a well-formed GGUF v2/v3 file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, IoError> {
        Self::parse(FileBytes::Owned(bytes))
    }

    fn parse(bytes: FileBytes) -> Result<Self, IoError> {
        let mut cur = Cursor {
            bytes: &bytes,
            pos: 0,
        };
        let magic = cur.take(4, "magic")?;
        if magic != MAGIC {
            return Err(G::BadMagic {
                magic: magic.try_into().expect("took 4 bytes"),
            }
            .into());
        }
        let version = cur.u32("version")?;
        if !(2..=3).contains(&version) {
            return Err(G::UnsupportedVersion { version }.into());
        }
        let tensor_count = cur.u64("tensor count")?;
        let kv_count = cur.u64("metadata count")?;
        // A key-value pair takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor
        // entry at least 8 + 4 + 8 + 4 + 8.
        let kv_count = cur.check_count(kv_count, 13, "metadata")?;
        let mut metadata = BTreeMap::new();
        for _ in 0..kv_count {
            let key = cur.string("metadata key")?;
            let value_type = cur.u32(&key)?;
            let value = cur.value(value_type, &key, 0)?;
            if metadata.contains_key(&key) {
                return Err(G::DuplicateKey { key }.into());
            }
            metadata.insert(key, value);
        }
        let tensor_count = cur.check_count(tensor_count, 32, "tensor directory")?;
        let mut raw_tensors = Vec::with_capacity(tensor_count);
        for _ in 0..tensor_count {
            let name = cur.string("tensor name")?;
            let n_dims = cur.u32(&name)?;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(G::DimensionCount {
                    tensor: name,
                    n_dims,
                }
                .into());
            }
            let ne = (0..n_dims)
                .map(|_| cur.u64(&name))
                .collect::<Result<Vec<u64>, _>>()?;
            let ggml_type = GgmlType::from_id(cur.u32(&name)?);
            let offset = cur.u64(&name)?;
            raw_tensors.push((name, ne, ggml_type, offset));
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v
                .as_u64()
                .filter(|a| a.is_power_of_two())
                .ok_or_else(|| G::Alignment {
                    value: format!("{v:?}"),
                })?,
        };
        let data_start = (cur.pos as u64).div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        let mut tensors = Vec::with_capacity(raw_tensors.len());
        for (name, ne, ggml_type, offset) in raw_tensors {
            let elements = ne
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| G::DimensionsOverflow {
                    tensor: name.clone(),
                    ne: ne.clone(),
                })?;
            let n_bytes = match ggml_type.block_layout() {
                Some((block, size)) => {
                    if ne[0] % block != 0 {
                        return Err(G::RowNotWholeBlocks {
                            tensor: name,
                            row_len: ne[0],
                            qtype: ggml_type.name(),
                            block,
                        }
                        .into());
                    }
                    let bytes = (elements / block).checked_mul(size).ok_or_else(|| {
                        G::ByteCountOverflow {
                            tensor: name.clone(),
                            elements,
                        }
                    })?;
                    Some(bytes)
                }
                None => None,
            };
            let absolute = data_start
                .checked_add(offset)
                .ok_or_else(|| G::OffsetOverflow {
                    tensor: name.clone(),
                    offset,
                })?;
            let end = absolute.checked_add(n_bytes.unwrap_or(0));
            if end.is_none_or(|end| end > file_len) {
                return Err(G::PastEnd {
                    tensor: name,
                    bytes: n_bytes.unwrap_or(0),
                    offset: absolute,
                    file_len,
                }
                .into());
            }
            let shape = ne
                .iter()
                .rev()
                .map(|&d| {
                    usize::try_from(d).map_err(|_| G::DimensionTooLarge {
                        tensor: name.clone(),
                        dim: d,
                    })
                })
                .collect::<Result<Vec<usize>, _>>()?;
            tensors.push(GgufTensorInfo {
                name,
                ggml_type,
                ne,
                shape,
                offset: absolute,
                n_bytes,
            });
        }
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(w) = tensors.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(G::DuplicateTensor {
                tensor: w[0].name.clone(),
            }
            .into());
        }
        Ok(Self {
            bytes: Arc::new(bytes),
            version,
            metadata,
            tensors,
            path: None,
        })
    }

    /// The path the file was opened from, if any.
    #[must_use]
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The GGUF version (2 or 3).
    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// All metadata, by key.
    #[must_use]
    pub fn metadata(&self) -> &BTreeMap<String, GgufValue> {
        &self.metadata
    }

    /// One metadata value.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// Every tensor, sorted by name.
    #[must_use]
    pub fn tensors(&self) -> &[GgufTensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`] listing the names present.
    pub fn info(&self, name: &str) -> Result<&GgufTensorInfo, IoError> {
        find_by_name(&self.tensors, name, |t| &t.name)
    }

    /// The bytes of a tensor's data, as stored.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`], and [`IoError::UnsupportedDType`] for a type whose
    /// size tokenloom does not know.
    pub fn raw_bytes(&self, name: &str) -> Result<&[u8], IoError> {
        let (start, end) = self.byte_range(name)?;
        Ok(&self.bytes[start..end])
    }

    fn byte_range(&self, name: &str) -> Result<(usize, usize), IoError> {
        let info = self.info(name)?;
        let unsupported = || IoError::UnsupportedDType {
            name: name.to_owned(),
            dtype: info.ggml_type.name(),
        };
        let n_bytes = info.n_bytes.ok_or_else(unsupported)?;
        let start = usize::try_from(info.offset).map_err(|_| unsupported())?;
        let end = start + usize::try_from(n_bytes).map_err(|_| unsupported())?;
        Ok((start, end))
    }

    /// Loads a tensor as `T` in PyTorch order: F32, F16, BF16 and F64 converted exactly or
    /// rounded to nearest; I8, I16, I32 and I64 as PyTorch's `.to(dtype)` converts them;
    /// every block-quantized type of [`BlockCodec::formats`] dequantised as gguf-py and
    /// ggml do, in `f32`, rounded once to `T`.
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`], [`IoError::UnsupportedDType`] for other types, and
    /// allocation errors.
    pub fn load<T: Element>(&self, name: &str) -> Result<Tensor<T>, IoError> {
        let info = self.info(name)?;
        let bytes = self.raw_bytes(name)?;
        let data = match info.ggml_type {
            GgmlType::F32 => decode_le::<T>(DType::F32, bytes),
            GgmlType::F16 => decode_le::<T>(DType::F16, bytes),
            GgmlType::BF16 => decode_le::<T>(DType::BF16, bytes),
            GgmlType::F64 => decode_le::<T>(DType::F64, bytes),
            qtype => match super::ints::decode_ints::<T>(qtype, bytes) {
                Some(ints) => ints?,
                None => {
                    let elements = info.shape.iter().product();
                    super::quant::dequantize(qtype, bytes, elements, name)?
                }
            },
        };
        Ok(Tensor::from_vec(data, &info.shape)?)
    }

    /// A block-quantized 2-D tensor kept as stored: its rows are decoded only when read,
    /// straight from the memory map (the file stays mapped while the matrix lives).
    ///
    /// # Errors
    ///
    /// [`IoError::MissingTensor`], [`IoError::UnsupportedDType`] for a type without a
    /// codec (plain floats included: [`load`](GgufFile::load) them), and
    /// [`IoError::Rank`] for a tensor that is not a matrix.
    pub fn quantized(&self, name: &str) -> Result<QuantizedMatrix, IoError> {
        let info = self.info(name)?;
        let codec = BlockCodec::of(info.ggml_type).ok_or_else(|| IoError::UnsupportedDType {
            name: name.to_owned(),
            dtype: info.ggml_type.name(),
        })?;
        let [rows, cols] = info.shape[..] else {
            return Err(IoError::Rank {
                name: name.to_owned(),
                expected: 2,
                shape: info.shape.clone(),
            });
        };
        let (start, end) = self.byte_range(name)?;
        QuantizedMatrix::mapped(name, Arc::clone(&self.bytes), start..end, codec, rows, cols)
    }
}
