//! What is wrong with a file that is not valid GGUF or safetensors, with the numbers:
//! [`GgufFormatError`] and [`SafetensorsFormatError`] (inside [`IoError::Gguf`] and
//! [`IoError::Safetensors`](crate::IoError::Safetensors)).
//!
//! [`IoError::Gguf`]: crate::IoError::Gguf

/// A GGUF header or tensor directory that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GgufFormatError {
    /// A field needs more bytes than remain.
    #[error("{what} needs {needed} bytes at offset {offset}, only {remaining} remain")]
    Truncated {
        /// The field (a metadata key, `tensor name`, …).
        what: String,
        /// Bytes needed.
        needed: u64,
        /// Where the field starts.
        offset: u64,
        /// Bytes left in the file.
        remaining: u64,
    },
    /// A length that does not fit in this machine's address space.
    #[error("{what}: length {length} does not fit in memory")]
    LengthTooLarge {
        /// The field.
        what: String,
        /// The length read.
        length: u64,
    },
    /// A string that is not UTF-8.
    #[error("{what} is not UTF-8")]
    NotUtf8 {
        /// The field.
        what: String,
    },
    /// More entries than the rest of the file can hold.
    #[error("{what}: {count} entries cannot fit in the {remaining} bytes that remain")]
    TooManyEntries {
        /// The list (`metadata`, `tensor directory`, or an array's key).
        what: String,
        /// The count read.
        count: u64,
        /// Bytes left in the file.
        remaining: u64,
    },
    /// A bool byte that is neither 0 nor 1.
    #[error("{key}: invalid bool byte {byte}")]
    InvalidBool {
        /// The metadata key.
        key: String,
        /// The byte.
        byte: u8,
    },
    /// An array of arrays of arrays.
    #[error("{key}: arrays nested too deeply")]
    NestedArray {
        /// The metadata key.
        key: String,
    },
    /// A metadata value (or array element) type GGUF does not define.
    #[error("{key}: unknown {} type {type_id}", if *.in_array { "array element" } else { "value" })]
    UnknownValueType {
        /// The metadata key.
        key: String,
        /// The type id read.
        type_id: u32,
        /// Whether it was an array's element type.
        in_array: bool,
    },
    /// The first four bytes are not `GGUF`.
    #[error("magic {magic:?} is not \"GGUF\"")]
    BadMagic {
        /// The bytes found.
        magic: [u8; 4],
    },
    /// A GGUF version other than 2 and 3.
    #[error("version {version} is not supported (2 or 3)")]
    UnsupportedVersion {
        /// The version read.
        version: u32,
    },
    /// A tensor with no or more than four dimensions.
    #[error("tensor `{tensor}` has {n_dims} dimensions (1 to 4 allowed)")]
    DimensionCount {
        /// The tensor.
        tensor: String,
        /// Its dimension count.
        n_dims: u32,
    },
    /// `general.alignment` that is not a power of two.
    #[error("general.alignment {value} is not a power of two")]
    Alignment {
        /// The value, as written.
        value: String,
    },
    /// Dimensions whose product overflows 64 bits.
    #[error("tensor `{tensor}`: dimensions {ne:?} overflow")]
    DimensionsOverflow {
        /// The tensor.
        tensor: String,
        /// Its dimensions, fastest first.
        ne: Vec<u64>,
    },
    /// A row that is not a whole number of quantized blocks.
    #[error(
        "tensor `{tensor}`: row length {row_len} is not a multiple of the {qtype} block of {block}"
    )]
    RowNotWholeBlocks {
        /// The tensor.
        tensor: String,
        /// Values per row.
        row_len: u64,
        /// The quantized type.
        qtype: String,
        /// Values per block.
        block: u64,
    },
    /// A byte count that overflows 64 bits.
    #[error("tensor `{tensor}`: {elements} elements overflow a byte count")]
    ByteCountOverflow {
        /// The tensor.
        tensor: String,
        /// Its element count.
        elements: u64,
    },
    /// A data offset that overflows 64 bits.
    #[error("tensor `{tensor}`: offset {offset} overflows")]
    OffsetOverflow {
        /// The tensor.
        tensor: String,
        /// The offset read.
        offset: u64,
    },
    /// Tensor data that runs past the end of the file.
    #[error(
        "tensor `{tensor}` ({bytes} bytes at offset {offset}) runs past the end of the {file_len}-byte file"
    )]
    PastEnd {
        /// The tensor.
        tensor: String,
        /// Its byte count.
        bytes: u64,
        /// Its absolute offset.
        offset: u64,
        /// The file's length.
        file_len: u64,
    },
    /// A dimension too large for this machine's `usize`.
    #[error("tensor `{tensor}`: dimension {dim} too large")]
    DimensionTooLarge {
        /// The tensor.
        tensor: String,
        /// The dimension.
        dim: u64,
    },
    /// Two metadata entries with one key (which one is meant is not guessed).
    #[error("metadata key `{key}` appears twice")]
    DuplicateKey {
        /// The key.
        key: String,
    },
    /// Two tensors with one name.
    #[error("tensor `{tensor}` appears twice")]
    DuplicateTensor {
        /// The name.
        tensor: String,
    },
    /// Quantized data whose size does not match the tensor's shape.
    #[error("tensor `{tensor}`: {bytes} bytes do not hold {rows} rows of {row_bytes} bytes")]
    QuantizedSize {
        /// The tensor.
        tensor: String,
        /// The bytes stored.
        bytes: usize,
        /// Its rows.
        rows: usize,
        /// Bytes per row.
        row_bytes: usize,
    },
}

