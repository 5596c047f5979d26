//! The tutorial's rustdoc page shows its figures: each `figures/*.svg` image of
//! docs/tutorial.md is inlined as a data URI (rustdoc would not copy the files), and the
//! links to the other guides point into the repository. (CI also counts the inline
//! images in the generated `target/doc/tokenloom/tutorial/index.html`.)

#[path = "../build/tutorial_page.rs"]
mod tutorial_page;

use std::path::Path;

#[test]
fn every_figure_is_inlined_and_no_relative_link_is_left() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    let markdown = std::fs::read_to_string(docs.join("tutorial.md")).unwrap();
    let figures: Vec<&str> = markdown.matches("](figures/").collect();
    assert_eq!(figures.len(), 4, "the tutorial shows four figures");
    let page = tutorial_page::render(
        &markdown,
        |name| std::fs::read(docs.join("figures").join(name)),
        "https://example.invalid/tokenloom",
    )
    .unwrap();
    assert_eq!(page.matches("](data:image/svg+xml;base64,").count(), 4);
    assert!(!page.contains("](figures/"));
    assert!(!page.contains("](architecture.md)"));
    assert!(page.contains("](https://example.invalid/tokenloom/blob/main/docs/architecture.md)"));
    // The inlined bytes are the figure files, exactly.
    let svg = std::fs::read(docs.join("figures/rope_angles.svg")).unwrap();
    assert!(page.contains(&tutorial_page::base64(&svg)));
}

#[test]
fn base64_matches_rfc_4648_vectors() {
    for (input, want) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foob", "Zm9vYg=="),
        ("fooba", "Zm9vYmE="),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(tutorial_page::base64(input.as_bytes()), want);
    }
}
