//! The conformance kit, second form: adapters that declare what they support, checks per
//! dtype with tolerances derived from the dtype, shrinking to small cases, and a report.
//!
//! A framework implements one trait per operation it has ([`LookupAdapter`],
//! [`BackwardAdapter`], [`RopeAdapter`], [`FrequencyAdapter`]), declares its
//! [`Capabilities`], and runs the [`Kit`]:
//!
//! ```
//! use tokenloom_testkit::kit::{AdapterError, Capabilities, Kit, LookupAdapter};
//! use tokenloom_testkit::kit::reexports::{DType, Element, Tensor};
//!
//! /// A framework's lookup: a plain loop that refuses ids past the table.
//! struct MyLookup;
//!
//! impl LookupAdapter for MyLookup {
//!     fn capabilities(&self) -> Capabilities {
//!         Capabilities::new(&[DType::F32, DType::BF16])
//!     }
//!     fn lookup<T: Element>(&self, weight: &Tensor<T>, ids: &Tensor<u32>) -> Result<Tensor<T>, AdapterError> {
//!         let (vocab_size, n_embd) = (weight.dims()[0], weight.dims()[1]);
//!         let mut out = Vec::new();
//!         for &id in ids.as_slice() {
//!             let row = id as usize;
//!             if row >= vocab_size {
//!                 return Err(AdapterError::new(format!("id {id} ≥ vocab_size {vocab_size}")));
//!             }
//!             out.extend_from_slice(&weight.as_slice()[row * n_embd..][..n_embd]);
//!         }
//!         let dims = [ids.dims()[0], ids.dims()[1], n_embd];
//!         Tensor::from_vec(out, &dims).map_err(AdapterError::new)
//!     }
//! }
//!
//! let mut kit = Kit::new().with_seed(7).with_cases(16);
//! kit.check_lookup(&MyLookup);
//! let report = kit.finish();
//! assert!(report.passed(), "{report}");
//! // f32 and bf16: the lookup, and the refusal of ids ≥ vocab_size
//! assert!(report.summary().starts_with("conformance: 4 checks"));
//! ```
//!
//! The seed comes from `TOKENLOOM_CONFORMANCE_SEED` when set (to replay a failure),
//! otherwise it is drawn at random; the report prints it. The number of generated cases
//! per check follows `PROPTEST_CASES` (default 64).

mod absolute;
mod adapter;
mod cases;
mod checks;
mod frequencies;
mod head;
mod report;
mod rope;
mod runner;
mod tolerance;
pub mod tokenloom_adapter;

use std::path::PathBuf;

pub use adapter::{
    AdapterError, BackwardAdapter, BackwardOptions, BatchAdapter, Capabilities, Frequencies,
    FrequencyAdapter, LogitsAdapter, LookupAdapter, PaddedBatch, PaddingSide, Positions,
    PositionsKind, RopeAdapter, RopeCall, SinusoidalAdapter,
};
pub use report::{CaseFailure, CheckReport, Report};
pub use tolerance::Tolerance;

use tokenloom_tensor::DType;

/// The types the kit's signatures use, re-exported so an adapter needs no other
/// tokenloom crate in its `Cargo.toml`.
pub mod reexports {
    pub use tokenloom_positions::{
        QkLayout, RopeConfig, RopeLayout, RopeScaling, SinusoidalVariant,
    };
    pub use tokenloom_tensor::{DType, Element, Tensor, bf16, f16};
}

/// Every dtype the kit can check.
const ALL_DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

/// A conformance run: the checks called on it so far, and their report.
#[derive(Clone, Debug)]
pub struct Kit {
    cases: u32,
    regressions: Option<PathBuf>,
    report: Report,
}

impl Default for Kit {
    fn default() -> Self {
        Self::new()
    }
}

impl Kit {
    /// A run with the seed from `TOKENLOOM_CONFORMANCE_SEED` (or a random one) and
    /// `PROPTEST_CASES` cases per check (default 64).
    #[must_use]
    pub fn new() -> Self {
        let seed = std::env::var("TOKENLOOM_CONFORMANCE_SEED")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(runner::random_seed);
        Self {
            cases: crate::cases_or(64),
            regressions: None,
            report: Report {
                seed,
                ..Report::default()
            },
        }
    }

    /// Generates every case from `seed`.
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.report.seed = seed;
        self
    }

    /// Runs `cases` generated cases per check.
    #[must_use]
    pub fn with_cases(mut self, cases: u32) -> Self {
        self.cases = cases.max(1);
        self
    }

    /// Records the seed of every failing check in `path` and replays the recorded seeds
    /// of a check before its fresh cases (a regression file to commit).
    #[must_use]
    pub fn with_regressions(mut self, path: impl Into<PathBuf>) -> Self {
        self.regressions = Some(path.into());
        self
    }

    /// The report so far.
    #[must_use]
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Ends the run.
    #[must_use]
    pub fn finish(self) -> Report {
        self.report
    }

    /// Records `dtype`s the adapter did not declare as skipped, and returns the declared
    /// ones the kit knows.
    fn declared_dtypes(&mut self, check: &str, capabilities: &Capabilities) -> Vec<DType> {
        for dtype in ALL_DTYPES {
            if !capabilities.declares_dtype(dtype) {
                self.report
                    .skipped
                    .push(format!("{check} {dtype}: dtype not declared"));
            }
        }
        ALL_DTYPES
            .into_iter()
            .filter(|d| capabilities.declares_dtype(*d))
            .collect()
    }
}

/// Calls `$body` with `$t` bound to the element type of `$dtype`.
macro_rules! with_dtype {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            tokenloom_tensor::DType::F64 => {
                type $t = f64;
                $body
            }
            tokenloom_tensor::DType::F16 => {
                type $t = tokenloom_tensor::f16;
                $body
            }
            tokenloom_tensor::DType::BF16 => {
                type $t = tokenloom_tensor::bf16;
                $body
            }
            _ => {
                type $t = f32;
                $body
            }
        }
    };
}
pub(crate) use with_dtype;
