//! Library-wide settings of the C API: the version and the thread count of every call.

use std::ffi::c_char;
#[cfg(feature = "parallel")]
use std::sync::Arc;
use std::sync::{PoisonError, RwLock};

use tokenloom_tensor::{Par, with_par};

use crate::error::{Failure, TokenloomStatus, run};

/// The most threads [`tokenloom_set_num_threads`] accepts.
pub const TOKENLOOM_MAX_THREADS: usize = 1024;

/// Where the calls of this process run.
#[derive(Clone, Default)]
enum Threads {
    /// rayon's global pool (`RAYON_NUM_THREADS`, else one thread per core).
    #[default]
    Default,
    /// Every call on the calling thread.
    One,
    /// A pool of this many threads, kept by tokenloom.
    #[cfg(feature = "parallel")]
    Pool(Arc<rayon::ThreadPool>),
}

static THREADS: RwLock<Threads> = RwLock::new(Threads::Default);

/// A call's closure, sent to a pool thread that runs it while the calling thread waits.
#[cfg(feature = "parallel")]
struct CallOnPool<F>(F);

// SAFETY: `pool.install` blocks the calling thread until the closure has returned on the
// pool thread, so whatever the closure borrows (the caller's tensor descriptors and
// buffers, behind raw pointers) outlives its use and is used by one thread at a time;
// the closures of this crate touch no thread-local state (the last error is recorded by
// `run` on the calling thread, after the call). Exercised by
// `tests::calls_on_a_pool_of_their_own_give_the_same_bits` and the C program of
// tests/c (lookups on one thread and on a pool of three).
#[cfg(feature = "parallel")]
unsafe impl<F> Send for CallOnPool<F> {}

/// Runs `f` on the threads [`tokenloom_set_num_threads`] chose.
pub(crate) fn on_threads<R: Send>(f: impl FnOnce() -> R) -> R {
    let threads = THREADS
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    match threads {
        Threads::Default => f(),
        Threads::One => with_par(Par::Seq, f),
        #[cfg(feature = "parallel")]
        Threads::Pool(pool) => {
            let call = CallOnPool(f);
            pool.install(move || {
                let call = call;
                (call.0)()
            })
        }
    }
}

/// tokenloom's version, `major.minor.patch`, as a static NUL-terminated string (never
/// freed by the caller).
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Sets the threads of every later call in this process: 0 restores the default
/// (rayon's global pool: `RAYON_NUM_THREADS`, else one thread per core), 1 runs each call
/// on the calling thread, `n > 1` runs them on a pool of `n` threads tokenloom keeps
/// (results are bit-identical for any count). Calls already running keep their setting.
///
/// Returns `TOKENLOOM_STATUS_INVALID_ARGUMENT` for `n` above
/// [`TOKENLOOM_MAX_THREADS`], for `n > 1` in a build without the `parallel` feature, or
/// when the pool's threads cannot be started.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_set_num_threads(n: usize) -> TokenloomStatus {
    run(|| set_threads(n, false))
}

/// [`tokenloom_set_num_threads`], with each of the `n > 1` pool threads kept on one CPU
/// (thread `i` on the `i`-th CPU the calling thread may run on, modulo their count;
/// Linux only). For a process on a VM whose scheduler packs woken threads onto one busy
/// vCPU, where an unpinned pool's second thread waits on the first one's CPU
/// (docs/benchmarks/next-to-pytorch.md, "The second thread waits on the first one's CPU").
/// 0 and 1 mean what they mean there.
///
/// Returns `TOKENLOOM_STATUS_INVALID_ARGUMENT` as [`tokenloom_set_num_threads`] does,
/// and also off Linux or when the system refuses to pin a thread.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_set_num_threads_pinned(n: usize) -> TokenloomStatus {
    run(|| set_threads(n, true))
}

/// The body of [`tokenloom_set_num_threads`] and [`tokenloom_set_num_threads_pinned`].
fn set_threads(n: usize, pinned: bool) -> Result<(), Failure> {
    let invalid = |message: String| Failure::new(TokenloomStatus::InvalidArgument, message);
    if n > TOKENLOOM_MAX_THREADS {
        return Err(invalid(format!(
            "{n} threads: at most {TOKENLOOM_MAX_THREADS}"
        )));
    }
    let threads = match n {
        0 => Threads::Default,
        1 => Threads::One,
        #[cfg(feature = "parallel")]
        n if pinned => Threads::Pool(Arc::new(
            tokenloom_tensor::pinned_pool(n).map_err(|e| invalid(e.to_string()))?,
        )),
        #[cfg(feature = "parallel")]
        n => Threads::Pool(Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("tokenloom-{i}"))
                .build()
                .map_err(|e| invalid(format!("cannot start {n} threads: {e}")))?,
        )),
        #[cfg(not(feature = "parallel"))]
        n => {
            let _ = pinned;
            return Err(invalid(format!(
                "{n} threads: this build has no threads (feature `parallel` off)"
            )));
        }
    };
    *THREADS.write().unwrap_or_else(PoisonError::into_inner) = threads;
    Ok(())
}

