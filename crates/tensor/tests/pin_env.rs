//! `TOKENLOOM_PIN_THREADS`: read once per process, so each case runs in a child process
//! (this test binary again, with the variable set) and reports back through its exit code.

#![cfg(all(feature = "parallel", target_os = "linux"))]

use std::process::Command;

use tokenloom_tensor::{PIN_THREADS_ENV, PinError, for_each_chunk_mut, pin_threads_failure};

/// Set in the child: which case to run.
const CHILD: &str = "TOKENLOOM_PIN_ENV_TEST_CHILD";

/// The CPUs a thread may run on, from `/proc` (`Cpus_allowed_list`, e.g. `0-1` or `3`).
fn cpus_allowed(status: &str) -> String {
    let text = std::fs::read_to_string(status).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .expect("a Cpus_allowed_list line")
        .trim()
        .to_owned()
}

/// Runs a 2-thread kernel on a pool tokenloom did not build; returns what each of its
/// threads may run on afterwards.
fn kernel_on_a_foreign_pool() -> Vec<String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .expect("a pool");
    let mut rows = vec![0u32; 1 << 20];
    pool.install(|| for_each_chunk_mut(&mut rows, 4096, |i, row| row.fill(i as u32)));
    assert_eq!(rows[(1 << 20) - 1], 255, "the kernel ran");
    pool.broadcast(|_| cpus_allowed("/proc/thread-self/status"))
}

/// Whether this process is the child that runs `case`; if not, runs `case` in a child
/// with the variable set to `value` and checks that it passed.
fn is_child(case: &str, value: Option<&str>) -> bool {
    if std::env::var(CHILD).as_deref() == Ok(case) {
        return true;
    }
    let mut cmd = Command::new(std::env::current_exe().expect("this test binary"));
    cmd.args([case, "--exact", "--test-threads=1"])
        .env(CHILD, case);
    match value {
        Some(v) => cmd.env(PIN_THREADS_ENV, v),
        None => cmd.env_remove(PIN_THREADS_ENV),
    };
    let out = cmd.output().expect("the child runs");
    assert!(
        out.status.success(),
        "{case} with {PIN_THREADS_ENV}={value:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

#[test]
fn one_pins_each_thread_of_a_foreign_pool_to_one_cpu() {
    if !is_child(
        "one_pins_each_thread_of_a_foreign_pool_to_one_cpu",
        Some("1"),
    ) {
        return;
    }
    let main = cpus_allowed("/proc/self/status");
    let placed = kernel_on_a_foreign_pool();
    assert!(
        pin_threads_failure().is_none(),
        "{:?}",
        pin_threads_failure()
    );
    for (i, cpus) in placed.iter().enumerate() {
        assert!(
            cpus.parse::<usize>().is_ok(),
            "pool thread {i} may run on {cpus} (main thread: {main})"
        );
    }
    if main.contains(['-', ',']) {
        assert_ne!(placed[0], placed[1], "both threads on one CPU");
    }
}

#[test]
fn unset_leaves_the_pool_alone() {
    if !is_child("unset_leaves_the_pool_alone", None) {
        return;
    }
    let main = cpus_allowed("/proc/self/status");
    for cpus in kernel_on_a_foreign_pool() {
        assert_eq!(cpus, main);
    }
    assert!(pin_threads_failure().is_none());
}

#[test]
fn another_value_is_reported_and_pins_nothing() {
    if !is_child("another_value_is_reported_and_pins_nothing", Some("true")) {
        return;
    }
    let main = cpus_allowed("/proc/self/status");
    for cpus in kernel_on_a_foreign_pool() {
        assert_eq!(cpus, main);
    }
    let failure = pin_threads_failure().expect("the bad value is kept");
    assert!(
        matches!(failure, PinError::Setting { value } if value == "true"),
        "{failure}"
    );
    assert!(tokenloom_tensor::pin_threads_requested().is_err());
}
