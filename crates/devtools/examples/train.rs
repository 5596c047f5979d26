//! The training demo: a small next-token model (embedding → mean of the two previous
//! tokens → output head) on a corpus from a grammar of word classes, untied and tied, with
//! a progress bar, a summary table and the loss-curve figure.
//!
//! Run: `cargo run --release -p tokenloom-devtools --example train` (a few seconds on 2 cores).

use std::error::Error;

use indicatif::{ProgressBar, ProgressStyle};
use tokenloom_devtools::tutorial_gen::{self, DEMO_STEPS, HeadMode};

fn main() -> Result<(), Box<dyn Error>> {
    let corpus = tutorial_gen::demo_corpus();
    let style = ProgressStyle::with_template("{prefix:>30} [{bar:40}] {pos}/{len} loss {msg}")?
        .progress_chars("=> ");
    let mut runs = Vec::new();
    for mode in HeadMode::ALL {
        let bar = ProgressBar::new(DEMO_STEPS as u64)
            .with_style(style.clone())
            .with_prefix(mode.label());
        let run = tutorial_gen::train(&corpus, mode, |step, loss| {
            bar.set_position(step as u64 + 1);
            bar.set_message(format!("{loss:.3}"));
        })?;
        bar.finish();
        runs.push(run);
    }
    println!();
    print!("{}", tutorial_gen::training_table(&corpus, &runs));
    // The loss figure is a tracked file: rewrite it only when asked to.
    if std::env::args().any(|a| a == "--write") {
        let figures = tutorial_gen::figures(&corpus, &runs);
        let (name, svg) = figures
            .iter()
            .find(|(n, _)| *n == "loss_curves.svg")
            .expect("the loss figure");
        let path = tokenloom_devtools::workspace_root()
            .join("docs/figures")
            .join(name);
        std::fs::write(&path, svg)?;
        println!("\nwrote {}", path.display());
    } else {
        println!("\n(pass --write to redraw docs/figures/loss_curves.svg)");
    }
    Ok(())
}