/// Turns the spreading of split calls on (`on` = 1, the default) or off (`on` = 0) for
/// the whole process (Rust: `tokenloom_tensor::set_spread_threads`). On, a call split
/// across a pool keeps its parts on different CPUs where the scheduler would queue a
/// woken pool thread on the busy CPU of the thread that split it (the thread's affinity
/// mask is narrowed for a moment, then restored), and a pool thread with nothing left to
/// take stays awake (at most 200 µs) until the call's last part is done. Off, thread
/// placement and parking are left to the scheduler and rayon. Results are the same bits
/// either way; a build without the `parallel` feature never splits a call, and accepts
/// both values.
///
/// Returns `TOKENLOOM_STATUS_INVALID_ARGUMENT` for any other `on`.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_set_spread_threads(on: i32) -> TokenloomStatus {
    run(|| {
        let on = match on {
            0 => false,
            1 => true,
            other => {
                return Err(Failure::new(
                    TokenloomStatus::InvalidArgument,
                    format!("spread threads {other}: expected 0 (off) or 1 (on)"),
                ));
            }
        };
        #[cfg(feature = "parallel")]
        tokenloom_tensor::set_spread_threads(on);
        #[cfg(not(feature = "parallel"))]
        let _ = on;
        Ok(())
    })
}

/// 1 when split calls spread their threads ([`tokenloom_set_spread_threads`]; the
/// default), 0 when that is off or the build has no threads (feature `parallel` off).
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_spread_threads() -> i32 {
    #[cfg(feature = "parallel")]
    let on = tokenloom_tensor::spread_threads();
    #[cfg(not(feature = "parallel"))]
    let on = false;
    i32::from(on)
}

/// The number of threads calls run on now (after [`tokenloom_set_num_threads`]; the
/// default is rayon's global pool size).
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_num_threads() -> usize {
    match &*THREADS.read().unwrap_or_else(PoisonError::into_inner) {
        Threads::One => 1,
        #[cfg(feature = "parallel")]
        Threads::Pool(pool) => pool.current_num_threads(),
        #[cfg(feature = "parallel")]
        Threads::Default => rayon::current_num_threads(),
        #[cfg(not(feature = "parallel"))]
        Threads::Default => 1,
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn calls_on_a_pool_of_their_own_give_the_same_bits() {
        use crate::{TokenloomDtype, TokenloomTensor, tokenloom_lookup};
        let table: Vec<f32> = (0..4000 * 64).map(|i| i as f32 * 0.25).collect();
        let ids: Vec<i64> = (0..512).map(|i| (i * 7919) % 4000).collect();
        let lookup = |out: &mut Vec<f32>| {
            // SAFETY: every descriptor matches its buffer, alive for the call.
            unsafe {
                tokenloom_lookup(
                    &TokenloomTensor::new(
                        table.as_ptr().cast_mut().cast(),
                        TokenloomDtype::F32,
                        &[4000, 64],
                    ),
                    &TokenloomTensor::new(
                        ids.as_ptr().cast_mut().cast(),
                        TokenloomDtype::I64,
                        &[512],
                    ),
                    &TokenloomTensor::new(out.as_mut_ptr().cast(), TokenloomDtype::F32, &[512, 64]),
                )
            }
        };
        let mut want = vec![0.0f32; 512 * 64];
        assert_eq!(lookup(&mut want), TokenloomStatus::Ok);
        for (n, pinned) in [(3, false), (2, true), (1, false), (0, false)] {
            let set = if pinned {
                tokenloom_set_num_threads_pinned
            } else {
                tokenloom_set_num_threads
            };
            assert_eq!(set(n), TokenloomStatus::Ok, "{n} threads, pinned: {pinned}");
            assert_eq!(
                tokenloom_num_threads(),
                if n == 0 {
                    rayon::current_num_threads()
                } else {
                    n
                }
            );
            let mut got = vec![0.0f32; 512 * 64];
            assert_eq!(lookup(&mut got), TokenloomStatus::Ok);
            assert_eq!(got, want, "{n} threads");
        }
        assert_eq!(
            tokenloom_set_num_threads(TOKENLOOM_MAX_THREADS + 1),
            TokenloomStatus::InvalidArgument
        );
        assert_eq!(
            tokenloom_set_num_threads_pinned(TOKENLOOM_MAX_THREADS + 1),
            TokenloomStatus::InvalidArgument
        );
        assert_eq!(tokenloom_num_threads(), rayon::current_num_threads());
    }

    #[test]
    fn spreading_turns_off_and_on_and_other_values_are_invalid() {
        let default = if cfg!(feature = "parallel") { 1 } else { 0 };
        assert_eq!(tokenloom_spread_threads(), default);
        assert_eq!(
            tokenloom_set_spread_threads(2),
            TokenloomStatus::InvalidArgument
        );
        // SAFETY: the message is NUL-terminated and lives until this thread's next call.
        let message = unsafe { CStr::from_ptr(crate::tokenloom_last_error_message()) };
        assert!(
            message.to_string_lossy().contains("spread threads 2"),
            "{message:?}"
        );
        assert_eq!(
            tokenloom_set_spread_threads(-1),
            TokenloomStatus::InvalidArgument
        );
        assert_eq!(
            tokenloom_spread_threads(),
            default,
            "a bad value changes nothing"
        );
        assert_eq!(tokenloom_set_spread_threads(0), TokenloomStatus::Ok);
        assert_eq!(tokenloom_spread_threads(), 0);
        assert_eq!(tokenloom_set_spread_threads(1), TokenloomStatus::Ok);
        assert_eq!(tokenloom_spread_threads(), default);
    }

    #[test]
    fn the_version_is_the_crate_version() {
        // SAFETY: a static NUL-terminated string.
        let version = unsafe { CStr::from_ptr(tokenloom_version()) };
        assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }
}
