//! HuggingFace config.json and Meta params.json parsing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenloom::positions::{parse_hf_config, parse_meta_params};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_hf_config(text);
        let _ = parse_meta_params(text);
    }
});
