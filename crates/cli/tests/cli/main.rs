//! The `tokenloom` binary, run as a user would: over checkpoints generated here and over
//! the real-model files, checking the JSON output's values and the errors.

#[path = "../../../../tests/common/mod.rs"]
mod common;

mod commands;
mod errors;
mod real_models;
mod shards;

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
