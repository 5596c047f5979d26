//! A few rows times a transposed matrix, `c (m, n) = a (m, k) · bᵀ` with `b` stored
//! `(n, k)` and `m ≤` [`MAX_ROWS`]: the tied output projection of a decode step (one
//! token for each of `m` sequences).
//!
//! That product reads all of `b` once and does `2m` flops per element of it, so for small
//! `m` it is bound by memory bandwidth; a GEMM library's packing and tiling only add
//! passes over `b` (and `gemm` keeps a single row on one thread). Here each row of `b` is
//! read once and dotted with the `m` rows of `a` while it is in cache, the rows of `b`
//! are split across threads when `b` is large, and each dot product sums in [`LANES`]
//! partial sums folded in a fixed order. So the result depends neither on the thread
//! count nor on `m`: a sequence's logits have the same bits whether it is decoded alone
//! or in a batch.

use num_traits::Float;

use crate::error::TensorError;
use crate::parallel::for_each_chunk_mut_by_work;
use crate::shape::Shape;

/// The most rows of `a` this path takes; past it the product is compute-bound and a GEMM
/// is faster.
pub(crate) const MAX_ROWS: usize = 8;

/// Partial sums per dot product: enough independent additions to fill the vector units.
const LANES: usize = 16;

/// Rows of `b` per task when the product is split across threads.
const ROWS_PER_TASK: usize = 64;

/// `c = a · bᵀ` or `c += a · bᵀ` for row-major `a: (m, k)`, `b: (n, k)`, `c: (m, n)`.
///
/// # Panics
///
/// If the lengths do not describe those shapes, or `m` is 0 or over [`MAX_ROWS`]; the
/// caller has checked the shapes.
pub(crate) fn rows_times_transposed<T: Float + Send + Sync>(
    a: &[T],
    m: usize,
    b: &[T],
    c: &mut [T],
    accumulate: bool,
) {
    assert!((1..=MAX_ROWS).contains(&m), "gemv: {m} rows");
    let (k, n) = (a.len() / m, c.len() / m);
    assert!(
        a.len() == m * k && c.len() == m * n && b.len() == n * k,
        "gemv: lengths a={} b={} c={} do not match m={m}",
        a.len(),
        b.len(),
        c.len()
    );
    if m == 1 {
        // `c` is its own `(n, 1)` column.
        dot_rows(a, 1, b, c, accumulate);
        return;
    }
    // Dot products into an `(n, m)` buffer, where one task's outputs are contiguous,
    // then into `c`'s `(m, n)`.
    let mut columns = vec![T::zero(); n * m];
    dot_rows(a, m, b, &mut columns, false);
    for (i, c_row) in c.chunks_exact_mut(n).enumerate() {
        for (out, column) in c_row.iter_mut().zip(columns.chunks_exact(m)) {
            *out = if accumulate {
                *out + column[i]
            } else {
                column[i]
            };
        }
    }
}

/// `out[j·m + i] (+)= a[i] · b[j]` for the `m` rows of `a` and every row of `b`.
fn dot_rows<T: Float + Send + Sync>(a: &[T], m: usize, b: &[T], out: &mut [T], accumulate: bool) {
    let k = a.len() / m;
    if k == 0 {
        if !accumulate {
            out.fill(T::zero());
        }
        return;
    }
    let work = std::mem::size_of_val(b);
    for_each_chunk_mut_by_work(out, ROWS_PER_TASK * m, work, |task, outputs| {
        let first_row = task * ROWS_PER_TASK;
        let rows = &b[first_row * k..(first_row + outputs.len() / m) * k];
        for (outs, row) in outputs.chunks_exact_mut(m).zip(rows.chunks_exact(k)) {
            for (out, a_row) in outs.iter_mut().zip(a.chunks_exact(k)) {
                let d = dot_same_len(a_row, row);
                *out = if accumulate { *out + d } else { d };
            }
        }
    });
}

