//! The tutorial's generator: every number printed in docs/tutorial.md and every figure in
//! docs/figures/ comes from this code. `cargo run --release -p tokenloom-devtools --example tutorial -- --write`
//! rewrites them; `tests/tutorial_drift.rs` fails when the checked-in files differ.
//!
//! Used by the `tutorial` and `train` examples and the drift test.

use std::collections::HashMap;
use std::fmt::Write as _;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use tokenloom::decoder_input::{
    DecoderInput, DecoderInputConfig, PaddingSide, PositionSchemeConfig,
};
use tokenloom::embedding::{
    AdamW, Embedding, EmbeddingAndHead, EmbeddingConfig, EmbeddingError, Init, TieOptions,
};
use tokenloom::io::{SafetensorsFile, safetensors_bytes};
use tokenloom::positions::{
    QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions, sinusoidal_table,
};
use tokenloom::tensor::{Tensor, TensorView};

/// The seed of every table in the tutorial.
pub const SEED: u64 = 42;

fn row_str(row: &[f32]) -> String {
    let cells: Vec<String> = row.iter().map(|x| format!("{x:+.4}")).collect();
    format!("[{}]", cells.join(", "))
}

fn row_str64(row: &[f64]) -> String {
    let cells: Vec<String> = row.iter().map(|x| format!("{x:+.4}")).collect();
    format!("[{}]", cells.join(", "))
}

