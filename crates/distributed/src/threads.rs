//! [`ThreadGroup`]: ranks as threads of one process, for tests and for trying the layer
//! without MPI. Collectives exchange buffers through shared memory and reduce them in
//! rank order; a rank that panics or returns early makes its peers' collectives fail with
//! [`CommError::PeerFailed`] instead of hanging.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use crate::comm::{CommError, Communicator};

/// A rank of a [`ThreadGroup`]: a [`Communicator`] over shared memory.
#[derive(Debug)]
pub struct ThreadComm {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

/// The rendezvous every collective goes through.
#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    /// Completed collectives so far.
    generation: u64,
    /// Ranks that have posted their buffer to the current collective.
    arrived: usize,
    /// The buffers posted to the current collective, by rank.
    slots: Vec<Vec<u8>>,
    /// The buffers of the last completed collective, by rank (or its length error).
    result: Outcome,
    /// Ranks whose closure has ended (returned or panicked).
    departed: Vec<bool>,
}

/// What a completed collective left for every rank: the buffers by rank, or its error.
type Outcome = Arc<Result<Vec<Vec<u8>>, CommError>>;

/// A rank's closure panicked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("rank {rank} of the thread group panicked: {message}")]
pub struct RankPanicked {
    /// The rank.
    pub rank: usize,
    /// The panic message, when it was a string.
    pub message: String,
}

/// Runs a group of ranks as threads of this process.
///
/// # Examples
///
/// ```
/// use tokenloom_distributed::{Communicator, ThreadGroup};
///
/// let sums = ThreadGroup::run(3, |comm| {
///     let mut v = [comm.rank() as f64 + 1.0];
///     comm.all_reduce_sum_f64(&mut v).map(|()| v[0])
/// })?;
/// assert_eq!(sums, [Ok(6.0), Ok(6.0), Ok(6.0)]);
/// # Ok::<(), tokenloom_distributed::RankPanicked>(())
/// ```
#[derive(Debug)]
pub struct ThreadGroup;

