//! Matrix products of rank-2 views through `matrixmultiply` (the only `unsafe` code in
//! tokenloom).
//!
//! `f32` uses `sgemm` and `f64` uses `dgemm`; `f16` and `bf16` are widened to `f32`,
//! multiplied with `sgemm` and rounded once.

use half::{bf16, f16};

use crate::element::{Element, private::Sealed};
use crate::error::TensorError;
use crate::shape::Shape;
use crate::tensor::{Tensor, try_filled};
use crate::view::{TensorView, TensorViewMut};

/// How the right operand of a product is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rhs {
    /// `b` is `(k, n)`: the product is `a @ b`.
    AsIs,
    /// `b` is `(n, k)`: the product is `a @ bᵀ`, as in a tied output projection
    /// `logits = h @ Eᵀ` with `E: (vocab_size, n_embd)`.
    Transposed,
}

/// Whether a product overwrites or adds to the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accumulate {
    /// `out = a @ op(b)`; the old contents of `out` are ignored.
    Replace,
    /// `out += a @ op(b)`.
    Add,
}

/// `a @ b` for `a: (m, k)` and `b: (k, n)`, giving `(m, n)`.
///
/// # Errors
///
/// [`TensorError::RankMismatch`] when an operand is not rank 2, and
/// [`TensorError::MatmulShapeMismatch`] naming both shapes when the inner dimensions differ.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Tensor, matmul};
///
/// let a = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2])?;
/// let identity = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[2, 2])?;
/// assert_eq!(matmul(a.view(), identity.view())?, a);
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
pub fn matmul<T: Element>(
    a: TensorView<'_, T>,
    b: TensorView<'_, T>,
) -> Result<Tensor<T>, TensorError> {
    matmul_alloc(a, b, Rhs::AsIs)
}

/// `a @ bᵀ` for `a: (m, k)` and `b: (n, k)`, giving `(m, n)`: the tied output projection.
///
/// # Errors
///
/// As [`matmul`].
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Tensor, matmul_transposed};
///
/// // Hidden states (2, 3) against a (vocab_size = 4, n_embd = 3) table: logits (2, 4).
/// let h = Tensor::from_vec(vec![1.0f64, 0.0, 0.0, 0.0, 1.0, 0.0], &[2, 3])?;
/// let table = Tensor::from_vec((0..12).map(f64::from).collect(), &[4, 3])?;
/// let logits = matmul_transposed(h.view(), table.view())?;
/// assert_eq!(logits.dims(), &[2, 4]);
/// assert_eq!(logits.row(1)?, &[1.0, 4.0, 7.0, 10.0]);
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
pub fn matmul_transposed<T: Element>(
    a: TensorView<'_, T>,
    b: TensorView<'_, T>,
) -> Result<Tensor<T>, TensorError> {
    matmul_alloc(a, b, Rhs::Transposed)
}

fn matmul_alloc<T: Element>(
    a: TensorView<'_, T>,
    b: TensorView<'_, T>,
    rhs: Rhs,
) -> Result<Tensor<T>, TensorError> {
    let (m, _, n) = product_dims(a.shape(), b.shape(), rhs)?;
    let mut out = Tensor::from_vec(try_filled(m * n, T::zero(), "matmul")?, &[m, n])?;
    matmul_into(a, b, rhs, out.view_mut(), Accumulate::Replace)?;
    Ok(out)
}

/// `out = a @ op(b)` or `out += a @ op(b)` into a caller's `(m, n)` buffer, without
/// allocating (except for `f16`/`bf16`, which widen their operands to `f32`).
///
/// # Errors
///
/// As [`matmul`], and [`TensorError::OutputShapeMismatch`] when `out` is not `(m, n)`.
pub fn matmul_into<T: Element>(
    a: TensorView<'_, T>,
    b: TensorView<'_, T>,
    rhs: Rhs,
    mut out: TensorViewMut<'_, T>,
    accumulate: Accumulate,
) -> Result<(), TensorError> {
    let (m, k, n) = product_dims(a.shape(), b.shape(), rhs)?;
    let expected = Shape::new(&[m, n])?;
    if out.shape() != expected {
        return Err(TensorError::OutputShapeMismatch {
            op: "matmul_into",
            expected,
            got: out.shape(),
        });
    }
    T::gemm(
        m,
        k,
        n,
        a.as_slice(),
        b.as_slice(),
        rhs == Rhs::Transposed,
        out.as_mut_slice(),
        accumulate == Accumulate::Add,
    );
    Ok(())
}

