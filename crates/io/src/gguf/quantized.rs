//! [`QuantizedMatrix`]: a block-quantized `(rows, cols)` matrix kept as stored, whose rows
//! are decoded only when read.

use std::ops::Range;
use std::sync::Arc;

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, Tensor, TensorError, TensorLike, TensorLikeMut,
    TensorView, TensorViewMut, for_each_chunk_mut_by_work, matmul_into, try_filled,
};

use super::ggml_type::GgmlType;
use super::quant::BlockCodec;
use crate::error::IoError;
use crate::mapped::FileBytes;

/// Where the blocks are: a range of a memory-mapped (or in-memory) file, or owned bytes.
#[derive(Clone, Debug)]
enum Blocks {
    Mapped(Arc<FileBytes>, Range<usize>),
    Owned(Arc<[u8]>),
}

impl Blocks {
    fn bytes(&self) -> &[u8] {
        match self {
            Blocks::Mapped(file, range) => &file[range.clone()],
            Blocks::Owned(bytes) => bytes,
        }
    }
}

/// A block-quantized `(rows, cols)` matrix — a GGUF token-embedding table, say — kept as
/// stored (memory-mapped from its file, or owned). A row is decoded only when it is read:
/// [`row_into`](QuantizedMatrix::row_into) decodes one row into a caller's buffer and
/// [`dot_row`](QuantizedMatrix::dot_row) multiplies a row with a vector without
/// materializing it.
///
/// # Examples
///
/// ```
/// use tokenloom_io::{GgmlType, QuantizedMatrix, quantize_q8_0};
///
/// let values: Vec<f32> = (0..2 * 64).map(|i| i as f32 / 64.0 - 1.0).collect();
/// let table = QuantizedMatrix::from_bytes(GgmlType::Q8_0, quantize_q8_0(&values), 2, 64)?;
/// assert_eq!((table.rows(), table.cols(), table.bytes_in_memory()), (2, 64, 2 * 2 * 34));
/// let mut row = vec![0.0f32; 64];
/// table.row_into(1, &mut row)?;
/// assert!((row[10] - values[64 + 10]).abs() < 0.01);
/// # Ok::<(), tokenloom_io::IoError>(())
/// ```
#[derive(Clone, Debug)]
pub struct QuantizedMatrix {
    blocks: Blocks,
    codec: BlockCodec,
    rows: usize,
    cols: usize,
    row_bytes: usize,
}

impl QuantizedMatrix {
    /// A matrix over a range of a mapped file (see `GgufFile::quantized`).
    pub(crate) fn mapped(
        name: &str,
        file: Arc<FileBytes>,
        range: Range<usize>,
        codec: BlockCodec,
        rows: usize,
        cols: usize,
    ) -> Result<Self, IoError> {
        let row_bytes = codec.bytes_for(cols)?;
        Self::check_size(codec, range.len(), rows, cols, row_bytes).map_err(|_| {
            crate::GgufFormatError::QuantizedSize {
                tensor: name.to_owned(),
                bytes: range.len(),
                rows,
                row_bytes,
            }
        })?;
        Ok(Self {
            blocks: Blocks::Mapped(file, range),
            codec,
            rows,
            cols,
            row_bytes,
        })
    }

    /// A matrix over bytes in memory (e.g. blocks quantized by the caller).
    ///
    /// # Errors
    ///
    /// [`IoError::UnsupportedDType`] for a type without a codec,
    /// [`IoError::QuantizedLength`] when `cols` is not a whole number of blocks, and
    /// [`IoError::QuantizedData`] when `bytes` is not exactly `rows` rows of them.
    pub fn from_bytes(
        qtype: GgmlType,
        bytes: Vec<u8>,
        rows: usize,
        cols: usize,
    ) -> Result<Self, IoError> {
        let codec = BlockCodec::of(qtype).ok_or_else(|| IoError::UnsupportedDType {
            name: "quantized matrix".to_owned(),
            dtype: qtype.name(),
        })?;
        let row_bytes = codec.bytes_for(cols)?;
        Self::check_size(codec, bytes.len(), rows, cols, row_bytes)?;
        Ok(Self {
            blocks: Blocks::Owned(bytes.into()),
            codec,
            rows,
            cols,
            row_bytes,
        })
    }

