//! [`Fp8Matrix`]: a block-scaled FP8 weight (DeepSeek-V3's layout) kept in its bytes, its
//! rows decoded only when read — a token table for lookups and logits like a GGUF one.

use tokenloom_tensor::{
    Element, Tensor, TensorError, TensorLike, TensorLikeMut, TensorView, TensorViewMut, dot,
    try_filled,
};

use crate::error::IoError;
use crate::fp8::{Fp8, scale_names};
use crate::row_matmul::{RowDecode, matmul_transposed_into};
use crate::safetensors_file::SafetensorsFile;

/// A block-scaled FP8 `(rows, cols)` matrix: one `F8_E4M3` or `F8_E5M2` byte per value
/// and one `f32` scale per `block[0] × block[1]` block (DeepSeek-V3's `weight` and
/// `weight_scale_inv`, `block` = `weight_block_size`). Value `(i, j)` is
/// `f32(byte) · scale[i / block[0], j / block[1]]`, computed in `f32` — the values of
/// [`SafetensorsFile::load_block_scaled`], which decodes through this type. Keeps a
/// quarter of the bytes of an `f32` table.
///
/// # Examples
///
/// ```
/// use tokenloom_io::Fp8Matrix;
///
/// // 2 × 4 values of F8_E4M3 (0x38 is 1.0, 0x40 is 2.0) in blocks of 1 × 2.
/// let bytes = vec![0x38, 0x40, 0x38, 0x40, 0x40, 0x40, 0x38, 0x38];
/// let scales = vec![1.0, 0.5, 3.0, -1.0];
/// let table = Fp8Matrix::from_parts("F8_E4M3", bytes, 2, 4, scales, [1, 2])?;
/// let mut row = [0.0f32; 4];
/// table.row_into(1, &mut row)?;
/// assert_eq!(row, [6.0, 6.0, -1.0, -1.0]);
/// # Ok::<(), tokenloom_io::IoError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Fp8Matrix {
    format: Fp8,
    bytes: Vec<u8>,
    rows: usize,
    cols: usize,
    scales: Vec<f32>,
    block: [usize; 2],
}

impl Fp8Matrix {
    /// A matrix from its parts: the dtype's safetensors name (`F8_E4M3` or `F8_E5M2`),
    /// `rows · cols` bytes, and `⌈rows / block[0]⌉ · ⌈cols / block[1]⌉` scales, row-major.
    ///
    /// # Errors
    ///
    /// [`IoError::UnsupportedDType`] for another dtype, [`IoError::BlockSize`] for a zero
    /// block size, and [`IoError::ShapeMismatch`] for bytes or scales of another length.
    pub fn from_parts(
        dtype: &str,
        bytes: Vec<u8>,
        rows: usize,
        cols: usize,
        scales: Vec<f32>,
        block: [usize; 2],
    ) -> Result<Self, IoError> {
        const NAME: &str = "FP8 matrix";
        let format = Fp8::of(dtype).filter(|f| *f != Fp8::E8M0).ok_or_else(|| {
            IoError::UnsupportedDType {
                name: NAME.to_owned(),
                dtype: dtype.to_owned(),
            }
        })?;
        if block.contains(&0) {
            return Err(IoError::BlockSize {
                name: NAME.to_owned(),
                block,
            });
        }
        if rows.checked_mul(cols) != Some(bytes.len()) {
            return Err(IoError::ShapeMismatch {
                name: NAME.to_owned(),
                expected: vec![rows, cols],
                got: vec![bytes.len()],
            });
        }
        let grid = [rows.div_ceil(block[0]), cols.div_ceil(block[1])];
        if grid[0] * grid[1] != scales.len() {
            return Err(IoError::ShapeMismatch {
                name: format!("{NAME} scales"),
                expected: grid.to_vec(),
                got: vec![scales.len()],
            });
        }
        Ok(Self {
            format,
            bytes,
            rows,
            cols,
            scales,
            block,
        })
    }

    /// The number of rows.
    #[must_use]
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The number of columns.
    #[must_use]
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The block size of the scales, `[rows, cols]`.
    #[must_use]
    pub fn block(&self) -> [usize; 2] {
        self.block
    }

