//! [`QuantizedMatrix`]: a block-quantized `(rows, cols)` matrix kept as stored, whose rows
//! are decoded only when read.

use std::ops::Range;
use std::sync::Arc;

use tokenloom_tensor::{
    Element, Tensor, TensorError, TensorLike, TensorLikeMut, TensorView, TensorViewMut, try_filled,
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
            Err(IoError::Tensor(TensorError::RowOutOfRange {
                op: "QuantizedMatrix",
                index: row,
                n_rows: self.rows,
            }))
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
        let len = self
            .rows
            .checked_mul(self.cols)
            .ok_or(TensorError::ShapeOverflow {
                dims: vec![self.rows, self.cols],
            })?;
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
    /// of [`matmul_into`](tokenloom_tensor::matmul_into) on the dequantized `f32` matrix,
    /// for any thread count. More rows decode 256-row tiles and multiply each with the
    /// GEMM (within `f32` rounding of the dense product; the summation order is the
    /// GEMM's).
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
        crate::row_matmul::matmul_transposed_into(self, a.try_view()?, out.try_view_mut()?)
    }
}

impl crate::row_matmul::RowDecode for QuantizedMatrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn stored_bytes(&self) -> usize {
        self.bytes_in_memory()
    }

    fn decode_rows_f32(&self, first: usize, out: &mut [f32]) {
        let rows = out.len() / self.cols;
        let bytes = &self.blocks.bytes()[first * self.row_bytes..(first + rows) * self.row_bytes];
        self.codec.decode_f32_into(bytes, out);
    }

    fn dot_row_f32(&self, row: usize, a: &[f32], scratch: &mut [f32], out: &mut [f32]) {
        self.codec
            .dot_rows_f32(self.row_bytes(row), a, scratch, out);
    }
}

impl PartialEq for QuantizedMatrix {
    /// Equal when the format, the shape and the stored bytes are.
    fn eq(&self, other: &Self) -> bool {
        self.qtype() == other.qtype()
            && (self.rows, self.cols) == (other.rows, other.cols)
            && self.blocks.bytes() == other.blocks.bytes()
    }
}

impl crate::row_matmul::sealed::Sealed for QuantizedMatrix {}

impl crate::QuantizedRows for QuantizedMatrix {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn format_name(&self) -> String {
        self.qtype().name()
    }
    fn bytes_in_memory(&self) -> usize {
        QuantizedMatrix::bytes_in_memory(self)
    }
    fn row_into<T: Element>(&self, row: usize, out: &mut [T]) -> Result<(), IoError> {
        QuantizedMatrix::row_into(self, row, out)
    }
    fn to_dense<T: Element>(&self) -> Result<Tensor<T>, IoError> {
        QuantizedMatrix::to_dense(self)
    }
    fn matmul_transposed_into<T: Element>(
        &self,
        a: TensorView<'_, T>,
        out: TensorViewMut<'_, T>,
    ) -> Result<(), IoError> {
        crate::row_matmul::matmul_transposed_into(self, a, out)
    }
}
