//! Every loader — tokenloom checkpoints (bincode), safetensors, GGUF, config.json,
//! params.json — fed truncated, bit-flipped and random bytes, and valid files with wrong
//! shapes, dtypes and names: each returns an error, never panics, hangs or allocates
//! without bound.
//!
//! Cases per property: `TOKENLOOM_HOSTILE_CASES` (default 256 in CI; the 10,000-input runs
//! are recorded in docs/testing.md).

use proptest::prelude::*;
use proptest::test_runner::Config;
use tokenloom::decoder_input::ModelSpec;
use tokenloom::embedding::{Embedding, Init};
use tokenloom::io::{
    GgufFile, GgufWriteTensor, GgufWriteValue, RawTensor, SafetensorsFile, encode_le, gguf_bytes,
    quantize_q8_0, raw_safetensors_bytes,
};
use tokenloom::tensor::envelope::{TENSOR_FILE, encode_envelope};
use tokenloom::tensor::{Tensor, bf16};

fn parse_hf_config(text: &str) -> Result<ModelSpec, tokenloom::decoder_input::DecoderInputError> {
    ModelSpec::from_hf_json(text, "config.json".as_ref())
}

fn parse_meta_params(text: &str) -> Result<ModelSpec, tokenloom::decoder_input::DecoderInputError> {
    ModelSpec::from_meta_json(text, "params.json".as_ref())
}

fn config() -> Config {
    let cases = std::env::var("TOKENLOOM_HOSTILE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Every loader, on the same bytes; each must return (Ok or Err) without panicking.
fn feed_all(bytes: &[u8]) {
    let _ = Tensor::<f32>::from_bytes(bytes);
    let _ = Tensor::<bf16>::from_bytes(bytes);
    let _ = Embedding::<f32>::from_bytes(bytes);
    if let Ok(file) = SafetensorsFile::from_bytes(bytes.to_vec()) {
        for t in file.tensors().to_vec() {
            let _ = file.load::<f32>(&t.name);
        }
    }
    if let Ok(file) = GgufFile::from_bytes(bytes.to_vec()) {
        for t in file.tensors().to_vec() {
            let _ = file.load::<f32>(&t.name);
        }
    }
    let text = String::from_utf8_lossy(bytes);
    let _ = parse_hf_config(&text);
    let _ = parse_meta_params(&text);
}

/// Valid files of every format, to corrupt.
fn valid_files() -> Vec<Vec<u8>> {
    let table = Embedding::<f32>::seeded(7, 5, Init::default(), 1).unwrap();
    let weight = table.weight().clone();
    let st = raw_safetensors_bytes(&[
        RawTensor {
            name: "model.embed_tokens.weight".into(),
            dtype: "F32".into(),
            shape: vec![7, 5],
            data: encode_le(weight.as_slice()).into(),
        },
        RawTensor {
            name: "position_ids".into(),
            dtype: "I64".into(),
            shape: vec![1, 2],
            data: encode_le(&[0.0f64, 1.0]).into(),
        },
    ])
    .unwrap();
    let values: Vec<f32> = (0..64).map(|i| i as f32 / 7.0).collect();
    let gguf = gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            ("llama.embedding_length", GgufWriteValue::U32(32)),
        ],
        &[GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 8,
            ne: vec![32, 2],
            data: quantize_q8_0(&values),
        }],
    );
    let config = br#"{"hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 128,
        "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 64}}"#
        .to_vec();
    let params = br#"{"dim": 4096, "n_heads": 32, "n_kv_heads": 8, "rope_theta": 500000.0, "use_scaled_rope": true}"#.to_vec();
    vec![
        weight.to_bytes().unwrap(),
        table.to_bytes().unwrap(),
        st,
        gguf,
        config,
        params,
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn random_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        feed_all(&bytes);
    }

    #[test]
    fn truncated_files(which in 0usize..6, cut in any::<prop::sample::Index>()) {
        let file = &valid_files()[which];
        feed_all(&file[..cut.index(file.len())]);
    }

    #[test]
    fn bit_flipped_files(which in 0usize..6, flips in prop::collection::vec(any::<prop::sample::Index>(), 1..8)) {
        let mut file = valid_files()[which].clone();
        for flip in flips {
            let bit = flip.index(file.len() * 8);
            file[bit / 8] ^= 1 << (bit % 8);
        }
        feed_all(&file);
    }

    /// tokenloom checkpoints detect every flip: the CRC guards the payload.
    #[test]
    fn checkpoints_reject_any_single_flip(which in 0usize..2, flip in any::<prop::sample::Index>()) {
        let mut file = valid_files()[which].clone();
        let bit = flip.index(file.len() * 8);
        file[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(Tensor::<f32>::from_bytes(&file).is_err());
        prop_assert!(Embedding::<f32>::from_bytes(&file).is_err());
    }
}