    fn check_size(
        codec: BlockCodec,
        len: usize,
        rows: usize,
        cols: usize,
        row_bytes: usize,
    ) -> Result<(), IoError> {
        match rows.checked_mul(row_bytes) {
            Some(expected) if expected == len => Ok(()),
            expected => Err(IoError::QuantizedData {
                qtype: codec.qtype().name(),
                bytes: len,
                expected: expected.unwrap_or(usize::MAX),
                values: rows.saturating_mul(cols),
            }),
        }
    }

    /// The number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns (values per row).
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The storage type.
    #[must_use]
    pub fn qtype(&self) -> GgmlType {
        self.codec.qtype()
    }

    /// The codec.
    #[must_use]
    pub fn codec(&self) -> BlockCodec {
        self.codec
    }

    /// The bytes the blocks take (what is mapped or held; a dense `f32` copy would take
    /// `4 · rows · cols`).
    #[must_use]
    pub fn bytes_in_memory(&self) -> usize {
        self.rows * self.row_bytes
    }

    /// The stored blocks of row `row`.
    ///
    /// # Panics
    ///
    /// When `row >= rows` (callers check ids first; [`row_into`](Self::row_into) does).
    #[must_use]
    pub fn row_bytes(&self, row: usize) -> &[u8] {
        assert!(row < self.rows, "row {row} of {}", self.rows);
        &self.blocks.bytes()[row * self.row_bytes..(row + 1) * self.row_bytes]
    }

    fn check_row(&self, row: usize) -> Result<(), IoError> {
        if row < self.rows {
            Ok(())
        } else {
            Err(IoError::Tensor(
                tokenloom_tensor::TensorError::RowOutOfRange {
                    op: "QuantizedMatrix",
                    index: row,
                    n_rows: self.rows,
                },
            ))
        }
    }

    /// Decodes row `row` into `out` (`cols` values), rounding each `f32` once to `T`.
    ///
    /// # Errors
    ///
    /// A row past the end, and an `out` of the wrong length.
    pub fn row_into<T: Element>(&self, row: usize, out: &mut [T]) -> Result<(), IoError> {
        self.check_row(row)?;
        self.codec.dequantize_into(self.row_bytes(row), out)
    }

    /// `x · row`, from the stored blocks (see [`BlockCodec::dot`]).
    ///
    /// # Errors
    ///
    /// A row past the end, and an `x` of the wrong length.
    pub fn dot_row(&self, row: usize, x: &[f32]) -> Result<f32, IoError> {
        self.check_row(row)?;
        self.codec.dot(self.row_bytes(row), x)
    }

    /// The whole matrix, dequantized into a dense `(rows, cols)` tensor.
    ///
    /// # Errors
    ///
    /// Allocation errors.
    pub fn to_dense<T: Element>(&self) -> Result<Tensor<T>, IoError> {
        let len = self.rows.checked_mul(self.cols).ok_or(
            tokenloom_tensor::TensorError::ShapeOverflow {
                dims: vec![self.rows, self.cols],
            },
        )?;
        let mut data = try_filled(len, T::zero(), "QuantizedMatrix::to_dense")?;
        self.codec.dequantize_into(self.blocks.bytes(), &mut data)?;
        Ok(Tensor::from_vec(data, &[self.rows, self.cols])?)
    }

