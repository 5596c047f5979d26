//! Helpers shared by the workspace tests: reference-vector loading and comparisons.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The folder holding the copied reference vectors.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference")
}

/// A reference case: one JSON file of `tests/reference/`.
pub struct Case {
    pub name: String,
    pub json: Value,
}

impl Case {
    /// Loads `tests/reference/{name}.json`. A missing file fails the test: the copies are
    /// part of the repository.
    pub fn load(name: &str) -> Case {
        let path = reference_dir().join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reference file {} is missing: {e}", path.display()));
        let json: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(json["case"], name, "{}: case name", path.display());
        Case {
            name: name.to_owned(),
            json,
        }
    }

    /// The value at a `/`-separated JSON pointer, e.g. `expected/output`.
    pub fn get(&self, pointer: &str) -> &Value {
        self.json
            .pointer(&format!("/{pointer}"))
            .unwrap_or_else(|| panic!("{}: no field {pointer}", self.name))
    }

    /// A tensor `{dtype, shape, data}` as its shape and f64 values.
    pub fn tensor(&self, pointer: &str) -> (Vec<usize>, Vec<f64>) {
        let t = self.get(pointer);
        let shape = t["shape"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {pointer} has no shape", self.name))
            .iter()
            .map(|d| d.as_u64().expect("dimension") as usize)
            .collect();
        let data = t["data"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: {pointer} has no data", self.name))
            .iter()
            .map(|x| x.as_f64().expect("number"))
            .collect();
        (shape, data)
    }

    /// An int64 tensor as its shape and `u32` ids (reference ids are non-negative).
    pub fn ids(&self, pointer: &str) -> (Vec<usize>, Vec<u32>) {
        let (shape, data) = self.tensor(pointer);
        let ids = data
            .iter()
            .map(|&x| u32::try_from(x as i64).expect("id fits u32"))
            .collect();
        (shape, ids)
    }

    /// A scalar number.
    pub fn f64(&self, pointer: &str) -> f64 {
        self.get(pointer)
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {pointer} is not a number", self.name))
    }
}

/// Asserts `|got − want| ≤ tol` elementwise, reporting the first failing index.
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: index {i}: got {g:e}, want {w:e}, |diff| {:e} > tol {tol:e}",
            (g - w).abs()
        );
    }
}

/// Swaps dimensions 1 and 2 of a rank-4 row-major tensor: `(a, b, c, d)` → `(a, c, b, d)`.
pub fn swap_dims_1_2<T: Copy>(data: &[T], dims: [usize; 4]) -> Vec<T> {
    let [a, b, c, d] = dims;
    let mut out = Vec::with_capacity(data.len());
    for i in 0..a {
        for k in 0..c {
            for j in 0..b {
                let start = ((i * b + j) * c + k) * d;
                out.extend_from_slice(&data[start..start + d]);
            }
        }
    }
    out
}

/// The largest absolute value.
pub fn max_abs(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |m, x| m.max(x.abs()))
}

/// The largest absolute difference.
pub fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}
