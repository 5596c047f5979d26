//! GGUF headers, metadata and tensor loads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::io::GgufFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes(data.to_vec()) {
        for t in file.tensors().to_vec() {
            let _ = file.load::<f32>(&t.name);
        }
    }
});
