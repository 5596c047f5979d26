//! Bad or unsupported tokenizers are typed errors that name the file and what is wrong.

use tokenloom_io::{GgufFile, GgufWriteValue, gguf_bytes};
use tokenloom_tokenizer::{TextTokenizer, TokenizerError, Vocabulary};

fn gguf(metadata: &[(&str, GgufWriteValue)]) -> GgufFile {
    GgufFile::from_bytes(gguf_bytes(metadata, &[])).unwrap()
}

fn strings(items: &[&str]) -> GgufWriteValue {
    GgufWriteValue::StringArray(items.iter().map(|s| (*s).to_owned()).collect())
}

#[test]
fn a_broken_tokenizer_json_names_the_file() {
    let path = std::env::temp_dir().join(format!(
        "tokenloom-bad-tokenizer-{}.json",
        std::process::id()
    ));
    std::fs::write(&path, "{\"model\": 3").unwrap();
    let err = TextTokenizer::from_file(&path).unwrap_err();
    assert!(matches!(err, TokenizerError::File { .. }), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    std::fs::remove_file(&path).unwrap();
    let err = TextTokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
    assert!(
        err.to_string().starts_with("/nonexistent/tokenizer.json: "),
        "{err}"
    );
}

#[test]
fn unsupported_gguf_tokenizers_are_named_not_replaced() {
    let err = TextTokenizer::from_gguf(&gguf(&[
        ("tokenizer.ggml.model", GgufWriteValue::String("t5".into())),
        ("tokenizer.ggml.tokens", strings(&["a", "b"])),
    ]))
    .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Unsupported { what: "model", value, .. } if value == "t5"),
        "{err}"
    );
    assert!(err.to_string().contains("supported: gpt2"), "{err}");

    let err = TextTokenizer::from_gguf(&gguf(&[
        (
            "tokenizer.ggml.model",
            GgufWriteValue::String("gpt2".into()),
        ),
        ("tokenizer.ggml.pre", GgufWriteValue::String("qwen2".into())),
        ("tokenizer.ggml.tokens", strings(&["a", "b", "ab"])),
        ("tokenizer.ggml.merges", strings(&["a b"])),
    ]))
    .unwrap_err();
    assert!(
        matches!(&err, TokenizerError::Unsupported { what: "pre-tokenizer", value, .. } if value == "qwen2"),
        "{err}"
    );
}

#[test]
fn missing_or_malformed_metadata_names_the_key() {
    let err = TextTokenizer::from_gguf(&gguf(&[(
        "tokenizer.ggml.model",
        GgufWriteValue::String("gpt2".into()),
    )]))
    .unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::Metadata {
                key: "tokenizer.ggml.tokens",
                ..
            }
        ),
        "{err}"
    );
    let err = TextTokenizer::from_gguf(&gguf(&[
        (
            "tokenizer.ggml.model",
            GgufWriteValue::String("gpt2".into()),
        ),
        ("tokenizer.ggml.tokens", strings(&["a", "b"])),
        ("tokenizer.ggml.merges", strings(&["ab"])),
    ]))
    .unwrap_err();
    assert!(
        err.to_string().contains("merge 0 `ab` is not two tokens"),
        "{err}"
    );
    let err = TextTokenizer::from_gguf(&gguf(&[
        (
            "tokenizer.ggml.model",
            GgufWriteValue::String("llama".into()),
        ),
        ("tokenizer.ggml.tokens", strings(&["a", "b"])),
        ("tokenizer.ggml.scores", GgufWriteValue::F32Array(vec![0.0])),
    ]))
    .unwrap_err();
    assert!(err.to_string().contains("1 values for 2 tokens"), "{err}");
    let err = TextTokenizer::from_gguf(&gguf(&[
        (
            "tokenizer.ggml.model",
            GgufWriteValue::String("llama".into()),
        ),
        ("tokenizer.ggml.tokens", strings(&["a", "b"])),
        (
            "tokenizer.ggml.scores",
            GgufWriteValue::F32Array(vec![0.0, 0.0]),
        ),
        ("tokenizer.ggml.bos_token_id", GgufWriteValue::U32(7)),
    ]))
    .unwrap_err();
    assert!(
        matches!(
            err,
            TokenizerError::Metadata {
                key: "tokenizer.ggml.bos_token_id",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn sentencepiece_vocabularies_add_bos_and_fall_back_to_bytes() {
    // "▁a", "b" and the byte tokens: "ab" → ▁a b; "é" has no token → its UTF-8 bytes.
    let mut tokens = vec!["<unk>", "<s>", "</s>", "▁", "a", "b", "▁a"];
    let bytes: Vec<String> = (0..=255u8).map(|b| format!("<0x{b:02X}>")).collect();
    tokens.extend(bytes.iter().map(String::as_str));
    let mut types = vec![2, 3, 3, 1, 1, 1, 1];
    types.extend([6; 256]);
    let scores: Vec<f32> = (0..tokens.len()).map(|i| -(i as f32)).collect();
    let file = gguf(&[
        (
            "tokenizer.ggml.model",
            GgufWriteValue::String("llama".into()),
        ),
        ("tokenizer.ggml.tokens", strings(&tokens)),
        ("tokenizer.ggml.scores", GgufWriteValue::F32Array(scores)),
        ("tokenizer.ggml.token_type", GgufWriteValue::I32Array(types)),
        ("tokenizer.ggml.bos_token_id", GgufWriteValue::U32(1)),
        ("tokenizer.ggml.unknown_token_id", GgufWriteValue::U32(0)),
    ]);
    let tokenizer = TextTokenizer::from_gguf(&file).unwrap();
    let encoded = tokenizer.encode("ab é").unwrap();
    assert_eq!(encoded.tokens, ["<s>", "▁a", "b", "▁", "<0xC3>", "<0xA9>"]);
    assert_eq!(tokenizer.decode(&encoded.ids).unwrap(), "ab é");
    assert!(matches!(
        tokenizer.token_to_id("zzz"),
        Err(TokenizerError::UnknownToken { .. })
    ));
    let vocabulary = Vocabulary::from_gguf(&file).unwrap();
    assert_eq!(vocabulary.len(), 7 + 256);
    assert_eq!(vocabulary.id("▁a"), Some(6));
}
