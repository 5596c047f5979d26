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

use std::path::{Path, PathBuf};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokenloom_embedding::{AdamW, EmbeddingError, EmbeddingOptions, functional};
use tokenloom_io::{
    GgufFile, GgufWriteTensor, SafetensorsFile, gguf_bytes, quantize_q8_0, write_safetensors,
};
use tokenloom_tensor::{Accumulate, Element, Tensor, bf16};

use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::files::merge_shards;
use crate::head::VocabParallelHead;
use crate::shard::VocabShard;

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

const VOCAB_SIZE: usize = 37;
const N_EMBD: usize = 8;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// A `(VOCAB_SIZE, N_EMBD)` table of values in `[-1, 1)`, the same on every rank.
fn full_table<T: Element>(seed: u64) -> Vec<T> {
    let mut rng = rng(seed);
    (0..VOCAB_SIZE * N_EMBD)
        .map(|_| T::from_f64_lossy(rng.random_range(-1.0..1.0)))
        .collect()
}

/// `(batch, seq_len)` ids with repeats, the first and last rows, and `extra` ids.
fn ids(batch: usize, seq_len: usize, seed: u64) -> Vec<u32> {
    let mut rng = rng(seed);
    let mut ids: Vec<u32> = (0..batch * seq_len)
        .map(|_| rng.random_range(0..VOCAB_SIZE as u32))
        .collect();
    ids[0] = 0;
    ids[1] = VOCAB_SIZE as u32 - 1;
    ids[2] = ids[3];
    ids
}

fn same_bits<T: Element>(a: &[T], b: &[T]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits64() == y.to_bits64())
}

/// `max |a − b| / max |b|` (0 when both are 0).
fn relative_error<T: Element>(a: &[T], b: &[T]) -> f64 {
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

fn shard_rows<T: Element>(full: &[T], shard: VocabShard, n_embd: usize) -> &[T] {
    &full[shard.start() * n_embd..shard.end() * n_embd]
}

fn forward<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let mut table = full_table::<T>(1);
    // Row 5: negative zeros and a NaN with a payload, which a summing all-reduce would
    // change; they must arrive bit for bit.
    for (i, v) in table[5 * N_EMBD..6 * N_EMBD].iter_mut().enumerate() {
        *v = if i == 3 {
            T::from_bits64(T::from_f64_lossy(f64::NAN).to_bits64() | 1)
        } else {
            T::from_f64_lossy(-0.0)
        };
    }
    let mut ids = ids(3, 11, 2);
    ids[7] = 5;
    let emb = VocabParallelEmbedding::from_full(
        comm,
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        EmbeddingOptions::default(),
    )?;
    let expected = functional::lookup(
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        (&ids[..], [3, 11]),
        None,
    )?;
    let got = emb.forward(comm, (&ids[..], [3, 11]))?;
    report.check(
        got.dims() == [3, 11, N_EMBD] && same_bits(got.as_slice(), expected.as_slice()),
        || {
            format!(
                "forward {:?}: output differs from the single-process lookup",
                T::DTYPE
            )
        },
    );
    // The same ids as i64, one sequence.
    let ids64: Vec<i64> = ids[..11].iter().map(|&i| i64::from(i)).collect();
    let got = emb.forward(comm, &ids64[..])?;
    report.check(
        same_bits(got.as_slice(), &expected.as_slice()[..11 * N_EMBD]),
        || format!("forward {:?} with i64 ids differs", T::DTYPE),
    );
    Ok(())
}

