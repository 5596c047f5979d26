//! A rayon pool whose threads each stay on one CPU: for kernels that must keep their
//! second thread on a VM whose scheduler packs woken threads onto one busy vCPU.
//!
//! Why: on such a machine a pool thread that sleeps between calls is woken onto the CPU
//! of the thread that wakes it and waits there, runnable, while the other CPU idles —
//! 28–38 ms of run-queue delay in a 30 ms sample on this project's 2-vCPU VM, and a
//! 2-thread lookup no faster than one thread (docs/benchmarks/next-to-pytorch.md, "The
//! second thread waits on the first one's CPU"). A pinned thread cannot be queued on
//! another CPU.
//!
//! Its `affinity` module is the one home of the affinity system calls: pinning here and
//! in `pool_pin.rs`, and the one-call move of `spread.rs`.

use std::fmt;

/// Why [`pinned_pool`] could not build its pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum PinError {
    /// A pool needs at least one thread.
    NoThreads,
    /// This platform has no per-thread CPU affinity that tokenloom sets (Linux only).
    Unsupported,
    /// The process may run on no CPU tokenloom can name (none of the first
    /// `cpu_set_limit` CPU numbers is in its affinity mask).
    NoCpus {
        /// The CPU numbers tokenloom looks at.
        cpu_set_limit: usize,
    },
    /// The operating system would not say which CPUs the caller may run on.
    Mask(std::io::Error),
    /// `TOKENLOOM_PIN_THREADS` holds something other than `0` or `1`.
    Setting {
        /// What it holds (lossily decoded if it is not Unicode).
        value: String,
    },
    /// rayon could not start the threads.
    Build(rayon::ThreadPoolBuildError),
    /// The operating system refused to pin a thread.
    Affinity {
        /// The pool thread's index.
        thread: usize,
        /// The CPU it was to stay on.
        cpu: usize,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoThreads => write!(f, "a pinned pool needs at least 1 thread, got 0"),
            Self::Unsupported => write!(
                f,
                "pinning threads to CPUs is supported on Linux only (this is {})",
                std::env::consts::OS
            ),
            Self::NoCpus { cpu_set_limit } => write!(
                f,
                "the process may run on none of CPUs 0..{cpu_set_limit}: nothing to pin to"
            ),
            Self::Mask(e) => write!(f, "cannot read the CPUs this thread may run on: {e}"),
            Self::Setting { value } => write!(
                f,
                "{}={value:?}: expected 0 (do not pin) or 1 (pin each pool thread to a CPU)",
                crate::PIN_THREADS_ENV
            ),
            Self::Build(e) => write!(f, "cannot start the pool's threads: {e}"),
            Self::Affinity {
                thread,
                cpu,
                source,
            } => {
                write!(f, "cannot pin pool thread {thread} to CPU {cpu}: {source}")
            }
        }
    }
}

