//! The GEMMs tokenloom's tied projection is measured against, called directly:
//! `matrixmultiply`'s `sgemm` with its threads, and the `gemm` crate on rayon's pool
//! (which tokenloom uses for every product but a single row's). Each sits behind a safe,
//! length-checked function. Used by `benches/kernels.rs`; checked by `tests/gemm_peer.rs` (of this crate).

/// Panics unless the lengths describe `a: (m, k)`, `b: (n, k)`, `c: (m, n)`, all non-empty.
fn check_abt(a: &[f32], b: &[f32], c: &[f32], (m, k, n): (usize, usize, usize)) {
    assert!(m > 0 && k > 0 && n > 0, "empty product {m}x{k}x{n}");
    assert_eq!(a.len(), m * k, "a is not ({m}, {k})");
    assert_eq!(b.len(), n * k, "b is not ({n}, {k})");
    assert_eq!(c.len(), m * n, "c is not ({m}, {n})");
}

fn stride(x: usize) -> isize {
    isize::try_from(x).expect("a slice length fits in isize")
}

/// `c = a @ bᵀ` for row-major `a: (m, k)`, `b: (n, k)` and `c: (m, n)`, through
/// `matrixmultiply::sgemm`: the tied output projection.
///
/// # Panics
///
/// If a length does not match `m`, `k`, `n`, or a dimension is zero.
pub fn matrixmultiply_abt(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize)) {
    check_abt(a, b, c, (m, k, n));
    // SAFETY: the lengths are asserted above. `a` is read as (m, k) with strides (k, 1),
    // `b` as the (k, n) matrix bᵀ with strides (1, k), `c` written as (m, n) with strides
    // (n, 1): every index formed is inside its slice. `c` is a unique borrow, so it
    // aliases neither input; with beta = 0 it is only written.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            stride(k),
            1,
            b.as_ptr(),
            1,
            stride(k),
            0.0,
            c.as_mut_ptr(),
            stride(n),
            1,
        );
    }
}

/// `c = a @ bᵀ` as [`matrixmultiply_abt`], through `gemm::gemm` with
/// `Parallelism::Rayon(0)` (rayon's whole pool).
///
/// # Panics
///
/// As [`matrixmultiply_abt`].
pub fn gemm_abt(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize)) {
    check_abt(a, b, c, (m, k, n));
    // SAFETY: the lengths are checked above. gemm takes (column, row) strides: `c` is
    // (m, n) with strides (1, n) written only (`read_dst` false), `a` (m, k) with (1, k),
    // and `b` read as the (k, n) matrix bᵀ with (k, 1): every index formed is inside its
    // slice, and `c`, a unique borrow, aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            stride(n),
            false,
            a.as_ptr(),
            1,
            stride(k),
            b.as_ptr(),
            stride(k),
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}
