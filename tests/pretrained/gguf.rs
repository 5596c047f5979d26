//! GGUF files written here: tied and untied heads, LLaMA 3.1's `rope_freqs`, and tables
//! kept in their quantized blocks.

use super::*;

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
