//! The codebooks of the IQ1/IQ2/IQ3 formats, generated from gguf-py's (see each file),
//! and ggml's sign table.

mod iq1;
mod iq2;
mod iq3;

pub(super) use iq1::IQ1S_GRID;
pub(super) use iq2::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
pub(super) use iq3::{IQ3S_GRID, IQ3XXS_GRID};

/// ggml's `ksigns_iq2xs`: seven sign bits `i` and their parity as the eighth, so that
/// every entry has an even number of minus signs.
pub(super) static KSIGNS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        // `i < 128` and the parity bit: the cast keeps every bit.
        table[i] = (i as u8) | (((i as u32).count_ones() as u8 & 1) << 7);
        i += 1;
    }
    table
};