impl ThreadGroup {
    /// Runs `f` on `size` threads, one per rank, and returns each rank's result in rank
    /// order. A rank that panics makes the collectives its peers are waiting in (or enter
    /// later) fail with [`CommError::PeerFailed`], so the group always ends.
    ///
    /// # Errors
    ///
    /// [`RankPanicked`] for the lowest rank that panicked.
    ///
    /// # Panics
    ///
    /// When `size` is 0 (a group needs a rank; this is the caller's constant, not data).
    pub fn run<R, F>(size: usize, f: F) -> Result<Vec<R>, RankPanicked>
    where
        R: Send,
        F: Fn(ThreadComm) -> R + Sync,
    {
        assert!(size > 0, "a thread group needs at least one rank");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                generation: 0,
                arrived: 0,
                slots: vec![Vec::new(); size],
                result: Arc::new(Ok(Vec::new())),
                departed: vec![false; size],
            }),
            changed: Condvar::new(),
        });
        let outcomes: Vec<Result<R, String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..size)
                .map(|rank| {
                    let comm = ThreadComm {
                        rank,
                        size,
                        shared: Arc::clone(&shared),
                    };
                    let f = &f;
                    let shared = Arc::clone(&shared);
                    scope.spawn(move || {
                        let outcome = catch_unwind(AssertUnwindSafe(|| f(comm)));
                        shared.lock().departed[rank] = true;
                        shared.changed.notify_all();
                        outcome.map_err(|payload| panic_message(payload.as_ref()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    // The closure's panics are caught inside the thread; a join error
                    // would be a panic in this module's own bookkeeping.
                    h.join()
                        .unwrap_or_else(|_| Err("the thread group's bookkeeping".into()))
                })
                .collect()
        });
        outcomes
            .into_iter()
            .enumerate()
            .map(|(rank, outcome)| outcome.map_err(|message| RankPanicked { rank, message }))
            .collect()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic never happens while the lock is held (no user code runs under it), so
        // a poisoned lock still holds consistent state.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ThreadComm {
    /// Posts this rank's bytes and returns every rank's, in rank order.
    fn exchange(&self, op: &'static str, mine: Vec<u8>) -> Result<Outcome, CommError> {
        let mut state = self.shared.lock();
        let generation = state.generation;
        state.slots[self.rank] = mine;
        state.arrived += 1;
        if state.arrived == self.size {
            let slots = std::mem::replace(&mut state.slots, vec![Vec::new(); self.size]);
            let expected = slots[0].len();
            let result = match slots.iter().position(|s| s.len() != expected) {
                Some(rank) => Err(CommError::LengthMismatch {
                    op,
                    rank,
                    expected,
                    got: slots[rank].len(),
                }),
                None => Ok(slots),
            };
            state.result = Arc::new(result);
            state.arrived = 0;
            state.generation += 1;
            self.shared.changed.notify_all();
            return Ok(Arc::clone(&state.result));
        }
        loop {
            if state.generation != generation {
                return Ok(Arc::clone(&state.result));
            }
            if state.departed.iter().any(|&d| d) {
                return Err(CommError::PeerFailed {
                    rank: self.rank,
                    op,
                });
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Exchanges, then hands every rank's buffer to `reduce` in rank order.
    fn collect<F>(&self, op: &'static str, mine: Vec<u8>, reduce: F) -> Result<(), CommError>
    where
        F: FnOnce(&[Vec<u8>]),
    {
        let all = self.exchange(op, mine)?;
        match all.as_ref() {
            Ok(slots) => {
                reduce(slots);
                Ok(())
            }
            Err(e) => Err(e.clone()),
        }
    }
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn u64_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn word(bytes: &[u8], i: usize) -> [u8; 8] {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    w
}

impl Communicator for ThreadComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_bitor(&self, bytes: &mut [u8]) -> Result<(), CommError> {
        self.collect("all_reduce_bitor", bytes.to_vec(), |slots| {
            bytes.fill(0);
            for slot in slots {
                for (b, s) in bytes.iter_mut().zip(slot) {
                    *b |= s;
                }
            }
        })
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.collect("all_reduce_sum_f64", f64_bytes(values), |slots| {
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots
                    .iter()
                    .map(|s| f64::from_le_bytes(word(s, i)))
                    .fold(0.0, |a, b| a + b);
            }
        })
    }

    fn all_reduce_max_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.collect("all_reduce_max_f64", f64_bytes(values), |slots| {
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots
                    .iter()
                    .map(|s| f64::from_le_bytes(word(s, i)))
                    .fold(f64::NEG_INFINITY, f64::max);
            }
        })
    }

    fn all_reduce_max_u64(&self, values: &mut [u64]) -> Result<(), CommError> {
        self.collect("all_reduce_max_u64", u64_bytes(values), |slots| {
            for (i, v) in values.iter_mut().enumerate() {
                *v = slots
                    .iter()
                    .map(|s| u64::from_le_bytes(word(s, i)))
                    .fold(0, u64::max);
            }
        })
    }

    fn all_gather_f64(&self, local: &[f64], out: &mut [f64]) -> Result<(), CommError> {
        let expected = local.len() * self.size;
        if out.len() != expected {
            return Err(CommError::LengthMismatch {
                op: "all_gather_f64 (output)",
                rank: self.rank,
                expected: expected * 8,
                got: out.len() * 8,
            });
        }
        self.collect("all_gather_f64", f64_bytes(local), |slots| {
            for (chunk, slot) in out.chunks_exact_mut(local.len().max(1)).zip(slots) {
                for (i, v) in chunk.iter_mut().enumerate() {
                    *v = f64::from_le_bytes(word(slot, i));
                }
            }
        })
    }

    fn broadcast(&self, root: usize, bytes: &mut [u8]) -> Result<(), CommError> {
        if root >= self.size {
            return Err(CommError::BadRoot {
                root,
                size: self.size,
            });
        }
        self.collect("broadcast", bytes.to_vec(), |slots| {
            bytes.copy_from_slice(&slots[root]);
        })
    }

    fn barrier(&self) -> Result<(), CommError> {
        self.collect("barrier", Vec::new(), |_| {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collectives_reduce_in_rank_order() {
        let out = ThreadGroup::run(3, |comm| {
            let r = comm.rank();
            let mut bits = [1u8 << r, 0];
            comm.all_reduce_bitor(&mut bits).unwrap();
            let mut max = [r as f64, -(r as f64)];
            comm.all_reduce_max_f64(&mut max).unwrap();
            let mut umax = [r as u64, !(r as u64)];
            comm.all_reduce_max_u64(&mut umax).unwrap();
            let mut gathered = [0.0; 6];
            comm.all_gather_f64(&[r as f64, 10.0 * r as f64], &mut gathered)
                .unwrap();
            let mut b = [r as u8; 2];
            comm.broadcast(2, &mut b).unwrap();
            comm.barrier().unwrap();
            (bits, max, umax, gathered, b)
        })
        .unwrap();
        for (bits, max, umax, gathered, b) in out {
            assert_eq!(bits, [0b111, 0]);
            assert_eq!(max, [2.0, 0.0]);
            assert_eq!((umax[0], !umax[1]), (2, 0));
            assert_eq!(gathered, [0.0, 0.0, 1.0, 10.0, 2.0, 20.0]);
            assert_eq!(b, [2, 2]);
        }
    }

    #[test]
    fn a_panicking_rank_fails_its_peers_instead_of_hanging() {
        let err = ThreadGroup::run(3, |comm| {
            if comm.rank() == 1 {
                panic!("rank one fails");
            }
            comm.barrier()
        })
        .unwrap_err();
        assert_eq!(err.rank, 1);
        assert_eq!(err.message, "rank one fails");
        let peers = ThreadGroup::run(2, |comm| {
            if comm.rank() == 1 {
                return Ok(());
            }
            comm.barrier()
        })
        .unwrap();
        assert_eq!(
            peers[0],
            Err(CommError::PeerFailed {
                rank: 0,
                op: "barrier"
            })
        );
    }

    #[test]
    fn mismatched_lengths_and_bad_roots_are_errors_on_every_rank() {
        let out = ThreadGroup::run(2, |comm| {
            let mut v = vec![0.0; 1 + comm.rank()];
            comm.all_reduce_sum_f64(&mut v)
        })
        .unwrap();
        for r in out {
            assert_eq!(
                r,
                Err(CommError::LengthMismatch {
                    op: "all_reduce_sum_f64",
                    rank: 1,
                    expected: 8,
                    got: 16
                })
            );
        }
        let out = ThreadGroup::run(2, |comm| comm.broadcast(5, &mut [0u8])).unwrap();
        assert!(
            out.iter()
                .all(|r| *r == Err(CommError::BadRoot { root: 5, size: 2 }))
        );
    }
}
