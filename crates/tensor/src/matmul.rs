//! Matrix products of rank-2 views through the `gemm` crate, whose call is this module's
//! one `unsafe` block (checked lengths and strides first; see the `// SAFETY:` comment;
//! the crate's other `unsafe` is the non-temporal stores of stream.rs).
//!
//! `f32` and `f64` multiply natively; `f16` and `bf16` are widened to `f32`, multiplied
//! and rounded once. `gemm` picks its AVX-512, AVX2 or SSE kernels at run time, and splits
//! large products across rayon's pool under the `parallel` feature; each output element
//! is summed in the same order whatever the thread count, so results are bit-identical
//! with and without threads. We chose it over `matrixmultiply` by measurement (faster at
//! every shape we measured, 3× on a one-row decode projection; docs/benchmarks.md).

use half::{bf16, f16};

use crate::element::{Element, private::Sealed};
use crate::error::TensorError;
use crate::like::{TensorLike, TensorLikeMut};
use crate::shape::Shape;
use crate::tensor::{Tensor, try_filled};
use crate::view::TensorView;

/// How an operand of a product is used: as stored, or transposed (BLAS's `N` / `T`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// Used as stored: the left operand is `(m, k)`, the right `(k, n)`.
    AsIs,
    /// Used transposed: the left operand is stored `(k, m)`, the right `(n, k)` — e.g.
    /// `a @ bᵀ` for a tied output projection `logits = h @ Eᵀ` with
    /// `E: (vocab_size, n_embd)`, or `aᵀ @ b` for its weight gradient `Gᵀ h`.
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

/// `a @ b` for `a: (m, k)` and `b: (k, n)`, giving `(m, n)`. The operands are anything
/// [`TensorLike`]: views, `&Tensor`, slices with their dims.
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
pub fn matmul<'a, 'b, T: Element>(
    a: impl TensorLike<'a, T>,
    b: impl TensorLike<'b, T>,
) -> Result<Tensor<T>, TensorError> {
    matmul_alloc(a.try_view()?, b.try_view()?, Operand::AsIs)
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
pub fn matmul_transposed<'a, 'b, T: Element>(
    a: impl TensorLike<'a, T>,
    b: impl TensorLike<'b, T>,
) -> Result<Tensor<T>, TensorError> {
    matmul_alloc(a.try_view()?, b.try_view()?, Operand::Transposed)
}

fn matmul_alloc<T: Element>(
    a: TensorView<'_, T>,
    b: TensorView<'_, T>,
    b_op: Operand,
) -> Result<Tensor<T>, TensorError> {
    let (m, _, n) = product_dims(a.shape(), Operand::AsIs, b.shape(), b_op)?;
    // The output shape is checked (its element count may overflow for empty operands).
    let shape = Shape::new(&[m, n])?;
    let mut out =
        Tensor::from_shape_vec(try_filled(shape.elem_count(), T::zero(), "matmul")?, shape)?;
    matmul_into(
        a,
        Operand::AsIs,
        b,
        b_op,
        out.view_mut(),
        Accumulate::Replace,
    )?;
    Ok(out)
}

/// `out = op(a) @ op(b)` or `out += op(a) @ op(b)` into a caller's `(m, n)` buffer,
/// without allocating an output. (The GEMM allocates its own packing buffers, and
/// `f16`/`bf16` widen their operands to `f32`; in `f32`/`f64`, a single row times a
/// transposed operand, a one-token decode step's projection, allocates nothing.)
///
/// `op(a)` is `(m, k)` and `op(b)` is `(k, n)`; each operand is used as stored or
/// transposed ([`Operand`]).
///
/// # Errors
///
/// As [`matmul`], and [`TensorError::OutputShapeMismatch`] when `out` is not `(m, n)`.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::{Accumulate, Operand, Tensor, matmul_into};
///
/// // aᵀ @ b with a: (2, 1) stored, b: (2, 2): a rank-1 update added to `out`.
/// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2, 1])?;
/// let b = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[2, 2])?;
/// let mut out = Tensor::from_vec(vec![10.0f32, 10.0], &[1, 2])?;
/// matmul_into(a.view(), Operand::Transposed, b.view(), Operand::AsIs, out.view_mut(), Accumulate::Add)?;
/// assert_eq!(out.as_slice(), &[11.0, 12.0]);
/// # Ok::<(), tokenloom_tensor::TensorError>(())
/// ```
pub fn matmul_into<'a, 'b, 'o, T: Element>(
    a: impl TensorLike<'a, T>,
    a_op: Operand,
    b: impl TensorLike<'b, T>,
    b_op: Operand,
    out: impl TensorLikeMut<'o, T>,
    accumulate: Accumulate,
) -> Result<(), TensorError> {
    let (a, b) = (a.try_view()?, b.try_view()?);
    let mut out = out.try_view_mut()?;
    let (m, k, n) = product_dims(a.shape(), a_op, b.shape(), b_op)?;
    let expected = Shape::new(&[m, n])?;
    if out.shape() != expected {
        return Err(TensorError::OutputShapeMismatch {
            op: "matmul_into",
            expected,
            got: out.shape(),
        });
    }
    T::gemm(
        GemmDims {
            m,
            k,
            n,
            a_transposed: a_op == Operand::Transposed,
            b_transposed: b_op == Operand::Transposed,
            accumulate: accumulate == Accumulate::Add,
        },
        a.as_slice(),
        b.as_slice(),
        out.as_mut_slice(),
    )
}

