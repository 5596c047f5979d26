//! [`MpiComm`]: the [`Communicator`] over MPI (rsmpi), and [`abort_on_panic`].

use mpi::collective::SystemOperation;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use crate::comm::{CommError, Communicator};

/// MPI counts are C `int`s: larger buffers go through in pieces of this many elements.
const MAX_COUNT: usize = 1 << 28;

/// A [`Communicator`] over an MPI communicator (usually `MPI_COMM_WORLD`).
///
/// MPI itself aborts the job on a communication error (its default error handler), so
/// these collectives return `Ok` or do not return; buffers of different lengths on
/// different ranks are the caller's bug, as in MPI.
pub struct MpiComm {
    comm: SimpleCommunicator,
}

impl std::fmt::Debug for MpiComm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MpiComm")
            .field("rank", &self.rank())
            .field("size", &self.size())
            .finish()
    }
}

impl MpiComm {
    /// The world communicator of an initialized MPI universe.
    #[must_use]
    pub fn world(universe: &mpi::environment::Universe) -> Self {
        Self {
            comm: universe.world(),
        }
    }

    /// Any MPI communicator (a sub-communicator for one vocab-parallel group).
    #[must_use]
    pub fn new(comm: SimpleCommunicator) -> Self {
        Self { comm }
    }

    /// The underlying MPI communicator.
    #[must_use]
    pub fn raw(&self) -> &SimpleCommunicator {
        &self.comm
    }

    fn all_reduce<T>(&self, values: &mut [T], op: SystemOperation)
    where
        T: Copy + mpi::datatype::Equivalence,
    {
        // MPI has no portable in-place form in rsmpi: reduce a copy into the caller's buffer.
        for chunk in values.chunks_mut(MAX_COUNT) {
            let send = chunk.to_vec();
            self.comm.all_reduce_into(&send[..], chunk, op);
        }
    }
}

/// Installs a panic hook that, after the usual message, aborts the whole MPI job
/// (`MPI_Abort` on the world communicator, error code 101) — so a rank that panics does
/// not leave its peers waiting forever in a collective. Call it once, right after
/// `mpi::initialize()`.
pub fn abort_on_panic() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        if mpi::environment::is_initialized() && !mpi::environment::is_finalized() {
            eprintln!("tokenloom-distributed: a rank panicked; aborting the MPI job");
            SimpleCommunicator::world().abort(101);
        }
    }));
}

impl Communicator for MpiComm {
    fn rank(&self) -> usize {
        // MPI ranks are non-negative by definition.
        usize::try_from(self.comm.rank()).unwrap_or(0)
    }

    fn size(&self) -> usize {
        usize::try_from(self.comm.size()).unwrap_or(1)
    }

    fn all_reduce_bitor(&self, bytes: &mut [u8]) -> Result<(), CommError> {
        self.all_reduce(bytes, SystemOperation::bitwise_or());
        Ok(())
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.all_reduce(values, SystemOperation::sum());
        Ok(())
    }

    fn all_reduce_max_f64(&self, values: &mut [f64]) -> Result<(), CommError> {
        self.all_reduce(values, SystemOperation::max());
        Ok(())
    }

    fn all_reduce_max_u64(&self, values: &mut [u64]) -> Result<(), CommError> {
        self.all_reduce(values, SystemOperation::max());
        Ok(())
    }

    fn all_gather_f64(&self, local: &[f64], out: &mut [f64]) -> Result<(), CommError> {
        let size = self.size();
        if out.len() != local.len() * size {
            return Err(CommError::LengthMismatch {
                op: "all_gather_f64 (output)",
                rank: self.rank(),
                expected: local.len() * size * 8,
                got: out.len() * 8,
            });
        }
        if local.len() <= MAX_COUNT {
            self.comm.all_gather_into(local, out);
            return Ok(());
        }
        // In pieces: gather piece k of every rank, then scatter it to its place.
        let mut piece_out = Vec::new();
        for (k, piece) in local.chunks(MAX_COUNT).enumerate() {
            piece_out.resize(piece.len() * size, 0.0);
            self.comm.all_gather_into(piece, &mut piece_out[..]);
            for (rank, got) in piece_out.chunks_exact(piece.len()).enumerate() {
                let at = rank * local.len() + k * MAX_COUNT;
                out[at..at + piece.len()].copy_from_slice(got);
            }
        }
        Ok(())
    }

    fn broadcast(&self, root: usize, bytes: &mut [u8]) -> Result<(), CommError> {
        let size = self.size();
        let Some(root_rank) = (root < size).then(|| i32::try_from(root).ok()).flatten() else {
            return Err(CommError::BadRoot { root, size });
        };
        let process = self.comm.process_at_rank(root_rank);
        for chunk in bytes.chunks_mut(MAX_COUNT) {
            process.broadcast_into(chunk);
        }
        Ok(())
    }

    fn barrier(&self) -> Result<(), CommError> {
        self.comm.barrier();
        Ok(())
    }
}
