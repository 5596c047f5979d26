//! Running one check: seeded proptest runs (recorded regression seeds first), panics of
//! the adapter or the reference turned into failures, case counts and error maxima.

use std::cell::{Cell, RefCell};
use std::fs;
use std::hash::{BuildHasher, RandomState};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use super::Kit;
use super::report::{CaseFailure, CheckReport};
use super::tolerance::Errors;

/// A seed drawn from the process's random hasher keys and the clock.
pub(crate) fn random_seed() -> u64 {
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// The panic payload as text.
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

/// Runs `f`, turning a panic into an error message.
pub(crate) fn guarded<R>(f: impl FnOnce() -> Result<R, String>) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|p| Err(format!("panicked: {}", panic_text(&*p))))
}

fn recorded_seeds(path: &Path, check: &str) -> Vec<u64> {
    let Ok(text) = fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.rsplit_once('\t'))
        .filter(|(name, _)| *name == check)
        .filter_map(|(_, seed)| seed.trim().parse().ok())
        .collect()
}

fn record_seed(path: &Path, check: &str, seed: u64) -> std::io::Result<()> {
    if recorded_seeds(path, check).contains(&seed) {
        return Ok(());
    }
    let mut text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    text.push_str(&format!("{check}\t{seed}\n"));
    fs::write(path, text)
}

/// One check under way: cases and error maxima so far.
pub(crate) struct Check {
    pub report: CheckReport,
}

impl Check {
    pub fn new(name: String) -> Self {
        Self {
            report: CheckReport {
                name,
                cases: 0,
                max_abs: 0.0,
                max_rel: 0.0,
                failure: None,
            },
        }
    }

    /// Runs one fixed case (a reference vector), unless the check already failed.
    pub fn fixed(&mut self, seed: u64, case: &str, test: impl FnOnce() -> Result<Errors, String>) {
        if self.report.failure.is_some() {
            return;
        }
        self.report.cases += 1;
        match guarded(test) {
            Ok(e) => self.merge(e),
            Err(reason) => {
                self.report.failure = Some(CaseFailure {
                    reason,
                    minimal_case: format!("  reference case {case}"),
                    seed,
                });
            }
        }
    }

    fn merge(&mut self, e: Errors) {
        self.report.max_abs = self.report.max_abs.max(e.max_abs);
        self.report.max_rel = self.report.max_rel.max(e.max_rel);
    }

    /// Runs the generated cases of `strategy` through `test`, shrinking a failure to a
    /// minimal case that `describe` prints.
    pub fn generated<S: Strategy>(
        &mut self,
        kit: &Kit,
        strategy: &S,
        describe: impl Fn(&S::Value) -> String,
        test: impl Fn(&S::Value) -> Result<Errors, String>,
    ) {
        if self.report.failure.is_some() {
            return;
        }
        let mut seeds = kit
            .regressions
            .as_deref()
            .map(|p| recorded_seeds(p, &self.report.name))
            .unwrap_or_default();
        seeds.retain(|s| *s != kit.report.seed);
        seeds.push(kit.report.seed);
        for seed in seeds {
            self.run_seed(kit, seed, strategy, &describe, &test);
            if self.report.failure.is_some() {
                if let Some(path) = &kit.regressions
                    && let Err(e) = record_seed(path, &self.report.name, seed)
                    && let Some(failure) = &mut self.report.failure
                {
                    // The report says so: the replay is lost, not the failure.
                    failure.reason.push_str(&format!(
                        " (the seed could not be recorded in {}: {e})",
                        path.display()
                    ));
                }
                return;
            }
        }
    }

    fn run_seed<S: Strategy>(
        &mut self,
        kit: &Kit,
        seed: u64,
        strategy: &S,
        describe: &impl Fn(&S::Value) -> String,
        test: &impl Fn(&S::Value) -> Result<Errors, String>,
    ) {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config {
            cases: kit.cases,
            failure_persistence: None,
            max_shrink_iters: 20_000,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
        let calls = Cell::new(0u64);
        let first_failure = Cell::new(None::<u64>);
        let errors = RefCell::new(Errors::default());
        let result = runner.run(strategy, |value| {
            calls.set(calls.get() + 1);
            match guarded(|| test(&value)) {
                Ok(e) => {
                    if first_failure.get().is_none() {
                        errors.borrow_mut().merge(e);
                    }
                    Ok(())
                }
                Err(reason) => {
                    if first_failure.get().is_none() {
                        first_failure.set(Some(calls.get()));
                    }
                    Err(TestCaseError::fail(reason))
                }
            }
        });
        self.report.cases += first_failure.get().unwrap_or(calls.get());
        self.merge(*errors.borrow());
        self.report.failure = match result {
            Ok(()) => None,
            Err(TestError::Fail(reason, value)) => Some(CaseFailure {
                reason: reason.message().to_owned(),
                minimal_case: describe(&value),
                seed,
            }),
            Err(TestError::Abort(reason)) => Some(CaseFailure {
                reason: format!("aborted: {}", reason.message()),
                minimal_case: String::new(),
                seed,
            }),
        };
    }
}
