//! Splitting a kernel's output across threads — or not, when the work is small.

/// Work on buffers smaller than this stays on the calling thread: a decode step's one
/// row is faster copied than scheduled.
pub const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// Calls `f(index, chunk)` for every `chunk_len`-element chunk of `data` (the last may be
/// shorter). With the `parallel` feature, buffers of at least [`PARALLEL_MIN_BYTES`] are
/// split across rayon's thread pool; each chunk is still processed by exactly one call,
/// so a kernel whose chunks are independent gives bit-identical results for any thread
/// count. A `chunk_len` of 0 calls nothing.
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
/// call reads or writes, which may far exceed the output's) reaches
/// [`PARALLEL_MIN_BYTES`].
pub(crate) fn for_each_chunk_mut_by_work<T, F>(
    data: &mut [T],
    chunk_len: usize,
    work_bytes: usize,
    f: F,
) where
    T: Send,
    F: Fn(usize, &mut [T]) + Send + Sync,
{
    if chunk_len == 0 {
        return;
    }
    #[cfg(feature = "parallel")]
    if work_bytes >= PARALLEL_MIN_BYTES && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        data.par_chunks_mut(chunk_len)
            .enumerate()
            .for_each(|(i, chunk)| f(i, chunk));
        return;
    }
    #[cfg(not(feature = "parallel"))]
    let _ = work_bytes;
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