/// `(m, k, n)` of `op(a) @ op(b)`, or the error naming both shapes.
fn product_dims(
    a: Shape,
    a_op: Operand,
    b: Shape,
    b_op: Operand,
) -> Result<(usize, usize, usize), TensorError> {
    let (m, k) = match (a.dims2("matmul (lhs)")?, a_op) {
        ((m, k), Operand::AsIs) | ((k, m), Operand::Transposed) => (m, k),
    };
    let (k2, n) = match (b.dims2("matmul (rhs)")?, b_op) {
        ((k2, n), Operand::AsIs) | ((n, k2), Operand::Transposed) => (k2, n),
    };
    if k != k2 {
        return Err(TensorError::MatmulShapeMismatch {
            lhs: a,
            lhs_transposed: a_op == Operand::Transposed,
            rhs: b,
            rhs_transposed: b_op == Operand::Transposed,
        });
    }
    Ok((m, k, n))
}

/// The sizes and flags of one GEMM call: `c (m, n) [+]= op(a) (m, k) · op(b) (k, n)`.
#[derive(Clone, Copy, Debug)]
pub struct GemmDims {
    /// Rows of `op(a)` and `c`.
    pub m: usize,
    /// The inner dimension.
    pub k: usize,
    /// Columns of `op(b)` and `c`.
    pub n: usize,
    /// `a` is stored `(k, m)`.
    pub a_transposed: bool,
    /// `b` is stored `(n, k)`.
    pub b_transposed: bool,
    /// Add to `c` instead of overwriting it.
    pub accumulate: bool,
}

impl GemmDims {
    /// Row and column strides of `a` as an `(m, k)` matrix.
    fn a_strides(&self) -> (isize, isize) {
        if self.a_transposed {
            (1, as_stride(self.m))
        } else {
            (as_stride(self.k), 1)
        }
    }

    /// Row and column strides of `b` as a `(k, n)` matrix.
    fn b_strides(&self) -> (isize, isize) {
        if self.b_transposed {
            (1, as_stride(self.k))
        } else {
            (as_stride(self.n), 1)
        }
    }

    /// Checks the lengths `gemm` relies on. A failure is a bug in this crate: the public
    /// functions validate shapes first.
    fn assert_lengths<T>(&self, a: &[T], b: &[T], c: &[T]) {
        let GemmDims { m, k, n, .. } = *self;
        assert!(
            a.len() == m * k && b.len() == k * n && c.len() == m * n,
            "gemm: lengths a={} b={} c={} do not match m={m} k={k} n={n}",
            a.len(),
            b.len(),
            c.len()
        );
    }
}

fn as_stride(x: usize) -> isize {
    isize::try_from(x).expect("a slice length always fits in isize")
}

/// `gemm`'s parallelism: rayon's current pool under the `parallel` feature unless the
/// caller asked for [`Par::Seq`](crate::Par::Seq) (`gemm` itself keeps small products on
/// the calling thread), the calling thread otherwise.
fn parallelism() -> gemm::Parallelism {
    #[cfg(feature = "parallel")]
    if crate::parallel::current_par() == crate::parallel::Par::Rayon {
        if rayon::current_num_threads() > 1 {
            crate::pool_pin::pin_if_requested();
        }
        return gemm::Parallelism::Rayon(0);
    }
    gemm::Parallelism::None
}