fn backward<C: Communicator + ?Sized>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let table = full_table::<f32>(3);
    let ids = ids(4, 9, 4);
    let grad_out = {
        let mut rng = rng(5);
        (0..ids.len() * N_EMBD)
            .map(|_| rng.random_range(-1.0f32..1.0))
            .collect::<Vec<_>>()
    };
    for (padding_idx, scale_grad_by_freq) in [
        (None, false),
        (Some(ids[2] as usize), true),
        (Some(VOCAB_SIZE - 1), false),
    ] {
        let options = EmbeddingOptions {
            padding_idx,
            max_norm: None,
            scale_grad_by_freq,
            ..EmbeddingOptions::default()
        };
        let mut emb =
            VocabParallelEmbedding::from_full(comm, (&table[..], [VOCAB_SIZE, N_EMBD]), options)?;
        let mut expected = vec![0.0f32; VOCAB_SIZE * N_EMBD];
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            functional::backward_dense(
                (&ids[..], [4, 9]),
                (&grad_out[..], [4, 9, N_EMBD]),
                (&mut expected[..], [VOCAB_SIZE, N_EMBD]),
                &options,
                accumulate,
            )?;
            emb.backward(
                comm,
                (&ids[..], [4, 9]),
                (&grad_out[..], [4, 9, N_EMBD]),
                accumulate,
            )?;
            report.check(
                same_bits(
                    emb.grad().as_slice(),
                    shard_rows(&expected, emb.shard(), N_EMBD),
                ),
                || {
                    format!(
                        "backward ({options:?}, {accumulate:?}): rows {:?} differ",
                        emb.shard().range()
                    )
                },
            );
        }
    }
    Ok(())
}

fn optimizer<C: Communicator + ?Sized>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let mut table = full_table::<f32>(6);
    let ids = ids(2, 13, 7);
    let grad_out: Vec<f32> = (0..ids.len() * N_EMBD)
        .map(|i| ((i % 17) as f32 - 8.0) / 8.0)
        .collect();
    let options = EmbeddingOptions {
        padding_idx: Some(ids[5] as usize),
        ..EmbeddingOptions::default()
    };
    let mut emb =
        VocabParallelEmbedding::from_full(comm, (&table[..], [VOCAB_SIZE, N_EMBD]), options)?;
    let (mut opt_shard, mut opt_full) = (AdamW::new(0.01), AdamW::new(0.01));
    let mut grad = vec![0.0f32; table.len()];
    for _ in 0..3 {
        emb.backward(
            comm,
            (&ids[..], [2, 13]),
            (&grad_out[..], [2, 13, N_EMBD]),
            Accumulate::Replace,
        )?;
        emb.step(&mut opt_shard)?;
        functional::backward_dense(
            (&ids[..], [2, 13]),
            (&grad_out[..], [2, 13, N_EMBD]),
            (&mut grad[..], [VOCAB_SIZE, N_EMBD]),
            &options,
            Accumulate::Replace,
        )?;
        functional::step_dense(
            &mut opt_full,
            (&mut table[..], [VOCAB_SIZE, N_EMBD]),
            (&grad[..], [VOCAB_SIZE, N_EMBD]),
            options.padding_idx,
        )?;
    }
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(&table, emb.shard(), N_EMBD),
        ),
        || "AdamW on the shard: rows differ from the single-process step".into(),
    );
    Ok(())
}

/// The single-process head: loss, weight gradient and hidden gradient, from the full
/// weight, with the cross-entropy in f64.
fn reference_head<T: Element>(
    weight: &[T],
    hidden: &[T],
    targets: &[i64],
    logit_scale: f64,
) -> Result<(f64, Vec<T>, Vec<T>), DistributedError> {
    let rows = targets.len();
    let logits = functional::logits(
        (hidden, [rows, N_EMBD]),
        (weight, [VOCAB_SIZE, N_EMBD]),
        logit_scale,
    )?;
    let counted: Vec<usize> = (0..rows).filter(|&r| targets[r] >= 0).collect();
    let mut loss = 0.0;
    let mut grad_logits = vec![T::zero(); rows * VOCAB_SIZE];
    for &r in &counted {
        let row = &logits.as_slice()[r * VOCAB_SIZE..(r + 1) * VOCAB_SIZE];
        let m = row
            .iter()
            .map(|x| x.as_f64())
            .fold(f64::NEG_INFINITY, f64::max);
        let s: f64 = row.iter().map(|x| (x.as_f64() - m).exp()).sum();
        let t = targets[r] as usize;
        loss += s.ln() + m - row[t].as_f64();
        for (c, g) in grad_logits[r * VOCAB_SIZE..(r + 1) * VOCAB_SIZE]
            .iter_mut()
            .enumerate()
        {
            let p = (row[c].as_f64() - m).exp() / s;
            *g = T::from_f64_lossy((p - f64::from(u8::from(c == t))) / counted.len() as f64);
        }
    }
    let mut grad_weight = vec![T::zero(); weight.len()];
    let mut grad_hidden = vec![T::zero(); hidden.len()];
    functional::logits_backward(
        (hidden, [rows, N_EMBD]),
        (weight, [VOCAB_SIZE, N_EMBD]),
        (&grad_logits[..], [rows, VOCAB_SIZE]),
        logit_scale,
        (&mut grad_weight[..], [VOCAB_SIZE, N_EMBD]),
        (&mut grad_hidden[..], [rows, N_EMBD]),
    )?;
    Ok((loss / counted.len() as f64, grad_weight, grad_hidden))
}