    /// The storage dtype's safetensors name: `F8_E4M3` or `F8_E5M2`.
    #[must_use]
    pub fn dtype(&self) -> &'static str {
        match self.format {
            Fp8::E5M2 => "F8_E5M2",
            Fp8::E4M3 | Fp8::E8M0 => "F8_E4M3",
        }
    }

    /// The bytes the values and scales take.
    #[must_use]
    pub fn bytes_in_memory(&self) -> usize {
        self.bytes.len() + 4 * self.scales.len()
    }

    /// Decodes row `row` into `out` (`cols` values), each `f32` rounded once to `T`.
    ///
    /// # Errors
    ///
    /// A row past the end, and an `out` of the wrong length.
    pub fn row_into<T: Element>(&self, row: usize, out: &mut [T]) -> Result<(), IoError> {
        if row >= self.rows {
            return Err(TensorError::RowOutOfRange {
                op: "Fp8Matrix",
                index: row,
                n_rows: self.rows,
            }
            .into());
        }
        if out.len() != self.cols {
            return Err(TensorError::ElementCountMismatch {
                op: "Fp8Matrix::row_into",
                shape: tokenloom_tensor::Shape::new(&[self.cols])?,
                expected: self.cols,
                len: out.len(),
            }
            .into());
        }
        self.decode_row(row, |j, v| out[j] = T::from_f32_lossy(v));
        Ok(())
    }

    /// The whole matrix, dequantized into a dense `(rows, cols)` tensor.
    ///
    /// # Errors
    ///
    /// Allocation errors.
    pub fn to_dense<T: Element>(&self) -> Result<Tensor<T>, IoError> {
        let mut data = try_filled(self.bytes.len(), T::zero(), "Fp8Matrix::to_dense")?;
        for (row, out) in data.chunks_exact_mut(self.cols.max(1)).enumerate() {
            self.decode_row(row, |j, v| out[j] = T::from_f32_lossy(v));
        }
        Ok(Tensor::from_vec(data, &[self.rows, self.cols])?)
    }

    /// `out = a @ selfᵀ` for `a: (m, cols)`, giving `out: (m, rows)`: the logits of an
    /// FP8 (tied) output head, computed from the stored bytes as
    /// [`QuantizedMatrix::matmul_transposed_into`](crate::QuantizedMatrix::matmul_transposed_into)
    /// computes them — up to 8 rows with the bits of the dense decode path on the
    /// dequantized `f32` matrix.
    ///
    /// # Errors
    ///
    /// As [`QuantizedMatrix::matmul_transposed_into`](crate::QuantizedMatrix::matmul_transposed_into).
    pub fn matmul_transposed_into<'a, 'o, T: Element>(
        &self,
        a: impl TensorLike<'a, T>,
        out: impl TensorLikeMut<'o, T>,
    ) -> Result<(), IoError> {
        matmul_transposed_into(self, a.try_view()?, out.try_view_mut()?)
    }

    /// Calls `put(j, value)` for each value of row `row` (checked by the caller).
    #[inline]
    fn decode_row(&self, row: usize, mut put: impl FnMut(usize, f32)) {
        let grid_cols = self.cols.div_ceil(self.block[1]);
        let scales = &self.scales[(row / self.block[0]) * grid_cols..][..grid_cols];
        let bytes = &self.bytes[row * self.cols..(row + 1) * self.cols];
        for (b, (chunk, &scale)) in bytes.chunks(self.block[1]).zip(scales).enumerate() {
            for (i, &byte) in chunk.iter().enumerate() {
                put(b * self.block[1] + i, self.format.to_f32(byte) * scale);
            }
        }
    }
}

impl RowDecode for Fp8Matrix {
    fn shape(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    fn stored_bytes(&self) -> usize {
        self.bytes_in_memory()
    }

    fn decode_rows_f32(&self, first: usize, out: &mut [f32]) {
        for (i, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.decode_row(first + i, |j, v| row[j] = v);
        }
    }

    fn dot_row_f32(&self, row: usize, a: &[f32], scratch: &mut [f32], out: &mut [f32]) {
        self.decode_row(row, |j, v| scratch[j] = v);
        for (o, a_row) in out.iter_mut().zip(a.chunks_exact(self.cols)) {
            *o = dot(a_row, scratch).expect("a row of `a` and the scratch row are both cols long");
        }
    }
}

impl SafetensorsFile {
    /// The block-scaled FP8 weight `name` (`F8_E4M3` or `F8_E5M2`, with its
    /// `{name}_scale_inv` of any float dtype) kept as FP8 bytes: see
    /// [`load_block_scaled`](Self::load_block_scaled) for the layout and `block`.
    ///
    /// # Errors
    ///
    /// As [`load_block_scaled`](Self::load_block_scaled).
    pub fn load_fp8_matrix(&self, name: &str, block: [usize; 2]) -> Result<Fp8Matrix, IoError> {
        let info = self.info(name)?;
        let dtype = info.dtype.clone();
        if Fp8::of(&dtype).is_none_or(|f| f == Fp8::E8M0) {
            return Err(IoError::UnsupportedDType {
                name: name.to_owned(),
                dtype,
            });
        }
        let [rows, cols] = info.shape[..] else {
            return Err(IoError::Rank {
                name: name.to_owned(),
                expected: 2,
                shape: info.shape.clone(),
            });
        };
        if block.contains(&0) {
            return Err(IoError::BlockSize {
                name: name.to_owned(),
                block,
            });
        }
        let [scale_name, _] = scale_names(name);
        let scale_info = self.info(&scale_name)?;
        let grid = [rows.div_ceil(block[0]), cols.div_ceil(block[1])];
        if scale_info.shape != grid {
            return Err(IoError::ShapeMismatch {
                name: scale_name,
                expected: grid.to_vec(),
                got: scale_info.shape.clone(),
            });
        }
        let (_, scales) = self.load::<f32>(&scale_name)?.into_parts();
        let stored = self.raw_bytes(name)?;
        let mut bytes = try_filled(stored.len(), 0u8, "block-scaled FP8 weight")?;
        bytes.copy_from_slice(stored);
        Fp8Matrix::from_parts(&dtype, bytes, rows, cols, scales, block)
    }
}

impl crate::row_matmul::sealed::Sealed for Fp8Matrix {}

impl crate::QuantizedRows for Fp8Matrix {
    fn rows(&self) -> usize {
        self.rows
    }
    fn cols(&self) -> usize {
        self.cols
    }
    fn format_name(&self) -> String {
        self.dtype().to_owned()
    }
    fn bytes_in_memory(&self) -> usize {
        Fp8Matrix::bytes_in_memory(self)
    }
    fn row_into<T: Element>(&self, row: usize, out: &mut [T]) -> Result<(), IoError> {
        Fp8Matrix::row_into(self, row, out)
    }
    fn to_dense<T: Element>(&self) -> Result<Tensor<T>, IoError> {
        Fp8Matrix::to_dense(self)
    }
    fn matmul_transposed_into<T: Element>(
        &self,
        a: TensorView<'_, T>,
        out: TensorViewMut<'_, T>,
    ) -> Result<(), IoError> {
        matmul_transposed_into(self, a, out)
    }
}
