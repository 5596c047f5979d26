//! The vocab-parallel embedding and head under MPI: every check of
//! `tokenloom_distributed::checks` against the single-process layer, then the time of a
//! training step and the bytes it all-reduces.
//!
//! ```text
//! cargo build --release -p tokenloom-distributed --features mpi --example vocab_parallel
//! mpirun -np 3 target/release/examples/vocab_parallel [--real FILE:TABLE]... [--step]
//! ```
//!
//! The last line is `vocab-parallel: N checks passed on R ranks` (rank 0), or the
//! failures and exit code 1. `--panic-on-rank R` makes rank R panic after the first
//! collective, to show that the job aborts instead of hanging.

use std::cell::Cell;
use std::path::PathBuf;
use std::time::Instant;

use tokenloom_distributed::checks::{self, CheckConfig};
use tokenloom_distributed::{
    CommError, Communicator, MpiComm, VocabParallelEmbedding, VocabParallelHead, abort_on_panic,
};
use tokenloom_embedding::{EmbeddingOptions, Sgd};
use tokenloom_tensor::{Accumulate, Tensor};

/// Wraps a communicator and counts the bytes each rank contributes to collectives.
/// Wraps a communicator; counts the bytes each rank contributes to collectives and the
/// time spent in them.
struct Counting<'a, C> {
    inner: &'a C,
    bytes: Cell<usize>,
    seconds: Cell<f64>,
}

impl<C: Communicator> Counting<'_, C> {
    fn add<R>(&self, n: usize, op: impl FnOnce() -> R) -> R {
        let start = Instant::now();
        let r = op();
        self.seconds
            .set(self.seconds.get() + start.elapsed().as_secs_f64());
        self.bytes.set(self.bytes.get() + n);
        r
    }
}

impl<C: Communicator> Communicator for Counting<'_, C> {
    fn rank(&self) -> usize {
        self.inner.rank()
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
    fn all_reduce_bitor(&self, bytes: &mut [u8]) -> Result<(), CommError> {
        self.add(bytes.len(), || self.inner.all_reduce_bitor(bytes))
    }
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.add(8 * values.len(), || self.inner.all_reduce_sum_f64(values))
    }
    fn all_reduce_max_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.add(8 * values.len(), || self.inner.all_reduce_max_f64(values))
    }
    fn all_reduce_max_u64(&self, values: &mut [u64]) -> Result<(), CommError> {
        self.add(8 * values.len(), || self.inner.all_reduce_max_u64(values))
    }
    fn all_gather_f64(&self, local: &[f64], out: &mut [f64]) -> Result<(), CommError> {
        self.add(8 * local.len(), || self.inner.all_gather_f64(local, out))
    }
    fn broadcast(&self, root: usize, bytes: &mut [u8]) -> Result<(), CommError> {
        self.add(bytes.len(), || self.inner.broadcast(root, bytes))
    }
    fn barrier(&self) -> Result<(), CommError> {
        self.add(0, || self.inner.barrier())
    }
}

struct Args {
    real_tables: Vec<(PathBuf, String)>,
    panic_on_rank: Option<usize>,
    step: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        real_tables: Vec::new(),
        panic_on_rank: None,
        step: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--real" => {
                let spec = it.next().ok_or("--real needs FILE:TABLE")?;
                let (file, table) = spec
                    .rsplit_once(':')
                    .ok_or_else(|| format!("--real {spec}: expected FILE:TABLE"))?;
                args.real_tables.push((file.into(), table.into()));
            }
            "--panic-on-rank" => {
                let rank = it.next().ok_or("--panic-on-rank needs a rank")?;
                args.panic_on_rank = Some(
                    rank.parse()
                        .map_err(|e| format!("--panic-on-rank {rank}: {e}"))?,
                );
            }
            "--step" => args.step = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// Times a tied-head training step at a LLaMA-like shape and counts its all-reduced bytes.
