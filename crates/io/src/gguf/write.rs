//! A small GGUF v3 writer, for tests and tools: scalar metadata (and string arrays) and
//! tensors of any type given as raw bytes.

use super::read::MAGIC;

/// A metadata value to write with [`gguf_bytes`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum GgufWriteValue {
    /// A `u32`.
    U32(u32),
    /// A `u64`.
    U64(u64),
    /// An `f32`.
    F32(f32),
    /// A string.
    String(String),
    /// A bool.
    Bool(bool),
    /// An array of strings.
    StringArray(Vec<String>),
    /// An array of `f32`.
    F32Array(Vec<f32>),
    /// An array of `i32`.
    I32Array(Vec<i32>),
}

/// A tensor to write with [`gguf_bytes`]: name, GGML type id, `ne` (fastest first) and
/// raw data.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufWriteTensor {
    /// The name.
    pub name: String,
    /// The GGML type id (0 F32, 1 F16, 8 Q8_0, 30 BF16, ...).
    pub ggml_type: u32,
    /// Dimensions, fastest first.
    pub ne: Vec<u64>,
    /// The encoded data.
    pub data: Vec<u8>,
}

/// The bytes of a GGUF v3 file (alignment 32) with scalar metadata and tensors: a small
/// writer for tests and tools.
#[must_use]
pub fn gguf_bytes(metadata: &[(&str, GgufWriteValue)], tensors: &[GgufWriteTensor]) -> Vec<u8> {
    let mut out = Vec::new();
    let string = |out: &mut Vec<u8>, s: &str| {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    };
    let array_header = |out: &mut Vec<u8>, item_type: u32, len: usize| {
        out.extend_from_slice(&9u32.to_le_bytes());
        out.extend_from_slice(&item_type.to_le_bytes());
        out.extend_from_slice(&(len as u64).to_le_bytes());
    };
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        string(&mut out, key);
        match value {
            GgufWriteValue::U32(v) => {
                out.extend_from_slice(&4u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            GgufWriteValue::U64(v) => {
                out.extend_from_slice(&10u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            GgufWriteValue::F32(v) => {
                out.extend_from_slice(&6u32.to_le_bytes());
                out.extend_from_slice(&v.to_le_bytes());
            }
            GgufWriteValue::Bool(v) => {
                out.extend_from_slice(&7u32.to_le_bytes());
                out.push(u8::from(*v));
            }
            GgufWriteValue::String(v) => {
                out.extend_from_slice(&8u32.to_le_bytes());
                string(&mut out, v);
            }
            GgufWriteValue::StringArray(items) => {
                array_header(&mut out, 8, items.len());
                for item in items {
                    string(&mut out, item);
                }
            }
            GgufWriteValue::F32Array(items) => {
                array_header(&mut out, 6, items.len());
                items
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            GgufWriteValue::I32Array(items) => {
                array_header(&mut out, 5, items.len());
                items
                    .iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
        }
    }
    let align = |len: usize| len.div_ceil(32) * 32;
    let mut offset = 0usize;
    for t in tensors {
        string(&mut out, &t.name);
        out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&(offset as u64).to_le_bytes());
        offset = align(offset + t.data.len());
    }
    out.resize(align(out.len()), 0);
    for t in tensors {
        out.extend_from_slice(&t.data);
        out.resize(align(out.len()), 0);
    }
    out
}
