//! Splitting a kernel's output across threads — or not, when the work is small — and the
//! caller's control over it.
//!
//! Threads come from rayon's *current* pool: a framework that owns a pool runs
//! tokenloom's kernels on it with `pool.install(|| …)`, and a caller who wants one call
//! on the calling thread alone wraps it in [`with_par`]`(`[`Par::Seq`]`, || …)`. Where
//! the machine's scheduler keeps a woken pool thread waiting on its waker's CPU, a split
//! call moves that thread to another CPU for the call and keeps it awake to the call's
//! end (`spread.rs`, by default, the thread's affinity mask unchanged); `pinned_pool`
//! builds a pool whose threads stay on their own CPUs, and `TOKENLOOM_PIN_THREADS=1`
//! pins the threads of any pool the kernels split work on (`pool_pin.rs`).

use std::cell::Cell;

/// Whether kernels may split their work across threads (faer's `Par`, scoped by
/// [`with_par`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Par {
    /// Everything on the calling thread.
    Seq,
    /// rayon's current pool (the global one, or the one a caller `install`ed), for work
    /// large enough to gain from it. The default.
    #[default]
    Rayon,
}

thread_local! {
    static PAR: Cell<Par> = const { Cell::new(Par::Rayon) };
}

/// Runs `f` with kernels started on this thread limited to `par`, then restores the
/// previous setting (also when `f` panics). Results do not depend on it: every kernel
/// gives the same bits for any thread count.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Par, current_par, with_par};
///
/// assert_eq!(current_par(), Par::Rayon);
/// let inside = with_par(Par::Seq, current_par);
/// assert_eq!(inside, Par::Seq);
/// assert_eq!(current_par(), Par::Rayon);
/// ```
pub fn with_par<R>(par: Par, f: impl FnOnce() -> R) -> R {
    struct Restore(Par);
    impl Drop for Restore {
        fn drop(&mut self) {
            PAR.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(PAR.with(|p| p.replace(par)));
    f()
}

/// The threading allowed to kernels started on this thread (see [`with_par`]).
#[must_use]
#[inline]
pub fn current_par() -> Par {
    PAR.with(Cell::get)
}

/// Whether a call doing `work_bytes` of memory traffic should split across threads.
#[inline]
pub(crate) fn use_threads(work_bytes: usize) -> bool {
    #[cfg(feature = "parallel")]
    {
        let threads = work_bytes >= PARALLEL_MIN_BYTES
            && current_par() == Par::Rayon
            && rayon::current_num_threads() > 1;
        if threads {
            crate::pool_pin::pin_if_requested();
        }
        threads
    }
    #[cfg(not(feature = "parallel"))]
    {
        let _ = work_bytes;
        false
    }
}

/// The number of threads a call doing `work_bytes` of memory traffic splits across: 1
/// below [`PARALLEL_MIN_BYTES`], under [`Par::Seq`] or without the `parallel` feature,
/// otherwise the size of rayon's current pool. For kernels that partition their work
/// into exactly one part per thread (and run them with [`for_each_chunk_mut_by_work`]).
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Par, threads_for, with_par};
///
/// assert_eq!(threads_for(64), 1);
/// assert_eq!(with_par(Par::Seq, || threads_for(1 << 30)), 1);
/// ```
#[must_use]
#[inline]
pub fn threads_for(work_bytes: usize) -> usize {
    #[cfg(feature = "parallel")]
    if use_threads(work_bytes) {
        return rayon::current_num_threads();
    }
    let _ = work_bytes;
    1
}

/// The number of parts a call doing `work_bytes` of memory traffic splits into: 1 when
/// [`threads_for`] gives 1, otherwise [`TASKS_PER_THREAD`] per thread of rayon's current
/// pool, with no part below [`PARALLEL_MIN_BYTES`]` / 4` of work. For kernels that cut
/// their work into equal parts (and run them with [`for_each_chunk_mut_by_work`]):
/// rayon hands the parts to whichever thread is free, so a pool thread that wakes late
/// still takes its share of the rest instead of leaving the caller to do it all.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Par, TASKS_PER_THREAD, tasks_for, threads_for, with_par};
///
/// assert_eq!(tasks_for(64), 1);
/// assert_eq!(with_par(Par::Seq, || tasks_for(1 << 30)), 1);
/// let threads = threads_for(1 << 30);
/// assert!(tasks_for(1 << 30) == 1 || tasks_for(1 << 30) == TASKS_PER_THREAD * threads);
/// ```
#[must_use]
#[inline]
pub fn tasks_for(work_bytes: usize) -> usize {
    match threads_for(work_bytes) {
        1 => 1,
        threads => (threads * TASKS_PER_THREAD)
            .min(work_bytes / (PARALLEL_MIN_BYTES / 4))
            .max(threads),
    }
}

/// The parts per thread of [`tasks_for`]. Why more than one: in a process where PyTorch's
/// OpenMP workers spin for milliseconds after each of their parallel regions, a pool
/// thread that shares a core with a spinner starts late. With exactly one part per
/// thread, the caller then takes the second part back and runs it alone, the late thread
/// finds nothing and sleeps again before the next call, and the pool stays at one
/// thread's speed call after call (docs/benchmarks/next-to-pytorch.md, "Two threads next to
/// PyTorch"). With four parts per thread the late thread still takes a share as soon as it
/// runs. (A thread woken onto its waker's busy CPU by a scheduler that packs threads is
/// helped by `spread.rs` instead: the splitting thread yields until it has started, and
/// it moves itself off that CPU.)
pub const TASKS_PER_THREAD: usize = 4;

/// Work on buffers smaller than this stays on the calling thread: a decode step's one
/// row is faster copied than scheduled.
pub const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// Calls `f(index, chunk)` for every `chunk_len`-element chunk of `data` (the last may be
/// shorter). With the `parallel` feature, buffers of at least [`PARALLEL_MIN_BYTES`] are
/// split across rayon's thread pool; each chunk is still processed by exactly one call,
/// so a kernel whose chunks are independent gives bit-identical results for any thread
/// count. A `chunk_len` of 0 calls nothing. [`with_par`]`(`[`Par::Seq`]`, …)` keeps
/// everything on the calling thread.
///
/// Called from a pool thread on Linux, a split call also keeps its parts on different
/// CPUs: until another thread has started a part, the calling thread yields its CPU
/// before each of its own, and a pool thread that starts a part on the calling thread's
/// CPU moves to another CPU its affinity mask allows (the mask itself is restored at
/// once). On a scheduler that queues woken threads on their waker's busy CPU, this is
/// what makes two threads faster than one; elsewhere nothing moves.
/// `set_spread_threads(false)` turns it off.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::for_each_chunk_mut;
///
/// let mut rows = vec![0u32; 6];
/// for_each_chunk_mut(&mut rows, 2, |i, row| row.fill(i as u32));
/// assert_eq!(rows, [0, 0, 1, 1, 2, 2]);
/// ```
pub fn for_each_chunk_mut<T, F>(data: &mut [T], chunk_len: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    for_each_chunk_mut_by_work(data, chunk_len, std::mem::size_of_val(data), f);
}

/// [`for_each_chunk_mut`], split across threads when `work_bytes` (the bytes the whole
/// call reads or writes, which may far exceed the output's — a matrix-vector product
/// writes one value per row it reads) reaches [`PARALLEL_MIN_BYTES`].
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::for_each_chunk_mut_by_work;
///
/// // One output per 1 KiB row read: the rows decide whether threads pay off.
/// let rows = vec![1.0f32; 256 * 2048];
/// let mut sums = vec![0.0f32; 2048];
/// for_each_chunk_mut_by_work(&mut sums, 64, std::mem::size_of_val(&rows[..]), |task, out| {
///     for (j, s) in out.iter_mut().enumerate() {
///         let row = task * 64 + j;
///         *s = rows[row * 256..(row + 1) * 256].iter().sum();
///     }
/// });
/// assert!(sums.iter().all(|&s| s == 256.0));
/// ```
pub fn for_each_chunk_mut_by_work<T, F>(data: &mut [T], chunk_len: usize, work_bytes: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    if chunk_len == 0 {
        return;
    }
    if use_threads(work_bytes) {
        #[cfg(feature = "parallel")]
        {
            use rayon::prelude::*;
            // Parts on different CPUs where the scheduler would queue them on one
            // (`spread.rs`).
            let spread = crate::spread::Spread::new(data.len().div_ceil(chunk_len));
            data.par_chunks_mut(chunk_len)
                .enumerate()
                .for_each(|(i, chunk)| {
                    if let Some(spread) = &spread {
                        spread.before_part();
                    }
                    f(i, chunk);
                    if let Some(spread) = &spread {
                        spread.after_part();
                    }
                });
            return;
        }
    }
    data.chunks_mut(chunk_len)
        .enumerate()
        .for_each(|(i, chunk)| f(i, chunk));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_and_small_buffers_give_the_same_result() {
        let n = PARALLEL_MIN_BYTES / 4 * 3 + 7; // over the threshold, with a short tail
        let mut big = vec![0u32; n];
        for_each_chunk_mut(&mut big, 10, |i, c| {
            c.iter_mut()
                .enumerate()
                .for_each(|(j, x)| *x = (i * 10 + j) as u32)
        });
        assert!(big.iter().enumerate().all(|(k, &x)| x == k as u32));
        let mut none = vec![1u8; 3];
        for_each_chunk_mut(&mut none, 0, |_, c| c.fill(0));
        assert_eq!(none, [1, 1, 1]);
    }
}
