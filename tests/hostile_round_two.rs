//! Regression tests of "Hostile inputs, round two": sizes from a file that used to abort
//! the process, and a `config.json` read from outside its model directory. Each test
//! failed before its fix (an abort, a panic or a file read outside the directory).

mod common;

use tokenloom::decoder_input::{DecoderInputError, ModelSpec, load_gguf, load_hf_dir};
use tokenloom::io::{
    GgufWriteValue, IoError, RawTensor, encode_le, gguf_bytes, write_raw_safetensors,
};
use tokenloom::positions::{PositionError, RopeCache, RopeConfig, RopeLayout};
use tokenloom::tensor::TensorError;

/// A llama `config.json` with `head_dim` set, and a 4 × 8 table.
fn write_llama_dir(dir: &std::path::Path, head_dim: u64) {
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": 4, "hidden_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "max_position_embeddings": 16, "head_dim": head_dim,
        "tie_word_embeddings": true
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_raw_safetensors(
        dir.join("model.safetensors"),
        &[RawTensor {
            name: "model.embed_tokens.weight".into(),
            dtype: "F32".into(),
            shape: vec![4, 8],
            data: encode_le(&[0.5f32; 32]).into(),
        }],
    )
    .unwrap();
}

/// `head_dim` 2^40 killed the process (SIGABRT, "memory allocation of 4398046511104 bytes
/// failed") while the inverse frequencies were allocated; 2^62 panicked ("capacity
/// overflow"). Now an allocation or shape error.
#[test]
fn a_huge_head_dim_is_an_error_not_an_abort() {
    for head_dim in [1u64 << 40, 1 << 62] {
        let dir = common::scratch_dir(&format!("huge-head-dim-{head_dim}"));
        write_llama_dir(&dir, head_dim);
        let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
        assert!(
            matches!(
                &err,
                DecoderInputError::Position(PositionError::Tensor(
                    TensorError::AllocationFailed { .. } | TensorError::ShapeOverflow { .. }
                ))
            ),
            "{head_dim}: {err:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    // The frequencies alone, asked with a huge rotary_dim: an error too.
    let rope = RopeConfig::new(1 << 62, 10000.0, RopeLayout::HalfSplit);
    assert!(matches!(
        rope.inv_freq(1),
        Err(PositionError::Tensor(TensorError::AllocationFailed { .. }))
    ));
    assert!(RopeCache::<f32>::new(&rope, 2).is_err());
}

/// Tables of the caller's shape are checked before anything is computed for a huge
/// rotary_dim (the C API's `tokenloom_rope_cos_sin_hf` with (2, 4) tables took 20 s and
/// 4.2 GB before its BAD_SHAPE at 2^30, and aborted at 2^40).
#[test]
fn cos_sin_into_checks_the_output_shape_first() {
    let rope = RopeConfig::new(1 << 40, 10000.0, RopeLayout::HalfSplit);
    let (mut cos, mut sin) = (vec![0f32; 8], vec![0f32; 8]);
    let started = std::time::Instant::now();
    let err = rope
        .cos_sin_into(4, 0, (&mut cos[..], [2, 4]), (&mut sin[..], [2, 4]))
        .unwrap_err();
    assert!(matches!(err, PositionError::OutputShape { .. }), "{err}");
    assert!(started.elapsed().as_secs() < 2);
}

/// GGUF `key_length` 2^62 panicked in `load_gguf_with`.
#[test]
fn a_huge_gguf_key_length_is_an_error_not_a_panic() {
    let dir = common::scratch_dir("huge-key-length");
    let path = dir.join("huge.gguf");
    let bytes = gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            ("llama.embedding_length", GgufWriteValue::U32(8)),
            ("llama.context_length", GgufWriteValue::U32(16)),
            ("llama.attention.head_count", GgufWriteValue::U32(2)),
            ("llama.attention.key_length", GgufWriteValue::U64(1 << 62)),
            ("llama.block_count", GgufWriteValue::U32(1)),
        ],
        &[tokenloom::io::GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 0,
            ne: vec![8, 4],
            data: encode_le(&[0.5f32; 32]).to_vec(),
        }],
    );
    std::fs::write(&path, bytes).unwrap();
    let result = std::panic::catch_unwind(|| load_gguf::<f32, f32>(&path));
    let err = result.expect("no panic").unwrap_err();
    assert!(matches!(err, DecoderInputError::Position(_)), "{err:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `load_hf_dir` read a `config.json` symlinked to a file outside the directory (and
/// one linked to /dev/zero until memory ran out): it now goes through the model
/// directory's containment check first.
#[cfg(unix)]
#[test]
fn a_config_json_outside_the_directory_is_not_read() {
    let dir = common::scratch_dir("config-outside");
    write_llama_dir(&dir, 4);
    let outside = common::scratch_dir("config-outside-target");
    std::fs::rename(dir.join("config.json"), outside.join("secret.json")).unwrap();
    for target in [outside.join("secret.json"), "/dev/zero".into()] {
        let _ = std::fs::remove_file(dir.join("config.json"));
        std::os::unix::fs::symlink(&target, dir.join("config.json")).unwrap();
        let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                DecoderInputError::Io(IoError::EntryOutsideDirectory { .. })
            ),
            "{}: {err:?}",
            target.display()
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

/// A config that is not a regular file, or larger than any real one, is refused before
/// it is read (`tokenloom rope --config /dev/zero` grew to gigabytes).
#[cfg(unix)]
#[test]
fn config_reads_are_bounded_and_regular_files_only() {
    let err = ModelSpec::read("/dev/zero".as_ref()).unwrap_err();
    assert!(
        matches!(err, DecoderInputError::ConfigNotAFile { .. }),
        "{err:?}"
    );
    let dir = common::scratch_dir("config-too-large");
    let big = dir.join("config.json");
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(tokenloom::decoder_input::spec::MAX_CONFIG_BYTES + 1)
        .unwrap();
    let err = ModelSpec::read(&big).unwrap_err();
    assert!(
        matches!(err, DecoderInputError::ConfigTooLarge { .. }),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
