//! Inputs found by the cargo-fuzz targets of `fuzz/` (docs/testing.md, "Fuzzing"), each
//! kept as a regression test: each panicked or aborted before its fix.

mod common;

use tokenloom::decoder_input::{DecoderInputError, ModelSpec, load_gguf};
use tokenloom::io::{GgufWriteTensor, GgufWriteValue, encode_le, gguf_bytes};
use tokenloom::tensor::{Tensor, TensorError};

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

/// A GGUF `context_length` of 2^40 (the `gguf_model` target found 536870928, a 4 GiB
/// RoPE cache for a model of 8 columns) sizes the RoPE caches `load_gguf` builds: an
/// allocation or shape error when the machine cannot hold them, never an abort.
#[test]
fn a_huge_context_length_is_an_error_not_an_abort() {
    let dir = common::scratch_dir("huge-context-length");
    let path = dir.join("huge.gguf");
    let bytes = gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            ("llama.embedding_length", GgufWriteValue::U32(8)),
            ("llama.context_length", GgufWriteValue::U64(1 << 40)),
            ("llama.attention.head_count", GgufWriteValue::U32(2)),
            ("llama.block_count", GgufWriteValue::U32(1)),
        ],
        &[GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 0,
            ne: vec![8, 4],
            data: encode_le(&[0.5f32; 32]).to_vec(),
        }],
    );
    std::fs::write(&path, bytes).unwrap();
    let err = load_gguf::<f32, f32>(&path).unwrap_err();
    assert!(
        matches!(
            err,
            DecoderInputError::Tensor(
                TensorError::AllocationFailed { .. } | TensorError::ShapeOverflow { .. }
            )
        ),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A checkpoint envelope whose payload length is near `u64::MAX` overflowed the sum of
/// header and payload lengths in the `Truncated` error ("attempt to add with overflow",
/// found by the `tokenloom_checkpoint` target). Now `Truncated` naming `u64::MAX`.
#[test]
fn a_payload_length_near_u64_max_is_truncated_not_an_overflow() {
    let mut bytes = b"TLTENSOR".to_vec();
    bytes.extend_from_slice(&1u32.to_le_bytes());
    bytes.extend_from_slice(&(u64::MAX - 3).to_le_bytes());
    bytes.extend_from_slice(&[0xff; 4]);
    bytes.extend_from_slice(&[0xff; 100]);
    let err = Tensor::<f32>::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            TensorError::Truncated {
                needed: u64::MAX,
                available: 124
            }
        ),
        "{err:?}"
    );
}
