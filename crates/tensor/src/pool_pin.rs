//! Pinning the threads of a pool tokenloom's kernels run on but did not build — a
//! framework's pool, the adapter of a benchmark, rayon's global pool — the way
//! `OMP_PROC_BIND` pins OpenMP's: asked for with `TOKENLOOM_PIN_THREADS=1`, or directly
//! with [`pin_current_pool`].
//!
//! With the variable set, the first kernel that splits its work on a pool pins each of
//! that pool's threads (thread `i` to the `i`-th CPU the process's main thread may run on,
//! modulo their count) and later calls find them pinned (one thread-local read). Off by
//! default: on a machine whose scheduler spreads woken threads, pinning only takes
//! freedom from the scheduler, and a process that pins shares the machine worse.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::pinned::{PinError, affinity, pin_pool_threads};

/// The environment variable that asks tokenloom to pin the threads of every pool its
/// kernels split work on: `1` pins, `0` or unset does not, anything else is
/// [`PinError::Setting`] (reported by [`pin_threads_requested`]; nothing is pinned).
pub const PIN_THREADS_ENV: &str = "TOKENLOOM_PIN_THREADS";

thread_local! {
    /// Whether tokenloom pinned (or tried to pin) this pool thread.
    static THREAD_PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Whether tokenloom tried to pin rayon's global pool from a thread outside every pool.
static GLOBAL_POOL_PINNED: AtomicBool = AtomicBool::new(false);

/// The first error of the pinning asked for by [`PIN_THREADS_ENV`].
static FAILURE: OnceLock<PinError> = OnceLock::new();

/// Records that the calling pool thread is pinned.
pub(crate) fn mark_thread_pinned() {
    THREAD_PINNED.with(|p| p.set(true));
}

/// Whether [`PIN_THREADS_ENV`] asks for pinning, read once per process.
///
/// # Errors
///
/// [`PinError::Setting`] when the variable holds anything but `0` or `1`.
///
/// # Examples
///
/// ```
/// // The tests run without the variable: nothing is pinned.
/// # if std::env::var_os(tokenloom_tensor::PIN_THREADS_ENV).is_none() {
/// assert!(!tokenloom_tensor::pin_threads_requested()?);
/// # }
/// # Ok::<(), tokenloom_tensor::PinError>(())
/// ```
pub fn pin_threads_requested() -> Result<bool, PinError> {
    static SETTING: OnceLock<Result<bool, String>> = OnceLock::new();
    let setting = SETTING.get_or_init(|| {
        parse_setting(std::env::var_os(PIN_THREADS_ENV).map(|v| v.to_string_lossy().into_owned()))
    });
    setting.clone().map_err(|value| PinError::Setting { value })
}

/// `Ok(pin)` for an unset, `0` or `1` variable, `Err(value)` otherwise.
fn parse_setting(value: Option<String>) -> Result<bool, String> {
    match value.as_deref().map(str::trim) {
        None | Some("0") => Ok(false),
        Some("1") => Ok(true),
        Some(_) => Err(value.unwrap_or_default()),
    }
}

/// Pins each thread of rayon's current pool — the pool of the calling worker, or the
/// global pool from a thread outside every pool — to one CPU: thread `i` to the `i`-th
/// CPU (modulo their count) the process's main thread may run on. For a framework that
/// owns its pool; [`pinned_pool`](crate::pinned_pool) builds a pinned one. Results of
/// kernels are the same bits on any pool.
///
/// # Errors
///
/// [`PinError`]: not Linux, an affinity mask that cannot be read or is empty, or a
/// refused `sched_setaffinity` (named with the thread and CPU).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), tokenloom_tensor::PinError> {
/// # if !cfg!(target_os = "linux") { return Ok(()); }
/// let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().expect("a pool");
/// pool.install(tokenloom_tensor::pin_current_pool)?;
/// # Ok(())
/// # }
/// ```
pub fn pin_current_pool() -> Result<(), PinError> {
    let cpus = affinity::allowed_cpus(true)?;
    pin_pool_threads(&cpus)
}

/// The first error of the pinning [`PIN_THREADS_ENV`] asked for (a kernel cannot return
/// it: its result does not depend on where its threads run), or `None`.
#[must_use]
pub fn pin_threads_failure() -> Option<&'static PinError> {
    FAILURE.get()
}

/// Called by a kernel about to split its work on rayon's current pool: pins the pool
/// once if [`PIN_THREADS_ENV`] asks for it.
#[inline]
pub(crate) fn pin_if_requested() {
    if THREAD_PINNED.with(Cell::get) {
        return;
    }
    pin_once();
}

#[cold]
fn pin_once() {
    match pin_threads_requested() {
        Ok(false) => return,
        Ok(true) => {}
        Err(e) => {
            let _ = FAILURE.set(e);
            return;
        }
    }
    if rayon::current_thread_index().is_none() {
        // Outside every pool, kernels run on the global pool: pinned once, by whichever
        // outside thread comes first.
        mark_thread_pinned();
        if GLOBAL_POOL_PINNED.swap(true, Ordering::AcqRel) {
            return;
        }
    }
    // One broadcast pins and marks every thread. Where the mask cannot be read, nothing
    // ran on the pool yet: mark its threads anyway, so a failure is not retried on every
    // call.
    if let Err(e) = pin_current_pool() {
        rayon::broadcast(|_| mark_thread_pinned());
        let _ = FAILURE.set(e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_0_or_1_and_anything_else_is_named() {
        assert_eq!(parse_setting(None), Ok(false));
        assert_eq!(parse_setting(Some("0".into())), Ok(false));
        assert_eq!(parse_setting(Some("1".into())), Ok(true));
        assert_eq!(parse_setting(Some(" 1\n".into())), Ok(true));
        assert_eq!(parse_setting(Some("yes".into())), Err("yes".into()));
        let e = PinError::Setting {
            value: "yes".into(),
        };
        assert!(
            e.to_string().contains("TOKENLOOM_PIN_THREADS=\"yes\""),
            "{e}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_pool_built_elsewhere_is_pinned_thread_by_thread() {
        let main = affinity::allowed_cpus(true).expect("the main thread's mask");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("a pool");
        pool.install(pin_current_pool).expect("pinned");
        let placed = pool.broadcast(|ctx| {
            (
                ctx.index(),
                affinity::allowed_cpus(false).expect("mask"),
                THREAD_PINNED.with(Cell::get),
            )
        });
        for (index, cpus, marked) in placed {
            assert_eq!(cpus, [main[index % main.len()]], "pool thread {index}");
            assert!(marked, "pool thread {index} is not marked");
        }
    }
}
