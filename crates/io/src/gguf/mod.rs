//! GGUF (llama.cpp's format): reading (`read`), the element types (`ggml_type`), the
//! block-quantized codecs (`quant`), quantized matrices kept as stored (`quantized`), and
//! a small writer for tests and tools (`write`).

mod ggml_type;
mod quant;
mod quantized;
mod read;
mod write;

pub use ggml_type::GgmlType;
pub use quant::{BlockCodec, dequantize, dequantize_q8_0, quantize_q8_0};
pub use quantized::QuantizedMatrix;
pub use read::{GgufFile, GgufTensorInfo, GgufValue};
pub use write::{GgufWriteTensor, GgufWriteValue, gguf_bytes};
