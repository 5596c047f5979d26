//! A GGUF file into the model spec, then the whole load of its tables and RoPE caches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::decoder_input::{ModelSpec, load_gguf};
use tokenloom::io::GgufFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let Ok(spec) = ModelSpec::from_gguf(&file) else {
        return;
    };
    // A file sizes the RoPE caches (`context_length`): a fallible allocation, an error
    // when the machine cannot hold it (tests/fuzz_found.rs). Under libFuzzer's malloc
    // limit a large one only stops the run, so the load runs on caches of at most
    // 2^26 entries.
    if spec.max_positions.saturating_mul(spec.head_dim.max(spec.n_embd)) > 1 << 26 {
        return;
    }
    // `load_gguf` reads a path: one scratch file per fuzzing process.
    let path = std::env::temp_dir().join(format!("tokenloom-fuzz-{}.gguf", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = load_gguf::<f32, f32>(&path);
    }
});