macro_rules! native_gemm {
    ($t:ty) => {
        impl Sealed for $t {
            fn gemm(
                dims: GemmDims,
                a: &[Self],
                b: &[Self],
                c: &mut [Self],
            ) -> Result<(), TensorError> {
                dims.assert_lengths(a, b, c);
                let GemmDims {
                    m,
                    k,
                    n,
                    accumulate,
                    ..
                } = dims;
                if m == 0 || n == 0 {
                    return Ok(());
                }
                if k == 0 {
                    // An empty sum: `c = 0` or `c += 0`.
                    if !accumulate {
                        c.fill(0.0);
                    }
                    return Ok(());
                }
                if m <= crate::gemv::MAX_ROWS && dims.b_transposed && (m == 1 || !dims.a_transposed)
                {
                    // A decode step's projection: memory-bound, see `gemv`.
                    crate::gemv::rows_times_transposed(a, m, b, c, accumulate);
                    return Ok(());
                }
                let (rsa, csa) = dims.a_strides();
                let (rsb, csb) = dims.b_strides();
                // SAFETY: `assert_lengths` checked a.len() == m*k, b.len() == k*n and
                // c.len() == m*n, and m, k, n > 0. The strides describe exactly those
                // buffers: a as (m, k) row-major (k, 1) or stored (k, m) and read
                // transposed (1, m); b likewise as (k, n); c row-major (n, 1). So every
                // index the kernel forms, i*rs + j*cs for i, j inside its matrix, is below
                // the slice length. `c` is a unique `&mut` borrow, so it aliases neither
                // `a` nor `b`; `gemm` only reads through the `a`/`b` pointers (its `*mut`
                // argument types notwithstanding) and reads `c` only when `read_dst` is
                // true, i.e. when accumulating. `gemm` supports `f32` and `f64`.
                #[allow(unsafe_code)]
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        c.as_mut_ptr(),
                        1,
                        as_stride(n),
                        accumulate,
                        a.as_ptr(),
                        csa,
                        rsa,
                        b.as_ptr(),
                        csb,
                        rsb,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        parallelism(),
                    );
                }
                Ok(())
            }
        }
    };
}

native_gemm!(f32);
native_gemm!(f64);

macro_rules! widened_gemm {
    ($t:ty) => {
        impl Sealed for $t {
            fn gemm(
                dims: GemmDims,
                a: &[Self],
                b: &[Self],
                c: &mut [Self],
            ) -> Result<(), TensorError> {
                dims.assert_lengths(a, b, c);
                // f32 copies sized by the caller's operands: allocated fallibly.
                let widen = |xs: &[Self], keep: bool| -> Result<Vec<f32>, TensorError> {
                    let mut wide = try_filled(xs.len(), 0.0f32, "matmul (widened to f32)")?;
                    if keep {
                        for (w, x) in wide.iter_mut().zip(xs) {
                            *w = x.as_f32();
                        }
                    }
                    Ok(wide)
                };
                let (a32, b32) = (widen(a, true)?, widen(b, true)?);
                let mut c32 = widen(c, dims.accumulate)?;
                <f32 as Sealed>::gemm(dims, &a32, &b32, &mut c32)?;
                for (out, &x) in c.iter_mut().zip(&c32) {
                    *out = <$t>::from_f32(x);
                }
                Ok(())
            }
        }
    };
}

