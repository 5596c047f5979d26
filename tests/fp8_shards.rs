//! A block-scaled FP8 weight whose scales sit in another shard of a sharded checkpoint:
//! its stored values alone are not the weight, so every loader refuses it by name rather
//! than return the unscaled values (one shard's file alone cannot see the scales).

mod common;

use tokenloom::decoder_input::{DecoderInputError, load_hf_dir};
use tokenloom::io::{IoError, RawTensor, write_raw_safetensors};

const VOCAB: usize = 12;
const N_EMBD: usize = 8;

fn write_config(dir: &std::path::Path) {
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": VOCAB, "hidden_size": N_EMBD, "num_attention_heads": 2, "num_key_value_heads": 1,
        "max_position_embeddings": 32, "rope_theta": 10000.0, "tie_word_embeddings": true
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

/// An `F8_E4M3` table (every byte 0x38, 1.0) in shard 1; in shard 2, `scales` if given.
fn sharded(name: &str, scales: Option<&str>) -> std::path::PathBuf {
    let dir = common::scratch_dir(name);
    write_config(&dir);
    let fp8 = RawTensor {
        name: "model.embed_tokens.weight".into(),
        dtype: "F8_E4M3".into(),
        shape: vec![VOCAB, N_EMBD],
        data: vec![0x38u8; VOCAB * N_EMBD].into(),
    };
    write_raw_safetensors(dir.join("model-00001-of-00002.safetensors"), &[fp8]).unwrap();
    let other = RawTensor {
        name: scales.unwrap_or("model.norm.weight").into(),
        dtype: "F32".into(),
        shape: vec![1, 1],
        data: 4.0f32.to_le_bytes().to_vec().into(),
    };
    write_raw_safetensors(dir.join("model-00002-of-00002.safetensors"), &[other]).unwrap();
    let index = serde_json::json!({"weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        scales.unwrap_or("model.norm.weight"): "model-00002-of-00002.safetensors"}});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    dir
}

#[test]
fn scales_in_another_shard_are_found() {
    for scales in [
        "model.embed_tokens.weight_scale_inv",
        "model.embed_tokens.weight_scale",
    ] {
        let dir = sharded("fp8-scales-elsewhere", Some(scales));
        let err = load_hf_dir::<f32, f32>(&dir).unwrap_err();
        assert!(
            matches!(
                &err,
                DecoderInputError::Io(IoError::ScaledFp8 { name, scales: found })
                    if name == "model.embed_tokens.weight" && found == scales
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(scales), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn an_unscaled_fp8_table_in_a_shard_still_loads() {
    let dir = sharded("fp8-unscaled", None);
    let loaded = load_hf_dir::<f32, f32>(&dir).unwrap();
    assert_eq!(
        loaded.input.embedding().unwrap().row(5).unwrap(),
        &[1.0; N_EMBD]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