/// `Σ x[i]·y[i]`, summed as the decode path of [`matmul_into`](crate::matmul_into) sums
/// each output element: in 16 partial sums (sum `l` takes the `i ≡ l mod 16`, up to the
/// last whole group of 16), folded in order, then the tail in index order. Kernels that
/// must give the same bits as a small-row `matmul_into` (a quantized table's logits,
/// say) call this.
///
/// Always inlined, so that a caller compiled for a wider instruction set (the AVX2 row
/// kernels of quantized tables) runs it in that set: called out of line it ran in SSE2
/// and took two thirds of a quantized table's logits.
///
/// # Errors
///
/// [`TensorError::ElementCountMismatch`] when `x` and `y` differ in length.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::dot;
///
/// let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
/// assert_eq!(dot(&x, &x)?, (0..40).map(|i| (i * i) as f32).sum::<f32>());
/// assert!(dot(&x, &x[1..]).is_err());
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
#[inline(always)]
pub fn dot<T: Float>(x: &[T], y: &[T]) -> Result<T, TensorError> {
    if x.len() == y.len() {
        Ok(dot_same_len(x, y))
    } else {
        Err(TensorError::ElementCountMismatch {
            op: "dot",
            shape: Shape::new(&[x.len()])?,
            expected: x.len(),
            len: y.len(),
        })
    }
}

/// [`dot`] of slices of the same length (the shorter one bounds the sum otherwise).
#[inline(always)]
pub(crate) fn dot_same_len<T: Float>(x: &[T], y: &[T]) -> T {
    let body = x.len() - x.len() % LANES;
    let mut lanes = [T::zero(); LANES];
    for (xs, ys) in x[..body]
        .chunks_exact(LANES)
        .zip(y[..body].chunks_exact(LANES))
    {
        for l in 0..LANES {
            lanes[l] = lanes[l] + xs[l] * ys[l];
        }
    }
    let folded = lanes.iter().fold(T::zero(), |sum, &lane| sum + lane);
    x[body..]
        .iter()
        .zip(&y[body..])
        .fold(folded, |sum, (&xi, &yi)| sum + xi * yi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 7919 + seed * 104_729) % 1013) as f64 / 1013.0 - 0.5)
            .collect()
    }

    fn naive(a: &[f64], b: &[f64]) -> Vec<f64> {
        b.chunks_exact(a.len())
            .map(|row| row.iter().zip(a).map(|(x, y)| x * y).sum())
            .collect()
    }

    #[test]
    fn matches_the_naive_sum_for_lengths_around_the_lane_count() {
        for m in [1, 3, MAX_ROWS] {
            for k in [1, 15, 16, 17, 33, 300] {
                // n = 1000 with k = 300 is past the threshold that splits across threads.
                for n in [1, 63, 65, 1000] {
                    let (a, b) = (values(m * k, 1), values(n * k, 2));
                    let expected: Vec<f64> = a
                        .chunks_exact(k)
                        .flat_map(|a_row| naive(a_row, &b))
                        .collect();
                    let mut c = vec![f64::NAN; m * n];
                    rows_times_transposed(&a, m, &b, &mut c, false);
                    for (j, (&got, &want)) in c.iter().zip(&expected).enumerate() {
                        assert!(
                            (got - want).abs() <= 1e-12,
                            "m={m} k={k} n={n} element {j}: {got} vs {want}"
                        );
                    }
                    let mut acc = vec![1.0; m * n];
                    rows_times_transposed(&a, m, &b, &mut acc, true);
                    for (j, (&got, &want)) in acc.iter().zip(&expected).enumerate() {
                        assert!(
                            (got - (want + 1.0)).abs() <= 1e-12,
                            "accumulate, element {j}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_row_has_the_same_bits_alone_and_in_a_batch() {
        let (m, k, n) = (5, 77, 130);
        let (a, b) = (values(m * k, 3), values(n * k, 4));
        let mut batch = vec![0.0; m * n];
        rows_times_transposed(&a, m, &b, &mut batch, false);
        for (i, a_row) in a.chunks_exact(k).enumerate() {
            let mut alone = vec![0.0; n];
            rows_times_transposed(a_row, 1, &b, &mut alone, false);
            assert_eq!(alone, batch[i * n..(i + 1) * n], "row {i}");
        }
    }

    #[test]
    fn an_empty_inner_dimension_is_an_empty_sum() {
        let mut c = vec![f32::NAN; 6];
        rows_times_transposed(&[], 2, &[], &mut c, false);
        assert_eq!(c, [0.0; 6]);
        let mut c = vec![2.0f32; 3];
        rows_times_transposed(&[], 1, &[], &mut c, true);
        assert_eq!(c, [2.0; 3]);
    }
}