/// The word-level vocabulary of the first chapters: "I" → 73, "love" → 786, "dogs" → 2934.
pub fn walkthrough_ids(text: &str) -> Vec<u32> {
    let vocab: HashMap<&str, u32> = HashMap::from([("I", 73), ("love", 786), ("dogs", 2934)]);
    text.split_whitespace()
        .map(|w| vocab.get(w).copied().unwrap_or(0))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The training demo: a grammar of word classes, and a tiny next-token model.
// ---------------------------------------------------------------------------------------

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

fn cosine(a: &[f64], b: &[f64]) -> f64 {
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

// ---------------------------------------------------------------------------------------
// The generated blocks of docs/tutorial.md.
// ---------------------------------------------------------------------------------------

/// Each generated block of the tutorial, by name.
pub fn sections(corpus: &Corpus, runs: &[Run]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let table = Embedding::<f32>::seeded(3000, 8, Init::default(), SEED).unwrap();

    let ids = walkthrough_ids("I love dogs");
    out.push(("ids", format!("\"I love dogs\" -> {ids:?}\n")));

    let mut s = format!(
        "weight: (vocab_size, n_embd) = {}\n",
        table.weight().shape()
    );
    for id in [0u32, 1, 2, 73] {
        let _ = writeln!(s, "row {id:>4}: {}", row_str(table.row(id).unwrap()));
    }
    out.push(("matrix", s));

    let x = table.forward(&ids[..]).unwrap();
    let mut s = String::new();
    for (id, row) in ids.iter().zip(x.rows()) {
        let _ = writeln!(s, "id {id:>4} -> {}", row_str(row));
    }
    let _ = writeln!(s, "shape = {}", x.shape());
    let batched = table
        .forward(&Tensor::from_vec(ids.clone(), &[1, 3]).unwrap())
        .unwrap();
    let _ = writeln!(s, "batched: shape = {}", batched.shape());
    out.push(("lookup", s));

    // n_embd and polysemantic dimensions: the trained untied table.
    let trained = &runs[0].after;
    let mut s = String::new();
    for dim in 0..4 {
        let mut by_value: Vec<(usize, f64)> = (0..corpus.vocab.len())
            .map(|w| (w, trained.row(w).unwrap()[dim]))
            .collect();
        by_value.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()));
        let top: Vec<String> = by_value
            .iter()
            .take(5)
            .map(|&(w, v)| format!("{} {v:+.2}", corpus.vocab[w]))
            .collect();
        let _ = writeln!(s, "dimension {dim}: {}", top.join(", "));
    }
    out.push(("polysemantic", s));

    // Positions.
    let pe = sinusoidal_table::<f64>(4, 8, 10000.0).unwrap();
    let mut s = String::from("sinusoidal PE (added to the embeddings):\n");
    for (p, row) in pe.rows().enumerate() {
        let _ = writeln!(s, "  position {p}: {}", row_str64(row));
    }
    let config = RopeConfig::new(8, 10000.0, RopeLayout::HalfSplit);
    let cache = RopeCache::<f64>::new(&config, 64).unwrap();
    let _ = writeln!(
        s,
        "RoPE inv_freq (head_dim 8, theta 10000): {}",
        row_str64(cache.inv_freq())
    );
    let q = [0.3, -1.2, 0.8, 0.5, 1.1, -0.4, 0.2, 0.9];
    let k = [-0.7, 0.4, 1.3, -0.2, 0.6, 0.8, -1.0, 0.1];
    let score = |m: usize, n: usize| -> f64 {
        let rot = |v: &[f64], p: usize| {
            cache
                .apply(
                    TensorView::new(v, &[1, 1, 1, 8]).unwrap(),
                    QkLayout::BatchSeqHeads,
                    TokenPositions::Offset(p),
                )
                .unwrap()
        };
        rot(&q, m)
            .as_slice()
            .iter()
            .zip(rot(&k, n).as_slice())
            .map(|(a, b)| a * b)
            .sum()
    };
    let _ = writeln!(
        s,
        "q·k unrotated: {:+.6}",
        q.iter().zip(&k).map(|(a, b)| a * b).sum::<f64>()
    );
    for (m, n) in [(3, 1), (10, 8), (50, 48), (5, 1)] {
        let _ = writeln!(
            s,
            "R(m={m:>2})q · R(n={n:>2})k = {:+.6}   (m − n = {})",
            score(m, n),
            m - n
        );
    }
    out.push(("positions", s));

    // The decoder input for a padded batch.
    let config = DecoderInputConfig::new(3000, 8, 64)
        .with_pad_id(0)
        .with_position_scheme(PositionSchemeConfig::Rope {
            rope: RopeConfig::new(4, 10000.0, RopeLayout::HalfSplit),
        });
    let input = DecoderInput::<f32>::from_config(&config, SEED).unwrap();
    let batch = input
        .pad_batch(
            &[walkthrough_ids("I love dogs"), walkthrough_ids("dogs")],
            PaddingSide::Left,
        )
        .unwrap();
    let forward = input.forward(&batch).unwrap();
    let mut s = String::new();
    let _ = writeln!(s, "ids            = {:?}", batch.ids().as_slice());
    let _ = writeln!(
        s,
        "attention_mask = {:?}",
        batch.attention_mask().as_slice()
    );
    let _ = writeln!(s, "position_ids   = {:?}", batch.position_ids().as_slice());
    let _ = writeln!(s, "hidden: shape = {}", forward.hidden().shape());
    out.push(("decoder_input", s));

    out.push(("training", training_table(corpus, runs)));
    let end = |r: &Run| r.losses[r.losses.len() - 20..].iter().sum::<f64>() / 20.0;
    let mut s = String::new();
    for r in runs {
        let _ = writeln!(
            s,
            "{:<30} starts at loss {:>6.3}, ends at {:.3}; nearest-neighbour class purity {:.2} -> {:.2}",
            r.mode.label(),
            r.losses[0],
            end(r),
            class_purity(corpus, &r.before),
            class_purity(corpus, &r.after)
        );
    }
    let (untied, tied) = (end(&runs[0]), end(&runs[1]).min(end(&runs[2])));
    let verdict = if untied < tied {
        "hurts"
    } else {
        "does not hurt"
    };
    let _ = writeln!(
        s,
        "on this task, tying {verdict}: best tied loss {tied:.3} vs untied {untied:.3}"
    );
    out.push(("tying_result", s));

    // Tying.
    let mut s = String::new();
    for n_embd in [8usize, 64, 4096] {
        let t = Embedding::<f32>::seeded(64, n_embd, Init::default(), SEED).unwrap();
        let report = EmbeddingAndHead::tied(
            t,
            TieOptions {
                max_initial_logit_std: 1e9,
                ..TieOptions::default()
            },
        )
        .unwrap()
        .expected_initial_logit_std(1.0);
        let _ = writeln!(
            s,
            "N(0, 1) table, n_embd {n_embd:>4}: expected initial logit std {:.2}",
            report.expected_logit_std
        );
    }
    let t = Embedding::<f32>::seeded(64, 4096, Init::default(), SEED).unwrap();
    let err = EmbeddingAndHead::tied(t, TieOptions::default()).unwrap_err();
    let _ = writeln!(s, "tying it anyway: error: {err}");
    out.push(("tying", s));

    // Loading a checkpoint (a file written here, so the numbers never depend on a download).
    let weight = Embedding::<f32>::seeded(10, 4, Init::normal(0.02), SEED)
        .unwrap()
        .into_weight();
    let bytes = safetensors_bytes(&[("model.embed_tokens.weight", weight.view())]).unwrap();
    let file = SafetensorsFile::from_bytes(bytes).unwrap();
    let loaded =
        Embedding::<f32>::from_safetensors_file(&file, "model.embed_tokens.weight").unwrap();
    let mut s = String::new();
    for t in file.tensors() {
        let _ = writeln!(s, "{}: {} {:?}", t.name, t.dtype, t.shape);
    }
    let _ = writeln!(s, "row 3: {}", row_str(loaded.row(3).unwrap()));
    out.push(("checkpoint", s));
    out
}

