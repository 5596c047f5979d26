//! Tolerances per dtype and the element-wise comparison that reports a mismatch by its
//! coordinate in the adapter's own layout.

use std::fmt::Write as _;

use tokenloom_tensor::{DType, Element, Tensor};

/// How far a result may be from the exact (`f64`) reference.
///
/// An element whose exact value is a reduction of `terms` products (2 for RoPE, the
/// number of repeats of an id for a backward row) with `magnitude = Σ|product|` passes
/// when `|got − want| ≤ terms · (abs + rel · magnitude)` — the classic bound of a
/// floating-point sum. A lookup is a copy and must be exact whatever the tolerance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Absolute slack per term (for results in the subnormal range).
    pub abs: f64,
    /// Relative slack per term, against the magnitude of the terms.
    pub rel: f64,
}

impl Tolerance {
    /// A tolerance of `abs` and `rel` per term.
    #[must_use]
    pub fn new(abs: f64, rel: f64) -> Self {
        Self { abs, rel }
    }

    /// The default for `dtype`: `rel` its machine epsilon (2⁻²³ for `f32`, 2⁻¹⁰ for
    /// `f16`, 2⁻⁷ for `bf16`, 2⁻⁵² for `f64`), `abs` its smallest subnormal. Computing in
    /// the dtype (or in `f32` and rounding once) stays within it.
    #[must_use]
    pub fn for_dtype(dtype: DType) -> Self {
        let (rel, abs) = match dtype {
            DType::F64 => (f64::EPSILON, 2f64.powi(-1074)),
            DType::F16 => (2f64.powi(-10), 2f64.powi(-24)),
            DType::BF16 => (2f64.powi(-7), 2f64.powi(-133)),
            // f32 and anything wider than this kit knows: f32's
            _ => (f64::from(f32::EPSILON), 2f64.powi(-149)),
        };
        Self { abs, rel }
    }

    /// The allowed difference for an element of `terms` terms of total `magnitude`.
    #[must_use]
    pub fn bound(&self, terms: usize, magnitude: f64) -> f64 {
        terms as f64 * (self.abs + self.rel * magnitude)
    }
}

/// The exact reference of one output: values, and per element the number of terms and
/// their magnitude (`Σ|term|`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Expected {
    pub dims: Vec<usize>,
    pub axes: Vec<&'static str>,
    pub values: Vec<f64>,
    pub magnitude: Vec<f64>,
    pub terms: Vec<usize>,
}

/// The errors of one compared output.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Errors {
    pub max_abs: f64,
    pub max_rel: f64,
}

impl Errors {
    pub fn merge(&mut self, other: Errors) {
        self.max_abs = self.max_abs.max(other.max_abs);
        self.max_rel = self.max_rel.max(other.max_rel);
    }
}

/// `(batch 0, seq_len 1, head_dim 3)` for flat index `index` of `dims`.
pub(crate) fn coordinate(index: usize, dims: &[usize], axes: &[&str]) -> String {
    let mut rest = index;
    let mut at = vec![0; dims.len()];
    for (slot, &d) in at.iter_mut().zip(dims).rev() {
        *slot = rest % d.max(1);
        rest /= d.max(1);
    }
    let mut out = String::from("(");
    for (i, (axis, v)) in axes.iter().zip(&at).enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = write!(out, "{sep}{axis} {v}");
    }
    out.push(')');
    out
}

/// `(2, 3, 4)`.
pub(crate) fn dims_text(dims: &[usize]) -> String {
    let inner: Vec<String> = dims.iter().map(ToString::to_string).collect();
    format!("({})", inner.join(", "))
}

/// Compares `got` with the exact reference: a shape error as a shape error, otherwise the
/// first element past its bound, named by coordinate, with both values, the difference
/// and the tolerance. `exact` demands bit-equal values (a copy).
pub(crate) fn compare<T: Element>(
    what: &str,
    got: &Tensor<T>,
    want: &Expected,
    tolerance: Tolerance,
    exact: bool,
) -> Result<Errors, String> {
    if got.dims() != want.dims.as_slice() {
        return Err(format!(
            "shape error: {what} has shape {}, expected {} = ({})",
            dims_text(got.dims()),
            dims_text(&want.dims),
            want.axes.join(", ")
        ));
    }
    let mut errors = Errors::default();
    for (i, (&g, &w)) in got.as_slice().iter().zip(&want.values).enumerate() {
        let g = g.as_f64();
        let diff = (g - w).abs();
        let bound = if exact {
            0.0
        } else {
            tolerance.bound(want.terms[i].max(1), want.magnitude[i])
        };
        let bad = if exact {
            g != w
        } else {
            diff.is_nan() || diff > bound
        };
        if bad {
            return Err(format!(
                "{what} at {}: got {g:e}, expected {w:e}, |difference| {diff:e} > tolerance {bound:e}",
                coordinate(i, &want.dims, &want.axes)
            ));
        }
        errors.max_abs = errors.max_abs.max(diff);
        if w != 0.0 {
            errors.max_rel = errors.max_rel.max(diff / w.abs());
        }
    }
    Ok(errors)
}
