//! Loading the decoder input from HuggingFace-style directories (single and sharded
//! safetensors, tied and untied) and GGUF files written in the test, and from the real
//! SmolLM2 GGUF.

#[path = "../common/mod.rs"]
mod common;

mod hf_dirs;
mod gguf;
mod gguf_architectures;
mod real_models;

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
