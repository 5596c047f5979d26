//! safetensors headers and tensor loads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::io::SafetensorsFile;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = SafetensorsFile::from_bytes(data.to_vec()) {
        for t in file.tensors().to_vec() {
            let _ = file.load::<f32>(&t.name);
        }
    }
});
