//! The commands on a checkpoint written here: `inspect`, `embed` (ids, text, RoPE,
//! neighbours), `convert-layout`, `formats`, and `--help`.

use super::*;

#[test]
fn inspect_reports_tensors_statistics_tying_and_positions() {
    let dir = common::scratch_dir("cli-inspect");
    let embed = write_model(&dir);
    let out = json(&["inspect", dir.to_str().unwrap()]);
    assert_eq!(out["format"], "directory");
    assert_eq!(out["tensor_count"], 7);
    let e = &out["embedding"];
    assert_eq!(e["name"], "model.embed_tokens.weight");
    assert_eq!(
        (e["vocab_size"].as_u64(), e["n_embd"].as_u64()),
        (Some(VOCAB as u64), Some(N_EMBD as u64))
    );
    assert_eq!(e["zero_rows"], serde_json::json!([2]));
    let norms: Vec<f64> = embed
        .chunks(N_EMBD)
        .map(|r| r.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt())
        .collect();
    assert_eq!(e["row_norm"]["min"].as_f64(), Some(0.0));
    assert!(
        (e["row_norm"]["max"].as_f64().unwrap() - norms.iter().copied().fold(0.0, f64::max)).abs()
            < 1e-12
    );
    assert_eq!(out["tied"], false);
    assert_eq!(out["head_tensor"], "lm_head.weight");
    assert_eq!(out["architecture"], "llama");
    assert_eq!(out["positions"]["kind"], "rope");
    assert_eq!(out["positions"]["rope"]["theta"], 10000.0);
    assert_eq!(out["positions"]["n_kv_heads"], 1);
    // A config that does not say what model it is: no positions are invented.
    let config_path = dir.join("config.json");
    let llama_config = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        llama_config.replace("\"model_type\":\"llama\",", ""),
    )
    .unwrap();
    let unknown = json(&["inspect", dir.to_str().unwrap()]);
    assert_eq!(unknown["architecture"], "(no model_type or architectures)");
    assert_eq!(unknown["positions"], serde_json::Value::Null);
    assert_eq!(unknown["output_head"], "unknown");
    std::fs::write(&config_path, llama_config).unwrap();
    // The single file, and the readable table.
    let file = dir.join("model.safetensors");
    assert_eq!(
        json(&["inspect", file.to_str().unwrap()])["format"],
        "safetensors"
    );
    let text = tokenloom()
        .args(["inspect", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("model.layers.1.self_attn.k_proj.weight")
            && text.contains("vocab_size 6 n_embd 8"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn embed_rope_and_neighbors() {
    // A seeded table: the same rows the library gives.
    let out = json(&[
        "embed",
        "--vocab-size",
        "3000",
        "--n-embd",
        "8",
        "--seed",
        "42",
        "--ids",
        "73,786,2934",
    ]);
    assert_eq!(out["shape"], serde_json::json!([1, 3, 8]));
    let table = Embedding::<f32>::seeded(3000, 8, Init::default(), 42).unwrap();
    let row: Vec<f32> = out["rows"][1]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(row, table.row(786).unwrap());

    // RoPE at a position far past any cache, from a real config.
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/configs/llama-3.1-8b.config.json");
    let out = json(&[
        "rope",
        "--config",
        config.to_str().unwrap(),
        "--positions",
        "0,1,100000",
    ]);
    let spec = tokenloom_decoder_input::ModelSpec::read(&config).unwrap();
    let inv_freq = spec.main_rope().unwrap().inv_freq(100_001).unwrap();
    let got: Vec<f64> = out["inv_freq"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(got, inv_freq);
    assert_eq!(out["positions"][2]["position"], 100000);
    let (cos, sin) = cos_sin(100_000, inv_freq[5], 1.0);
    assert_eq!(out["positions"][2]["cos"][5].as_f64(), Some(cos));
    assert_eq!(out["positions"][2]["sin"][5].as_f64(), Some(sin));
    assert_eq!(out["positions"][0]["cos"][0].as_f64(), Some(1.0));
    assert_eq!(out["layout"], "half-split");
    let out = json(&[
        "rope",
        "--config",
        config.to_str().unwrap(),
        "--positions",
        "3",
        "--layout",
        "interleaved",
    ]);
    assert_eq!(out["layout"], "interleaved");

    // Neighbours by cosine similarity, excluding the row itself and zero rows.
    let dir = common::scratch_dir("cli-neighbors");
    let rows: Vec<f32> = vec![1.0, 0.0, 0.9, 0.1, 0.0, 1.0, -1.0, 0.0, 0.0, 0.0];
    write_raw_safetensors(
        dir.join("t.safetensors"),
        &[f32_tensor("model.embed_tokens.weight", &[5, 2], &rows)],
    )
    .unwrap();
    let path = dir.join("t.safetensors");
    let out = json(&[
        "neighbors",
        path.to_str().unwrap(),
        "--id",
        "0",
        "--top",
        "3",
    ]);
    let ids: Vec<u64> = out["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!((out["top"][2]["cosine"].as_f64().unwrap() + 1.0).abs() < 1e-12);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Reads every tensor of a safetensors file as (name, dtype, shape, bytes).
fn tensors_of(path: &Path) -> Vec<(String, String, Vec<usize>, Vec<u8>)> {
    let file = SafetensorsFile::open(path).unwrap();
    file.tensors()
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.dtype.clone(),
                t.shape.clone(),
                file.raw_bytes(&t.name).unwrap().to_vec(),
            )
        })
        .collect()
}

/// Per-head scores q_m · k_n after RoPE, from a file's layer-0 projections.
fn scores(path: &Path, layout: RopeLayout) -> Vec<f64> {
    let file = SafetensorsFile::open(path).unwrap();
    let wq = file
        .load::<f64>("model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    let wk = file
        .load::<f64>("model.layers.0.self_attn.k_proj.weight")
        .unwrap();
    let seq_len = 4;
    let x = Tensor::from_vec(
        (0..seq_len * N_EMBD)
            .map(|i| (i as f64 * 0.37).sin())
            .collect(),
        &[seq_len, N_EMBD],
    )
    .unwrap();
    let cache = RopeCache::<f64>::new(&RopeConfig::new(HEAD_DIM, 10000.0, layout), 16).unwrap();
    let rotate = |w: &Tensor<f64>, heads: usize| {
        let y = matmul_transposed(x.view(), w.view()).unwrap();
        cache
            .apply(
                TensorView::new(y.as_slice(), &[1, seq_len, heads, HEAD_DIM]).unwrap(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Offset(5),
            )
            .unwrap()
    };
    let (q, k) = (rotate(&wq, N_HEADS), rotate(&wk, N_KV_HEADS));
    let mut out = Vec::new();
    for h in 0..N_HEADS {
        for m in 0..seq_len {
            for n in 0..seq_len {
                let qm = &q.as_slice()[(m * N_HEADS + h) * HEAD_DIM..][..HEAD_DIM];
                let kn = &k.as_slice()[n * HEAD_DIM..][..HEAD_DIM];
                out.push(qm.iter().zip(kn).map(|(a, b)| a * b).sum());
            }
        }
    }
    out
}

#[test]
fn convert_layout_round_trip_is_bit_exact_and_preserves_attention() {
    let dir = common::scratch_dir("cli-convert");
    write_model(&dir);
    let original = dir.join("model.safetensors");
    let hf = dir.join("hf.safetensors");
    let back = dir.join("back.safetensors");
    let args = |i: &Path, o: &Path, to: &str| -> Vec<String> {
        [
            "convert-layout",
            i.to_str().unwrap(),
            o.to_str().unwrap(),
            "--to",
            to,
            "--n-heads",
            "2",
            "--n-kv-heads",
            "1",
        ]
        .map(str::to_owned)
        .to_vec()
    };
    let a = args(&original, &hf, "half-split");
    let out = json(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out["converted"].as_array().unwrap().len(), 4);
    assert_eq!(out["copied"].as_array().unwrap().len(), 3);
    assert_eq!(
        (out["from"].as_str(), out["to"].as_str()),
        (Some("interleaved"), Some("half-split"))
    );
    let b = args(&hf, &back, "interleaved");
    json(&b.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        tensors_of(&back),
        tensors_of(&original),
        "round trip must be bit-exact"
    );
    assert_ne!(tensors_of(&hf), tensors_of(&original));
    // Attention scores: interleaved weights + interleaved RoPE = converted weights + half-split RoPE.
    common::assert_close(
        "scores",
        &scores(&hf, RopeLayout::HalfSplit),
        &scores(&original, RopeLayout::Interleaved),
        1e-12,
    );

    // Never overwrite the input, even through another spelling of its path.
    let same = dir.join(".").join("model.safetensors");
    let msg = error(&[
        "convert-layout",
        original.to_str().unwrap(),
        same.to_str().unwrap(),
        "--to",
        "half-split",
        "--n-heads",
        "2",
        "--n-kv-heads",
        "1",
    ]);
    assert!(msg.contains("refusing to overwrite the input"), "{msg}");
    // Head counts that do not divide the rows.
    let msg = error(&[
        "convert-layout",
        original.to_str().unwrap(),
        hf.to_str().unwrap(),
        "--to",
        "half-split",
        "--n-heads",
        "3",
        "--n-kv-heads",
        "1",
    ]);
    assert!(msg.contains("q_proj.weight"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn help_shows_examples() {
    let out = tokenloom().arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("Examples:"));
    for sub in ["inspect", "embed", "rope", "neighbors", "convert-layout"] {
        let out = tokenloom().args([sub, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("Example"),
            "{sub} --help has no example:\n{text}"
        );
    }
}

/// `embed --text-file` reads the text from a file (or `-`, standard input); a missing file
/// is a one-line error naming it, and `--ids` cannot be given beside it.
#[test]
fn embed_reads_text_from_a_file() {
    let missing = error(&[
        "embed",
        "--vocab-size",
        "10",
        "--n-embd",
        "2",
        "--text-file",
        "/nonexistent/text.txt",
    ]);
    assert!(missing.contains("/nonexistent/text.txt"), "{missing}");
    let both = error(&[
        "embed",
        "--vocab-size",
        "10",
        "--n-embd",
        "2",
        "--ids",
        "1",
        "--text-file",
        "-",
    ]);
    assert!(both.contains("cannot be used with"), "{both}");
    // JSON rows are streamed, and still one JSON document.
    let out = json(&[
        "embed",
        "--vocab-size",
        "10",
        "--n-embd",
        "2",
        "--ids",
        "1,2,3",
    ]);
    assert_eq!(out["rows"].as_array().unwrap().len(), 3);
    assert_eq!(out["shape"], serde_json::json!([1, 3, 2]));
}

/// `formats` lists every GGUF type tokenloom reads, with llama.cpp's block sizes.
#[test]
fn formats_lists_every_readable_gguf_type() {
    let value = json(&["formats"]);
    let gguf = value["gguf"].as_array().unwrap();
    let find = |name: &str| {
        gguf.iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing: {value}"))
    };
    // 4 float and 4 integer types, then the block formats.
    assert_eq!(gguf.len(), 8 + tokenloom_io::BlockCodec::formats().len());
    assert_eq!(find("F32")["quantized"], false);
    assert_eq!(
        (
            find("I64")["id"].as_u64(),
            find("I64")["quantized"].as_bool()
        ),
        (Some(27), Some(false))
    );
    assert_eq!(find("IQ1_S")["bits_per_value"], 1.5625);
    assert_eq!(find("MXFP4")["bits_per_value"], 4.25);
    assert_eq!(
        (
            find("Q8_0")["block_elems"].as_u64(),
            find("Q8_0")["block_bytes"].as_u64()
        ),
        (Some(32), Some(34))
    );
    assert_eq!(find("TQ2_0")["id"], 35);
    assert_eq!(find("TQ2_0")["bits_per_value"], 2.0625);
    let text = tokenloom()
        .arg("formats")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    assert!(String::from_utf8(text).unwrap().contains("Q6_K"));
}
