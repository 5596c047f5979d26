//! The walkthrough: "I love dogs" → token ids → rows of a seeded embedding table.
//!
//! Run it with `cargo run --release --example walkthrough`.

use std::collections::HashMap;
use std::error::Error;

use tokenloom::embedding::{Embedding, Init};
use tokenloom::tensor::Tensor;

/// Vocabulary size of the toy word-level tokenizer: ids 0..3000.
const VOCAB_SIZE: usize = 3000;
/// Width of each embedding row.
const N_EMBD: usize = 8;
/// The seed of the table: the same numbers on every machine.
const SEED: u64 = 42;

/// A tiny word-level tokenizer: each known word has a fixed id.
struct WordTokenizer {
    ids: HashMap<&'static str, u32>,
}

impl WordTokenizer {
    fn new() -> Self {
        Self {
            ids: HashMap::from([("<unk>", 0), ("I", 73), ("love", 786), ("dogs", 2934)]),
        }
    }

    /// Splits on whitespace; unknown words map to `<unk>` (id 0).
    fn encode(&self, text: &str) -> Vec<u32> {
        text.split_whitespace()
            .map(|word| self.ids.get(word).copied().unwrap_or(0))
            .collect()
    }
}

fn format_row(row: &[f32]) -> String {
    let cells: Vec<String> = row.iter().map(|x| format!("{x:+.4}")).collect();
    format!("[{}]", cells.join(", "))
}

fn print_tensor(name: &str, tensor: &Tensor<f32>) {
    println!("{name}:");
    for (i, row) in tensor.rows().enumerate() {
        println!("  [{i}] {}", format_row(row));
    }
    println!("shape = {}", tensor.shape());
}

fn main() -> Result<(), Box<dyn Error>> {
    let text = "I love dogs";
    let tokenizer = WordTokenizer::new();
    let ids = tokenizer.encode(text);
    println!("text  = {text:?}");
    println!("ids   = {ids:?}");
    println!();

    let table = Embedding::<f32>::seeded(VOCAB_SIZE, N_EMBD, Init::default(), SEED)?;
    println!(
        "embedding matrix: (vocab_size, n_embd) = {}, init N(0, 1), seed {SEED}",
        table.weight().shape()
    );
    for id in (0..6).chain(ids.iter().copied()) {
        println!("  row {id:>4}: {}", format_row(table.row(id)?));
    }
    println!("  ...");
    println!();

    for (word, &id) in text.split_whitespace().zip(&ids) {
        println!(
            "lookup {word:?} -> id {id} -> {}",
            format_row(table.row(id)?)
        );
    }
    println!();

    let ids = Tensor::from_vec(ids, &[3])?;
    let x = table.forward(&ids)?;
    print_tensor("output of the lookup (seq_len, n_embd)", &x);
    println!();

    let batched = table.forward(&ids.reshape(&[1, 3])?)?;
    println!("with the batch dimension first (batch, seq_len, n_embd):");
    for (i, row) in batched.rows().enumerate() {
        println!("  [0, {i}] {}", format_row(row));
    }
    println!("shape = {}", batched.shape());
    assert_eq!(
        batched.as_slice(),
        x.as_slice(),
        "batching must not change the rows"
    );
    Ok(())
}
