//! The memory of the running sums of repeated ids, kept between calls on the calling
//! thread. A backward with repeated ids sums them in rows of `n_embd` `f64` (or `f32`):
//! megabytes for a batch with a hundred frequent tokens. Allocated afresh on every call,
//! that memory came from `mmap` whenever glibc's allocator had trimmed or raised its
//! threshold, and every call paid the page faults of zeroing it again: split into tasks
//! of at most 1 MiB of hot memory, the accumulating backward with 100 distinct ids took
//! 1.26× (one thread) and 1.35× (two) the time it took with glibc told to keep its memory
//! (docs/benchmarks/row-copies-and-streams.md, "The sums' memory, kept"). So the buffers go
//! back to a per-thread pool after each call, up to [`RETAINED_BYTES`] per element type.

use std::cell::RefCell;

use crate::error::EmbeddingError;

/// At most this many bytes of buffers are kept per thread and element type; a buffer
/// that would exceed it is freed.
pub(super) const RETAINED_BYTES: usize = 64 << 20;

/// An element type with a per-thread pool of buffers.
pub(super) trait Pooled: Sized + 'static {
    /// Runs `f` on this thread's pool of `Self` buffers.
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R;
}

thread_local! {
    static POOL_F32: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
    static POOL_F64: RefCell<Vec<Vec<f64>>> = const { RefCell::new(Vec::new()) };
}

impl Pooled for f32 {
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
        POOL_F32.with_borrow_mut(f)
    }
}

impl Pooled for f64 {
    fn with_pool<R>(f: impl FnOnce(&mut Vec<Vec<Self>>) -> R) -> R {
        POOL_F64.with_borrow_mut(f)
    }
}

/// One empty buffer per entry of `lens`, each with room for that many elements: this
/// thread's kept buffers first (in the order [`give_back`] returned them), new ones after.
///
/// # Errors
///
/// [`tokenloom_tensor::TensorError::AllocationFailed`] naming `op` when a buffer cannot
/// grow to its length.
pub(super) fn take<S: Pooled>(
    lens: &[usize],
    op: &'static str,
) -> Result<Vec<Vec<S>>, EmbeddingError> {
    let mut buffers = tokenloom_tensor::try_with_capacity(lens.len(), op)?;
    S::with_pool(|pool| {
        for &len in lens {
            let mut buffer = pool.pop().unwrap_or_default();
            buffer.clear();
            buffer.try_reserve_exact(len).map_err(|_| {
                tokenloom_tensor::TensorError::AllocationFailed {
                    op,
                    bytes: len.saturating_mul(std::mem::size_of::<S>()),
                }
            })?;
            buffers.push(buffer);
        }
        Ok(buffers)
    })
}

/// Returns `buffers` to this thread's pool, keeping their order for the next [`take`]
/// and at most [`RETAINED_BYTES`] in all; the rest are freed.
pub(super) fn give_back<S: Pooled>(buffers: Vec<Vec<S>>) {
    let size = std::mem::size_of::<S>();
    S::with_pool(|pool| {
        let mut kept: usize = pool.iter().map(|b| b.capacity() * size).sum();
        for buffer in buffers.into_iter().rev() {
            let bytes = buffer.capacity() * size;
            if bytes > 0 && kept + bytes <= RETAINED_BYTES {
                kept += bytes;
                pool.push(buffer);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Buffers come back in the order they were taken, keep their memory, and the pool
    /// never holds more than its cap.
    #[test]
    fn buffers_are_reused_in_order_up_to_the_cap() {
        let taken = take::<f32>(&[100, 0, 300], "test").unwrap();
        let addresses: Vec<_> = taken.iter().map(|b| (b.as_ptr(), b.capacity())).collect();
        assert_eq!(addresses[0].1, 100);
        assert_eq!(addresses[2].1, 300);
        give_back(taken);
        // The empty buffer is not kept, so the second take's 0 gets the 300 one.
        let again = take::<f32>(&[100, 0, 300], "test").unwrap();
        assert_eq!(again[0].as_ptr(), addresses[0].0);
        assert!(again.iter().all(Vec::is_empty));
        give_back(again);
        // A buffer above the cap is freed, not kept.
        let huge = take::<f64>(&[RETAINED_BYTES / 8 + 1], "test").unwrap();
        give_back(huge);
        f64::with_pool(|pool| assert!(pool.iter().all(|b| b.capacity() * 8 <= RETAINED_BYTES)));
        // An impossible size is an error naming the operation, not an abort.
        let err = take::<f64>(&[usize::MAX / 4], "sums test").unwrap_err();
        assert!(err.to_string().contains("sums test"), "{err}");
    }
}
