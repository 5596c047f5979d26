//! The walkthrough: "I love dogs" → token ids → rows of a seeded embedding table.
//!
//! Run it with `cargo run --release --example walkthrough`.

use std::collections::HashMap;
use std::error::Error;

use tokenloom::decoder_input::{DecoderInput, PositionEncoding, TokenBatch};
use tokenloom::embedding::{Embedding, EmbeddingAndHead, Init};
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout};
use tokenloom::tensor::{Tensor, matmul_transposed};

/// Vocabulary size of the toy word-level tokenizer: ids 0..3000.
const VOCAB_SIZE: usize = 3000;
/// Width of each embedding row.
const N_EMBD: usize = 8;
/// The seed of the table: the same numbers on every machine.
const SEED: u64 = 42;
/// Attention heads of the toy decoder block, each of `N_EMBD / N_HEADS` dimensions.
const N_HEADS: usize = 2;
/// The toy model's context length.
const MAX_POSITIONS: usize = 16;

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

    let ids = ids.reshape(&[1, 3])?;
    let batched = table.forward(&ids)?;
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
    println!();

    entering_a_decoder_block(table, ids)
}

/// Part 2: the `(1, 3, 8)` batch enters a decoder block whose attention uses RoPE.
fn entering_a_decoder_block(table: Embedding<f32>, ids: Tensor<u32>) -> Result<(), Box<dyn Error>> {
    println!("== part 2: into the first decoder block, with RoPE ==");
    let head_dim = N_EMBD / N_HEADS;
    let rope = RopeConfig::new(head_dim, 10000.0, RopeLayout::HalfSplit);
    let head =
        Embedding::<f32>::seeded(VOCAB_SIZE, N_EMBD, Init::normal(0.02), SEED + 1)?.into_weight();
    let input = DecoderInput::from_parts(
        EmbeddingAndHead::untied(table, head)?,
        PositionEncoding::Rope(RopeCache::<f32>::new(&rope, MAX_POSITIONS)?),
        MAX_POSITIONS,
        None,
        None,
    )?;
    let batch = TokenBatch::new(ids)?;
    let out = input.forward(&batch)?;
    let hidden = out.hidden();
    println!(
        "hidden states (batch, seq_len, n_embd): shape = {}",
        hidden.shape()
    );
    println!("  RoPE adds nothing to them: they are the looked-up rows");
    println!(
        "position ids (batch, seq_len) = {:?}, shape = {}",
        out.position_ids().as_slice(),
        out.position_ids().shape()
    );
    println!(
        "attention mask (batch, seq_len) = {:?}",
        out.attention_mask().as_slice()
    );

    // A toy q/k projection of the block: q = h Wqᵀ, k = h Wkᵀ, split into heads.
    let wq = Embedding::<f32>::seeded(N_EMBD, N_EMBD, Init::XavierNormal { gain: 1.0 }, 7)?
        .into_weight();
    let wk = Embedding::<f32>::seeded(N_EMBD, N_EMBD, Init::XavierNormal { gain: 1.0 }, 8)?
        .into_weight();
    let h2 = hidden.clone().reshape(&[3, N_EMBD])?;
    let shape = [1, 3, N_HEADS, head_dim];
    let mut q = matmul_transposed(h2.view(), wq.view())?.reshape(&shape)?;
    let mut k = matmul_transposed(h2.view(), wk.view())?.reshape(&shape)?;
    println!(
        "q, k (batch, seq_len, n_heads, head_dim): shape = {}",
        q.shape()
    );
    // Head 0 of token m is q[0, m, 0, :].
    let score = |q: &Tensor<f32>, k: &Tensor<f32>, m: usize, n: usize| -> f32 {
        let qm = &q.as_slice()[m * N_EMBD..][..head_dim];
        let kn = &k.as_slice()[n * N_EMBD..][..head_dim];
        qm.iter().zip(kn).map(|(a, b)| a * b).sum()
    };
    let before = score(&q, &k, 2, 0);
    out.apply_rope(q.view_mut(), k.view_mut(), QkLayout::BatchSeqHeads)?;
    let after = score(&q, &k, 2, 0);
    println!(
        "head 0 score q(\"dogs\", position 2) · k(\"I\", position 0): {before:+.4} before RoPE, {after:+.4} after"
    );
    println!("  after RoPE the score depends on the distance 2 − 0, not on where the pair sits");
    println!("rotated q, k: shape = {} (unchanged)", q.shape());
    Ok(())
}
