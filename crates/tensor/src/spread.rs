//! Keeping the parts of one split call on different CPUs when the scheduler has queued a
//! pool thread on the busy CPU of the thread that split the call.
//!
//! Some schedulers (the project's VM: `kernel.sched_vcpu_pack`) place a woken thread on
//! its waker's busy CPU while another CPU is idle, and leave it waiting there: the
//! second pool thread of a 2-thread call then runs only when the first one is done, and
//! two threads are no faster than one (docs/benchmarks/next-to-pytorch.md, "The second
//! thread waits on the first one's CPU"). Pinning the pool's threads prevents it but
//! changes the caller's threads for good (`pool_pin.rs`, opt-in). By default,
//! [`Spread`] does three things within one call instead:
//!
//! 1. the splitting thread yields its CPU before each of its parts until another thread
//!    has started one, so that a pool thread queued behind it gets to run;
//! 2. a pool thread that starts a part on the splitting thread's CPU moves itself off
//!    it: it narrows its own affinity mask to exclude that CPU (the kernel migrates it
//!    at once) and restores the mask it had. The mask is the same before and after; only
//!    the CPU the thread runs on has changed, as a load balancer would change it;
//! 3. a pool thread that finishes a part when every part has been started, and that is
//!    not on the splitting thread's CPU, stays awake until the last part is done (a spin
//!    of at most [`STAY_LIMIT`]) instead of going idle: rayon parks an idle thread after
//!    about 32 rounds of `yield_now` (tens of µs), and a parked thread must be woken for
//!    the next call, which puts it back on its waker's CPU. Staying, it returns to the
//!    pool as the call ends and takes its share of a call that follows at once.
//!
//! Results never depend on it (each part is computed the same way on any thread). On a
//! scheduler that spreads woken threads, the splitting thread's yields return at once
//! and no thread starts on its CPU, so nothing moves; only step 3's short wait remains.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::pinned::affinity::{current_cpu, leave_cpu};

/// Whether split calls spread their threads (see [`set_spread_threads`]).
static SPREAD_THREADS: AtomicBool = AtomicBool::new(true);

/// Turns the spreading of split calls on (the default) or off, for the whole process.
///
/// On, a kernel call split across a pool keeps its parts on different CPUs where the
/// scheduler would queue a woken pool thread on the busy CPU of the thread that split
/// the call: the splitting thread yields its CPU until another thread has started a
/// part, and a pool thread that starts a part on the splitting thread's CPU moves off
/// it (its affinity mask narrowed, then restored at once), and a pool thread with
/// nothing left to take stays awake (at most 200 µs) until the last part is done. Off,
/// split calls leave thread placement and parking to the scheduler and rayon alone.
/// Results are the same bits either way.
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
    /// The number of parts of the call.
    parts: usize,
    /// The parts started so far.
    started: AtomicUsize,
    /// The parts finished so far.
    done: AtomicUsize,
}

/// The longest a pool thread with nothing left to take waits for the rest of a call
/// (step 3 of the module docs): about six parts of the (1, 512) lookup on two threads,
/// the call it was measured on (docs/benchmarks/spread-threads.md, "Staying for the
/// rest of the call"), and a small share of any call whose parts take longer.
const STAY_LIMIT: Duration = Duration::from_micros(200);

impl Spread {
    /// The state for a call of `parts` parts split by the calling thread, or `None` when
    /// it is not a pool thread (it then waits for the pool, and its CPU frees up) or its
    /// CPU cannot be asked (not Linux), or spreading is off ([`set_spread_threads`]).
    pub(crate) fn new(parts: usize) -> Option<Spread> {
        if !spread_threads() {
            return None;
        }
        Some(Spread {
            splitter: rayon::current_thread_index()?,
            home: current_cpu()?,
            helped: AtomicBool::new(false),
            parts,
            started: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
        })
    }

