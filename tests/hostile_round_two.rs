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
                // One path for every tensor error, whichever crate raised it.
                DecoderInputError::Tensor(
                    TensorError::AllocationFailed { .. } | TensorError::ShapeOverflow { .. }
                )
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
    assert!(
        matches!(
            err,
            DecoderInputError::Tensor(TensorError::ShapeOverflow { .. })
        ),
        "{err:?}"
    );
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

/// A GGUF file whose metadata is llama's, with `extra` keys set or replaced.
fn gguf_with(extra: &[(&'static str, GgufWriteValue)]) -> tokenloom::io::GgufFile {
    let mut metadata: Vec<(&'static str, GgufWriteValue)> = vec![
        (
            "general.architecture",
            GgufWriteValue::String("llama".into()),
        ),
        ("llama.embedding_length", GgufWriteValue::U32(8)),
        ("llama.context_length", GgufWriteValue::U32(16)),
        ("llama.attention.head_count", GgufWriteValue::U32(4)),
        ("llama.block_count", GgufWriteValue::U32(1)),
    ];
    for (key, value) in extra {
        metadata.retain(|(k, _)| k != key);
        metadata.push((key, value.clone()));
    }
    tokenloom::io::GgufFile::from_bytes(gguf_bytes(&metadata, &[])).unwrap()
}

/// GGUF settings of the wrong type or impossible value were defaulted or accepted
/// (`head_count_kv` 0, 3 or 8 with 4 heads, `context_length` 0, `rope.freq_base` as a
/// string, `rope.scaling.type` as an integer, a string `rope.scaling.factor` reported as
/// missing): each is now an error naming the key.
#[test]
fn gguf_settings_of_the_wrong_type_or_value_are_errors() {
    let key_of = |err: DecoderInputError| match err {
        DecoderInputError::BadValue { key, .. } | DecoderInputError::MissingKey { key, .. } => key,
        other => panic!("expected a key error, got {other:?}"),
    };
    for kv in [0, 3, 8] {
        let file = gguf_with(&[("llama.attention.head_count_kv", GgufWriteValue::U32(kv))]);
        assert_eq!(
            key_of(ModelSpec::from_gguf(&file).unwrap_err()),
            "n_kv_heads",
            "{kv}"
        );
    }
    let file = gguf_with(&[("llama.context_length", GgufWriteValue::U32(0))]);
    assert_eq!(
        key_of(ModelSpec::from_gguf(&file).unwrap_err()),
        "max_positions"
    );
    for (key, value) in [
        (
            "llama.rope.freq_base",
            GgufWriteValue::String("10000".into()),
        ),
        ("llama.rope.freq_base", GgufWriteValue::Bool(true)),
        ("llama.rope.scaling.type", GgufWriteValue::U32(1)),
        (
            "llama.rope.scale_linear",
            GgufWriteValue::String("2".into()),
        ),
    ] {
        let file = gguf_with(&[(key, value)]);
        let err = ModelSpec::from_gguf(&file).unwrap_err();
        assert!(
            matches!(&err, DecoderInputError::BadValue { key: k, .. } if k == key),
            "{key}: {err:?}"
        );
    }
    let file = gguf_with(&[
        (
            "llama.rope.scaling.type",
            GgufWriteValue::String("linear".into()),
        ),
        (
            "llama.rope.scaling.factor",
            GgufWriteValue::String("2".into()),
        ),
    ]);
    let err = ModelSpec::from_gguf(&file).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::BadValue { key, .. } if key == "llama.rope.scaling.factor"),
        "{err:?}"
    );
}

/// LongRoPE with `original_max_position_embeddings: 1` gave an infinite attention factor
/// (NaN in the CLI, inf tables with status OK in the C API).
#[test]
fn a_non_finite_attention_factor_is_an_error() {
    let err = ModelSpec::from_hf_json(
        r#"{"model_type": "phi3", "vocab_size": 8, "hidden_size": 8, "num_attention_heads": 2,
            "num_hidden_layers": 1, "max_position_embeddings": 16,
            "original_max_position_embeddings": 1,
            "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.0], "long_factor": [2.0, 2.0]}}"#,
        "config.json".as_ref(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DecoderInputError::Position(PositionError::InvalidParameter {
                name: "attention_factor",
                ..
            })
        ),
        "{err:?}"
    );
}

/// A scaling factor below 1 was refused for linear and llama3 but accepted for YaRN and
/// dynamic NTK.
#[test]
fn factors_below_one_are_refused_for_every_scaling() {
    for scaling in [
        r#"{"rope_type": "yarn", "factor": 0.5, "original_max_position_embeddings": 8}"#,
        r#"{"rope_type": "dynamic", "factor": 0.5}"#,
        r#"{"rope_type": "linear", "factor": 0.5}"#,
    ] {
        let json = format!(
            r#"{{"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "max_position_embeddings": 16, "rope_scaling": {scaling}}}"#
        );
        let err = ModelSpec::from_hf_json(&json, "config.json".as_ref()).unwrap_err();
        assert!(
            err.to_string().contains("must be at least 1"),
            "{scaling}: {err}"
        );
    }
}