/// Replaces the body of every `<!-- generated: NAME -->` … `<!-- end generated -->` block
/// of `doc` with the section of that name, in a ```text fence.
pub fn render(doc: &str, sections: &[(&'static str, String)]) -> Result<String, String> {
    let mut out = String::with_capacity(doc.len());
    let mut rest = doc;
    let mut seen = Vec::new();
    while let Some(start) = rest.find("<!-- generated: ") {
        let name_end = rest[start..]
            .find(" -->")
            .ok_or("unterminated generated marker")?
            + start;
        let name = &rest[start + "<!-- generated: ".len()..name_end];
        let end = rest[name_end..]
            .find("<!-- end generated -->")
            .ok_or_else(|| format!("block {name} is not closed"))?
            + name_end;
        let body = &sections
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| format!("no section {name}"))?
            .1;
        out.push_str(&rest[..name_end + " -->".len()]);
        out.push_str("\n```text\n");
        out.push_str(body);
        out.push_str("```\n");
        out.push_str("<!-- end generated -->");
        rest = &rest[end + "<!-- end generated -->".len()..];
        seen.push(name.to_owned());
    }
    out.push_str(rest);
    for (name, _) in sections {
        if !seen.iter().any(|s| s == name) {
            return Err(format!("docs/tutorial.md has no block for section {name}"));
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Figures.
// ---------------------------------------------------------------------------------------

type Figure = (&'static str, String);

fn svg(
    width: u32,
    height: u32,
    draw: impl FnOnce(
        DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    ) -> Result<(), Box<dyn std::error::Error + '_>>,
) -> String {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, (width, height)).into_drawing_area();
        root.fill(&WHITE).unwrap();
        draw(root).unwrap();
    }
    buf
}

/// The Okabe–Ito colour-blind-safe palette (without its yellow, too pale on white).
const PALETTE: [RGBColor; 6] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 0, 0),       // black
];

/// Integer tick labels ("20", not "20.0").
fn integer_label(x: &f64) -> String {
    format!("{x:.0}")
}

/// A legend in its own area (right of a chart), so it never covers a curve.
fn side_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(String, RGBColor)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, (label, color)) in entries.iter().enumerate() {
        let y = 50 + 22 * i32::try_from(i).unwrap_or(0);
        area.draw(&PathElement::new(
            vec![(8, y), (32, y)],
            color.stroke_width(3),
        ))?;
        area.draw(&Text::new(label.clone(), (38, y - 7), ("sans-serif", 13)))?;
    }
    Ok(())
}

