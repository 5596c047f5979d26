//! Bad and hostile inputs: one `error:` line and exit code 1, never a panic, a read
//! outside the model directory, or an average over non-finite rows.

use super::*;

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
