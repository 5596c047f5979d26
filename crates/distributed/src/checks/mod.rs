//! The vocab-parallel layer checked against the single-process layer, on whatever
//! communicator it runs: the tests run these checks on 1, 2 and 3 ranks over threads and
//! over MPI, and `examples/vocab_parallel.rs` runs them under `mpirun` (run it on your
//! own cluster to validate an MPI installation).
//!
//! Every rank builds the same full table and inputs from a fixed seed, runs the
//! distributed operation, and compares its part with the single-process result computed
//! locally from the full table:
//!
//! - forward: bit-identical (f32, f64, bf16; `-0.0` and NaN payloads included);
//! - dense backward with `padding_idx` and `scale_grad_by_freq`, replace and add:
//!   bit-identical rows;
//! - AdamW steps on the shard: bit-identical rows;
//! - tied and untied heads: loss and gradients within `1e-6` relative (largest absolute
//!   difference over the largest reference magnitude) in f32, `1e-12` in f64;
//! - errors: the same typed error on every rank for an out-of-range id or target, a
//!   non-replicated input, mismatched configurations, and a file only one rank fails to
//!   read;
//! - files: sharded loading from safetensors (f32) and GGUF (Q8_0) equals the rows of the
//!   full load; saved shards merge back to the original table bit for bit;
//! - optionally, real checkpoints ([`CheckConfig::real_tables`]).

use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenloom_tensor::{Element, bf16};

use crate::comm::Communicator;
use crate::error::DistributedError;
use crate::shard::VocabShard;

mod errors;
mod files;
mod layers;

use errors::errors;
use files::{files, real_table};
use layers::{backward, forward, head, optimizer};

/// Where the checks may write, and which real checkpoints to shard.
#[derive(Clone, Debug, Default)]
pub struct CheckConfig {
    /// A directory every rank can read and write (the same path on every rank; on one
    /// machine any temporary directory). Rank 0 creates it.
    pub scratch_dir: PathBuf,
    /// Real checkpoints: `(file, table name)`, e.g. SmolLM2's GGUF and
    /// `token_embd.weight`. Each rank loads its shard and compares it with the rows of
    /// the full table.
    pub real_tables: Vec<(PathBuf, String)>,
}

/// The outcome of [`run`] on one rank.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Comparisons that held on this rank.
    pub passed: usize,
    /// Comparisons that failed on this rank, described.
    pub failures: Vec<String>,
}

impl Report {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what());
        }
    }

    /// `(passed, failed)` summed over all ranks (the same on every rank).
    ///
    /// # Errors
    ///
    /// [`DistributedError::Comm`].
    pub fn totals<C: Communicator + ?Sized>(
        &self,
        comm: &C,
    ) -> Result<(usize, usize), DistributedError> {
        let mut counts = [self.passed as f64, self.failures.len() as f64];
        comm.all_reduce_sum_f64(&mut counts)?;
        Ok((counts[0] as usize, counts[1] as usize))
    }
}

/// Runs every check on this rank. Every rank of the group must call it.
///
/// # Errors
///
/// Only for failures of the harness itself (the scratch directory, a collective); a
/// wrong result is a failure in the [`Report`].
pub fn run<C: Communicator + ?Sized>(
    comm: &C,
    config: &CheckConfig,
) -> Result<Report, DistributedError> {
    let mut report = Report::default();
    forward::<C, f32>(comm, &mut report)?;
    forward::<C, f64>(comm, &mut report)?;
    forward::<C, bf16>(comm, &mut report)?;
    backward(comm, &mut report)?;
    optimizer(comm, &mut report)?;
    head::<C, f32>(comm, &mut report, 1e-6)?;
    head::<C, f64>(comm, &mut report, 1e-12)?;
    errors(comm, &mut report)?;
    files(comm, config, &mut report)?;
    for (path, name) in &config.real_tables {
        real_table(comm, path, name, &mut report)?;
    }
    comm.barrier()?;
    Ok(report)
}

pub(super) const VOCAB_SIZE: usize = 37;
pub(super) const N_EMBD: usize = 8;

pub(super) fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `(VOCAB_SIZE, N_EMBD)` table of values in `[-1, 1)`, the same on every rank.
pub(super) fn full_table<T: Element>(seed: u64) -> Vec<T> {
    let mut rng = rng(seed);
    (0..VOCAB_SIZE * N_EMBD)
        .map(|_| T::from_f64_lossy(rng.random_range(-1.0..1.0)))
        .collect()
}

/// `(batch, seq_len)` ids with repeats, the first and last rows, and `extra` ids.
pub(super) fn ids(batch: usize, seq_len: usize, seed: u64) -> Vec<u32> {
    let mut rng = rng(seed);
    let mut ids: Vec<u32> = (0..batch * seq_len)
        .map(|_| rng.random_range(0..VOCAB_SIZE as u32))
        .collect();
    ids[0] = 0;
    ids[1] = VOCAB_SIZE as u32 - 1;
    ids[2] = ids[3];
    ids
}

pub(super) fn same_bits<T: Element>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits64() == y.to_bits64())
}

/// `max |a − b| / max |b|` (0 when both are 0).
pub(super) fn relative_error<T: Element>(a: &[T], b: &[T]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.as_f64().abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x.as_f64() - y.as_f64()).abs()));
    if a.len() != b.len() {
        f64::INFINITY
    } else if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

pub(super) fn shard_rows<T: Element>(full: &[T], shard: VocabShard, n_embd: usize) -> &[T] {
    &full[shard.start() * n_embd..shard.end() * n_embd]
}

/// `Ok(true)` when every rank returned `expected` (compared on this rank; the verdicts
/// are combined by the report totals).
pub(super) fn expect_err<R: std::fmt::Debug>(
    got: Result<R, DistributedError>,
    expected: &DistributedError,
) -> bool {
    matches!(&got, Err(e) if e == expected)
}
