//! One row times a transposed matrix, `c (1, n) = a (1, k) · bᵀ` with `b` stored
//! `(n, k)`: the tied output projection of a one-token decode step.
//!
//! That product reads all of `b` once and does two flops per element, so it is bound by
//! memory bandwidth; a GEMM library's packing and tiling only add passes over `b` (and
//! `gemm` keeps it on one thread). Here every output is a dot product of two contiguous
//! rows, the rows of `b` are split across threads when `b` is large, and each dot
//! product sums in [`LANES`] partial sums folded in a fixed order — so the result does
//! not depend on the thread count.

use num_traits::Float;

use crate::parallel::for_each_chunk_mut_by_work;

/// Partial sums per dot product: enough independent additions to fill the vector units.
const LANES: usize = 16;

/// Outputs per task when the product is split across threads.
const OUTPUTS_PER_TASK: usize = 64;

/// `c[j] = a · b[j]` or `c[j] += a · b[j]` for every row `b[j]` of `b: (n, k)`.
///
/// # Panics
///
/// If `b.len() != c.len() * a.len()`; the caller has checked the shapes.
pub(crate) fn row_times_transposed<T: Float + Send + Sync>(
    a: &[T],
    b: &[T],
    c: &mut [T],
    accumulate: bool,
) {
    let k = a.len();
    assert_eq!(b.len(), c.len() * k, "gemv: b is not (n, k)");
    if k == 0 {
        if !accumulate {
            c.fill(T::zero());
        }
        return;
    }
    let work = std::mem::size_of_val(b);
    for_each_chunk_mut_by_work(c, OUTPUTS_PER_TASK, work, |task, outputs| {
        let first_row = task * OUTPUTS_PER_TASK;
        let rows = &b[first_row * k..(first_row + outputs.len()) * k];
        for (out, row) in outputs.iter_mut().zip(rows.chunks_exact(k)) {
            let d = dot(a, row);
            *out = if accumulate { *out + d } else { d };
        }
    });
}

/// `Σ x[i]·y[i]` in [`LANES`] partial sums (lane `l` takes `i ≡ l mod LANES`), folded in
/// lane order, then the tail in index order.
#[inline]
fn dot<T: Float>(x: &[T], y: &[T]) -> T {
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
        for k in [1, 15, 16, 17, 33, 300] {
            // n = 1000 with k = 300 is past the threshold that splits across threads.
            for n in [1, 63, 65, 1000] {
                let (a, b) = (values(k, 1), values(n * k, 2));
                let expected = naive(&a, &b);
                let mut c = vec![f64::NAN; n];
                row_times_transposed(&a, &b, &mut c, false);
                for (j, (&got, &want)) in c.iter().zip(&expected).enumerate() {
                    assert!(
                        (got - want).abs() <= 1e-12,
                        "k={k} n={n} j={j}: {got} vs {want}"
                    );
                }
                let mut acc = vec![1.0; n];
                row_times_transposed(&a, &b, &mut acc, true);
                for (j, (&got, &want)) in acc.iter().zip(&expected).enumerate() {
                    assert!((got - (want + 1.0)).abs() <= 1e-12, "accumulate, j={j}");
                }
            }
        }
    }

    #[test]
    fn an_empty_inner_dimension_is_an_empty_sum() {
        let mut c = vec![f32::NAN; 3];
        row_times_transposed(&[], &[], &mut c, false);
        assert_eq!(c, [0.0; 3]);
        let mut c = vec![2.0f32; 3];
        row_times_transposed(&[], &[], &mut c, true);
        assert_eq!(c, [2.0; 3]);
    }
}
