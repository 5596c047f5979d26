//! The reference vectors in `tests/reference/` are byte-for-byte copies of the shared
//! originals. Every file listed in the index must be present; when `../shared/reference/`
//! sits beside the project, the copies must be identical to it.

mod common;

#[test]
fn every_indexed_case_is_copied_and_parses() {
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::reference_dir().join("INDEX.json")).unwrap(),
    )
    .unwrap();
    let cases = index["cases"].as_array().expect("INDEX.json lists cases");
    assert!(cases.len() >= 20, "INDEX.json lists {} cases", cases.len());
    for case in cases {
        let name = case["case"].as_str().unwrap();
        let path = common::reference_dir().join(format!("{name}.json"));
        if path.exists() {
            common::case(name);
        } else {
            // The index may list cases that the shared folder never shipped; those that
            // exist there must exist here.
            let shared = shared_dir().map(|d| d.join(format!("{name}.json")));
            assert!(
                !shared.is_some_and(|p| p.exists()),
                "{name}.json exists in ../shared/reference but was not copied"
            );
        }
    }
}

#[test]
fn copies_match_the_shared_originals() {
    let Some(shared) = shared_dir() else {
        println!("../shared/reference is not beside this clone; nothing to compare");
        return;
    };
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        let copy = common::reference_dir().join(path.file_name().unwrap());
        let original = std::fs::read(&path).unwrap();
        let copied = std::fs::read(&copy)
            .unwrap_or_else(|e| panic!("{} is not copied: {e}", copy.display()));
        assert!(
            original == copied,
            "{} differs from {}",
            copy.display(),
            path.display()
        );
    }
}

fn shared_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    dir.is_dir().then_some(dir)
}