fn head<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    report: &mut Report,
    tolerance: f64,
) -> Result<(), DistributedError> {
    let table = full_table::<T>(8);
    let head_table = full_table::<T>(9);
    let hidden: Vec<T> = full_table::<T>(10)[..10 * N_EMBD].to_vec();
    let targets: Vec<i64> = vec![3, 36, 0, -100, 17, 17, 8, 29, -100, 1];
    for tied in [true, false] {
        let logit_scale = if tied { 0.5 } else { 1.0 };
        let mut emb = VocabParallelEmbedding::from_full(
            comm,
            (&table[..], [VOCAB_SIZE, N_EMBD]),
            EmbeddingOptions::default(),
        )?;
        let mut head = if tied {
            VocabParallelHead::tied(logit_scale)
        } else {
            let rows = shard_rows(&head_table, emb.shard(), N_EMBD).to_vec();
            let rows = Tensor::from_vec(rows, &[emb.shard().len(), N_EMBD])?;
            VocabParallelHead::untied(comm, &emb, rows, logit_scale)?
        };
        let weight = if tied { &table } else { &head_table };
        let (loss, grad_weight, grad_hidden) =
            reference_head(weight, &hidden, &targets, logit_scale)?;
        let only_loss = head.loss(comm, &emb, (&hidden[..], [10, N_EMBD]), &targets[..])?;
        let step =
            head.loss_and_backward(comm, &mut emb, (&hidden[..], [10, N_EMBD]), &targets[..])?;
        let what = if tied { "tied" } else { "untied" };
        let dtype = T::DTYPE;
        report.check(
            (step.loss - loss).abs() <= tolerance * loss.abs() && step.loss == only_loss,
            || {
                format!(
                    "{what} head {dtype:?}: loss {} vs single-process {loss}",
                    step.loss
                )
            },
        );
        let got_grad = if tied {
            emb.grad()
        } else {
            head.grad().unwrap_or(emb.grad())
        };
        let err = relative_error(
            got_grad.as_slice(),
            shard_rows(&grad_weight, emb.shard(), N_EMBD),
        );
        report.check(err <= tolerance, || {
            format!("{what} head {dtype:?}: weight gradient off by {err:e} relative")
        });
        let err = relative_error(step.grad_hidden.as_slice(), &grad_hidden);
        report.check(err <= tolerance, || {
            format!("{what} head {dtype:?}: hidden gradient off by {err:e} relative")
        });
    }
    Ok(())
}

/// `Ok(true)` when every rank returned `expected` (compared on this rank; the verdicts
/// are combined by the report totals).
fn expect_err<R: std::fmt::Debug>(
    got: Result<R, DistributedError>,
    expected: &DistributedError,
) -> bool {
    matches!(&got, Err(e) if e == expected)
}