widened_gemm!(f16);
widened_gemm!(bf16);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::view::TensorViewMut;

    /// The obviously-correct triple loop, in f64, on stored operands.
    fn naive(a: &[f64], b: &[f64], d: GemmDims) -> Vec<f64> {
        let GemmDims { m, k, n, .. } = d;
        let at = |i: usize, p: usize| {
            if d.a_transposed {
                a[p * m + i]
            } else {
                a[i * k + p]
            }
        };
        let bt = |p: usize, j: usize| {
            if d.b_transposed {
                b[j * k + p]
            } else {
                b[p * n + j]
            }
        };
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| at(i, p) * bt(p, j)).sum();
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
        // Non-multiples of the kernel tiles and the empty cases.
        let sizes = [
            (0, 3, 2),
            (2, 0, 3),
            (3, 2, 0),
            (1, 1, 1),
            (7, 13, 9),
            (17, 5, 33),
            (9, 31, 8),
            // Around the f32 kernels' wider tiles (16- and 32-lane registers).
            (33, 17, 65),
            (16, 64, 48),
            (31, 3, 129),
            // A few rows against a transposed operand take the dot-product path.
            (1, 37, 70),
            (3, 37, 70),
        ];
        let ops = [Operand::AsIs, Operand::Transposed];
        for &(m, k, n) in &sizes {
            for a_op in ops {
                for b_op in ops {
                    let a = seq(m * k, 0.25);
                    let b = seq(k * n, 0.5);
                    let a_dims = if a_op == Operand::Transposed {
                        [k, m]
                    } else {
                        [m, k]
                    };
                    let b_dims = if b_op == Operand::Transposed {
                        [n, k]
                    } else {
                        [k, n]
                    };
                    let av = TensorView::new(&a, &a_dims).unwrap();
                    let bv = TensorView::new(&b, &b_dims).unwrap();
                    let mut out = vec![f64::NAN; m * n];
                    let ov = TensorViewMut::new(&mut out, &[m, n]).unwrap();
                    matmul_into(av, a_op, bv, b_op, ov, Accumulate::Replace).unwrap();
                    let dims = GemmDims {
                        m,
                        k,
                        n,
                        a_transposed: a_op == Operand::Transposed,
                        b_transposed: b_op == Operand::Transposed,
                        accumulate: false,
                    };
                    // Products of small multiples of 1/4 sum exactly in f64.
                    let want = naive(&a, &b, dims);
                    assert_eq!(out, want, "{m}x{k}x{n} {a_op:?} {b_op:?}");
                    // The native f32 path (other kernels, other tiles): these sums are
                    // exact in f32 too (multiples of 1/8 below 2^21).
                    let (a32, b32): (Vec<f32>, Vec<f32>) = (
                        a.iter().map(|&x| x as f32).collect(),
                        b.iter().map(|&x| x as f32).collect(),
                    );
                    let mut out32 = vec![f32::NAN; m * n];
                    matmul_into(
                        TensorView::new(&a32, &a_dims).unwrap(),
                        a_op,
                        TensorView::new(&b32, &b_dims).unwrap(),
                        b_op,
                        TensorViewMut::new(&mut out32, &[m, n]).unwrap(),
                        Accumulate::Replace,
                    )
                    .unwrap();
                    let out32: Vec<f64> = out32.iter().map(|&x| f64::from(x)).collect();
                    assert_eq!(out32, want, "f32 {m}x{k}x{n} {a_op:?} {b_op:?}");
                }
            }
        }
    }

    #[test]
    fn allocating_forms_agree_with_into() {
        let a = seq(6, 0.5);
        let b = seq(12, 0.25);
        let av = TensorView::new(&a, &[2, 3]).unwrap();
        let bt = TensorView::new(&b, &[4, 3]).unwrap();
        let got = matmul_transposed(av, bt).unwrap();
        let mut out = vec![0.0; 8];
        matmul_into(
            av,
            Operand::AsIs,
            bt,
            Operand::Transposed,
            TensorViewMut::new(&mut out, &[2, 4]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap();
        assert_eq!(got.as_slice(), &out[..]);
    }

    #[test]
    fn empty_operands_with_huge_outer_dimensions_are_an_error() {
        let empty: [f32; 0] = [];
        let a = TensorView::new(&empty, &[1 << 40, 0]).unwrap();
        let b = TensorView::new(&empty, &[0, 1 << 40]).unwrap();
        assert!(matches!(
            matmul(a, b),
            Err(TensorError::ShapeOverflow { .. })
        ));
    }

    #[test]
    fn accumulate_adds_to_the_output() {
        let a = [1.0f32, 2.0];
        let b = [3.0f32, 4.0];
        let mut out = [10.0f32];
        let av = TensorView::new(&a, &[1, 2]).unwrap();
        let bv = TensorView::new(&b, &[1, 2]).unwrap();
        let ov = TensorViewMut::new(&mut out, &[1, 1]).unwrap();
        matmul_into(
            av,
            Operand::AsIs,
            bv,
            Operand::Transposed,
            ov,
            Accumulate::Add,
        )
        .unwrap();
        assert_eq!(out, [21.0]);
    }

    #[test]
    fn empty_inner_dimension_replaces_with_zero() {
        let a: [f32; 0] = [];
        let mut out = [5.0f32; 4];
        let av = TensorView::new(&a, &[2, 0]).unwrap();
        let bv = TensorView::new(&a, &[0, 2]).unwrap();
        let ov = TensorViewMut::new(&mut out, &[2, 2]).unwrap();
        matmul_into(
            av,
            Operand::AsIs,
            bv,
            Operand::AsIs,
            ov,
            Accumulate::Replace,
        )
        .unwrap();
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
            Operand::AsIs,
            bv,
            Operand::Transposed,
            TensorViewMut::new(&mut out, &[3]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap_err();
        assert!(
            matches!(err, TensorError::OutputShapeMismatch { .. }),
            "{err}"
        );
        let err = matmul_into(
            av,
            Operand::Transposed,
            bv,
            Operand::Transposed,
            TensorViewMut::new(&mut out, &[3]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap_err();
        assert!(err.to_string().contains("(transposed)"), "{err}");
    }
}
