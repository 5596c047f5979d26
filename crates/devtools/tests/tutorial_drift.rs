//! docs/tutorial.md and docs/figures/ are what the generator writes from the live code:
//! a changed number anywhere fails this test. Numbers may differ by one unit in their
//! last printed digit (another libm rounds a sine differently; plotters rounds pixel
//! coordinates from them), everything else must be identical
//! (`tokenloom_devtools::drift`).

use tokenloom_devtools::drift::first_difference;
use tokenloom_devtools::tutorial_gen;

const REFRESH: &str =
    "run `cargo run --release -p tokenloom-devtools --example tutorial -- --write` to refresh it";

#[test]
fn tutorial_and_figures_match_the_generator() {
    let root = tokenloom_devtools::workspace_root();
    let corpus = tutorial_gen::demo_corpus();
    let runs = tutorial_gen::train_all(&corpus);
    let doc = std::fs::read_to_string(root.join("docs/tutorial.md")).unwrap();
    let rendered = tutorial_gen::render(&doc, &tutorial_gen::sections(&corpus, &runs)).unwrap();
    if let Some(difference) = first_difference(&doc, &rendered) {
        panic!("docs/tutorial.md differs from the generator's output ({difference}): {REFRESH}");
    }
    for (name, svg) in tutorial_gen::figures(&corpus, &runs) {
        let path = root.join("docs/figures").join(name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; {REFRESH}", path.display()));
        if let Some(difference) = first_difference(&on_disk, &svg) {
            panic!(
                "{} differs from the generator's output ({difference}): {REFRESH}",
                path.display()
            );
        }
    }
}

/// The demo learns: loss drops and the table groups words by class.
#[test]
fn the_demo_learns_word_classes() {
    let corpus = tutorial_gen::demo_corpus();
    let run = tutorial_gen::train(&corpus, tutorial_gen::HeadMode::Untied, |_, _| {}).unwrap();
    let end = run.losses[run.losses.len() - 20..].iter().sum::<f64>() / 20.0;
    assert!(end < run.losses[0] * 0.6, "loss {} → {end}", run.losses[0]);
    let (before, after) = (
        tutorial_gen::class_purity(&corpus, &run.before),
        tutorial_gen::class_purity(&corpus, &run.after),
    );
    assert!(
        after > before && after >= 0.75,
        "class purity {before} → {after}"
    );
}
