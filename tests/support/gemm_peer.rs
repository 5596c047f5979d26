//! The GEMM tokenloom's (`gemm`) is measured against: `matrixmultiply`'s `sgemm` with its
//! threads, behind a safe, length-checked function. Used by `benches/kernels.rs`; checked
//! by `tests/gemm_peer.rs`.

/// `c = a @ bᵀ` for row-major `a: (m, k)`, `b: (n, k)` and `c: (m, n)`, through
/// `matrixmultiply::sgemm`: the tied output projection.
///
/// # Panics
///
/// If a length does not match `m`, `k`, `n`, or a dimension is zero.
pub fn matrixmultiply_abt(a: &[f32], b: &[f32], c: &mut [f32], (m, k, n): (usize, usize, usize)) {
    assert!(m > 0 && k > 0 && n > 0, "empty product {m}x{k}x{n}");
    assert_eq!(a.len(), m * k, "a is not ({m}, {k})");
    assert_eq!(b.len(), n * k, "b is not ({n}, {k})");
    assert_eq!(c.len(), m * n, "c is not ({m}, {n})");
    let stride = |x: usize| isize::try_from(x).expect("a slice length fits in isize");
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