/// `(m, k, n)` of `a @ op(b)`, or the error naming both shapes.
fn product_dims(a: Shape, b: Shape, rhs: Rhs) -> Result<(usize, usize, usize), TensorError> {
    let (m, k) = a.dims2("matmul (lhs)")?;
    let (k2, n) = match rhs {
        Rhs::AsIs => b.dims2("matmul (rhs)")?,
        Rhs::Transposed => {
            let (n, k2) = b.dims2("matmul (rhs)")?;
            (k2, n)
        }
    };
    if k != k2 {
        return Err(TensorError::MatmulShapeMismatch {
            lhs: a,
            rhs: b,
            rhs_transposed: rhs == Rhs::Transposed,
        });
    }
    Ok((m, k, n))
}

fn as_stride(x: usize) -> isize {
    isize::try_from(x).expect("a slice length always fits in isize")
}

/// Checks the lengths `gemm` relies on. A failure is a bug in this crate: the public
/// functions validate shapes first.
fn assert_gemm_lengths<T>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &[T]) {
    assert!(
        a.len() == m * k && b.len() == k * n && c.len() == m * n,
        "gemm: lengths a={} b={} c={} do not match m={m} k={k} n={n}",
        a.len(),
        b.len(),
        c.len()
    );
}

macro_rules! native_gemm {
    ($t:ty, $kernel:path) => {
        impl Sealed for $t {
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                b: &[Self],
                b_transposed: bool,
                c: &mut [Self],
                accumulate: bool,
            ) {
                assert_gemm_lengths(m, k, n, a, b, c);
                if m == 0 || n == 0 {
                    return;
                }
                if k == 0 {
                    // An empty sum: `c = 0` or `c += 0`.
                    if !accumulate {
                        c.fill(0.0);
                    }
                    return;
                }
                // `b` as a (k, n) matrix: row-major (n, 1), or stored (n, k) and read
                // transposed (1, k).
                let (rsb, csb) = if b_transposed {
                    (1, as_stride(k))
                } else {
                    (as_stride(n), 1)
                };
                let beta = if accumulate { 1.0 } else { 0.0 };
                // SAFETY: `assert_gemm_lengths` checked a.len() == m*k, b.len() == k*n and
                // c.len() == m*n, and m, k, n > 0. With row-major strides a (rsa = k,
                // csa = 1), c (rsc = n, csc = 1) and b as chosen above, every index the
                // kernel forms, i*rs + j*cs for i, j inside the matrix, is below the
                // slice length. `c` is a unique `&mut` borrow, so it aliases neither `a`
                // nor `b`. With beta = 0 matrixmultiply never reads `c`.
                unsafe {
                    $kernel(
                        m,
                        k,
                        n,
                        1.0,
                        a.as_ptr(),
                        as_stride(k),
                        1,
                        b.as_ptr(),
                        rsb,
                        csb,
                        beta,
                        c.as_mut_ptr(),
                        as_stride(n),
                        1,
                    );
                }
            }
        }
    };
}

native_gemm!(f32, matrixmultiply::sgemm);
native_gemm!(f64, matrixmultiply::dgemm);

macro_rules! widened_gemm {
    ($t:ty) => {
        impl Sealed for $t {
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                a: &[Self],
                b: &[Self],
                b_transposed: bool,
                c: &mut [Self],
                accumulate: bool,
            ) {
                assert_gemm_lengths(m, k, n, a, b, c);
                let widen = |xs: &[Self]| xs.iter().map(|x| x.as_f32()).collect::<Vec<f32>>();
                let (a32, b32) = (widen(a), widen(b));
                let mut c32 = if accumulate {
                    widen(c)
                } else {
                    vec![0.0; c.len()]
                };
                <f32 as Sealed>::gemm(m, k, n, &a32, &b32, b_transposed, &mut c32, accumulate);
                for (out, &x) in c.iter_mut().zip(&c32) {
                    *out = <$t>::from_f32(x);
                }
            }
        }
    };
}

widened_gemm!(f16);
widened_gemm!(bf16);

#[cfg(test)]
mod tests {
    use super::*;

