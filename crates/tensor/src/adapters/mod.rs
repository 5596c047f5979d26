//! Zero-copy adapters for other frameworks' tensors (cargo features, off by default).

#[cfg(feature = "burn")]
mod burn;
#[cfg(feature = "candle")]
pub mod candle;
#[cfg(feature = "ndarray")]
mod ndarray;