    /// Called by the thread that is about to compute a part of the call.
    #[inline]
    pub(crate) fn before_part(&self) {
        self.started.fetch_add(1, Ordering::Relaxed);
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

    /// Called by the thread that has just computed a part of the call: a pool thread
    /// with nothing left to take stays until the call's last part is done
    /// ([`Spread::stays`]).
    #[inline]
    pub(crate) fn after_part(&self) {
        let done = self.done.fetch_add(1, Ordering::AcqRel) + 1;
        if self.stays(done, rayon::current_thread_index(), current_cpu()) {
            self.wait_for_last_part(STAY_LIMIT);
        }
    }

    /// Whether the thread of rayon index `thread`, on CPU `cpu`, that has just finished
    /// the `done`-th part stays for the rest of the call: parts are still being computed,
    /// none is left to start, and it is neither the splitting thread (which waits for
    /// the call anyway) nor on that thread's CPU (where spinning would hold it up).
    fn stays(&self, done: usize, thread: Option<usize>, cpu: Option<usize>) -> bool {
        done < self.parts
            && self.started.load(Ordering::Relaxed) >= self.parts
            && thread != Some(self.splitter)
            && cpu != Some(self.home)
    }

    /// Spins until every part is done or `limit` has passed; whether every part was done.
    fn wait_for_last_part(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut spins = 0u32;
        while self.done.load(Ordering::Acquire) < self.parts {
            std::hint::spin_loop();
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(64) && Instant::now() >= deadline {
                return false;
            }
        }
        true
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use crate::pinned::affinity::{allowed_cpus, set_mask};

    #[test]
    fn a_pool_thread_splits_with_spreading_on_and_without_it_off() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .expect("a 2-thread pool");
        let from_pool = || pool.install(|| Spread::new(2).map(|s| s.splitter));
        assert!(Spread::new(2).is_none(), "outside every pool");
        assert!(from_pool().is_some());
        set_spread_threads(false);
        let off = from_pool();
        set_spread_threads(true);
        assert_eq!(off, None);
        assert!(from_pool().is_some());
    }

    /// A call of `parts` parts split by rayon thread 0 on CPU 0, `started` of them started.
    fn call(parts: usize, started: usize) -> Spread {
        Spread {
            splitter: 0,
            home: 0,
            helped: AtomicBool::new(true),
            parts,
            started: AtomicUsize::new(started),
            done: AtomicUsize::new(0),
        }
    }

    #[test]
    fn a_helper_stays_only_when_nothing_is_left_to_take() {
        let (helper, elsewhere) = (Some(1), Some(1));
        assert!(call(3, 3).stays(2, helper, elsewhere));
        assert!(
            call(3, 3).stays(1, None, None),
            "a thread whose CPU is unknown"
        );
        assert!(
            !call(3, 2).stays(1, helper, elsewhere),
            "a part is left to start"
        );
        assert!(!call(3, 3).stays(3, helper, elsewhere), "the last part");
        assert!(
            !call(3, 3).stays(2, Some(0), elsewhere),
            "the splitting thread"
        );
        assert!(
            !call(3, 3).stays(2, helper, Some(0)),
            "on the splitting thread's CPU"
        );
    }

    #[test]
    fn a_staying_helper_waits_for_the_last_part_and_no_longer_than_the_limit() {
        let spread = call(2, 2);
        spread.done.store(1, Ordering::Relaxed);
        let wait = Duration::from_millis(20);
        // Timed from before the waiter exists: the last part is done no earlier than
        // `wait` after `start`, however late the waiter thread begins to run.
        let start = Instant::now();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| {
                (
                    spread.wait_for_last_part(Duration::from_secs(60)),
                    start.elapsed(),
                )
            });
            std::thread::sleep(wait);
            spread.done.store(2, Ordering::Release);
            let (all_done, waited) = waiter.join().expect("the waiter ran");
            assert!(all_done);
            assert!(
                waited >= wait,
                "returned after {waited:?}, before the last part"
            );
        });
        let alone = call(2, 2);
        let start = Instant::now();
        assert!(!alone.wait_for_last_part(wait), "no part ever finishes");
        assert!(start.elapsed() >= wait);
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
            // This test's own thread, which ends with the test.
            set_mask(&set).expect("a mask of one allowed CPU");
            assert!(!leave_cpu(only));
            assert_eq!(allowed_cpus(false).expect("this thread's mask"), [only]);
        })
        .join()
        .expect("the thread ran");
    }
}
