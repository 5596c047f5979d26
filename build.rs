//! Writes the tutorial's doc page (figures inlined) to `OUT_DIR/tutorial.md`, which
//! `src/lib.rs` includes as the `tutorial` module's documentation.

#[path = "build/tutorial_page.rs"]
mod tutorial_page;

fn main() {
    let root =
        std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let docs = root.join("docs");
    println!("cargo:rerun-if-changed=docs/tutorial.md");
    println!("cargo:rerun-if-changed=docs/figures");
    println!("cargo:rerun-if-changed=build/tutorial_page.rs");
    let markdown = std::fs::read_to_string(docs.join("tutorial.md")).expect("docs/tutorial.md");
    let repository = std::env::var("CARGO_PKG_REPOSITORY").unwrap_or_default();
    let page = tutorial_page::render(
        &markdown,
        |name| std::fs::read(docs.join("figures").join(name)),
        &repository,
    )
    .expect("every figure the tutorial shows is in docs/figures");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("tutorial.md"), page).expect("OUT_DIR is writable");
}
