//! The C API entry points that take sizes from the caller, with fuzzed sizes over small
//! real buffers whose descriptors tell the truth: every call returns a status (never an
//! abort, a panic past the barrier, or a hang), and a non-OK status leaves a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom_capi::{
    TOKENLOOM_MAX_RANK, TokenloomDtype, TokenloomStatus, TokenloomTensor, tokenloom_rope_cos_sin,
    tokenloom_sinusoidal,
};

fn word(data: &[u8], i: usize) -> usize {
    let mut b = [0u8; 8];
    for (k, x) in b.iter_mut().enumerate() {
        *x = data.get(i * 8 + k).copied().unwrap_or(0);
    }
    usize::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let (head_dim, rotary_dim, first) = (word(data, 0), word(data, 1), word(data, 2));
    let rows = 1 + word(data, 3) % 4;
    let half = 1 + word(data, 4) % 8;
    let theta = f64::from_bits(word(data, 5) as u64);
    let mut cos = vec![0f32; rows * half];
    let mut sin = vec![0f32; rows * half];
    let describe = |buf: &mut Vec<f32>| {
        let mut dims = [0usize; TOKENLOOM_MAX_RANK];
        dims[0] = rows;
        dims[1] = half;
        TokenloomTensor {
            data: buf.as_mut_ptr().cast(),
            dtype: TokenloomDtype::F32 as i32,
            rank: 2,
            dims,
        }
    };
    let (c, s) = (describe(&mut cos), describe(&mut sin));
    // SAFETY: both descriptors describe live, disjoint buffers of their stated size.
    let status = unsafe { tokenloom_rope_cos_sin(head_dim, rotary_dim, theta, first, &c, &s) };
    let _ = status == TokenloomStatus::Ok;
    let table = describe(&mut cos);
    // SAFETY: as above.
    let _ = unsafe { tokenloom_sinusoidal(&table, theta, first) };
});