fn errors<C: Communicator + ?Sized>(comm: &C, report: &mut Report) -> Result<(), DistributedError> {
    let table = full_table::<f32>(11);
    let emb = VocabParallelEmbedding::from_full(
        comm,
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        EmbeddingOptions::default(),
    )?;

    // An id outside the vocabulary: the single-process error, on every rank.
    let mut bad = ids(2, 6, 12);
    bad[8] = VOCAB_SIZE as u32;
    let single = functional::lookup((&table[..], [VOCAB_SIZE, N_EMBD]), (&bad[..], [2, 6]), None)
        .unwrap_err();
    let ok = matches!(
        single,
        EmbeddingError::TokenOutOfRange {
            token: 37,
            batch: 1,
            position: 2,
            ..
        }
    );
    let got = emb.forward(comm, (&bad[..], [2, 6]));
    report.check(ok && expect_err(got, &single.into()), || {
        "out-of-range id: not the single-process error".into()
    });
    let negative = [3i64, -2];
    let got = emb.forward(comm, &negative[..]);
    let expected = EmbeddingError::TokenOutOfRange {
        token: -2,
        batch: 0,
        position: 1,
        vocab_size: VOCAB_SIZE,
    };
    report.check(expect_err(got, &expected.into()), || {
        "negative id: wrong error".into()
    });

    // A target outside the vocabulary.
    let head = VocabParallelHead::<f32>::tied(1.0);
    let hidden = &table[..2 * N_EMBD];
    let got = head.loss(comm, &emb, (hidden, [2, N_EMBD]), &[1i64, 40]);
    let expected = DistributedError::TargetOutOfRange {
        target: 40,
        row: 1,
        vocab_size: VOCAB_SIZE,
    };
    report.check(expect_err(got, &expected), || {
        "out-of-range target: wrong error".into()
    });

    if comm.size() > 1 {
        let last = comm.size() - 1;
        // Ids that differ on the last rank.
        let mut ids = ids(1, 5, 13);
        if comm.rank() == last {
            ids[4] = (ids[4] + 1) % VOCAB_SIZE as u32;
        }
        let got = emb.forward(comm, &ids[..]);
        report.check(
            expect_err(got, &DistributedError::NotReplicated { what: "token ids" }),
            || "ids differing on one rank: not reported on every rank".into(),
        );
        // A configuration that differs on rank 1 (n_embd 9 instead of 8).
        let shard = emb.shard();
        let n_embd = if comm.rank() == 1 { 9 } else { N_EMBD };
        let rows = Tensor::from_vec(vec![0.0f32; shard.len() * n_embd], &[shard.len(), n_embd])?;
        let got = VocabParallelEmbedding::new(comm, VOCAB_SIZE, rows, EmbeddingOptions::default());
        let expected = DistributedError::ConfigMismatch {
            field: "n_embd",
            min: 8,
            max: 9,
        };
        report.check(expect_err(got, &expected), || {
            "mismatched n_embd: not reported on every rank".into()
        });
    }
    Ok(())
}

