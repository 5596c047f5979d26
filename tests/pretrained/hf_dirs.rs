//! HuggingFace-style directories written here: single and sharded safetensors, tied
//! and untied heads, a hostile shard index, and the architecture each config names.

use super::*;

#[test]
fn untied_sharded_directory() {
    let dir = common::scratch_dir("hf-sharded");
    write_config(&dir, false);
    write_raw_safetensors(
        dir.join("model-00001-of-00002.safetensors"),
        &[raw_bf16("model.embed_tokens.weight", &table(0.0))],
    )
    .unwrap();
    write_raw_safetensors(
        dir.join("model-00002-of-00002.safetensors"),
        &[raw_bf16("lm_head.weight", &table(0.5))],
    )
    .unwrap();
    let index = serde_json::json!({"metadata": {"total_size": 384}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors"}});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();

    let loaded = load_hf_dir::<f32, f32>(&dir).unwrap();
    let input = &loaded.input;
    assert!(!input.is_tied());
    assert_eq!(
        input.embedding().unwrap().row(5).unwrap(),
        &table(0.0)[40..48]
    );
    assert_eq!(
        &input.model().unwrap().head_weight().as_slice()[40..48],
        &table(0.5)[40..48]
    );
    assert_eq!(input.pad_id(), Some(3));
    assert_eq!(input.embedding().unwrap().options().padding_idx, Some(3));
    assert_eq!(input.max_positions(), 32);
    assert_eq!(
        loaded.spec.main_rope().unwrap().layout,
        RopeLayout::HalfSplit
    );
    assert!(matches!(
        loaded.spec.main_rope().unwrap().scaling,
        RopeScaling::Llama3(_)
    ));
    assert_eq!(
        (
            loaded.spec.n_heads,
            loaded.spec.n_kv_heads,
            loaded.spec.main_rope().unwrap().head_dim
        ),
        (2, 1, 4)
    );
    assert!(loaded.notes.is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tied_directory_ignores_a_stored_head_and_says_so() {
    let dir = common::scratch_dir("hf-tied");
    write_config(&dir, true);
    write_raw_safetensors(
        dir.join("model.safetensors"),
        &[
            raw_bf16("model.embed_tokens.weight", &table(0.0)),
            raw_bf16("lm_head.weight", &table(1.0)),
        ],
    )
    .unwrap();
    let loaded = load_hf_dir::<bf16, f32>(&dir).unwrap();
    assert!(loaded.input.is_tied());
    assert_eq!(
        loaded.input.model().unwrap().head_weight(),
        loaded.input.embedding().unwrap().weight()
    );
    assert_eq!(loaded.notes.len(), 1);
    assert!(
        loaded.notes[0].contains("lm_head.weight is present but tie_word_embeddings is true"),
        "{:?}",
        loaded.notes
    );

    // Untied config without lm_head: an error naming the tensor.
    write_config(&dir, false);
    write_raw_safetensors(
        dir.join("model.safetensors"),
        &[raw_bf16("model.embed_tokens.weight", &table(0.0))],
    )
    .unwrap();
    let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::MissingTensor { names, available: 1, .. } if names[0] == "lm_head.weight"),
        "{err}"
    );
    // A table of the wrong shape names the tensor and both shapes.
    let wrong = RawTensor {
        shape: vec![VOCAB, N_EMBD / 2],
        data: encode_le(&[bf16::ZERO; VOCAB * N_EMBD / 2]).into(),
        ..raw_bf16("model.embed_tokens.weight", &table(0.0))
    };
    write_raw_safetensors(dir.join("model.safetensors"), &[wrong]).unwrap();
    let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
    assert!(
        err.to_string()
            .contains("tensor `model.embed_tokens.weight` has shape [12, 4], expected [12, 8]"),
        "{err}"
    );
    // No weights at all.
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert!(matches!(
        load_hf_dir::<f32, f32>(&dir),
        Err(DecoderInputError::Io(tokenloom::io::IoError::NoWeights {
            gguf_files: 0,
            ..
        }))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hostile_sharded_index_cannot_open_a_file_outside_the_directory() {
    let outside = common::scratch_dir("hf-outside");
    write_raw_safetensors(
        outside.join("model.safetensors"),
        &[raw_bf16("model.embed_tokens.weight", &table(0.0))],
    )
    .unwrap();
    let dir = common::scratch_dir("hf-hostile-index");
    write_config(&dir, true);
    let sibling = outside.file_name().unwrap().to_str().unwrap();
    let absolute = outside.join("model.safetensors").display().to_string();
    for entry in [
        format!("../{sibling}/model.safetensors"),
        absolute,
        format!("..\\{sibling}\\model.safetensors"),
        String::new(),
        "x\0.safetensors".to_owned(),
    ] {
        let index = serde_json::json!({"weight_map": {"model.embed_tokens.weight": entry}});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                DecoderInputError::Io(tokenloom::io::IoError::UnsafeIndexEntry { .. })
            ),
            "{entry:?}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

/// GPT-2 directories get learned positions and a tied head; an architecture tokenloom
/// does not know is an error that names it, never a LLaMA guess.
#[test]
fn hf_directories_are_loaded_as_their_architecture() {
    let dir = common::scratch_dir("hf-gpt2");
    let f32_raw = |name: &str, rows: usize, offset: f32| {
        let values: Vec<f32> = (0..rows * N_EMBD)
            .map(|i| i as f32 / 32.0 + offset)
            .collect();
        RawTensor {
            name: name.into(),
            dtype: "F32".into(),
            shape: vec![rows, N_EMBD],
            data: encode_le(&values).into(),
        }
    };
    let config = serde_json::json!({"model_type": "gpt2", "vocab_size": VOCAB, "n_embd": N_EMBD, "n_positions": 16});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    write_raw_safetensors(
        dir.join("model.safetensors"),
        &[
            f32_raw("wte.weight", VOCAB, 0.0),
            f32_raw("wpe.weight", 16, 100.0),
        ],
    )
    .unwrap();
    let loaded = load_hf_dir::<f32, f32>(&dir).unwrap();
    assert!(!loaded.spec.has_rope());
    assert!(loaded.input.is_tied());
    assert_eq!(loaded.input.positions().name(), "learned");
    let batch = TokenBatch::new(Tensor::from_vec(vec![3u32, 5], &[1, 2]).unwrap()).unwrap();
    let hidden = loaded.input.forward(&batch).unwrap().into_hidden();
    // Token 5 at position 1: wte[5][0] + wpe[1][0].
    assert_eq!(
        hidden.as_slice()[N_EMBD],
        (5 * N_EMBD) as f32 / 32.0 + (N_EMBD as f32 / 32.0 + 100.0)
    );

    for config in [
        serde_json::json!({"model_type": "t5", "vocab_size": VOCAB}),
        serde_json::json!({"vocab_size": VOCAB}),
    ] {
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
        assert!(
            matches!(err, DecoderInputError::UnknownModelType { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("nothing is assumed"), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
