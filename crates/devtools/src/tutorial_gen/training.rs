//! The training demo: a grammar of word classes, and a tiny next-token model.

use std::fmt::Write as _;

use tokenloom::embedding::{
    AdamW, EmbeddingAndHead, EmbeddingConfig, EmbeddingError, Init, TieOptions,
};
use tokenloom::tensor::{Tensor, TensorView};

use super::SEED;

/// The word classes of the synthetic corpus.
pub const CLASSES: [(&str, [&str; 6]); 4] = [
    ("people", ["man", "woman", "boy", "girl", "king", "queen"]),
    ("animals", ["dog", "cat", "horse", "bird", "cow", "fish"]),
    ("objects", ["ball", "book", "stone", "cup", "chair", "box"]),
    (
        "verbs",
        ["sees", "likes", "finds", "holds", "feeds", "chases"],
    ),
];

/// The corpus: its vocabulary, the class of each word id (`None` for function words),
/// and the token stream.
pub struct Corpus {
    /// Words by id.
    pub vocab: Vec<&'static str>,
    /// The class index of each id, if it is a class word.
    pub class_of: Vec<Option<usize>>,
    /// The token stream.
    pub tokens: Vec<u32>,
}

/// A deterministic linear congruential generator: the corpus must be identical on every
/// machine, with no dependency on a random-number crate's stream.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) as usize) % n
    }
}

/// Sentences of a small grammar: "the PERSON VERB the ANIMAL|OBJECT ." and
/// "the ANIMAL VERB the OBJECT .", so that people, animals and objects appear in
/// different positions and contexts.
pub fn corpus(sentences: usize) -> Corpus {
    let mut vocab = vec!["the", "."];
    let mut class_of = vec![None, None];
    for (class, (_, words)) in CLASSES.iter().enumerate() {
        for w in words {
            vocab.push(w);
            class_of.push(Some(class));
        }
    }
    let id = |w: &str| {
        vocab
            .iter()
            .position(|v| *v == w)
            .expect("word in vocabulary") as u32
    };
    let (the, stop) = (id("the"), id("."));
    let class_word = |rng: &mut Lcg, class: usize| id(CLASSES[class].1[rng.below(6)]);
    let mut rng = Lcg(7);
    let mut tokens = Vec::new();
    for _ in 0..sentences {
        let (subject, object) = if rng.below(2) == 0 {
            (0, 1 + rng.below(2))
        } else {
            (1, 2)
        };
        tokens.extend([
            the,
            class_word(&mut rng, subject),
            class_word(&mut rng, 3),
            the,
            class_word(&mut rng, object),
            stop,
        ]);
    }
    Corpus {
        vocab,
        class_of,
        tokens,
    }
}

/// How the output head is arranged in a training run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadMode {
    /// Its own matrix.
    Untied,
    /// Tied to the N(0, 1) embedding, logit scale 1 (the setup that blows up).
    Tied,
    /// Tied, with the safe logit scale 1/√n_embd.
    TiedScaled,
}

impl HeadMode {
    /// All modes, in the order the tutorial shows them.
    pub const ALL: [HeadMode; 3] = [HeadMode::Untied, HeadMode::Tied, HeadMode::TiedScaled];

    /// A label for tables and legends.
    pub fn label(self) -> &'static str {
        match self {
            HeadMode::Untied => "untied",
            HeadMode::Tied => "tied",
            HeadMode::TiedScaled => "tied, logit scale 1/√n_embd",
        }
    }
}

/// The width of the demo's embeddings.
pub const DEMO_N_EMBD: usize = 16;
/// Optimizer steps of the demo.
pub const DEMO_STEPS: usize = 300;
/// Windows per minibatch.
pub const DEMO_BATCH: usize = 256;

/// The result of one training run.
pub struct Run {
    /// The arrangement.
    pub mode: HeadMode,
    /// The loss before each step.
    pub losses: Vec<f64>,
    /// The embedding before training.
    pub before: Tensor<f64>,
    /// The embedding after training.
    pub after: Tensor<f64>,
    /// The initial logit std report.
    pub initial_logit_std: f64,
}

/// Mean cross-entropy of `logits (n, vocab)` against `targets`, and its gradient.
pub fn cross_entropy(logits: &[f64], vocab_size: usize, targets: &[u32]) -> (f64, Vec<f64>) {
    let n = targets.len() as f64;
    let mut grad = vec![0.0; logits.len()];
    let mut loss = 0.0;
    for (t, (row, g)) in logits
        .chunks(vocab_size)
        .zip(grad.chunks_mut(vocab_size))
        .enumerate()
    {
        let max = row.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x));
        let sum: f64 = row.iter().map(|x| (x - max).exp()).sum();
        let target = targets[t] as usize;
        loss += sum.ln() + max - row[target];
        for (j, (gj, x)) in g.iter_mut().zip(row).enumerate() {
            *gj = ((x - max).exp() / sum - if j == target { 1.0 } else { 0.0 }) / n;
        }
    }
    (loss / n, grad)
}

