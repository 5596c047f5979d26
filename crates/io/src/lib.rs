//! Foreign checkpoint formats for tokenloom, at the level of named tensors: safetensors
//! (read memory-mapped, written atomically; F32/F64/F16/BF16, the FP8 types, and
//! block-scaled FP8 weights dequantized by [`SafetensorsFile::load_block_scaled`] or kept
//! as FP8 for lookup and logits in an [`Fp8Matrix`]) and GGUF (read
//! memory-mapped: F32/F16/BF16/F64 and the block formats of [`BlockCodec::formats`] —
//! legacy, K-quants, IQ1–IQ4, ternary, FP4 — decoded bit-exact against gguf-py or kept
//! quantized for lookup and logits), with conversion between f32, f64, f16 and bf16.
//!
//! ```
//! use tokenloom_io::{SafetensorsFile, write_safetensors};
//! use tokenloom_tensor::Tensor;
//!
//! let dir = std::env::temp_dir().join(format!("tokenloom-io-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("model.safetensors");
//! let table = Tensor::from_vec(vec![0.5f32; 12], &[4, 3])?;
//! write_safetensors(&path, &[("model.embed_tokens.weight", table.view())])?;
//!
//! let file = SafetensorsFile::open(&path)?; // memory-mapped, header validated
//! let info = file.info("model.embed_tokens.weight")?;
//! assert_eq!((info.dtype.as_str(), info.shape.as_slice()), ("F32", &[4, 3][..]));
//! assert_eq!(file.load_matrix::<f64>("model.embed_tokens.weight", Some([4, 3]))?.dims(), &[4, 3]);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), tokenloom_io::IoError>(())
//! ```
//!
//! Every offset in a header is checked against the file length before any tensor is
//! read, so a header claiming a huge tensor is rejected without allocating.
//!
//! The only `unsafe` code is the memory map in `mapped.rs`: the file must not be modified
//! by another process while it is open (as for every mmap-based loader).

#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod format_error;
mod fp8;
mod fp8_matrix;
mod gguf;
mod mapped;
mod model_dir;
mod row_matmul;
mod safetensors_file;

pub use error::IoError;
pub use format_error::{GgufFormatError, SafetensorsFormatError};
pub use fp8_matrix::Fp8Matrix;
pub use gguf::{
    BlockCodec, GgmlType, GgufFile, GgufTensorInfo, GgufValue, QuantizedMatrix, dequantize,
    dequantize_q8_0,
};
/// Fixture writers (feature `testing`): a small GGUF writer and ggml's reference Q8_0
/// quantiser, for tests and tools that need GGUF files. tokenloom reads GGUF; it does not
/// aim to be a GGUF writer.
#[cfg(feature = "testing")]
pub use gguf::{GgufWriteTensor, GgufWriteValue, gguf_bytes, quantize_q8_0};
pub use mapped::FileBytes;
pub use model_dir::{ModelDir, SAFETENSORS_INDEX, SAFETENSORS_SINGLE, WeightFiles};
pub use row_matmul::QuantizedRows;
pub use safetensors_file::{
    RawTensor, SafetensorsFile, TensorInfo, decode_le, encode_le, raw_safetensors_bytes,
    safetensors_bytes, safetensors_dtype_size, write_raw_safetensors,
    write_raw_safetensors_with_metadata, write_safetensors,
};
