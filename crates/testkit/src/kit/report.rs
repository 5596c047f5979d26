//! The kit's report: every check with its case count, what it skipped, the seed and the
//! largest errors — as text and as JSON.

use std::fmt;

use serde_json::{Value, json};

/// A failed check: why, on which (shrunk) case, and the seed that reproduces it.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseFailure {
    /// What went wrong: the coordinate in the adapter's layout, both values, the
    /// difference and the tolerance; or the shape error; or the adapter's error.
    pub reason: String,
    /// The minimal failing case, every tensor with its shape and values.
    pub minimal_case: String,
    /// The seed of the run that found it (`TOKENLOOM_CONFORMANCE_SEED` replays it).
    pub seed: u64,
}

/// One check of one dtype.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The check, e.g. `rope f32` or `rope frequencies (yarn)`.
    pub name: String,
    /// How many cases ran (reference vectors and generated cases; shrinking not counted).
    pub cases: u64,
    /// The largest absolute error over the passing cases.
    pub max_abs: f64,
    /// The largest relative error over the passing cases (elements whose exact value is
    /// not zero).
    pub max_rel: f64,
    /// The failure, if any.
    pub failure: Option<CaseFailure>,
}

/// The whole run.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Report {
    /// The seed every generated case came from.
    pub seed: u64,
    /// The checks, in the order they ran.
    pub checks: Vec<CheckReport>,
    /// What was not checked and why (`dtype f16: not declared`, `rope backward: not
    /// declared`).
    pub skipped: Vec<String>,
}

impl Report {
    /// The number of cases over every check.
    #[must_use]
    pub fn cases(&self) -> u64 {
        self.checks.iter().map(|c| c.cases).sum()
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckReport> {
        self.checks.iter().filter(|c| c.failure.is_some())
    }

    /// Whether every check passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures().next().is_none()
    }

    /// `conformance: N checks, M cases, K failed`.
    #[must_use]
    pub fn summary(&self) -> String {
        format!(
            "conformance: {} checks, {} cases, {} failed",
            self.checks.len(),
            self.cases(),
            self.failures().count()
        )
    }

    /// The report as JSON: `{"seed", "checks": [{"name", "cases", "max_abs", "max_rel",
    /// "failure": null | {"reason", "minimal_case", "seed"}}], "skipped", "summary"}`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let checks: Vec<Value> = self
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "cases": c.cases,
                    "max_abs": c.max_abs,
                    "max_rel": c.max_rel,
                    "failure": c.failure.as_ref().map(|f| json!({
                        "reason": f.reason,
                        "minimal_case": f.minimal_case,
                        "seed": f.seed,
                    })),
                })
            })
            .collect();
        json!({
            "seed": self.seed,
            "checks": checks,
            "skipped": self.skipped,
            "summary": self.summary(),
        })
    }

    /// Writes [`to_json`](Report::to_json) to `path` (pretty-printed), for a CI job to
    /// keep or render.
    ///
    /// # Errors
    ///
    /// The I/O error of writing the file.
    pub fn write_json(&self, path: impl AsRef<std::path::Path>) -> std::io::Result<()> {
        std::fs::write(path, format!("{:#}\n", self.to_json()))
    }

    /// Fails the calling test with the whole report unless every check passed: the
    /// `cargo test` helper.
    ///
    /// # Panics
    ///
    /// When a check failed — this is an assertion, for tests.
    pub fn assert_passed(&self) {
        assert!(self.passed(), "{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tokenloom conformance report (seed {})", self.seed)?;
        for c in &self.checks {
            let status = if c.failure.is_some() { "FAIL" } else { "ok" };
            writeln!(
                f,
                "  {status:<4} {:<34} {:>5} cases  max |Δ| {:.1e}  max rel {:.1e}",
                c.name, c.cases, c.max_abs, c.max_rel
            )?;
        }
        for s in &self.skipped {
            writeln!(f, "  skip {s}")?;
        }
        for c in &self.checks {
            if let Some(failure) = &c.failure {
                writeln!(
                    f,
                    "\n`{}` failed (seed {}): {}\nminimal failing case:\n{}",
                    c.name, failure.seed, failure.reason, failure.minimal_case
                )?;
            }
        }
        write!(f, "{}", self.summary())
    }
}