/// Trains "embedding → mean of the two previous tokens (the tiny mixing layer) → output
/// head" on next-token prediction with AdamW, calling `on_step(step, loss)`.
pub fn train(
    corpus: &Corpus,
    mode: HeadMode,
    mut on_step: impl FnMut(usize, f64),
) -> Result<Run, EmbeddingError> {
    let vocab_size = corpus.vocab.len();
    let embedding = EmbeddingConfig::new(vocab_size, DEMO_N_EMBD).init_seeded::<f64>(SEED)?;
    let before = embedding.weight().clone();
    let mut model = match mode {
        HeadMode::Untied => {
            let head = EmbeddingConfig::new(vocab_size, DEMO_N_EMBD)
                .with_init(Init::normal(0.02))
                .init_seeded::<f64>(SEED + 1)?;
            EmbeddingAndHead::untied(embedding, head.into_weight())?
        }
        // Deliberately past the guard, to show what the guard is for.
        HeadMode::Tied => EmbeddingAndHead::tied(
            embedding,
            TieOptions {
                max_initial_logit_std: 1e9,
                ..TieOptions::default()
            },
        )?,
        HeadMode::TiedScaled => {
            EmbeddingAndHead::tied(embedding, TieOptions::scaled_for(DEMO_N_EMBD))?
        }
    };
    let initial_logit_std = model.expected_initial_logit_std(1.0).expected_logit_std;
    let mut opt = AdamW::new(0.02).with_weight_decay(0.0);
    let windows = corpus.tokens.len() - 2;
    let mut losses = Vec::with_capacity(DEMO_STEPS);
    let mut rng = Lcg(11);
    for step in 0..DEMO_STEPS {
        let starts: Vec<usize> = (0..DEMO_BATCH).map(|_| rng.below(windows)).collect();
        let context: Vec<u32> = starts
            .iter()
            .flat_map(|&s| [corpus.tokens[s], corpus.tokens[s + 1]])
            .collect();
        let targets: Vec<u32> = starts.iter().map(|&s| corpus.tokens[s + 2]).collect();
        let context = Tensor::from_vec(context, &[DEMO_BATCH, 2])?;
        let x = model.lookup(&context)?;
        let hidden: Vec<f64> = x
            .as_slice()
            .chunks(2 * DEMO_N_EMBD)
            .flat_map(|pair| (0..DEMO_N_EMBD).map(move |j| (pair[j] + pair[DEMO_N_EMBD + j]) / 2.0))
            .collect();
        let hidden = Tensor::from_vec(hidden, &[DEMO_BATCH, DEMO_N_EMBD])?;
        let logits = model.logits(hidden.view())?;
        let (loss, grad_logits) = cross_entropy(logits.as_slice(), vocab_size, &targets);
        losses.push(loss);
        on_step(step, loss);
        let grad_logits = Tensor::from_vec(grad_logits, &[DEMO_BATCH, vocab_size])?;
        let mut grads = model.zero_grads()?;
        let grad_hidden = model.backward_logits(hidden.view(), grad_logits.view(), &mut grads)?;
        let grad_x: Vec<f64> = grad_hidden
            .as_slice()
            .chunks(DEMO_N_EMBD)
            .flat_map(|g| g.iter().chain(g).map(|v| v / 2.0))
            .collect();
        model.backward_lookup(
            &context,
            TensorView::new(&grad_x, &[DEMO_BATCH, 2, DEMO_N_EMBD])?,
            &mut grads,
        )?;
        model.step(&mut opt, &grads)?;
    }
    Ok(Run {
        mode,
        losses,
        before,
        after: model.embedding().weight().clone(),
        initial_logit_std,
    })
}

pub(super) fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// How often a class word's nearest neighbour (cosine, among the other class words) is in
/// its own class.
pub fn class_purity(corpus: &Corpus, table: &Tensor<f64>) -> f64 {
    let words: Vec<usize> = (0..corpus.vocab.len())
        .filter(|&i| corpus.class_of[i].is_some())
        .collect();
    let same = words
        .iter()
        .filter(|&&w| {
            let nearest = words
                .iter()
                .filter(|&&o| o != w)
                .max_by(|&&a, &&b| {
                    cosine(table.row(w).unwrap(), table.row(a).unwrap())
                        .total_cmp(&cosine(table.row(w).unwrap(), table.row(b).unwrap()))
                })
                .copied()
                .unwrap();
            corpus.class_of[nearest] == corpus.class_of[w]
        })
        .count();
    same as f64 / words.len() as f64
}

/// Runs the three arrangements.
pub fn train_all(corpus: &Corpus) -> Vec<Run> {
    HeadMode::ALL
        .iter()
        .map(|&m| train(corpus, m, |_, _| {}).expect("the demo trains"))
        .collect()
}

/// The summary table of the demo.
pub fn training_table(corpus: &Corpus, runs: &[Run]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "corpus: {} tokens, vocab_size {}, n_embd {}, {} AdamW steps of {} windows",
        corpus.tokens.len(),
        corpus.vocab.len(),
        DEMO_N_EMBD,
        DEMO_STEPS,
        DEMO_BATCH
    );
    let _ = writeln!(
        out,
        "{:<30} {:>10} {:>10} {:>10} {:>14} {:>14}",
        "head", "logit std", "loss 0", "loss end", "purity before", "purity after"
    );
    for r in runs {
        let end: f64 = r.losses[r.losses.len() - 20..].iter().sum::<f64>() / 20.0;
        let _ = writeln!(
            out,
            "{:<30} {:>10.2} {:>10.3} {:>10.3} {:>14.2} {:>14.2}",
            r.mode.label(),
            r.initial_logit_std,
            r.losses[0],
            end,
            class_purity(corpus, &r.before),
            class_purity(corpus, &r.after)
        );
    }
    out
}

/// The demo's default corpus.
pub fn demo_corpus() -> Corpus {
    corpus(2000)
}
