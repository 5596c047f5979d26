//! Regenerates the printed blocks of docs/tutorial.md and the figures in docs/figures/
//! from the live code.
//!
//! `cargo run --release -p tokenloom-devtools --example tutorial -- --write` rewrites the files; without
//! `--write` it reports whether they are up to date.

use std::error::Error;

use tokenloom_devtools::tutorial_gen;

fn main() -> Result<(), Box<dyn Error>> {
    let write = std::env::args().any(|a| a == "--write");
    let root = tokenloom_devtools::workspace_root();
    let corpus = tutorial_gen::demo_corpus();
    let runs = tutorial_gen::train_all(&corpus);
    let doc_path = root.join("docs/tutorial.md");
    let doc = std::fs::read_to_string(&doc_path)?;
    let rendered = tutorial_gen::render(&doc, &tutorial_gen::sections(&corpus, &runs))?;
    let mut stale = Vec::new();
    if rendered != doc {
        stale.push(doc_path.clone());
        if write {
            std::fs::write(&doc_path, &rendered)?;
        }
    }
    for (name, svg) in tutorial_gen::figures(&corpus, &runs) {
        let path = root.join("docs/figures").join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(svg.as_str()) {
            stale.push(path.clone());
            if write {
                std::fs::create_dir_all(path.parent().expect("docs/figures"))?;
                std::fs::write(&path, svg)?;
            }
        }
    }
    match (stale.is_empty(), write) {
        (true, _) => println!("docs/tutorial.md and docs/figures are up to date"),
        (false, true) => stale.iter().for_each(|p| println!("wrote {}", p.display())),
        (false, false) => {
            stale
                .iter()
                .for_each(|p| println!("stale: {}", p.display()));
            println!(
                "run `cargo run --release -p tokenloom-devtools --example tutorial -- --write` to refresh"
            );
        }
    }
    Ok(())
}