fn time_step<C: Communicator>(comm: &C) -> Result<String, Box<dyn std::error::Error>> {
    let (vocab_size, n_embd, batch, seq_len) = (32_000usize, 1024usize, 4usize, 256usize);
    let counting = Counting {
        inner: comm,
        bytes: Cell::new(0),
        seconds: Cell::new(0.0),
    };
    // Each rank builds only its own rows (row i is a function of i).
    let shard = tokenloom_distributed::VocabShard::new(vocab_size, comm.rank(), comm.size())?;
    let rows: Vec<f32> = shard
        .range()
        .flat_map(|r| (0..n_embd).map(move |c| (((r * 31 + c * 17) % 101) as f32 - 50.0) / 500.0))
        .collect();
    let mut emb = VocabParallelEmbedding::new(
        comm,
        vocab_size,
        Tensor::from_vec(rows, &[shard.len(), n_embd])?,
        EmbeddingOptions::default(),
    )?;
    let mut head = VocabParallelHead::tied(1.0 / (n_embd as f64).sqrt());
    let ids: Vec<u32> = (0..batch * seq_len)
        .map(|i| ((i * 7919) % vocab_size) as u32)
        .collect();
    let targets: Vec<i64> = ids
        .iter()
        .map(|&i| i64::from((i + 1) % vocab_size as u32))
        .collect();
    let mut opt = Sgd::new(0.01);
    let mut times = Vec::new();
    let mut bytes = 0;
    let mut in_collectives = Vec::new();
    for round in 0..6 {
        comm.barrier()?;
        counting.bytes.set(0);
        counting.seconds.set(0.0);
        let start = Instant::now();
        emb.zero_grad();
        let x = emb.forward(&counting, (&ids[..], [batch, seq_len]))?;
        let hidden = x.reshape(&[batch * seq_len, n_embd])?;
        let step = head.loss_and_backward(&counting, &mut emb, &hidden, &targets[..])?;
        let grad = step.grad_hidden.reshape(&[batch, seq_len, n_embd])?;
        emb.backward(
            &counting,
            (&ids[..], [batch, seq_len]),
            &grad,
            Accumulate::Add,
        )?;
        emb.step(&mut opt)?;
        comm.barrier()?;
        if round > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
            in_collectives.push(counting.seconds.get() * 1e3);
        }
        bytes = counting.bytes.get();
    }
    times.sort_by(f64::total_cmp);
    in_collectives.sort_by(f64::total_cmp);
    Ok(format!(
        "step (vocab_size {vocab_size}, n_embd {n_embd}, {batch}x{seq_len} tokens, tied head, f32) on {} ranks: \
         median {:.1} ms (min {:.1}), of which {:.1} ms in collectives (rank 0); \
         {:.2} MB contributed to collectives per rank per step",
        comm.size(),
        times[times.len() / 2],
        times[0],
        in_collectives[in_collectives.len() / 2],
        bytes as f64 / 1e6
    ))
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("vocab_parallel: {e}");
            std::process::exit(2);
        }
    };
    let Some(universe) = mpi::initialize() else {
        eprintln!("vocab_parallel: MPI was already initialized");
        std::process::exit(1);
    };
    abort_on_panic();
    let comm = MpiComm::world(&universe);
    let code = match run(&comm, &args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("rank {}: {e}", comm.rank());
            1
        }
    };
    drop(universe);
    std::process::exit(code);
}

fn run(comm: &MpiComm, args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    // Rank 0 chooses the scratch directory and broadcasts its id.
    let mut id = u64::from(std::process::id()).to_le_bytes();
    comm.broadcast(0, &mut id)?;
    // Every rank must run the same checks: ranks started with different arguments
    // (`mpirun -np 1 A : -np 1 B`) would wait in different collectives forever.
    let hash = {
        use std::hash::{Hash, Hasher};
        // DefaultHasher::new() has fixed keys: the same arguments hash alike everywhere.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        std::env::args()
            .skip(1)
            .collect::<Vec<_>>()
            .hash(&mut hasher);
        hasher.finish()
    };
    let mut extremes = [hash, !hash];
    comm.all_reduce_max_u64(&mut extremes)?;
    if extremes[0] != hash || !extremes[1] != hash {
        return Err(format!(
            "the ranks were started with different arguments (rank {} has {:?}): every rank must run the same checks",
            comm.rank(),
            std::env::args().skip(1).collect::<Vec<_>>()
        )
        .into());
    }
    if args.panic_on_rank == Some(comm.rank()) {
        panic!("rank {} panics on purpose (--panic-on-rank)", comm.rank());
    }
    let scratch_dir = std::env::temp_dir().join(format!(
        "tokenloom-vocab-parallel-{}",
        u64::from_le_bytes(id)
    ));
    let config = CheckConfig {
        scratch_dir: scratch_dir.clone(),
        real_tables: args.real_tables.clone(),
    };
    let report = checks::run(comm, &config)?;
    let (passed, failed) = report.totals(comm)?;
    for failure in &report.failures {
        eprintln!("rank {}: FAILED: {failure}", comm.rank());
    }
    let timing = if args.step {
        Some(time_step(comm)?)
    } else {
        None
    };
    comm.barrier()?;
    if comm.rank() == 0 {
        let _ = std::fs::remove_dir_all(&scratch_dir);
        if let Some(t) = timing {
            println!("{t}");
        }
        for (file, table) in &args.real_tables {
            println!("sharded real table: {table} of {}", file.display());
        }
        if failed == 0 {
            println!(
                "vocab-parallel: {passed} checks passed on {} ranks",
                comm.size()
            );
        } else {
            println!(
                "vocab-parallel: {failed} checks FAILED ({passed} passed) on {} ranks",
                comm.size()
            );
        }
    }
    Ok(failed == 0)
}
