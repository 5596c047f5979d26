//! [`TokenTables`]: the token-embedding table and output head of a decoder input —
//! dense and trainable, or quantized as a GGUF file stores them, for inference.

use tokenloom_embedding::{EmbeddingAndHead, EmbeddingError, QuantizedEmbedding, functional};
use tokenloom_tensor::{Element, Tensor, TensorLike, TensorView, TokenId};

/// The token-embedding table and output head of a [`DecoderInput`](crate::DecoderInput).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum TokenTables<T> {
    /// Dense tables in `T`: lookups, logits, backward and optimizer steps.
    Dense(EmbeddingAndHead<T>),
    /// A block-quantized table (and head) kept as stored: lookups and logits only.
    Quantized(QuantizedTables<T>),
}

/// A quantized token table with its output head.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedTables<T> {
    embedding: QuantizedEmbedding,
    head: QuantizedHead<T>,
    padding_idx: Option<usize>,
}

/// The output head beside a quantized token table.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum QuantizedHead<T> {
    /// Tied: the logits are `h @ Eᵀ` over the quantized table itself.
    Tied,
    /// An untied head stored quantized (e.g. GGUF `output.weight` in Q6_K).
    Quantized(QuantizedEmbedding),
    /// An untied head stored as floats (e.g. `output.weight` in F16), read into `T`.
    Dense(Tensor<T>),
}

impl<T: Element> QuantizedTables<T> {
    /// A quantized table with its head.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::WeightShape`] when an untied head is not `(vocab_size, n_embd)`
    /// of the table.
    pub fn new(
        embedding: QuantizedEmbedding,
        head: QuantizedHead<T>,
    ) -> Result<Self, EmbeddingError> {
        let table = [embedding.vocab_size(), embedding.n_embd()];
        let head_dims = match &head {
            QuantizedHead::Tied => None,
            QuantizedHead::Quantized(h) => Some(vec![h.vocab_size(), h.n_embd()]),
            QuantizedHead::Dense(w) => Some(w.dims().to_vec()),
        };
        if let Some(dims) = head_dims
            && dims != table
        {
            return Err(EmbeddingError::WeightShape {
                shape: tokenloom_tensor::Shape::new(&dims)?,
            });
        }
        Ok(Self {
            embedding,
            head,
            padding_idx: None,
        })
    }

    /// Sets the `padding_idx` the table gets when it is made dense (a lookup does not
    /// depend on it; the backward of a dense table skips that row).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::PaddingIdxOutOfRange`] for an index outside the vocabulary.
    pub fn with_padding_idx(mut self, padding_idx: Option<usize>) -> Result<Self, EmbeddingError> {
        if let Some(padding_idx) = padding_idx
            && padding_idx >= self.embedding.vocab_size()
        {
            return Err(EmbeddingError::PaddingIdxOutOfRange {
                padding_idx: i64::try_from(padding_idx).unwrap_or(i64::MAX),
                vocab_size: self.embedding.vocab_size(),
            });
        }
        self.padding_idx = padding_idx;
        Ok(self)
    }

    /// The quantized token table.
    #[must_use]
    pub fn embedding(&self) -> &QuantizedEmbedding {
        &self.embedding
    }

    /// The output head.
    #[must_use]
    pub fn head(&self) -> &QuantizedHead<T> {
        &self.head
    }
}

impl<T: Element> TokenTables<T> {
    /// The number of token ids.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        match self {
            TokenTables::Dense(model) => model.embedding().vocab_size(),
            TokenTables::Quantized(q) => q.embedding.vocab_size(),
        }
    }

    /// The width of a row.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        match self {
            TokenTables::Dense(model) => model.embedding().n_embd(),
            TokenTables::Quantized(q) => q.embedding.n_embd(),
        }
    }

    /// Whether the head shares the token table.
    #[must_use]
    pub fn is_tied(&self) -> bool {
        match self {
            TokenTables::Dense(model) => model.is_tied(),
            TokenTables::Quantized(q) => matches!(q.head, QuantizedHead::Tied),
        }
    }

    /// The bytes the token table and an untied head take in memory.
    #[must_use]
    pub fn bytes_in_memory(&self) -> usize {
        let dense = |w: &Tensor<T>| std::mem::size_of_val(w.as_slice());
        match self {
            TokenTables::Dense(model) => {
                dense(model.embedding().weight())
                    + if model.is_tied() {
                        0
                    } else {
                        dense(model.head_weight())
                    }
            }
            TokenTables::Quantized(q) => {
                q.embedding.bytes_in_memory()
                    + match &q.head {
                        QuantizedHead::Tied => 0,
                        QuantizedHead::Quantized(h) => h.bytes_in_memory(),
                        QuantizedHead::Dense(w) => dense(w),
                    }
            }
        }
    }

    /// The rows of `ids`, `ids.shape + (n_embd,)`.
    pub(crate) fn lookup<I: TokenId>(
        &self,
        ids: TensorView<'_, I>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        match self {
            TokenTables::Dense(model) => model.lookup(ids),
            TokenTables::Quantized(q) => q.embedding.forward(ids),
        }
    }

    /// The logits `(…, vocab_size)` through the head.
    ///
    /// # Errors
    ///
    /// The shape errors of the head's logits.
    pub fn logits<'h>(&self, hidden: impl TensorLike<'h, T>) -> Result<Tensor<T>, EmbeddingError> {
        let hidden = hidden.try_view()?;
        match self {
            TokenTables::Dense(model) => model.logits(hidden),
            TokenTables::Quantized(q) => match &q.head {
                QuantizedHead::Tied => q.embedding.logits(hidden, 1.0),
                QuantizedHead::Quantized(head) => head.logits(hidden, 1.0),
                QuantizedHead::Dense(weight) => functional::logits(hidden, weight, 1.0),
            },
        }
    }

    /// The dense tables, or the error that says `operation` needs them.
    pub(crate) fn dense(
        &self,
        operation: &'static str,
    ) -> Result<&EmbeddingAndHead<T>, EmbeddingError> {
        match self {
            TokenTables::Dense(model) => Ok(model),
            TokenTables::Quantized(q) => Err(q.embedding.not_trainable(operation)),
        }
    }

    /// Dense tables in `T`: quantized ones decoded (each value in `f32`, rounded once;
    /// with their `padding_idx`), dense ones as they are.
    ///
    /// # Errors
    ///
    /// Allocation errors.
    pub fn into_dense(self) -> Result<EmbeddingAndHead<T>, EmbeddingError> {
        match self {
            TokenTables::Dense(model) => Ok(model),
            TokenTables::Quantized(q) => {
                let mut embedding = q.embedding.to_dense::<T>()?;
                if let Some(padding_idx) = q.padding_idx {
                    embedding = embedding.with_options(tokenloom_embedding::EmbeddingOptions {
                        padding_idx: Some(padding_idx),
                        ..tokenloom_embedding::EmbeddingOptions::default()
                    })?;
                }
                match q.head {
                    QuantizedHead::Tied => EmbeddingAndHead::tied_pretrained(embedding, 1.0),
                    QuantizedHead::Quantized(head) => {
                        EmbeddingAndHead::untied(embedding, head.to_dense::<T>()?.into_weight())
                    }
                    QuantizedHead::Dense(weight) => EmbeddingAndHead::untied(embedding, weight),
                }
            }
        }
    }
}