fn files<C: Communicator + ?Sized>(
    comm: &C,
    config: &CheckConfig,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let dir = &config.scratch_dir;
    let st_path = dir.join("table.safetensors");
    let gguf_path = dir.join("table.gguf");
    // 64 columns: whole Q8_0 blocks.
    let n_embd = 64;
    let mut rng = rng(14);
    let table: Vec<f32> = (0..VOCAB_SIZE * n_embd)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let written = if comm.rank() == 0 {
        write_files(dir, &st_path, &gguf_path, &table, n_embd)
    } else {
        Ok(())
    };
    crate::agree::agree(comm, "writing the check files", &[], &[], written)?;

    let emb = VocabParallelEmbedding::<f32>::load(
        comm,
        &st_path,
        "embed.weight",
        EmbeddingOptions::default(),
    )?;
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(&table, emb.shard(), n_embd),
        ),
        || "sharded safetensors load: rows differ".into(),
    );
    if comm.size() > 1 {
        // A file only the last rank cannot read: its I/O error there, PeerFailed elsewhere.
        let last = comm.size() - 1;
        let path = if comm.rank() == last {
            dir.join("missing.safetensors")
        } else {
            st_path.clone()
        };
        let got = VocabParallelEmbedding::<f32>::load(
            comm,
            &path,
            "embed.weight",
            EmbeddingOptions::default(),
        );
        let ok = if comm.rank() == last {
            matches!(got, Err(DistributedError::Io(_)))
        } else {
            expect_err(
                got,
                &DistributedError::PeerFailed {
                    rank: last,
                    step: "loading",
                },
            )
        };
        report.check(ok, || {
            "a file only one rank cannot read: not reported on every rank".into()
        });
    }
    let quantized = VocabParallelEmbedding::<f32>::load(
        comm,
        &gguf_path,
        "token_embd.weight",
        EmbeddingOptions::default(),
    )?;
    let full = GgufFile::open(&gguf_path)?.load::<f32>("token_embd.weight")?;
    report.check(
        same_bits(
            quantized.weight().as_slice(),
            shard_rows(full.as_slice(), quantized.shard(), n_embd),
        ),
        || "sharded GGUF (Q8_0) load: rows differ from the full dequantized table".into(),
    );

    // Save shards, merge on rank 0, compare bit for bit.
    let shard_path = |rank: usize| dir.join(format!("shard-{rank}-of-{}.safetensors", comm.size()));
    let saved = emb.save_shard(shard_path(comm.rank()), "embed.weight");
    crate::agree::agree(comm, "saving shards", &[], &[], saved)?;
    if comm.rank() == 0 {
        let merged_path = dir.join("merged.safetensors");
        let shards: Vec<PathBuf> = (0..comm.size()).rev().map(shard_path).collect();
        let merged = merge_shards(&shards, "embed.weight", &merged_path)
            .and_then(|_| Ok(SafetensorsFile::open(&merged_path)?.load::<f32>("embed.weight")?));
        report.check(matches!(&merged, Ok(m) if same_bits(m.as_slice(), &table) && m.dims() == [VOCAB_SIZE, n_embd]), || {
            format!("merged shards differ from the table: {merged:?}")
        });
        if comm.size() > 1 {
            let gap = merge_shards(&shards[1..], "embed.weight", dir.join("gap.safetensors"));
            report.check(
                matches!(gap, Err(DistributedError::ShardsDoNotTile { .. })),
                || "a missing shard was not reported".into(),
            );
        }
    }
    comm.barrier()?;
    Ok(())
}

fn write_files(
    dir: &Path,
    st_path: &Path,
    gguf_path: &Path,
    table: &[f32],
    n_embd: usize,
) -> Result<(), DistributedError> {
    std::fs::create_dir_all(dir).map_err(|e| tokenloom_io::IoError::io(dir, e))?;
    let view = tokenloom_tensor::TensorView::new(table, &[VOCAB_SIZE, n_embd])?;
    write_safetensors(st_path, &[("embed.weight", view)])?;
    let gguf = gguf_bytes(
        &[],
        &[GgufWriteTensor {
            name: "token_embd.weight".into(),
            ggml_type: 8,
            ne: vec![n_embd as u64, VOCAB_SIZE as u64],
            data: quantize_q8_0(table),
        }],
    );
    std::fs::write(gguf_path, gguf).map_err(|e| tokenloom_io::IoError::io(gguf_path, e))?;
    Ok(())
}

fn real_table<C: Communicator + ?Sized>(
    comm: &C,
    path: &Path,
    name: &str,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let emb = VocabParallelEmbedding::<f32>::load(comm, path, name, EmbeddingOptions::default())?;
    let shard = emb.shard();
    let n_embd = emb.n_embd();
    // The check alone reads the whole table, to compare.
    let full = if path.extension().is_some_and(|e| e == "gguf") {
        GgufFile::open(path)?.load::<f32>(name)?
    } else {
        SafetensorsFile::open(path)?.load::<f32>(name)?
    };
    report.check(
        same_bits(
            emb.weight().as_slice(),
            shard_rows(full.as_slice(), shard, n_embd),
        ),
        || {
            format!(
                "{}: shard rows {:?} of {name} differ from the full table",
                path.display(),
                shard.range()
            )
        },
    );
    // A forward pass over ids spread through the real vocabulary.
    let vocab_size = shard.vocab_size();
    let ids: Vec<u32> = (0..64)
        .map(|i| ((i * 7919 + 13) % vocab_size) as u32)
        .collect();
    let got = emb.forward(comm, &ids[..])?;
    let expected = functional::lookup(&full, &ids[..], None)?;
    report.check(same_bits(got.as_slice(), expected.as_slice()), || {
        format!("{}: forward over the real table differs", path.display())
    });
    Ok(())
}
