//! [`QuantizedEmbedding`]: a token-embedding table kept in a GGUF block format (Q8_0,
//! Q4_K, …) or as block-scaled FP8, whose rows are decoded only when looked up.

use tokenloom_io::{GgmlType, GgufFile, QuantizedMatrix, QuantizedRows};
use tokenloom_tensor::{
    Element, Shape, Tensor, TensorLike, TensorLikeMut, TensorView, TensorViewMut, TokenId,
    for_each_chunk_mut, try_filled,
};

use crate::error::EmbeddingError;
use crate::lookup::check_ids;
use crate::table::{Embedding, check_table_sizes};

/// A `(vocab_size, n_embd)` token-embedding table stored block-quantized, as in a GGUF
/// file — memory-mapped from it or owned — and decoded only where it is read: a lookup
/// decodes the looked-up rows (as llama.cpp's `get_rows`), the logits `h @ Eᵀ` are
/// computed from the stored blocks. A 262144 × 640 Q8_0 table (Gemma 3) takes 178 MB
/// this way instead of 671 MB as `f32`.
///
/// The lookup has [`Embedding`]'s checks and errors (an id outside the vocabulary names
/// its batch and position) and writes any float type, each value decoded in `f32` and
/// rounded once; the rows have the bits of gguf-py's `gguf.quants.dequantize`. The table
/// cannot be trained: [`backward`](QuantizedEmbedding::backward) is an error that says to
/// dequantize first, which [`to_dense`](QuantizedEmbedding::to_dense) does.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::QuantizedEmbedding;
/// use tokenloom_io::{GgmlType, QuantizedMatrix, quantize_q8_0};
/// use tokenloom_tensor::Tensor;
///
/// // A (vocab_size = 4, n_embd = 32) table in Q8_0: 34 bytes per 32 values.
/// let values: Vec<f32> = (0..4 * 32).map(|i| i as f32 / 64.0).collect();
/// let table = QuantizedMatrix::from_bytes(GgmlType::Q8_0, quantize_q8_0(&values), 4, 32)?;
/// let embedding = QuantizedEmbedding::new(table)?;
/// assert_eq!(embedding.bytes_in_memory(), 4 * 34);
///
/// let x: Tensor<f32> = embedding.forward(&[3u32, 0])?;
/// assert_eq!(x.dims(), &[2, 32]);
/// assert!((x.as_slice()[5] - values[3 * 32 + 5]).abs() < 0.01);
///
/// let err = embedding.forward::<f32, _>(&[7u32]).unwrap_err();
/// assert_eq!(err.to_string(), "token id 7 at batch 0, position 0 is outside vocab_size 4");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A block-scaled FP8 table ([`Fp8Matrix`](tokenloom_io::Fp8Matrix), DeepSeek-V3's
/// layout) is a `QuantizedEmbedding<Fp8Matrix>` with the same lookups and logits:
///
/// ```
/// use tokenloom_embedding::QuantizedEmbedding;
/// use tokenloom_io::Fp8Matrix;
///
/// // 3 × 2 values of F8_E4M3 (0x38 is 1.0, 0x40 is 2.0), one scale per row.
/// let bytes = vec![0x38, 0x40, 0x40, 0x40, 0x38, 0x38];
/// let table = Fp8Matrix::from_parts("F8_E4M3", bytes, 3, 2, vec![1.0, 0.5, -2.0], [1, 2])?;
/// let embedding = QuantizedEmbedding::new(table)?;
/// let x = embedding.forward::<f32, _>(&[2u32, 0])?;
/// assert_eq!(x.as_slice(), [-2.0, -2.0, 1.0, 2.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedEmbedding<M = QuantizedMatrix> {
    table: M,
}

impl QuantizedEmbedding {
    /// The tensor `name` of a GGUF file (e.g. `token_embd.weight`), kept as stored: its
    /// blocks stay in the file's memory map.
    ///
    /// # Errors
    ///
    /// The reader's errors for a missing tensor or one that is not block-quantized (an
    /// `F32`/`F16`/`BF16` table loads with [`Embedding::from_weight`] and
    /// `GgufFile::load`), and the size errors of [`new`](Self::new).
    pub fn from_gguf(file: &GgufFile, name: &str) -> Result<Self, EmbeddingError> {
        Self::new(file.quantized(name)?)
    }

    /// The block format the rows are stored in.
    #[must_use]
    pub fn qtype(&self) -> GgmlType {
        self.table.qtype()
    }
}