/// A safetensors header that cannot be read, or tensors that cannot be written as one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SafetensorsFormatError {
    /// Fewer than the 8 bytes of the header length.
    #[error("{len} bytes are too few for the 8-byte header length")]
    TooShort {
        /// The file's length.
        len: usize,
    },
    /// A header length beyond the end of the file.
    #[error("the header claims {header_len} bytes, but the file has {available} after the length")]
    HeaderLength {
        /// The length read.
        header_len: u64,
        /// Bytes after the length field.
        available: usize,
    },
    /// A header that is not JSON.
    #[error("the {header_len}-byte header is not JSON: {reason}")]
    HeaderNotJson {
        /// The header's length.
        header_len: u64,
        /// serde_json's message.
        reason: String,
    },
    /// A header that is JSON but not an object.
    #[error("the header is not a JSON object")]
    HeaderNotObject,
    /// An entry without a shape and two data offsets.
    #[error("tensor `{tensor}`: the entry {entry} does not have a shape and two data_offsets")]
    Entry {
        /// The tensor.
        tensor: String,
        /// The entry, as JSON.
        entry: String,
    },
    /// A dtype safetensors does not define.
    #[error("tensor `{tensor}`: unknown dtype {dtype}")]
    UnknownDType {
        /// The tensor.
        tensor: String,
        /// The dtype as written.
        dtype: String,
    },
    /// Data offsets whose span does not match dtype × shape.
    #[error(
        "tensor `{tensor}`: dtype {dtype} with shape {shape:?} needs {}, but data_offsets [{start}, {end}] hold {}",
        .needed.map_or("more than 2^64 bytes".to_owned(), |n| format!("{n} bytes")),
        .end.saturating_sub(*.start)
    )]
    DataSize {
        /// The tensor.
        tensor: String,
        /// Its dtype.
        dtype: String,
        /// Its shape.
        shape: Vec<u64>,
        /// Bytes needed (`None`: overflows).
        needed: Option<u64>,
        /// First data offset.
        start: u64,
        /// Second data offset.
        end: u64,
    },
    /// Data offsets past the end of the data section.
    #[error(
        "tensor `{tensor}`: data_offsets [{start}, {end}] end past the {data_len} bytes of data"
    )]
    DataPastEnd {
        /// The tensor.
        tensor: String,
        /// First data offset.
        start: u64,
        /// Second data offset.
        end: u64,
        /// Bytes of data in the file.
        data_len: usize,
    },
    /// A check of the `safetensors` crate that the checks above did not catch.
    #[error("{reason}")]
    Library {
        /// The `safetensors` crate's message.
        reason: String,
    },
    /// Two tensors with one name (writing).
    #[error("tensor name `{tensor}` appears twice")]
    DuplicateName {
        /// The name.
        tensor: String,
    },
    /// Data that does not match shape × dtype (writing).
    #[error("tensor `{tensor}`: {bytes} bytes do not hold shape {shape:?} of {dtype}")]
    WriteSize {
        /// The tensor.
        tensor: String,
        /// The bytes given.
        bytes: usize,
        /// The shape.
        shape: Vec<usize>,
        /// The dtype.
        dtype: String,
    },
}