/// `tokenloom_sinusoidal` with `first_position = SIZE_MAX` and 4 rows returned OK with
/// positions SIZE_MAX, 0, 1, 2.
#[test]
fn sinusoidal_positions_do_not_wrap() {
    let mut out = [0f32; 4 * 8];
    let err = tokenloom::positions::sinusoidal_into((&mut out[..], [4, 8]), 10000.0, usize::MAX)
        .unwrap_err();
    assert!(
        matches!(err, PositionError::PositionOutOfRange { .. }),
        "{err:?}"
    );
    // The last representable position itself is fine.
    let mut one = [0f32; 8];
    tokenloom::positions::sinusoidal_into((&mut one[..], [1, 8]), 10000.0, usize::MAX).unwrap();
}

/// Duplicate GGUF metadata keys were read "last wins" (`general.architecture` llama then
/// qwen2vl was read as qwen2vl), and a tensor in two loose safetensors files of a
/// directory "first wins": both are errors now.
#[test]
fn duplicates_are_errors_not_last_or_first_wins() {
    let bytes = gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            (
                "general.architecture",
                GgufWriteValue::String("qwen2vl".into()),
            ),
        ],
        &[],
    );
    let err = tokenloom::io::GgufFile::from_bytes(bytes).unwrap_err();
    assert!(
        err.to_string()
            .contains("`general.architecture` appears twice"),
        "{err}"
    );

    let dir = common::scratch_dir("duplicate-tensor");
    write_llama_dir(&dir, 4);
    std::fs::rename(dir.join("model.safetensors"), dir.join("a.safetensors")).unwrap();
    std::fs::copy(dir.join("a.safetensors"), dir.join("b.safetensors")).unwrap();
    let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::DuplicateTensor { tensor, .. } if tensor == "model.embed_tokens.weight"),
        "{err:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `backward_sparse` with a 6e9-row vocabulary said "more elements than fit in usize";
/// the limit is the u32 row ids of a sparse gradient, and the message says so.
#[test]
fn sparse_backward_names_the_u32_row_limit() {
    use tokenloom::embedding::{EmbeddingError, EmbeddingOptions, SparseGrad, functional};
    let ids = [1u32];
    let grad_output = [0f32; 4];
    let mut grad = SparseGrad::<f32>::new();
    let err = functional::backward_sparse(
        (&ids[..], [1]),
        (&grad_output[..], [1, 4]),
        6_000_000_000,
        &EmbeddingOptions::default(),
        &mut grad,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::RowIdsTooLarge {
                vocab_size: 6_000_000_000
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("u32"), "{err}");
}

/// A layer count of 2^40 in `config.json`, Meta's `params.json` or a GGUF sized the
/// spec's per-layer table (SIGABRT while allocating it): above `MAX_LAYERS` it is an
/// error naming the key.
#[test]
fn a_huge_layer_count_is_an_error_not_an_abort() {
    let huge = 1u64 << 40;
    let path = std::path::Path::new("config.json");
    for (model_type, extra) in [
        ("llama", serde_json::json!({"num_attention_heads": 2})),
        ("bert", serde_json::json!({"num_attention_heads": 2})),
        ("gpt2", serde_json::json!({"n_head": 2})),
    ] {
        let mut config = serde_json::json!({
            "model_type": model_type, "vocab_size": 4, "hidden_size": 8,
            "num_hidden_layers": huge, "max_position_embeddings": 16,
        });
        for (k, v) in extra.as_object().unwrap() {
            config[k] = v.clone();
        }
        let err = ModelSpec::from_hf_json(&config.to_string(), path).unwrap_err();
        assert!(
            matches!(&err, DecoderInputError::BadValue { key, value, .. }
                if key == "num_hidden_layers" && *value == huge.to_string()),
            "{model_type}: {err:?}"
        );
    }
    let params = serde_json::json!({"dim": 8, "n_heads": 2, "n_layers": huge, "vocab_size": 4});
    let err = ModelSpec::from_meta_json(&params.to_string(), "params.json".as_ref()).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::BadValue { key, .. } if key == "n_layers"),
        "{err:?}"
    );
    let file = gguf_with(&[("llama.block_count", GgufWriteValue::U64(huge))]);
    let err = ModelSpec::from_gguf(&file).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::BadValue { key, .. } if key.ends_with("block_count")),
        "{err:?}"
    );
    // The limit itself is accepted.
    let file = gguf_with(&[(
        "llama.block_count",
        GgufWriteValue::U64(tokenloom::decoder_input::spec::MAX_LAYERS as u64),
    )]);
    assert_eq!(
        ModelSpec::from_gguf(&file).unwrap().n_layers,
        Some(tokenloom::decoder_input::spec::MAX_LAYERS)
    );
}
