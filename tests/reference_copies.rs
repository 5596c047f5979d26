//! The reference vectors in `tests/reference/` and `crates/testkit/reference/` (the
//! cases the conformance kit ships) are byte-for-byte copies of the shared originals:
//! every file's SHA-256 equals the one `tests/reference/SHA256SUMS` recorded from the
//! originals (so an edited or truncated copy fails in every clone); every file listed in
//! the index is present; and when `../shared/reference/` sits beside the project, the
//! manifest itself is checked against the originals.

use std::path::PathBuf;

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
        if let Some(path) = copy_of(&format!("{name}.json")) {
            assert!(path.exists());
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

/// `(sha256 hex, file name)` of every line of `SHA256SUMS` (`sha256sum` output).
fn manifest() -> Vec<(String, String)> {
    std::fs::read_to_string(common::reference_dir().join("SHA256SUMS"))
        .unwrap()
        .lines()
        .map(|line| {
            let (hash, name) = line.split_once("  ").expect("`<hash>  <file>` lines");
            (hash.to_owned(), name.to_owned())
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn every_copy_has_the_recorded_checksum() {
    let manifest = manifest();
    assert!(
        manifest.len() >= 20,
        "{} files in SHA256SUMS",
        manifest.len()
    );
    let mut on_disk: Vec<String> = [common::reference_dir(), common::testkit_reference_dir()]
        .iter()
        .flat_map(|dir| std::fs::read_dir(dir).unwrap())
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = manifest.iter().map(|(_, n)| n.clone()).collect();
    listed.sort();
    assert_eq!(
        on_disk, listed,
        "the copied files are exactly those recorded"
    );
    for (hash, name) in &manifest {
        let bytes = std::fs::read(copy_of(name).unwrap()).unwrap();
        assert_eq!(
            &sha256_hex(&bytes),
            hash,
            "{name} is not the recorded original"
        );
    }
}

#[test]
fn sha256_of_known_inputs() {
    assert_eq!(
        sha256_hex(b""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

/// Only beside the shared folder (the developers' checkout): the manifest itself must
/// describe the originals. Every user's clone has the test above.
#[test]
fn copies_match_the_shared_originals() {
    let Some(shared) = shared_dir() else {
        return;
    };
    let manifest = manifest();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let copy = copy_of(name).unwrap_or_else(|| common::reference_dir().join(name));
        let original = std::fs::read(&path).unwrap();
        let copied = std::fs::read(&copy)
            .unwrap_or_else(|e| panic!("{} is not copied: {e}", copy.display()));
        assert!(
            original == copied,
            "{} differs from {}",
            copy.display(),
            path.display()
        );
        if name.ends_with(".json") {
            assert!(
                manifest.contains(&(sha256_hex(&original), name.to_owned())),
                "SHA256SUMS does not record {name} as it is in ../shared"
            );
        }
    }
}

/// The copy of a reference file, in `tests/reference` or `crates/testkit/reference`.
fn copy_of(name: &str) -> Option<PathBuf> {
    [common::reference_dir(), common::testkit_reference_dir()]
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn shared_dir() -> Option<std::path::PathBuf> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference");
    dir.is_dir().then_some(dir)
}