/// RoPE: the angle of a few pairs (mod 2π) over positions, fast to slow.
fn rope_angles() -> Figure {
    let config = RopeConfig::new(64, 10000.0, RopeLayout::HalfSplit);
    let inv_freq = config.inv_freq(128).unwrap();
    let pairs = [0usize, 4, 8, 12, 16, 31];
    let text = svg(760, 400, |root| {
        let (plot, legend) = root.split_horizontally(650);
        let mut chart = ChartBuilder::on(&plot)
            .caption(
                "RoPE: rotation angle of pair i (mod 2π), head_dim 64, theta 10000",
                ("sans-serif", 15),
            )
            .margin(10)
            .margin_right(20)
            .x_label_area_size(40)
            .y_label_area_size(50)
            // Slightly below 0, so the slowest pair (angle ≈ 0) is not hidden by the axis.
            .build_cartesian_2d(0f64..128f64, -0.3f64..std::f64::consts::TAU + 0.2)?;
        chart
            .configure_mesh()
            .x_desc("position")
            .y_desc("angle (rad)")
            .x_label_formatter(&integer_label)
            .draw()?;
        for (n, &i) in pairs.iter().enumerate() {
            let color = PALETTE[n % PALETTE.len()];
            chart.draw_series(LineSeries::new(
                (0..128).map(|p| {
                    (
                        p as f64,
                        (p as f64 * inv_freq[i]).rem_euclid(std::f64::consts::TAU),
                    )
                }),
                color.stroke_width(2),
            ))?;
        }
        let entries: Vec<(String, RGBColor)> = pairs
            .iter()
            .enumerate()
            .map(|(n, i)| (format!("pair {i}"), PALETTE[n % PALETTE.len()]))
            .collect();
        side_legend(&legend, &entries)?;
        Ok(())
    });
    ("rope_angles.svg", text)
}

/// RoPE: q_m · k_n against m − n for q = k = ones (the long-range decay).
fn rope_relative() -> Figure {
    let config = RopeConfig::new(128, 10000.0, RopeLayout::HalfSplit);
    let cache = RopeCache::<f64>::new(&config, 512).unwrap();
    let ones = vec![1.0; 128];
    let at = |p: usize| {
        cache
            .apply(
                TensorView::new(&ones, &[1, 1, 1, 128]).unwrap(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Offset(p),
            )
            .unwrap()
    };
    let k0 = at(0);
    let points: Vec<(f64, f64)> = (0..512)
        .map(|m| {
            (
                m as f64,
                at(m)
                    .as_slice()
                    .iter()
                    .zip(k0.as_slice())
                    .map(|(a, b)| a * b)
                    .sum(),
            )
        })
        .collect();
    let text = svg(720, 400, |root| {
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "RoPE: q_m · k_n depends on m − n only (q = k = ones, head_dim 128)",
                ("sans-serif", 15),
            )
            .margin(10)
            .margin_right(25)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..512f64, -20f64..130f64)?;
        chart
            .configure_mesh()
            .x_desc("m − n")
            .y_desc("q_m · k_n")
            .x_label_formatter(&integer_label)
            .y_label_formatter(&integer_label)
            .draw()?;
        chart.draw_series(LineSeries::new(points, PALETTE[0].stroke_width(2)))?;
        Ok(())
    });
    ("rope_relative.svg", text)
}

/// A diverging, colour-blind-safe map of a cosine in [−1, 1]: blue (−1), white (0),
/// vermillion (+1).
fn cosine_color(c: f64) -> RGBColor {
    let t = c.clamp(-1.0, 1.0);
    let (end, w) = if t < 0.0 {
        (PALETTE[0], -t)
    } else {
        (PALETTE[1], t)
    };
    let mix = |a: u8| (255.0 + (f64::from(a) - 255.0) * w).round() as u8;
    RGBColor(mix(end.0), mix(end.1), mix(end.2))
}

