//! The golden reference vectors, published language-neutrally: every case file follows
//! `crates/testkit/golden/schema.json`, and `crates/testkit/golden/index.json` lists each
//! one with its tensors' shapes — regenerated here and compared with the committed copy
//! (`TOKENLOOM_BLESS=1 cargo test --test golden_index` rewrites it).

mod common;

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

fn golden_dir() -> PathBuf {
    common::testkit_reference_dir().join("../golden")
}

/// Every case file, as `(repository-relative path, parsed JSON)`, sorted by path.
fn case_files() -> Vec<(String, Value)> {
    let mut files = Vec::new();
    for (dir, prefix) in [
        (common::testkit_reference_dir(), "crates/testkit/reference"),
        (common::reference_dir(), "tests/reference"),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if !name.ends_with(".json") || name == "INDEX.json" {
                continue;
            }
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            files.push((format!("{prefix}/{name}"), value));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files
}

/// A tensor object: `{"dtype", "shape", "data"}`.
fn is_tensor(v: &Value) -> bool {
    v.get("shape").is_some() && v.get("data").is_some()
}

/// The checks `schema.json` states, applied to one case file.
fn check_case(path: &str, case: &Value, schema: &Value) {
    let required = schema["required"].as_array().unwrap();
    for key in required {
        let key = key.as_str().unwrap();
        assert!(case.get(key).is_some(), "{path}: no `{key}`");
    }
    let dtypes: Vec<&str> = schema["$defs"]["tensor"]["properties"]["dtype"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        case["case"].as_str(),
        Path::new(path).file_stem().and_then(|s| s.to_str()),
        "{path}: `case` is the file name"
    );
    for section in ["inputs", "expected"] {
        let Some(map) = case.get(section).and_then(Value::as_object) else {
            continue;
        };
        for (name, v) in map {
            if !is_tensor(v) {
                continue;
            }
            let dtype = v["dtype"].as_str().unwrap_or("");
            assert!(
                dtypes.contains(&dtype),
                "{path}: {section}.{name} has dtype {dtype:?}"
            );
            let shape: Vec<u64> = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            let data = v["data"].as_array().unwrap();
            assert_eq!(
                data.len() as u64,
                shape.iter().product::<u64>(),
                "{path}: {section}.{name} holds {} values for shape {shape:?}",
                data.len()
            );
            assert!(
                data.iter().all(|x| x.is_number() || x.is_string()),
                "{path}: {section}.{name} has a value that is not a number"
            );
        }
    }
}

fn tensors_of(section: Option<&Value>) -> Value {
    let mut out = Map::new();
    if let Some(map) = section.and_then(Value::as_object) {
        for (name, v) in map {
            if is_tensor(v) {
                out.insert(
                    name.clone(),
                    json!({"dtype": v["dtype"], "shape": v["shape"]}),
                );
            }
        }
    }
    Value::Object(out)
}

fn index() -> Value {
    let cases: Vec<Value> = case_files()
        .iter()
        .map(|(path, case)| {
            json!({
                "path": path,
                "case": case["case"],
                "kind": case["kind"],
                "dtype": case["dtype"],
                "description": case["description"],
                "reference": case.get("reference").cloned().unwrap_or(Value::Null),
                "inputs": tensors_of(case.get("inputs")),
                "expected": tensors_of(case.get("expected")),
            })
        })
        .collect();
    json!({
        "schema": "crates/testkit/golden/schema.json",
        "about": "Golden vectors of tokenloom's conformance kit: PyTorch, transformers and Meta's model.py outputs. Paths are relative to the repository root; every case file follows the schema.",
        "cases": cases,
    })
}

#[test]
fn every_case_file_follows_the_schema() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(golden_dir().join("schema.json")).unwrap())
            .unwrap();
    let files = case_files();
    assert!(files.len() >= 20, "{} case files", files.len());
    for (path, case) in &files {
        check_case(path, case, &schema);
    }
}

#[test]
fn the_committed_index_is_current() {
    let want = format!("{:#}\n", index());
    let path = golden_dir().join("index.json");
    if std::env::var_os("TOKENLOOM_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == want,
        "{} is not current: TOKENLOOM_BLESS=1 cargo test --test golden_index",
        path.display()
    );
}
