//! The tutorial's generator: every number printed in docs/tutorial.md and every figure in
//! docs/figures/ comes from this code. `cargo run --release -p tokenloom-devtools --example tutorial -- --write`
//! rewrites them; `tests/tutorial_drift.rs` fails when the checked-in files differ.
//!
//! Used by the `tutorial` and `train` examples and the drift test.

use std::collections::HashMap;
use std::fmt::Write as _;

use tokenloom::decoder_input::{
    DecoderInput, DecoderInputConfig, PaddingSide, PositionSchemeConfig,
};
use tokenloom::embedding::{Embedding, EmbeddingAndHead, Init, TieOptions};
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

mod figures;
mod training;

pub use figures::{Figure, figures};
pub use training::*;

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
