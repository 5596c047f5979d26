//! Zero-copy adapters for other frameworks' tensors (cargo features, off by default).

#[cfg(feature = "candle")]
pub mod candle;
#[cfg(feature = "ndarray")]
mod ndarray;
