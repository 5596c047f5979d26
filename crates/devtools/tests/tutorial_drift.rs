//! docs/tutorial.md and docs/figures/ are exactly what the generator writes from the live
//! code: a changed number anywhere fails this test.

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
    if rendered != doc {
        let line = doc
            .lines()
            .zip(rendered.lines())
            .position(|(a, b)| a != b)
            .map_or(0, |i| i + 1);
        panic!(
            "docs/tutorial.md differs from the generator's output (first at line {line}): {REFRESH}"
        );
    }
    for (name, svg) in tutorial_gen::figures(&corpus, &runs) {
        let path = root.join("docs/figures").join(name);
        let on_disk = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; {REFRESH}", path.display()));
        assert!(
            on_disk == svg,
            "{} differs from the generator's output: {REFRESH}",
            path.display()
        );
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
