//! Reference vectors from PyTorch and HuggingFace: parsing the case files, and the
//! comparisons the tests use.

use std::path::Path;

use serde_json::Value;

/// One reference case: a parsed JSON file of `tests/reference/` (see its README for the
/// format).
#[derive(Clone, Debug)]
pub struct ReferenceCase {
    /// The case's name (its file name without `.json`).
    pub name: String,
    /// The parsed file.
    pub json: Value,
}

impl ReferenceCase {
    /// Parses a case from its JSON text.
    ///
    /// # Panics
    ///
    /// When the text is not valid JSON or names another case: reference files are part of
    /// the repository, so this is a broken checkout, not user input.
    #[must_use]
    pub fn parse(name: &str, text: &str) -> Self {
        let json: Value =
            serde_json::from_str(text).unwrap_or_else(|e| panic!("reference case {name}: {e}"));
        assert_eq!(
            json["case"], name,
            "reference case {name}: the file names another case"
        );
        Self {
            name: name.to_owned(),
            json,
        }
    }

    /// Loads `{dir}/{name}.json`.
    ///
    /// # Panics
    ///
    /// When the file is missing or malformed: tests must fail, not skip, without their
    /// reference vectors.
    #[must_use]
    pub fn load(dir: &Path, name: &str) -> Self {
        let path = dir.join(format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reference file {} is missing: {e}", path.display()));
        Self::parse(name, &text)
    }

    /// The value at a `/`-separated JSON pointer, e.g. `expected/output`.
    ///
    /// # Panics
    ///
    /// When the field is missing.
    #[must_use]
    pub fn get(&self, pointer: &str) -> &Value {
        self.json
            .pointer(&format!("/{pointer}"))
            .unwrap_or_else(|| panic!("{}: no field {pointer}", self.name))
    }

    /// A tensor `{dtype, shape, data}` as its shape and `f64` values (exact for every
    /// stored dtype).
    ///
    /// # Panics
    ///
    /// When the field is missing or not a tensor.
    #[must_use]
    pub fn tensor(&self, pointer: &str) -> (Vec<usize>, Vec<f64>) {
        let t = self.get(pointer);
        let numbers = |key: &str| -> Vec<&Value> {
            t[key]
                .as_array()
                .unwrap_or_else(|| panic!("{}: {pointer} has no {key}", self.name))
                .iter()
                .collect()
        };
        let shape = numbers("shape")
            .into_iter()
            .map(|d| {
                usize::try_from(d.as_u64().expect("a dimension")).expect("a dimension fits usize")
            })
            .collect();
        let data = numbers("data")
            .into_iter()
            .map(|x| x.as_f64().expect("a number"))
            .collect();
        (shape, data)
    }

    /// An int64 tensor of non-negative ids as `u32`.
    ///
    /// # Panics
    ///
    /// When the field is missing or holds ids outside `u32`.
    #[must_use]
    pub fn ids(&self, pointer: &str) -> (Vec<usize>, Vec<u32>) {
        let (shape, data) = self.tensor(pointer);
        let ids = data
            .iter()
            .map(|&x| u32::try_from(x as i64).expect("reference ids fit u32"))
            .collect();
        (shape, ids)
    }

    /// A plain JSON array of non-negative ids (the real-model cases store token ids this
    /// way) as `u32`.
    ///
    /// # Panics
    ///
    /// When the field is missing, not an array, or holds ids outside `u32`.
    #[must_use]
    pub fn id_list(&self, pointer: &str) -> Vec<u32> {
        self.get(pointer)
            .as_array()
            .unwrap_or_else(|| panic!("{}: {pointer} is not an array", self.name))
            .iter()
            .map(|v| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .unwrap_or_else(|| panic!("{}: {pointer} holds {v}, not a u32 id", self.name))
            })
            .collect()
    }

    /// A number.
    ///
    /// # Panics
    ///
    /// When the field is missing or not a number.
    #[must_use]
    pub fn f64(&self, pointer: &str) -> f64 {
        self.get(pointer)
            .as_f64()
            .unwrap_or_else(|| panic!("{}: {pointer} is not a number", self.name))
    }
}

/// The index and values of the first element where `|got − want| > tol`, if any.
#[must_use]
pub fn first_mismatch(got: &[f64], want: &[f64], tol: f64) -> Option<(usize, f64, f64)> {
    if got.len() != want.len() {
        return Some((got.len().min(want.len()), f64::NAN, f64::NAN));
    }
    got.iter()
        .zip(want)
        .enumerate()
        .find(|(_, (g, w))| (*g - *w).abs() > tol || g.is_nan() != w.is_nan())
        .map(|(i, (g, w))| (i, *g, *w))
}

/// Asserts `|got − want| ≤ tol` elementwise, reporting the first failing index.
///
/// # Panics
///
/// On the first mismatch (this is a test assertion).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some((i, g, w)) = first_mismatch(got, want, tol) {
        panic!(
            "{what}: index {i}: got {g:e}, want {w:e}, |diff| {:e} > tol {tol:e}",
            (g - w).abs()
        );
    }
}

/// The reference cases the conformance kit embeds, by name: the PyTorch/HuggingFace/Meta
/// files this crate ships in its own `reference/` folder (the workspace's tests read
/// them from there too).
pub(crate) fn embedded(name: &str) -> ReferenceCase {
    let text = match name {
        "emb_fwd_basic_f64" => include_str!("../reference/emb_fwd_basic_f64.json"),
        "emb_fwd_odd_batch_repeated_f64" => {
            include_str!("../reference/emb_fwd_odd_batch_repeated_f64.json")
        }
        "emb_backward_dense_f64" => {
            include_str!("../reference/emb_backward_dense_f64.json")
        }
        "rope_hf_default_f64" => include_str!("../reference/rope_hf_default_f64.json"),
        "rope_hf_offset_batch3_f64" => {
            include_str!("../reference/rope_hf_offset_batch3_f64.json")
        }
        "rope_hf_partial_0p5_f64" => {
            include_str!("../reference/rope_hf_partial_0p5_f64.json")
        }
        "rope_hf_linear_f64" => include_str!("../reference/rope_hf_linear_f64.json"),
        "rope_hf_dynamic_short_f64" => {
            include_str!("../reference/rope_hf_dynamic_short_f64.json")
        }
        "rope_hf_yarn_f64" => include_str!("../reference/rope_hf_yarn_f64.json"),
        "rope_hf_llama3_f64" => include_str!("../reference/rope_hf_llama3_f64.json"),
        "tied_logits_f64" => include_str!("../reference/tied_logits_f64.json"),
        "sin_vaswani_d16_f64" => include_str!("../reference/sin_vaswani_d16_f64.json"),
        "rope_meta_default_f64" => {
            include_str!("../reference/rope_meta_default_f64.json")
        }
        "rope_meta_offset_batch3_f64" => {
            include_str!("../reference/rope_meta_offset_batch3_f64.json")
        }
        other => panic!("no embedded reference case {other}"),
    };
    ReferenceCase::parse(name, text)
}

/// Swaps dimensions 1 and 2 of a rank-4 row-major tensor: `(a, b, c, d)` → `(a, c, b, d)`,
/// e.g. q/k between `(batch, seq_len, n_heads, head_dim)` and
/// `(batch, n_heads, seq_len, head_dim)`. A plain loop, independent of the library's own
/// `convert_qk_layout`, so the tests can check one against the other.
///
/// # Panics
///
/// When `data` is shorter than `a·b·c·d` (test harness only).
#[must_use]
pub fn swap_dims_1_2<T: Copy>(data: &[T], [a, b, c, d]: [usize; 4]) -> Vec<T> {
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