    /// `out = a @ selfᵀ` for `a: (m, cols)`, giving `out: (m, rows)` — the logits of a
    /// quantized (tied) output head, `h @ Eᵀ` — computed from the stored blocks, in `f32`,
    /// without a dense copy of the matrix.
    ///
    /// Up to 8 rows of `a` (decode steps) take the dot-product path: each row of the
    /// matrix is decoded once into a small buffer and dotted with the rows of `a` by
    /// [`tokenloom_tensor::dot`], the rows split across threads. The result has the bits
    /// of [`matmul_into`] on the dequantized `f32` matrix, for any thread count. More rows
    /// decode 256-row tiles and multiply each with the GEMM (within `f32` rounding of the
    /// dense product; the summation order is the GEMM's).
    ///
    /// `a` and `out` may be any [`Element`]: `a` is widened to `f32` and each output
    /// rounded once to `T`.
    ///
    /// # Errors
    ///
    /// [`TensorError::RankMismatch`] for an `a` that is not rank 2,
    /// [`TensorError::MatmulShapeMismatch`] when `a` does not have `cols` columns, and
    /// [`TensorError::OutputShapeMismatch`] for an `out` that is not `(m, rows)`.
    pub fn matmul_transposed_into<'a, 'o, T: Element>(
        &self,
        a: impl TensorLike<'a, T>,
        out: impl TensorLikeMut<'o, T>,
    ) -> Result<(), IoError> {
        let (a, mut out) = (a.try_view()?, out.try_view_mut()?);
        let (m, k) = a.shape().dims2("quantized matmul (lhs)")?;
        let stored = Shape::new(&[self.rows, self.cols])?;
        if k != self.cols {
            return Err(TensorError::MatmulShapeMismatch {
                lhs: a.shape(),
                lhs_transposed: false,
                rhs: stored,
                rhs_transposed: true,
            }
            .into());
        }
        let expected = Shape::new(&[m, self.rows])?;
        if out.shape() != expected {
            return Err(TensorError::OutputShapeMismatch {
                op: "quantized matmul",
                expected,
                got: out.shape(),
            }
            .into());
        }
        if m == 0 || self.rows == 0 {
            return Ok(());
        }
        if self.cols == 0 {
            out.as_mut_slice().fill(T::zero()); // empty sums
            return Ok(());
        }
        let a: Vec<f32> = a.as_slice().iter().map(|x| x.as_f32()).collect();
        if m <= DOT_MAX_ROWS {
            self.rows_dot(&a, m, out.as_mut_slice())?;
        } else {
            self.tiles_gemm(&a, m, out.as_mut_slice())?;
        }
        Ok(())
    }

    /// The dot-product path of [`matmul_transposed_into`](Self::matmul_transposed_into).
    fn rows_dot<T: Element>(&self, a: &[f32], m: usize, out: &mut [T]) -> Result<(), IoError> {
        if m == 1 {
            // `out` is its own `(rows, 1)` column.
            self.dot_columns(a, 1, out);
            return Ok(());
        }
        // Per matrix row, its `m` outputs are contiguous in a `(rows, m)` buffer, then
        // transposed into `out`.
        let n = self.rows;
        let mut columns = try_filled(n * m, T::zero(), "quantized matmul")?;
        self.dot_columns(a, m, &mut columns);
        for (i, out_row) in out.chunks_exact_mut(n).enumerate() {
            for (o, column) in out_row.iter_mut().zip(columns.chunks_exact(m)) {
                *o = column[i];
            }
        }
        Ok(())
    }

    /// `columns[j·m + i] = a[i] · row j` for every matrix row `j`, rows split across
    /// threads; each row decoded once.
    fn dot_columns<T: Element>(&self, a: &[f32], m: usize, columns: &mut [T]) {
        let k = self.cols;
        let work = self.bytes_in_memory();
        for_each_chunk_mut_by_work(columns, DOT_ROWS_PER_TASK * m, work, |task, outputs| {
            let mut row = vec![0.0f32; k];
            let first = task * DOT_ROWS_PER_TASK;
            let mut dots = [0.0f32; DOT_MAX_ROWS];
            for (j, outs) in outputs.chunks_exact_mut(m).enumerate() {
                let dots = &mut dots[..m];
                self.codec
                    .dot_rows_f32(self.row_bytes(first + j), a, &mut row, dots);
                for (o, &d) in outs.iter_mut().zip(dots.iter()) {
                    *o = T::from_f32_lossy(d);
                }
            }
        });
    }

    /// The GEMM path of [`matmul_transposed_into`](Self::matmul_transposed_into).
    fn tiles_gemm<T: Element>(&self, a: &[f32], m: usize, out: &mut [T]) -> Result<(), IoError> {
        let (n, k) = (self.rows, self.cols);
        let a = TensorView::new(a, &[m, k])?;
        let tile_rows = GEMM_TILE_ROWS.min(n);
        let mut tile = try_filled(tile_rows * k, 0.0f32, "quantized matmul")?;
        let mut products = try_filled(m * tile_rows, 0.0f32, "quantized matmul")?;
        for first in (0..n).step_by(tile_rows) {
            let rows = tile_rows.min(n - first);
            let bytes =
                &self.blocks.bytes()[first * self.row_bytes..(first + rows) * self.row_bytes];
            self.codec.decode_f32_into(bytes, &mut tile[..rows * k]);
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
}

/// The most rows of `a` the dot-product path takes (as the dense decode path).
const DOT_MAX_ROWS: usize = 8;
/// Matrix rows per thread task on the dot-product path.
const DOT_ROWS_PER_TASK: usize = 64;
/// Matrix rows decoded per GEMM tile.
const GEMM_TILE_ROWS: usize = 256;
