//! A small training run: the table and head learn a toy next-token task, with SGD and
//! AdamW, untied and tied.

use tokenloom::embedding::{
    AdamW, EmbeddingAndHead, EmbeddingConfig, Init, Optimizer, Sgd, TieOptions,
};
use tokenloom::tensor::Tensor;
use tokenloom_devtools::tutorial_gen;

const VOCAB_SIZE: usize = 16;
const N_EMBD: usize = 8;

/// Trains "next id = id + 1 (mod vocab)" and returns the losses of the first and last
/// steps.
fn train<O: Optimizer>(mut model: EmbeddingAndHead<f64>, mut opt: O, steps: usize) -> (f64, f64) {
    let ids: Vec<u32> = (0..VOCAB_SIZE as u32).collect();
    let targets: Vec<u32> = ids.iter().map(|&i| (i + 1) % VOCAB_SIZE as u32).collect();
    let ids = Tensor::from_vec(ids, &[1, VOCAB_SIZE]).unwrap();
    let mut losses = Vec::new();
    for _ in 0..steps {
        let x = model.lookup(&ids).unwrap();
        let logits = model.logits(x.view()).unwrap();
        let (loss, grad_logits) =
            tutorial_gen::cross_entropy(logits.as_slice(), VOCAB_SIZE, &targets);
        losses.push(loss);
        let grad_logits = Tensor::from_vec(grad_logits, logits.dims()).unwrap();
        let mut grads = model.zero_grads().unwrap();
        let grad_x = model
            .backward_logits(x.view(), grad_logits.view(), &mut grads)
            .unwrap();
        model
            .backward_lookup(&ids, grad_x.view(), &mut grads)
            .unwrap();
        model.step(&mut opt, &grads).unwrap();
    }
    (losses[0], *losses.last().unwrap())
}

fn untied(seed: u64) -> EmbeddingAndHead<f64> {
    let config = EmbeddingConfig::new(VOCAB_SIZE, N_EMBD).with_init(Init::normal(0.3));
    let embedding = config.init_seeded(seed).unwrap();
    let head = config.init_seeded::<f64>(seed + 1).unwrap().into_weight();
    EmbeddingAndHead::untied(embedding, head).unwrap()
}

fn tied(seed: u64) -> EmbeddingAndHead<f64> {
    let embedding = EmbeddingConfig::new(VOCAB_SIZE, N_EMBD)
        .init_seeded(seed)
        .unwrap();
    EmbeddingAndHead::tied(embedding, TieOptions::scaled_for(N_EMBD)).unwrap()
}

fn assert_learns(name: &str, (first, last): (f64, f64), max_ratio: f64) {
    println!("{name}: loss {first:.4} → {last:.4}");
    assert!(
        first.is_finite() && last.is_finite(),
        "{name}: loss diverged"
    );
    assert!(
        last < first * max_ratio,
        "{name}: loss {first} → {last} did not drop below {max_ratio}×"
    );
}

#[test]
fn untied_sgd_learns() {
    assert_learns(
        "untied SGD",
        train(untied(1), Sgd::new(1.0).with_momentum(0.9), 200),
        0.3,
    );
}

#[test]
fn untied_adamw_learns() {
    assert_learns(
        "untied AdamW",
        train(untied(2), AdamW::new(0.05).with_weight_decay(0.0), 200),
        0.3,
    );
}

#[test]
fn tied_sgd_learns() {
    // Tied logits are symmetric (e_i · e_j = e_j · e_i), so "i → i+1" competes with
    // "i+1 → i": the loss floor is about ln 2, not 0.
    assert_learns(
        "tied SGD",
        train(tied(3), Sgd::new(1.0).with_momentum(0.9), 200),
        0.7,
    );
}

#[test]
fn tied_adamw_learns() {
    assert_learns(
        "tied AdamW",
        train(tied(4), AdamW::new(0.05).with_weight_decay(0.0), 200),
        0.7,
    );
}
