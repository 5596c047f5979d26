//! Keeping the parts of one split call on different CPUs when the scheduler has queued a
//! pool thread on the busy CPU of the thread that split the call.
//!
//! Some schedulers (the project's VM: `kernel.sched_vcpu_pack`) place a woken thread on
//! its waker's busy CPU while another CPU is idle, and leave it waiting there: the
//! second pool thread of a 2-thread call then runs only when the first one is done, and
//! two threads are no faster than one (docs/benchmarks/next-to-pytorch.md, "The second
//! thread waits on the first one's CPU"). Pinning the pool's threads prevents it but
//! changes the caller's threads for good (`pool_pin.rs`, opt-in). By default,
//! [`Spread`] does two things within one call instead:
//!
//! 1. the splitting thread yields its CPU before each of its parts until another thread
//!    has started one, so that a pool thread queued behind it gets to run;
//! 2. a pool thread that starts a part on the splitting thread's CPU moves itself off
//!    it: it narrows its own affinity mask to exclude that CPU (the kernel migrates it
//!    at once) and restores the mask it had. The mask is the same before and after; only
//!    the CPU the thread runs on has changed, as a load balancer would change it.
//!
//! Results never depend on it (each part is computed the same way on any thread). On a
//! scheduler that spreads woken threads, the splitting thread's yields return at once
//! and no thread starts on its CPU, so nothing moves.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::pinned::affinity::{current_cpu, leave_cpu};

/// Whether split calls spread their threads (see [`set_spread_threads`]).
static SPREAD_THREADS: AtomicBool = AtomicBool::new(true);

/// Turns the spreading of split calls on (the default) or off, for the whole process.
///
/// On, a kernel call split across a pool keeps its parts on different CPUs where the
/// scheduler would queue a woken pool thread on the busy CPU of the thread that split
/// the call: the splitting thread yields its CPU until another thread has started a
/// part, and a pool thread that starts a part on the splitting thread's CPU moves off
/// it (its affinity mask narrowed, then restored at once). Off, split calls leave
/// thread placement to the scheduler alone. Results are the same bits either way.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{set_spread_threads, spread_threads};
///
/// assert!(spread_threads());
/// set_spread_threads(false);
/// assert!(!spread_threads());
/// set_spread_threads(true);
/// ```
pub fn set_spread_threads(on: bool) {
    SPREAD_THREADS.store(on, Ordering::Relaxed);
}

/// Whether split calls spread their threads ([`set_spread_threads`]; on by default).
#[must_use]
pub fn spread_threads() -> bool {
    SPREAD_THREADS.load(Ordering::Relaxed)
}

/// The state of one split call (see the module docs).
pub(crate) struct Spread {
    /// rayon's index of the splitting thread in its pool.
    splitter: usize,
    /// The CPU the splitting thread ran on when it split the call.
    home: usize,
    /// Whether a thread other than the splitter has started a part.
    helped: AtomicBool,
}

impl Spread {
    /// The state for a call split by the calling thread, or `None` when it is not a
    /// pool thread (it then waits for the pool, and its CPU frees up) or its CPU cannot
    /// be asked (not Linux), or spreading is off ([`set_spread_threads`]).
    pub(crate) fn new() -> Option<Spread> {
        if !spread_threads() {
            return None;
        }
        Some(Spread {
            splitter: rayon::current_thread_index()?,
            home: current_cpu()?,
            helped: AtomicBool::new(false),
        })
    }

    /// Called by the thread that is about to compute a part of the call.
    #[inline]
    pub(crate) fn before_part(&self) {
        if rayon::current_thread_index() == Some(self.splitter) {
            if !self.helped.load(Ordering::Relaxed) {
                std::thread::yield_now();
            }
        } else {
            self.helped.store(true, Ordering::Relaxed);
            if current_cpu() == Some(self.home) {
                leave_cpu(self.home);
            }
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::pinned::affinity::allowed_cpus;

    #[test]
    fn a_pool_thread_splits_with_spreading_on_and_without_it_off() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a 2-thread pool");
        let from_pool = || pool.install(|| Spread::new().map(|s| s.splitter));
        assert!(Spread::new().is_none(), "outside every pool");
        assert!(from_pool().is_some());
        set_spread_threads(false);
        let off = from_pool();
        set_spread_threads(true);
        assert_eq!(off, None);
        assert!(from_pool().is_some());
    }

    #[test]
    fn a_thread_leaves_its_cpu_and_keeps_its_mask() {
        std::thread::spawn(|| {
            let before = allowed_cpus(false).expect("this thread's mask");
            let cpu = current_cpu().expect("sched_getcpu on Linux");
            assert!(
                before.contains(&cpu),
                "running on CPU {cpu} outside {before:?}"
            );
            let moved = leave_cpu(cpu);
            assert_eq!(moved, before.len() > 1, "mask {before:?}");
            if moved {
                assert_ne!(current_cpu(), Some(cpu), "still on CPU {cpu}");
            }
            assert_eq!(allowed_cpus(false).expect("this thread's mask"), before);
        })
        .join()
        .expect("the thread ran");
    }

    #[test]
    #[allow(unsafe_code)]
    fn cpus_outside_the_mask_or_a_cpu_set_move_nothing() {
        std::thread::spawn(|| {
            let before = allowed_cpus(false).expect("this thread's mask");
            let limit = libc::CPU_SETSIZE as usize;
            for cpu in [limit - 1, limit, usize::MAX] {
                if !before.contains(&cpu) {
                    assert!(!leave_cpu(cpu), "CPU {cpu}");
                }
            }
            // A thread whose only CPU is `cpu` stays there.
            let only = before[0];
            // SAFETY: all-zero is a valid `cpu_set_t`.
            let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
            // SAFETY: `only` came from the mask, so it is below CPU_SETSIZE.
            unsafe { libc::CPU_SET(only, &mut set) };
            let size = std::mem::size_of::<libc::cpu_set_t>();
            // SAFETY: `set` is a valid `cpu_set_t` of the size passed; it narrows this
            // test's own thread, which ends with the test.
            assert_eq!(unsafe { libc::sched_setaffinity(0, size, &set) }, 0);
            assert!(!leave_cpu(only));
            assert_eq!(allowed_cpus(false).expect("this thread's mask"), [only]);
        })
        .join()
        .expect("the thread ran");
    }
}
