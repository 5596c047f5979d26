//! tokenloom's checkpoint payloads (bincode), inside a valid envelope: the
//! `tokenloom_checkpoint` target mostly stops at the envelope's CRC.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::embedding::{EMBEDDING_FILE, Embedding};
use tokenloom::tensor::envelope::{TENSOR_FILE, encode_envelope};
use tokenloom::tensor::{Tensor, bf16};

fuzz_target!(|data: &[u8]| {
    let bytes = encode_envelope(TENSOR_FILE, data);
    let _ = Tensor::<f32>::from_bytes(&bytes);
    let _ = Tensor::<bf16>::from_bytes(&bytes);
    let bytes = encode_envelope(EMBEDDING_FILE, data);
    let _ = Embedding::<f64>::from_bytes(&bytes);
    let _ = Embedding::<f32>::from_bytes(&bytes);
});
