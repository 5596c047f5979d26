//! `a @ Mᵀ` for a matrix `M` kept in a compact storage whose rows are decoded when read
//! (GGUF blocks, block-scaled FP8): the logits of a quantized output head. One
//! implementation for every storage, which supplies only its row decoders
//! ([`RowDecode`]).

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, Tensor, TensorError, TensorView, TensorViewMut,
    for_each_chunk_mut_by_work, matmul_into, try_filled,
};

use crate::error::IoError;

/// A matrix kept in a compact storage whose rows are decoded only when read: a GGUF
/// block-quantized [`QuantizedMatrix`](crate::QuantizedMatrix) or a block-scaled
/// [`Fp8Matrix`](crate::Fp8Matrix). `tokenloom_embedding::QuantizedEmbedding` looks up
/// and computes logits from either. Sealed: implemented by those two types only.
pub trait QuantizedRows:
    sealed::Sealed + Clone + std::fmt::Debug + PartialEq + Send + Sync
{
    /// The number of rows.
    fn rows(&self) -> usize;
    /// The number of columns.
    fn cols(&self) -> usize;
    /// The storage format's name (`Q8_0`, `F8_E4M3`, …).
    fn format_name(&self) -> String;
    /// The bytes the stored matrix takes.
    fn bytes_in_memory(&self) -> usize;
    /// Decodes row `row` into `out` (`cols` values), each `f32` rounded once to `T`.
    ///
    /// # Errors
    ///
    /// A row past the end, and an `out` of the wrong length.
    fn row_into<T: Element>(&self, row: usize, out: &mut [T]) -> Result<(), IoError>;
    /// The whole matrix, decoded into a dense `(rows, cols)` tensor.
    ///
    /// # Errors
    ///
    /// Allocation errors.
    fn to_dense<T: Element>(&self) -> Result<Tensor<T>, IoError>;
    /// `out = a @ selfᵀ` for `a: (m, cols)`, `out: (m, rows)`: up to 8 rows of `a` with
    /// the bits of the dense decode path on the decoded `f32` matrix.
    ///
    /// # Errors
    ///
    /// Shape errors, and allocation errors.
    fn matmul_transposed_into<T: Element>(
        &self,
        a: TensorView<'_, T>,
        out: TensorViewMut<'_, T>,
    ) -> Result<(), IoError>;
}

pub(crate) mod sealed {
    /// Keeps [`QuantizedRows`](super::QuantizedRows) implemented by this crate only.
    pub trait Sealed {}
}

/// The row decoders of a compact `(rows, cols)` matrix.
pub(crate) trait RowDecode: Sync {
    /// `(rows, cols)`.
    fn shape(&self) -> (usize, usize);
    /// The bytes the stored matrix takes (the work of one pass over it).
    fn stored_bytes(&self) -> usize;
    /// Decodes the `out.len() / cols` rows from `first` into `out`, in `f32`.
    fn decode_rows_f32(&self, first: usize, out: &mut [f32]);
    /// `out[i] = a[i] · row` for the `out.len()` rows of `a`: the row decoded into
    /// `scratch` (`cols` values), each product summed as [`tokenloom_tensor::dot`] sums.
    fn dot_row_f32(&self, row: usize, a: &[f32], scratch: &mut [f32], out: &mut [f32]);
}

/// The most rows of `a` the dot-product path takes (as the dense decode path).
const DOT_MAX_ROWS: usize = 8;
/// Matrix rows per thread task on the dot-product path.
const DOT_ROWS_PER_TASK: usize = 64;
/// Matrix rows decoded per GEMM tile.
const GEMM_TILE_ROWS: usize = 256;

/// `out = a @ matrixᵀ` for `a: (m, cols)`, `out: (m, rows)`: up to 8 rows of `a` by
/// dot products of decoded rows (the bits of the dense decode path of `matmul_into` on
/// the decoded `f32` matrix), more rows by the GEMM on decoded 256-row tiles. `a` is
/// widened to `f32`, each output rounded once to `T`.
pub(crate) fn matmul_transposed_into<M: RowDecode, T: Element>(
    matrix: &M,
    a: TensorView<'_, T>,
    mut out: TensorViewMut<'_, T>,
) -> Result<(), IoError> {
    let (rows, cols) = matrix.shape();
    let (m, k) = a.shape().dims2("quantized matmul (lhs)")?;
    if k != cols {
        return Err(TensorError::MatmulShapeMismatch {
            lhs: a.shape(),
            lhs_transposed: false,
            rhs: Shape::new(&[rows, cols])?,
            rhs_transposed: true,
        }
        .into());
    }
    let expected = Shape::new(&[m, rows])?;
    if out.shape() != expected {
        return Err(TensorError::OutputShapeMismatch {
            op: "quantized matmul",
            expected,
            got: out.shape(),
        }
        .into());
    }
    if m == 0 || rows == 0 {
        return Ok(());
    }
    if cols == 0 {
        out.as_mut_slice().fill(T::zero()); // empty sums
        return Ok(());
    }
    let mut a_f32 = try_filled(a.as_slice().len(), 0.0f32, "quantized matmul")?;
    for (w, x) in a_f32.iter_mut().zip(a.as_slice()) {
        *w = x.as_f32();
    }
    if m <= DOT_MAX_ROWS {
        rows_dot(matrix, &a_f32, m, out.as_mut_slice())
    } else {
        tiles_gemm(matrix, &a_f32, m, out.as_mut_slice())
    }
}

