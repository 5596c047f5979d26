//! tokenloom's own checkpoint files (bincode in a checked envelope).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::embedding::Embedding;
use tokenloom::tensor::{Tensor, bf16};

fuzz_target!(|data: &[u8]| {
    let _ = Tensor::<f32>::from_bytes(data);
    let _ = Tensor::<bf16>::from_bytes(data);
    let _ = Embedding::<f64>::from_bytes(data);
});
