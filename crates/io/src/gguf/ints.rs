//! GGUF integer tensors (I8, I16, I32, I64) read as floats, as PyTorch's `.to(dtype)`
//! converts them: to `f64` directly, to `f32` with one round-to-nearest-even, to
//! `f16`/`bf16` through that `f32` (PyTorch's half types convert from `float`).

use tokenloom_tensor::{DType, Element, try_filled};

use super::ggml_type::GgmlType;
use crate::error::IoError;

/// The values of `bytes` (little-endian integers of `qtype`) as `T`; `None` if `qtype` is
/// not an integer type.
pub(super) fn decode_ints<T: Element>(
    qtype: GgmlType,
    bytes: &[u8],
) -> Option<Result<Vec<T>, IoError>> {
    let size = match qtype {
        GgmlType::I8 => 1,
        GgmlType::I16 => 2,
        GgmlType::I32 => 4,
        GgmlType::I64 => 8,
        _ => return None,
    };
    let convert = |chunk: &[u8]| -> T {
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(chunk);
        // Sign-extend from `size` bytes.
        let shift = 64 - 8 * size;
        let value = (i64::from_le_bytes(raw) << shift) >> shift;
        if T::DTYPE == DType::F64 {
            T::from_f64_lossy(value as f64)
        } else {
            T::from_f32_lossy(value as f32)
        }
    };
    Some((|| {
        let mut out = try_filled(bytes.len() / size, T::zero(), "GGUF integer tensor")?;
        for (o, chunk) in out.iter_mut().zip(bytes.chunks_exact(size)) {
            *o = convert(chunk);
        }
        Ok(out)
    })())
}
