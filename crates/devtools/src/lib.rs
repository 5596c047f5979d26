//! tokenloom's development tools, kept apart from the facade so that the README's
//! walkthrough does not compile them:
//!
//! - [`tutorial_gen`]: every number printed in `docs/tutorial.md` and every figure in
//!   `docs/figures/` (`cargo run --release -p tokenloom-devtools --example tutorial --
//!   --write`; `tests/tutorial_drift.rs` fails when the files differ), and the training
//!   demo (`--example train`);
//! - [`gemm_peer`]: the GEMMs the benchmark compares tokenloom's projection with;
//! - [`plain_loops`]: the plain loops of `benches/vs_plain.rs`, the baselines every
//!   kernel is held to;
//! - `benches/kernels.rs` (`cargo bench -p tokenloom-devtools --bench kernels`) and
//!   `examples/bench_report.rs`, which turns its results into
//!   `docs/benchmarks/criterion-2026-11-28.md`'s tables.

pub mod drift;
pub mod gemm_peer;
pub mod interleave;
pub mod plain_loops;
pub mod tutorial_gen;

/// The workspace root (where `docs/` and `target/` are).
#[must_use]
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