    /// The obviously-correct triple loop, in f64.
    fn naive(a: &[f64], b: &[f64], m: usize, k: usize, n: usize, b_transposed: bool) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| {
                        let bv = if b_transposed {
                            b[j * k + p]
                        } else {
                            b[p * n + j]
                        };
                        a[i * k + p] * bv
                    })
                    .sum();
            }
        }
        c
    }

    fn seq(len: usize, scale: f64) -> Vec<f64> {
        (0..len)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) * scale)
            .collect()
    }

    #[test]
    fn sizes_around_kernel_tiles_match_the_triple_loop() {
        // Non-multiples of the kernel tile and the empty cases, as matrixmultiply tests.
        for &(m, k, n) in &[
            (0, 3, 2),
            (2, 0, 3),
            (3, 2, 0),
            (1, 1, 1),
            (7, 13, 9),
            (17, 5, 33),
            (9, 31, 8),
        ] {
            for rhs in [Rhs::AsIs, Rhs::Transposed] {
                let a = seq(m * k, 0.25);
                let b = seq(k * n, 0.5);
                let b_dims = if rhs == Rhs::Transposed {
                    [n, k]
                } else {
                    [k, n]
                };
                let av = TensorView::new(&a, &[m, k]).unwrap();
                let bv = TensorView::new(&b, &b_dims).unwrap();
                let got = matmul_alloc(av, bv, rhs).unwrap();
                // Products of small multiples of 1/4 sum exactly in f64.
                assert_eq!(
                    got.as_slice(),
                    naive(&a, &b, m, k, n, rhs == Rhs::Transposed)
                );
            }
        }
    }

    #[test]
    fn accumulate_adds_to_the_output() {
        let a = [1.0f32, 2.0];
        let b = [3.0f32, 4.0];
        let mut out = [10.0f32];
        let av = TensorView::new(&a, &[1, 2]).unwrap();
        let bv = TensorView::new(&b, &[1, 2]).unwrap();
        let ov = TensorViewMut::new(&mut out, &[1, 1]).unwrap();
        matmul_into(av, bv, Rhs::Transposed, ov, Accumulate::Add).unwrap();
        assert_eq!(out, [21.0]);
    }

    #[test]
    fn empty_inner_dimension_replaces_with_zero() {
        let a: [f32; 0] = [];
        let mut out = [5.0f32; 4];
        let av = TensorView::new(&a, &[2, 0]).unwrap();
        let bv = TensorView::new(&a, &[0, 2]).unwrap();
        let ov = TensorViewMut::new(&mut out, &[2, 2]).unwrap();
        matmul_into(av, bv, Rhs::AsIs, ov, Accumulate::Replace).unwrap();
        assert_eq!(out, [0.0; 4]);
    }

    #[test]
    fn half_types_compute_in_f32() {
        let a: Vec<bf16> = [1.0f32, 2.0, 3.0]
            .iter()
            .map(|&x| bf16::from_f32(x))
            .collect();
        let b: Vec<bf16> = [0.5f32, 0.25, 2.0]
            .iter()
            .map(|&x| bf16::from_f32(x))
            .collect();
        let got = matmul(
            TensorView::new(&a, &[1, 3]).unwrap(),
            TensorView::new(&b, &[3, 1]).unwrap(),
        )
        .unwrap();
        assert_eq!(got.as_slice()[0].as_f32(), 7.0);
    }

    #[test]
    fn shape_errors_name_both_shapes() {
        let a = [0.0f32; 6];
        let av = TensorView::new(&a, &[2, 3]).unwrap();
        let bv = TensorView::new(&a, &[2, 3]).unwrap();
        let err = matmul(av, bv).unwrap_err();
        assert_eq!(
            err.to_string(),
            "matmul: lhs (2, 3) and rhs (2, 3) have different inner dimensions"
        );
        let v = TensorView::new(&a, &[6]).unwrap();
        assert!(matches!(
            matmul(v, bv),
            Err(TensorError::RankMismatch { expected: 2, .. })
        ));
        let mut out = [0.0f32; 3];
        let err = matmul_into(
            av,
            bv,
            Rhs::Transposed,
            TensorViewMut::new(&mut out, &[3]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap_err();
        assert!(
            matches!(err, TensorError::OutputShapeMismatch { .. }),
            "{err}"
        );
    }
}
