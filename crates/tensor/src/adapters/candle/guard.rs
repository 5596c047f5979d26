//! Which candle storages this thread has lent, so that a nested lending that would wait
//! for a lock this thread already holds is a typed error instead of a hang.
//!
//! candle keeps a tensor's storage behind a reader-writer lock and a lending holds that
//! lock for the whole closure. Inside a mutable lending, any further lending on the same
//! thread is refused: finding out whether it shares the locked storage would itself take
//! the lock. Inside shared lendings only, a further lending is allowed unless it would
//! write a storage this thread is reading.

use std::cell::RefCell;

use candle_core::{Storage, Tensor};

use super::FRAMEWORK;
use crate::error::TensorError;

thread_local! {
    static HELD: RefCell<Vec<Held>> = const { RefCell::new(Vec::new()) };
}

/// One storage lent by this thread.
#[derive(Clone, Copy, Debug)]
struct Held {
    storage: usize,
    mutable: bool,
}

/// The identity of a CPU tensor's storage: the address of candle's `CpuStorage` behind
/// its lock, equal for every tensor (view, clone, narrow) sharing it. Takes the shared
/// lock for the moment of the call.
pub(super) fn storage_id(tensor: &Tensor) -> Result<usize, TensorError> {
    let (storage, _) = tensor.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => Ok(std::ptr::from_ref(cpu).addr()),
        _ => Err(TensorError::ForeignDevice {
            framework: FRAMEWORK,
            device: format!("{:?}", tensor.device().location()),
        }),
    }
}

/// A registered lending; dropping it (also while unwinding) forgets it.
#[derive(Debug)]
pub(super) struct LendGuard {
    entered: usize,
}

impl LendGuard {
    /// Registers that this thread lends `shared` and `mutable`, or refuses the lending
    /// when it would wait for a lock this thread holds. Returns the guard and the storage
    /// identities of `shared` then `mutable`, in order.
    pub(super) fn enter(
        op: &'static str,
        shared: &[&Tensor],
        mutable: &[&Tensor],
    ) -> Result<(Self, Vec<usize>), TensorError> {
        let held: Vec<Held> = HELD.with(|h| h.borrow().clone());
        if held.iter().any(|h| h.mutable) {
            return Err(conflict(
                op,
                "called inside a mutable lending on the same thread; finding out whether \
                 it shares the locked storage would wait for that lock forever. Lend the \
                 tensors together in one call (`with_views_mut`) or one after the other"
                    .to_owned(),
            ));
        }
        let mut mutable_ids = Vec::new();
        mutable_ids
            .try_reserve_exact(mutable.len())
            .map_err(|_| conflict(op, "too many tensors to lend".to_owned()))?;
        for (i, tensor) in mutable.iter().enumerate() {
            let id = storage_id(tensor)?;
            if held.iter().any(|h| h.storage == id) {
                return Err(conflict(
                    op,
                    format!(
                        "mutable tensor {i} shares its storage with a tensor this thread \
                         is reading in an enclosing lending; writing it would wait for \
                         that lock forever"
                    ),
                ));
            }
            mutable_ids.push(id);
        }
        let mut entries = Vec::new();
        entries
            .try_reserve_exact(shared.len() + mutable.len())
            .map_err(|_| conflict(op, "too many tensors to lend".to_owned()))?;
        for tensor in shared {
            entries.push(Held {
                storage: storage_id(tensor)?,
                mutable: false,
            });
        }
        entries.extend(mutable_ids.iter().map(|&storage| Held {
            storage,
            mutable: true,
        }));
        let ids = entries.iter().map(|h| h.storage).collect();
        let entered = entries.len();
        HELD.with(|h| h.borrow_mut().extend(entries));
        Ok((Self { entered }, ids))
    }
}

impl Drop for LendGuard {
    fn drop(&mut self) {
        HELD.with(|h| {
            let mut h = h.borrow_mut();
            let keep = h.len().saturating_sub(self.entered);
            h.truncate(keep);
        });
    }
}

/// The typed error of a refused lending.
pub(super) fn conflict(op: &'static str, reason: String) -> TensorError {
    TensorError::LendingConflict {
        framework: FRAMEWORK,
        op,
        reason,
    }
}
