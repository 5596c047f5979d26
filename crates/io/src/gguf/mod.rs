//! GGUF (llama.cpp's format): reading (`read`), the element types (`ggml_type`), the
//! block-quantized codecs (`quant`), quantized matrices kept as stored (`quantized`), and
//! a small writer for tests and tools (`write`).

mod ggml_type;
mod ints;
mod quant;
mod quantized;
mod read;
#[cfg(feature = "testing")]
mod write;

pub use ggml_type::GgmlType;
#[cfg(feature = "testing")]
pub use quant::quantize_q8_0;
pub use quant::{BlockCodec, dequantize, dequantize_q8_0};
pub use quantized::QuantizedMatrix;
pub use read::{GgufFile, GgufTensorInfo, GgufValue};
#[cfg(feature = "testing")]
pub use write::{GgufWriteTensor, GgufWriteValue, gguf_bytes};