impl std::error::Error for PinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Mask(e) => Some(e),
            Self::Affinity { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Builds a rayon pool of `num_threads` threads in which thread `i` may run only on the
/// `i`-th CPU (modulo their count) of those the calling thread may run on. Run
/// tokenloom's kernels on it with `pool.install(|| …)`; results are the same bits as on
/// any other pool. The calling thread is not pinned.
///
/// Use it where a plain pool loses its second thread (see the module docs): on a
/// machine that does not pack threads, an unpinned pool is as fast and shares the
/// machine better.
///
/// # Errors
///
/// [`PinError`]: no threads asked for, not Linux, an affinity mask that cannot be read
/// or is empty, threads that cannot start, or a refused `sched_setaffinity` (named with
/// the thread and CPU).
///
/// # Examples
///
/// ```
/// # fn main() -> Result<(), tokenloom_tensor::PinError> {
/// # if !cfg!(target_os = "linux") { return Ok(()); }
/// use tokenloom_tensor::{for_each_chunk_mut, pinned_pool};
///
/// let pool = pinned_pool(2)?;
/// let mut rows = vec![0u32; 1 << 20];
/// pool.install(|| for_each_chunk_mut(&mut rows, 1024, |i, row| row.fill(i as u32)));
/// assert_eq!(rows[1 << 19], 512);
/// # Ok(())
/// # }
/// ```
pub fn pinned_pool(num_threads: usize) -> Result<rayon::ThreadPool, PinError> {
    if num_threads == 0 {
        return Err(PinError::NoThreads);
    }
    let cpus = affinity::allowed_cpus(false)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(num_threads)
        .thread_name(|i| format!("tokenloom-pinned-{i}"))
        .build()
        .map_err(PinError::Build)?;
    pool.install(|| pin_pool_threads(&cpus))?;
    Ok(pool)
}

/// Pins thread `i` of rayon's current pool to `cpus[i % cpus.len()]` (`cpus` not empty)
/// and marks every thread as pinned for [`crate::pool_pin`].
pub(crate) fn pin_pool_threads(cpus: &[usize]) -> Result<(), PinError> {
    let results = rayon::broadcast(|ctx| {
        crate::pool_pin::mark_thread_pinned();
        let cpu = cpus[ctx.index() % cpus.len()];
        affinity::pin_current_thread(cpu).map_err(|source| PinError::Affinity {
            thread: ctx.index(),
            cpu,
            source,
        })
    });
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(())
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(crate) mod affinity {
    use super::PinError;

    /// The CPU numbers a `cpu_set_t` can hold.
    pub(super) const CPU_SET_LIMIT: usize = libc::CPU_SETSIZE as usize;

    /// The CPUs the calling thread may run on (`of_main_thread`: the process's main
    /// thread), in increasing order.
    pub(crate) fn allowed_cpus(of_main_thread: bool) -> Result<Vec<usize>, PinError> {
        // The main thread's id is the process id; 0 names the calling thread.
        // SAFETY: getpid has no preconditions and cannot fail.
        let who = if of_main_thread {
            unsafe { libc::getpid() }
        } else {
            0
        };
        let set = mask_of(who).map_err(PinError::Mask)?;
        // SAFETY: every index is below CPU_SETSIZE, the size of `set`.
        let cpus: Vec<usize> = (0..CPU_SET_LIMIT)
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect();
        if cpus.is_empty() {
            return Err(PinError::NoCpus {
                cpu_set_limit: CPU_SET_LIMIT,
            });
        }
        Ok(cpus)
    }

    /// The affinity mask of thread `who` (0: the calling thread).
    fn mask_of(who: libc::pid_t) -> std::io::Result<libc::cpu_set_t> {
        // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is a valid value.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable `cpu_set_t` and the size passed is its own.
        let rc = unsafe {
            libc::sched_getaffinity(who, std::mem::size_of::<libc::cpu_set_t>(), &mut set)
        };
        if rc == 0 {
            Ok(set)
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// The CPU the calling thread runs on (`sched_getcpu`, a vDSO read).
    pub(crate) fn current_cpu() -> Option<usize> {
        // SAFETY: sched_getcpu has no preconditions; it returns -1 on failure.
        usize::try_from(unsafe { libc::sched_getcpu() }).ok()
    }

    /// Moves the calling thread off `cpu` if it may run elsewhere: its affinity mask
    /// without `cpu` (the kernel migrates the thread before the call returns), then its
    /// mask again. Returns whether the thread was moved. Nothing changes when `cpu` is not
    /// in the mask, is its only CPU, or lies outside a `cpu_set_t`.
    pub(crate) fn leave_cpu(cpu: usize) -> bool {
        if cpu >= CPU_SET_LIMIT {
            return false;
        }
        let Ok(mask) = mask_of(0) else {
            return false;
        };
        let mut without = mask;
        // SAFETY: `cpu < CPU_SETSIZE` (checked above): the bit lies inside both sets.
        let (had_cpu, others) = unsafe {
            let had = libc::CPU_ISSET(cpu, &mask);
            libc::CPU_CLR(cpu, &mut without);
            (had, libc::CPU_COUNT(&without))
        };
        if !had_cpu || others == 0 {
            return false;
        }
        if set_mask(&without).is_err() {
            return false;
        }
        // The mask the thread had a moment ago, which the kernel accepted then; should it
        // be refused anyway, it is tried once more, and a thread left on the narrower
        // mask still runs on every other CPU it had.
        if set_mask(&mask).is_err() {
            let _ = set_mask(&mask);
        }
        true
    }

    /// Sets the calling thread's affinity mask to `set`.
    pub(crate) fn set_mask(set: &libc::cpu_set_t) -> std::io::Result<()> {
        // SAFETY: `set` is a valid `cpu_set_t` and the size passed is its own; 0 names
        // the calling thread.
        let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Lets the calling thread run on `cpu` only.
    pub(super) fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
        if cpu >= CPU_SET_LIMIT {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("CPU {cpu} is outside a cpu_set_t (CPUs 0..{CPU_SET_LIMIT})"),
            ));
        }
        // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is a valid value.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu < CPU_SETSIZE` was checked above, so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        set_mask(&set)
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) mod affinity {
    use super::PinError;

    pub(crate) fn allowed_cpus(_of_main_thread: bool) -> Result<Vec<usize>, PinError> {
        Err(PinError::Unsupported)
    }

    pub(super) fn pin_current_thread(_cpu: usize) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }

    pub(crate) fn current_cpu() -> Option<usize> {
        None
    }

    pub(crate) fn leave_cpu(_cpu: usize) -> bool {
        false
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The CPUs the calling thread may run on now.
    fn my_cpus() -> Vec<usize> {
        affinity::allowed_cpus(false).expect("sched_getaffinity on this thread")
    }

    #[test]
    fn each_pool_thread_stays_on_its_own_cpu() {
        let allowed = my_cpus();
        let threads = allowed.len().clamp(2, 4);
        let pool = pinned_pool(threads).expect("a pinned pool");
        let placed = pool.broadcast(|ctx| (ctx.index(), my_cpus()));
        for (index, cpus) in placed {
            assert_eq!(
                cpus,
                [allowed[index % allowed.len()]],
                "pool thread {index}"
            );
        }
        // The caller keeps its own mask.
        assert_eq!(my_cpus(), allowed);
    }

    #[test]
    fn kernels_on_a_pinned_pool_give_the_same_bits() {
        let pool = pinned_pool(2).expect("a pinned pool");
        let fill = |rows: &mut Vec<u32>| {
            crate::for_each_chunk_mut(rows, 1000, |i, row| {
                row.iter_mut()
                    .enumerate()
                    .for_each(|(j, x)| *x = (i * 7919 + j) as u32)
            });
        };
        let mut seq = vec![0u32; 1 << 20];
        crate::with_par(crate::Par::Seq, || fill(&mut seq));
        let mut pinned = vec![0u32; 1 << 20];
        pool.install(|| fill(&mut pinned));
        assert_eq!(seq, pinned);
    }

    #[test]
    fn bad_requests_are_errors_that_name_the_numbers() {
        let e = pinned_pool(0).unwrap_err();
        assert!(matches!(e, PinError::NoThreads), "{e}");
        assert!(e.to_string().contains("got 0"), "{e}");
        // The boundary of the unsafe bit set: one past the last CPU a cpu_set_t holds.
        let e = affinity::pin_current_thread(affinity::CPU_SET_LIMIT).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("CPU 1024"), "{e}");
        // A CPU inside the set that does not exist: the kernel refuses, nothing panics.
        let e = std::thread::spawn(|| affinity::pin_current_thread(affinity::CPU_SET_LIMIT - 1))
            .join()
            .expect("no panic");
        assert!(
            e.is_err(),
            "pinned to CPU 1023 on a {}-CPU machine",
            my_cpus().len()
        );
    }
}
