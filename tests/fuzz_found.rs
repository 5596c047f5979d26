//! Inputs found by the cargo-fuzz targets of `fuzz/` (docs/testing.md, "Fuzzing"), each
//! kept as a regression test: each panicked or aborted before its fix.

use tokenloom::decoder_input::{DecoderInputError, ModelSpec};

/// An empty `layer_types` with no layer count (or a count of 0) indexed the empty list
/// for the one representative layer ("index out of bounds: the len is 0", found by the
/// `model_config` target). Now an error naming the key, for every family that reads it.
#[test]
fn an_empty_layer_types_is_an_error_not_a_panic() {
    let path = std::path::Path::new("config.json");
    for model_type in ["llama", "qwen2_vl", "gemma3_text", "modernbert", "smollm3"] {
        for layers in [None, Some(0), Some(2)] {
            let mut config = serde_json::json!({
                "model_type": model_type, "vocab_size": 4, "hidden_size": 8,
                "num_attention_heads": 2, "max_position_embeddings": 16,
                "layer_types": [],
            });
            if let Some(n) = layers {
                config["num_hidden_layers"] = n.into();
            }
            let err = ModelSpec::from_hf_json(&config.to_string(), path).unwrap_err();
            assert!(
                matches!(&err, DecoderInputError::BadValue { key, .. } if key == "layer_types"),
                "{model_type}, {layers:?} layers: {err:?}"
            );
        }
    }
    // The input the fuzzer found (trimmed of keys that do not matter).
    let found = r#"{"model_type": "qwen2_vl", "hidden_size": 32, "num_attention_heads": 4,
        "max_position_embeddings": 65, "layer_types": [], "vocab_size": 8}"#;
    assert!(ModelSpec::from_hf_json(found, path).is_err());
}