/// The dot-product path.
fn rows_dot<M: RowDecode, T: Element>(
    matrix: &M,
    a: &[f32],
    m: usize,
    out: &mut [T],
) -> Result<(), IoError> {
    if m == 1 {
        // `out` is its own `(rows, 1)` column.
        dot_columns(matrix, a, 1, out)?;
        return Ok(());
    }
    // Per matrix row, its `m` outputs are contiguous in a `(rows, m)` buffer, then
    // transposed into `out`.
    let n = matrix.shape().0;
    let mut columns = try_filled(n * m, T::zero(), "quantized matmul")?;
    dot_columns(matrix, a, m, &mut columns)?;
    for (i, out_row) in out.chunks_exact_mut(n).enumerate() {
        for (o, column) in out_row.iter_mut().zip(columns.chunks_exact(m)) {
            *o = column[i];
        }
    }
    Ok(())
}

/// `columns[j·m + i] = a[i] · row j` for every matrix row `j`, rows split across
/// threads; each row decoded once.
fn dot_columns<M: RowDecode, T: Element>(
    matrix: &M,
    a: &[f32],
    m: usize,
    columns: &mut [T],
) -> Result<(), IoError> {
    let k = matrix.shape().1;
    // A scratch row per task, allocated in the task; a failed allocation skips the task
    // and is reported once all tasks are done.
    let failed = std::sync::atomic::AtomicBool::new(false);
    for_each_chunk_mut_by_work(
        columns,
        DOT_ROWS_PER_TASK * m,
        matrix.stored_bytes(),
        |task, outputs| {
            let mut row = Vec::new();
            if row.try_reserve_exact(k).is_err() {
                failed.store(true, std::sync::atomic::Ordering::Relaxed);
                return;
            }
            row.resize(k, 0.0f32);
            let first = task * DOT_ROWS_PER_TASK;
            let mut dots = [0.0f32; DOT_MAX_ROWS];
            for (j, outs) in outputs.chunks_exact_mut(m).enumerate() {
                let dots = &mut dots[..m];
                matrix.dot_row_f32(first + j, a, &mut row, dots);
                for (o, &d) in outs.iter_mut().zip(dots.iter()) {
                    *o = T::from_f32_lossy(d);
                }
            }
        },
    );
    if failed.into_inner() {
        return Err(TensorError::AllocationFailed {
            op: "quantized matmul",
            bytes: k.saturating_mul(4),
        }
        .into());
    }
    Ok(())
}

/// The GEMM path.
fn tiles_gemm<M: RowDecode, T: Element>(
    matrix: &M,
    a: &[f32],
    m: usize,
    out: &mut [T],
) -> Result<(), IoError> {
    let (n, k) = matrix.shape();
    let a = TensorView::new(a, &[m, k])?;
    let tile_rows = GEMM_TILE_ROWS.min(n);
    let mut tile = try_filled(tile_rows * k, 0.0f32, "quantized matmul")?;
    let mut products = try_filled(m * tile_rows, 0.0f32, "quantized matmul")?;
    for first in (0..n).step_by(tile_rows) {
        let rows = tile_rows.min(n - first);
        matrix.decode_rows_f32(first, &mut tile[..rows * k]);
        matmul_into(
            a,
            Operand::AsIs,
            TensorView::new(&tile[..rows * k], &[rows, k])?,
            Operand::Transposed,
            TensorViewMut::new(&mut products[..m * rows], &[m, rows])?,
            Accumulate::Replace,
        )?;
        for (out_row, product_row) in out
            .chunks_exact_mut(n)
            .zip(products[..m * rows].chunks_exact(rows))
        {
            for (o, &p) in out_row[first..first + rows].iter_mut().zip(product_row) {
                *o = T::from_f32_lossy(p);
            }
        }
    }
    Ok(())
}
