//! [`Communicator`]: the few collectives the vocab-parallel layer needs, behind a trait so
//! that MPI (`MpiComm`, feature `mpi`), threads in one process
//! ([`ThreadGroup`](crate::ThreadGroup)) or a future NCCL/gloo backend can carry them.

/// What a collective can fail with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommError {
    /// Another rank failed (panicked or returned) while this one waited in a collective.
    #[error("rank {rank} waited in {op} while another rank of the group failed")]
    PeerFailed {
        /// This rank.
        rank: usize,
        /// The collective it was in.
        op: &'static str,
    },
    /// The ranks called one collective with buffers of different lengths.
    #[error("{op}: rank {rank} passed a buffer of {got} bytes, rank 0 one of {expected}")]
    LengthMismatch {
        /// The collective.
        op: &'static str,
        /// The rank whose buffer differs.
        rank: usize,
        /// Rank 0's length in bytes.
        expected: usize,
        /// That rank's length in bytes.
        got: usize,
    },
    /// A broadcast from a root that is not a rank of the group.
    #[error("broadcast root {root} is not a rank of a group of {size}")]
    BadRoot {
        /// The root given.
        root: usize,
        /// The group size.
        size: usize,
    },
}

/// The collectives of the vocab-parallel layer. Every rank of a group must call the same
/// collectives in the same order with buffers of the same length (as in MPI); a backend
/// that can detect a violation reports it, MPI itself may hang or abort.
///
/// Reductions whose order matters for the bits (the loss) are not done with a reduction
/// here but with [`all_gather_f64`](Communicator::all_gather_f64) followed by a sum in
/// rank order, so every backend gives the same bits.
pub trait Communicator {
    /// This process's rank, in `0..size()`.
    fn rank(&self) -> usize;

    /// The number of ranks in the group.
    fn size(&self) -> usize;

    /// Element-wise bitwise OR of `bytes` across all ranks, in place. Used to combine the
    /// partial lookups: every element is owned by one rank and all-zero bits elsewhere, so
    /// the OR is exactly the owner's bits (`-0.0` and NaN payloads included, which a
    /// floating-point sum would not keep).
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn all_reduce_bitor(&self, bytes: &mut [u8]) -> Result<(), CommError>;

    /// Element-wise sum across all ranks, in place (the order of the additions is the
    /// backend's).
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError>;

    /// Element-wise maximum across all ranks, in place (exact in any order).
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn all_reduce_max_f64(&self, values: &mut [f64]) -> Result<(), CommError>;

    /// Element-wise maximum of unsigned integers across all ranks, in place; with
    /// `!x` beside `x` it also gives the minimum (configuration and input agreement).
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn all_reduce_max_u64(&self, values: &mut [u64]) -> Result<(), CommError>;

    /// Gathers `local` from every rank into `out`, rank 0's values first:
    /// `out.len() == local.len() * size()`.
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn all_gather_f64(&self, local: &[f64], out: &mut [f64]) -> Result<(), CommError>;

    /// Replaces `bytes` on every rank with `root`'s bytes (the lengths must agree).
    ///
    /// # Errors
    ///
    /// [`CommError::BadRoot`], and [`CommError`] when the group fails.
    fn broadcast(&self, root: usize, bytes: &mut [u8]) -> Result<(), CommError>;

    /// Waits until every rank has reached the barrier.
    ///
    /// # Errors
    ///
    /// [`CommError`] when the group fails.
    fn barrier(&self) -> Result<(), CommError>;
}
