//! `include/tokenloom.h` is what cbindgen generates from the crate's source: a stale
//! header fails here. `TOKENLOOM_BLESS=1 cargo test -p tokenloom-capi --test header`
//! rewrites it.

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).unwrap();
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen reads the crate")
        .write(&mut generated);
    let generated = String::from_utf8(generated).unwrap();
    let path = crate_dir.join("include/tokenloom.h");
    if std::env::var("TOKENLOOM_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `TOKENLOOM_BLESS=1 cargo test -p tokenloom-capi --test header` and commit it",
        path.display()
    );
}

/// The pkg-config file states the crate's version (its one other home).
#[test]
fn pkg_config_file_has_the_crate_version() {
    let pc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tokenloom.pc")).unwrap();
    let version = pc
        .lines()
        .find_map(|l| l.strip_prefix("Version: "))
        .expect("a Version line");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
}
