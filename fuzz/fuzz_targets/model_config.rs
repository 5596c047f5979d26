//! HuggingFace config.json and Meta params.json into the model spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::decoder_input::ModelSpec;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ModelSpec::from_hf_json(text, "config.json".as_ref());
        let _ = ModelSpec::from_meta_json(text, "params.json".as_ref());
    }
});
