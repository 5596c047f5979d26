//! GGUF files of each architecture: the RoPE layout, Gemma 3's two bases, absolute
//! positions (GPT-2, BERT), and the transforms and per-layer rules of llama.cpp's graphs.

use super::*;

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