impl<M: QuantizedRows> QuantizedEmbedding<M> {
    /// Wraps a quantized `(vocab_size, n_embd)` matrix ([`QuantizedMatrix`] or
    /// [`Fp8Matrix`](tokenloom_io::Fp8Matrix)).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::ZeroSize`] / [`EmbeddingError::TableTooLarge`] for a table with a
    /// zero dimension or one too large to address.
    pub fn new(table: M) -> Result<Self, EmbeddingError> {
        check_table_sizes(table.rows(), table.cols())?;
        Ok(Self { table })
    }

    /// The number of rows (token ids).
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.table.rows()
    }

    /// The width of each row.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        self.table.cols()
    }

    /// The bytes the stored blocks take (a dense `f32` table would take
    /// `4 · vocab_size · n_embd`).
    #[must_use]
    pub fn bytes_in_memory(&self) -> usize {
        self.table.bytes_in_memory()
    }

    /// The stored matrix.
    #[must_use]
    pub fn table(&self) -> &M {
        &self.table
    }

    /// Decodes row `id` into `out` (`n_embd` values).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::TokenOutOfRange`] for an id outside the vocabulary, and
    /// [`EmbeddingError::OutputShape`] for an `out` that is not `n_embd` long.
    pub fn row_into<T: Element>(&self, id: usize, out: &mut [T]) -> Result<(), EmbeddingError> {
        if id >= self.vocab_size() {
            return Err(EmbeddingError::TokenOutOfRange {
                token: i64::try_from(id).unwrap_or(i64::MAX),
                batch: 0,
                position: 0,
                vocab_size: self.vocab_size(),
            });
        }
        if out.len() != self.n_embd() {
            return Err(EmbeddingError::OutputShape {
                expected: Shape::new(&[self.n_embd()])?,
                got: Shape::new(&[out.len()])?,
            });
        }
        Ok(self.table.row_into(id, out)?)
    }

    /// The lookup: row `ids[i]` of the table, decoded into a fresh tensor of
    /// `ids.shape + (n_embd,)`.
    ///
    /// # Shapes
    ///
    /// - ids: `(seq_len,)` or `(batch, seq_len)`, as `u32`, `i32` or `i64`
    /// - output: `ids.shape + (n_embd,)`
    ///
    /// # Errors
    ///
    /// The id errors of [`check_ids`], and allocation errors.
    pub fn forward<'i, T: Element, I: TokenId>(
        &self,
        ids: impl TensorLike<'i, I>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let ids = ids.try_view()?;
        let shape = check_ids(ids, self.vocab_size(), self.n_embd())?;
        let mut out = Tensor::from_shape_vec(
            try_filled(shape.elem_count(), T::zero(), "quantized lookup")?,
            shape,
        )?;
        self.write_rows(ids.as_slice(), out.as_mut_slice());
        Ok(out)
    }

    /// [`forward`](Self::forward) into a caller's buffer of shape `ids.shape + (n_embd,)`;
    /// large outputs are decoded across threads.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward), and [`EmbeddingError::OutputShape`] for a wrongly
    /// shaped `out`. On error `out` is unchanged.
    pub fn forward_into<'i, 'o, T: Element, I: TokenId>(
        &self,
        ids: impl TensorLike<'i, I>,
        out: impl TensorLikeMut<'o, T>,
    ) -> Result<(), EmbeddingError> {
        let ids = ids.try_view()?;
        let mut out = out.try_view_mut()?;
        let expected = check_ids(ids, self.vocab_size(), self.n_embd())?;
        if out.shape() != expected {
            return Err(EmbeddingError::OutputShape {
                expected,
                got: out.shape(),
            });
        }
        self.write_rows(ids.as_slice(), out.as_mut_slice());
        Ok(())
    }

    /// PyTorch's `EmbeddingBag` forward over the quantized table: each row decoded once
    /// per token as it is reduced (see
    /// [`functional::embedding_bag_into`](crate::functional::embedding_bag_into), whose
    /// arguments these are).
    ///
    /// # Errors
    ///
    /// As [`functional::embedding_bag_into`](crate::functional::embedding_bag_into).
    pub fn embedding_bag_into<'o, T: Element, I: TokenId>(
        &self,
        bags: &crate::bag::Bags<'_, I>,
        per_sample_weights: Option<&[T]>,
        options: &crate::bag::BagOptions,
        out: impl TensorLikeMut<'o, T>,
        max_indices: Option<&mut [i64]>,
    ) -> Result<(), EmbeddingError> {
        /// Rows decoded into the scratch row.
        struct Decoded<'q, M>(&'q M);
        impl<T: Element, M: QuantizedRows> crate::bag::BagRows<T> for Decoded<'_, M> {
            fn row<'s>(
                &'s mut self,
                id: usize,
                scratch: &'s mut [T],
            ) -> Result<&'s [T], EmbeddingError> {
                self.0.row_into(id, scratch)?;
                Ok(scratch)
            }
        }
        crate::bag::reduce_bags(
            (self.vocab_size(), self.n_embd()),
            &mut Decoded(&self.table),
            bags,
            per_sample_weights,
            options,
            out,
            max_indices,
        )
    }

    /// Decodes the rows of checked ids into `out`.
    fn write_rows<T: Element, I: TokenId>(&self, ids: &[I], out: &mut [T]) {
        for_each_chunk_mut(out, self.n_embd(), |position, row| {
            self.table
                .row_into(ids[position].checked_index(), row)
                .expect("ids are checked and rows are n_embd long");
        });
    }

    /// The logits `logit_scale · hidden @ Eᵀ` of a head tied to this table, computed from
    /// the quantized rows in `f32` (see [`QuantizedMatrix::matmul_transposed_into`]: up
    /// to 8 rows have the bits of the dense logits of [`to_dense`](Self::to_dense)'s
    /// `f32` table).
    ///
    /// # Shapes
    ///
    /// - hidden: `(…, n_embd)`
    /// - output: `(…, vocab_size)`
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::GradShape`] for hidden states whose innermost dimension is not
    /// `n_embd`, [`EmbeddingError::InvalidOption`] for a scale that is not positive and
    /// finite, and allocation errors.
    pub fn logits<'h, T: Element>(
        &self,
        hidden: impl TensorLike<'h, T>,
        logit_scale: f64,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let hidden = hidden.try_view()?;
        let (rows, shape) = crate::logits::check_hidden(hidden, self.vocab_size(), self.n_embd())?;
        let mut out = Tensor::from_shape_vec(
            try_filled(shape.elem_count(), T::zero(), "quantized logits")?,
            shape,
        )?;
        self.logits_rows(hidden, rows, logit_scale, out.as_mut_slice())?;
        Ok(out)
    }

    /// [`logits`](Self::logits) into a caller's `(…, vocab_size)` buffer.
    ///
    /// # Errors
    ///
    /// As [`logits`](Self::logits), and [`EmbeddingError::OutputShape`] for a wrongly
    /// shaped `out`.
    pub fn logits_into<'h, 'o, T: Element>(
        &self,
        hidden: impl TensorLike<'h, T>,
        logit_scale: f64,
        out: impl TensorLikeMut<'o, T>,
    ) -> Result<(), EmbeddingError> {
        let hidden = hidden.try_view()?;
        let mut out = out.try_view_mut()?;
        let (rows, expected) =
            crate::logits::check_hidden(hidden, self.vocab_size(), self.n_embd())?;
        if out.shape() != expected {
            return Err(EmbeddingError::OutputShape {
                expected,
                got: out.shape(),
            });
        }
        self.logits_rows(hidden, rows, logit_scale, out.as_mut_slice())
    }

    fn logits_rows<T: Element>(
        &self,
        hidden: TensorView<'_, T>,
        rows: usize,
        logit_scale: f64,
        out: &mut [T],
    ) -> Result<(), EmbeddingError> {
        crate::logits::check_logit_scale(logit_scale)?;
        let h = TensorView::new(hidden.as_slice(), &[rows, self.n_embd()])?;
        let out2 = TensorViewMut::new(out, &[rows, self.vocab_size()])?;
        self.table.matmul_transposed_into(h, out2)?;
        crate::logits::scale_in_place(out, logit_scale);
        Ok(())
    }

    /// The backward of a quantized table does not exist: this is always
    /// [`EmbeddingError::Quantized`], which says to dequantize first (a training step on
    /// stored blocks would have to requantize every updated row). Call
    /// [`to_dense`](Self::to_dense) and train the [`Embedding`] it returns.
    ///
    /// # Errors
    ///
    /// Always [`EmbeddingError::Quantized`].
    pub fn backward(&self) -> Result<(), EmbeddingError> {
        Err(self.not_trainable("backward"))
    }

    /// The error for an operation that needs a dense, trainable table.
    #[must_use]
    pub fn not_trainable(&self, operation: &'static str) -> EmbeddingError {
        EmbeddingError::Quantized {
            operation,
            qtype: self.table.format_name(),
        }
    }

    /// The whole table dequantized into a dense, trainable [`Embedding`] (each value
    /// decoded in `f32`, rounded once to `T`).
    ///
    /// # Errors
    ///
    /// Allocation errors.
    pub fn to_dense<T: Element>(&self) -> Result<Embedding<T>, EmbeddingError> {
        Embedding::from_weight(self.table.to_dense::<T>()?)
    }
}