/// Cosine similarity of the class words' rows, before and after training (untied run),
/// with a colour bar.
fn similarity_heatmap(corpus: &Corpus, run: &Run) -> Figure {
    let words: Vec<usize> = (0..corpus.vocab.len())
        .filter(|&i| corpus.class_of[i].is_some())
        .collect();
    let n = words.len();
    let text =
        svg(1000, 540, |root| {
            let (maps, bar) = root.split_horizontally(900);
            let panels = maps.split_evenly((1, 2));
            let word = |v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => words
                    .get(*i)
                    .map_or(String::new(), |&w| corpus.vocab[w].to_owned()),
                _ => String::new(),
            };
            for (panel, (title, table)) in panels.iter().zip([
                ("before training", &run.before),
                ("after training", &run.after),
            ]) {
                let mut chart = ChartBuilder::on(panel)
                    .caption(format!("cosine similarity, {title}"), ("sans-serif", 15))
                    .margin(8)
                    .x_label_area_size(80)
                    .y_label_area_size(70)
                    .build_cartesian_2d((0..n).into_segmented(), (0..n).into_segmented())?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_labels(n)
                    .y_labels(n)
                    // The word labels under the x axis are drawn below (plotters centres rotated
                    // mesh labels on the axis line).
                    .x_label_formatter(&|_| String::new())
                    .y_label_formatter(&word)
                    .y_label_style(("sans-serif", 11))
                    .x_desc("word")
                    .y_desc("word")
                    .axis_desc_style(("sans-serif", 13))
                    .draw()?;
                let label_style = ("sans-serif", 11)
                    .into_font()
                    .transform(FontTransform::Rotate90)
                    .into_text_style(&root)
                    .pos(Pos::new(HPos::Left, VPos::Center));
                for i in 0..n {
                    let (x, y) =
                        chart.backend_coord(&(SegmentValue::CenterOf(i), SegmentValue::Exact(0)));
                    root.draw(&Text::new(
                        word(&SegmentValue::CenterOf(i)),
                        (x, y + 8),
                        &label_style,
                    ))?;
                }
                chart.draw_series((0..n).flat_map(|a| (0..n).map(move |b| (a, b))).map(
                    |(a, b)| {
                        let c = cosine(table.row(words[a]).unwrap(), table.row(words[b]).unwrap());
                        Rectangle::new(
                            [
                                (SegmentValue::Exact(a), SegmentValue::Exact(b)),
                                (SegmentValue::Exact(a + 1), SegmentValue::Exact(b + 1)),
                            ],
                            cosine_color(c).filled(),
                        )
                    },
                ))?;
            }
            // The colour bar.
            let mut scale = ChartBuilder::on(&bar)
                .margin_top(40)
                .margin_bottom(88)
                .margin_right(10)
                .y_label_area_size(45)
                .caption("cosine", ("sans-serif", 13))
                .build_cartesian_2d(0f64..1f64, -1f64..1f64)?;
            scale
                .configure_mesh()
                .disable_mesh()
                .disable_x_axis()
                .y_labels(5)
                .y_label_style(("sans-serif", 12))
                .y_label_formatter(&|y| format!("{y:+.1}"))
                .draw()?;
            let steps = 100;
            scale.draw_series((0..steps).map(|k| {
                let lo = -1.0 + 2.0 * k as f64 / steps as f64;
                let hi = lo + 2.0 / steps as f64;
                Rectangle::new(
                    [(0.0, lo), (1.0, hi)],
                    cosine_color((lo + hi) / 2.0).filled(),
                )
            }))?;
            Ok(())
        });
    ("embedding_similarity.svg", text)
}

/// Loss curves of the three arrangements.
fn loss_curves(runs: &[Run]) -> Figure {
    let max = runs
        .iter()
        .flat_map(|r| r.losses.iter().copied())
        .fold(0.0f64, f64::max)
        .min(20.0);
    let text = svg(760, 400, |root| {
        let (plot, legend) = root.split_horizontally(560);
        let mut chart = ChartBuilder::on(&plot)
            .caption("training loss: untied vs tied heads", ("sans-serif", 15))
            .margin(10)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..DEMO_STEPS as f64, 0f64..max * 1.05)?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc("cross-entropy")
            .x_label_formatter(&integer_label)
            .draw()?;
        for (n, run) in runs.iter().enumerate() {
            chart.draw_series(LineSeries::new(
                run.losses
                    .iter()
                    .enumerate()
                    .map(|(s, &l)| (s as f64, l.min(max))),
                PALETTE[n % PALETTE.len()].stroke_width(2),
            ))?;
        }
        let entries: Vec<(String, RGBColor)> = runs
            .iter()
            .enumerate()
            .map(|(n, run)| (run.mode.label().to_owned(), PALETTE[n % PALETTE.len()]))
            .collect();
        side_legend(&legend, &entries)?;
        Ok(())
    });
    ("loss_curves.svg", text)
}

/// Every figure, by file name under docs/figures/.
pub fn figures(corpus: &Corpus, runs: &[Run]) -> Vec<Figure> {
    vec![
        rope_angles(),
        rope_relative(),
        similarity_heatmap(corpus, &runs[0]),
        loss_curves(runs),
    ]
}

/// The demo's default corpus.
pub fn demo_corpus() -> Corpus {
    corpus(2000)
}