#[test]
fn headers_claiming_huge_tensors_are_rejected_before_allocating() {
    // safetensors: a 1 TB tensor in a tiny file.
    let header =
        br#"{"huge":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}}"#;
    let mut st = (header.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(header);
    st.extend_from_slice(&[0u8; 64]);
    assert!(SafetensorsFile::from_bytes(st).is_err());
    // A header length of 2^60.
    let mut st = (1u64 << 60).to_le_bytes().to_vec();
    st.extend_from_slice(b"{}");
    assert!(SafetensorsFile::from_bytes(st).is_err());
    // GGUF: a (2^20 × 2^20) f32 tensor, and 2^60 tensors.
    let gguf = gguf_bytes(
        &[],
        &[GgufWriteTensor {
            name: "huge".into(),
            ggml_type: 0,
            ne: vec![1 << 20, 1 << 20],
            data: vec![0; 32],
        }],
    );
    assert!(GgufFile::from_bytes(gguf).is_err());
    // A tokenloom checkpoint whose (checksummed) payload claims 2^40 elements: bincode
    // decodes as far as the bytes go and fails, without reserving 4 TB.
    let mut payload = vec![1u8]; // v = 1 (varint)
    payload.push(0); // dtype f32
    payload.push(1); // shape: one dimension
    payload.extend_from_slice(&[0xFD, 0, 0, 0, 0, 0, 1, 0, 0]); // 2^40 as a u64 varint
    payload.extend_from_slice(&[0xFD, 0, 0, 0, 0, 0, 1, 0, 0]); // data: 2^40 elements
    payload.extend_from_slice(&[0; 16]);
    let file = encode_envelope(TENSOR_FILE, &payload);
    assert!(Tensor::<f32>::from_bytes(&file).is_err());
    // Deeply nested JSON: serde_json's recursion limit, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(parse_hf_config(&deep).is_err());
    assert!(parse_meta_params(&deep).is_err());
}

#[test]
fn valid_files_with_wrong_shapes_dtypes_and_names_are_errors() {
    let files = valid_files();
    // The wrong dtype and the wrong kind of tokenloom file.
    assert!(Tensor::<f64>::from_bytes(&files[0]).is_err());
    assert!(Tensor::<f32>::from_bytes(&files[1]).is_err());
    assert!(Embedding::<f32>::from_bytes(&files[0]).is_err());
    // safetensors: a missing name, an integer tensor, a vector where a matrix is needed.
    let st = SafetensorsFile::from_bytes(files[2].clone()).unwrap();
    assert!(Embedding::<f32>::from_safetensors_file(&st, "lm_head.weight").is_err());
    assert!(Embedding::<f32>::from_safetensors_file(&st, "position_ids").is_err());
    assert!(
        st.load_matrix::<f32>("model.embed_tokens.weight", Some([5, 7]))
            .is_err()
    );
    // GGUF: a missing tensor.
    let gguf = GgufFile::from_bytes(files[3].clone()).unwrap();
    assert!(gguf.load::<f32>("output.weight").is_err());
    // Configs: a wrong type where a number belongs.
    assert!(
        parse_hf_config(
            r#"{"hidden_size": "64", "num_attention_heads": 4, "max_position_embeddings": 8}"#
        )
        .is_err()
    );
    assert!(parse_meta_params(r#"{"dim": 64.5, "n_heads": 4}"#).is_err());
}
