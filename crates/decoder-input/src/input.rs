//! [`DecoderInput`]: token ids → the hidden states entering the first decoder block, plus
//! what attention needs beside them.

use tokenloom_embedding::{Embedding, EmbeddingAndHead, EmbeddingConfig, TieOptions};
use tokenloom_positions::{CacheFloat, RopeCache, sinusoidal_table};
use tokenloom_tensor::{Element, Tensor};

use crate::batch::{PaddingSide, TokenBatch};
use crate::config::DecoderInputConfig;
use crate::error::DecoderInputError;
use crate::functional::{
    AbsolutePositions, check_position_ids, finish_in_place, layer_norm_rows_in_place,
};
use crate::layer_rope::LayerRopes;
use crate::output::DecoderInputOutput;
use crate::scheme::{PositionEncoding, PositionSchemeConfig};
use crate::spec::LogitTransform;
use crate::tables::TokenTables;

mod backward;

pub use backward::DecoderInputGrads;

/// The input side of a decoder: the token embedding (with its output head, tied or
/// untied), a position scheme, an optional embedding scale, the context length and the
/// padding id.
///
/// `T` is the element type of the tables and activations; `C` (`f32` by default, or
/// `f64`) is the precision of the RoPE cos/sin cache.
///
/// # Shapes
///
/// - [`forward`](DecoderInput::forward): a [`TokenBatch`] `(batch, seq_len)` → hidden
///   states `(batch, seq_len, n_embd)`
/// - [`logits`](DecoderInput::logits): `(…, n_embd)` → `(…, vocab_size)`
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::{DecoderInput, DecoderInputConfig, PaddingSide};
/// use tokenloom_positions::QkLayout;
/// use tokenloom_tensor::Tensor;
///
/// let config = DecoderInputConfig::new(3000, 128, 512).with_pad_id(0);
/// let input = DecoderInput::<f32>::from_config(&config, 42)?;
/// let batch = input.pad_batch(&[vec![73, 786, 2934], vec![73]], PaddingSide::Left)?;
/// let out = input.forward(&batch)?;
/// assert_eq!(out.hidden().dims(), &[2, 3, 128]);
///
/// // Inside attention: q and k of shape (batch, n_heads, seq_len, head_dim = 64).
/// let mut q = Tensor::<f32>::zeros(&[2, 2, 3, 64])?;
/// let mut k = Tensor::<f32>::zeros(&[2, 1, 3, 64])?;
/// out.apply_rope(q.view_mut(), k.view_mut(), QkLayout::BatchHeadsSeq)?;
/// # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct DecoderInput<T, C = f32> {
    pub(crate) tables: TokenTables<T>,
    pub(crate) positions: PositionEncoding<T, C>,
    pub(crate) max_positions: usize,
    pub(crate) pad_id: Option<u32>,
    pub(crate) embedding_scale: Option<f64>,
    pub(crate) token_types: Option<Embedding<T>>,
    pub(crate) head: Head,
    pub(crate) layer_ropes: Option<LayerRopes<C>>,
    pub(crate) logit_transform: LogitTransform,
    pub(crate) head_bias: Option<Tensor<T>>,
    pub(crate) embedding_norm: Option<EmbeddingLayerNorm<T>>,
}

/// The LayerNorm over the embedding sum (BERT, RoBERTa, ModernBERT).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct EmbeddingLayerNorm<T> {
    pub(crate) weight: Tensor<T>,
    pub(crate) bias: Option<Tensor<T>>,
    pub(crate) eps: f64,
}

/// Whether a decoder input has a language-model head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    Present,
    /// No head, and why (e.g. `a BERT encoder`).
    Absent(&'static str),
}

impl<T: Element, C: CacheFloat> DecoderInput<T, C> {
    /// Builds a fresh decoder input from a config, drawing tables from `seed`.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::DTypeMismatch`] when the config's dtype is not `T`, the
    /// config's own checks, and the errors of the embedding, head tying (an init whose
    /// tied logits would blow up is refused) and position scheme.
    pub fn from_config(config: &DecoderInputConfig, seed: u64) -> Result<Self, DecoderInputError> {
        if config.dtype != T::DTYPE {
            return Err(DecoderInputError::DTypeMismatch {
                config: config.dtype,
                requested: T::DTYPE,
            });
        }
        config.validate()?;
        let mut table =
            EmbeddingConfig::new(config.vocab_size, config.n_embd).with_init(config.init);
        if let Some(pad) = config.pad_id {
            table = table.with_padding_idx(pad as usize);
        }
        let embedding = table.init_seeded::<T>(seed)?;
        let model = if config.tie_word_embeddings {
            let options = TieOptions {
                logit_scale: config.logit_scale.unwrap_or(1.0),
                ..TieOptions::default()
            };
            EmbeddingAndHead::tied(embedding, options)?
        } else {
            let head = EmbeddingConfig::new(config.vocab_size, config.n_embd)
                .with_init(config.init)
                .init_seeded::<T>(seed.wrapping_add(1))?;
            EmbeddingAndHead::untied(embedding, head.into_weight())?
        };
        let positions = match &config.position_scheme {
            PositionSchemeConfig::Rope { rope } => {
                PositionEncoding::Rope(RopeCache::new(rope, config.max_positions)?)
            }
            PositionSchemeConfig::Sinusoidal { base } => PositionEncoding::Sinusoidal(
                sinusoidal_table(config.max_positions, config.n_embd, *base)?,
            ),
            PositionSchemeConfig::Learned { init } => PositionEncoding::Learned(
                EmbeddingConfig::new(config.max_positions, config.n_embd)
                    .with_init(*init)
                    .init_seeded(seed.wrapping_add(2))?,
            ),
            PositionSchemeConfig::None => PositionEncoding::None,
        };
        Self::from_parts(
            model,
            positions,
            config.max_positions,
            config.pad_id,
            config.embedding_scale,
        )
    }

    /// Assembles a decoder input from built parts (e.g. pretrained weights).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::ZeroSize`] for `max_positions = 0`,
    /// [`DecoderInputError::PositionTableShape`] when an absolute table is not
    /// `(max_positions, n_embd)`, [`DecoderInputError::RopeCacheTooShort`] for a RoPE
    /// cache shorter than `max_positions`, [`DecoderInputError::PadIdOutOfRange`] and
    /// [`DecoderInputError::BadScale`].
    pub fn from_parts(
        model: EmbeddingAndHead<T>,
        positions: PositionEncoding<T, C>,
        max_positions: usize,
        pad_id: Option<u32>,
        embedding_scale: Option<f64>,
    ) -> Result<Self, DecoderInputError> {
        Self::from_tables(
            TokenTables::Dense(model),
            positions,
            max_positions,
            pad_id,
            embedding_scale,
        )
    }

    /// [`from_parts`](Self::from_parts) for any [`TokenTables`]: dense, or quantized as a
    /// GGUF file stores them (inference only: the backward and optimizer steps of a
    /// quantized decoder input are [`EmbeddingError::Quantized`](tokenloom_embedding::EmbeddingError::Quantized)
    /// errors; [`into_dense`](Self::into_dense) makes it trainable).
    ///
    /// # Errors
    ///
    /// As [`from_parts`](Self::from_parts).
    pub fn from_tables(
        tables: TokenTables<T>,
        positions: PositionEncoding<T, C>,
        max_positions: usize,
        pad_id: Option<u32>,
        embedding_scale: Option<f64>,
    ) -> Result<Self, DecoderInputError> {
        if max_positions == 0 {
            return Err(DecoderInputError::ZeroSize {
                name: "max_positions",
            });
        }
        let (vocab_size, n_embd) = (tables.vocab_size(), tables.n_embd());
        if let Some(table) = positions.additive_table()
            && table.dims() != [max_positions, n_embd]
        {
            return Err(DecoderInputError::PositionTableShape {
                got: table.shape(),
                max_positions,
                n_embd,
            });
        }
        if let PositionEncoding::Rope(cache) = &positions
            && cache.max_positions() < max_positions
        {
            return Err(DecoderInputError::RopeCacheTooShort {
                covers: cache.max_positions(),
                max_positions,
            });
        }
        if let Some(pad) = pad_id
            && pad as usize >= vocab_size
        {
            return Err(DecoderInputError::PadIdOutOfRange {
                pad_id: pad,
                vocab_size,
            });
        }
        if let Some(scale) = embedding_scale
            && !(scale.is_finite() && scale > 0.0)
        {
            return Err(DecoderInputError::BadScale {
                name: "embedding_scale",
                value: scale,
            });
        }
        Ok(Self {
            tables,
            positions,
            max_positions,
            pad_id,
            embedding_scale,
            token_types: None,
            head: Head::Present,
            layer_ropes: None,
            logit_transform: LogitTransform::default(),
            head_bias: None,
            embedding_norm: None,
        })
    }

    /// Adds a token-type (segment) table `(type_vocab_size, n_embd)`, as BERT has: every
    /// token gets row 0 (a [`TokenBatch`] is one segment), added after the scale and
    /// before the positions, as `BertEmbeddings` adds it.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::TokenTypesWidth`] when the table is not `n_embd` wide.
    pub fn with_token_types(mut self, table: Embedding<T>) -> Result<Self, DecoderInputError> {
        if table.n_embd() != self.n_embd() {
            return Err(DecoderInputError::TokenTypesWidth {
                table: table.n_embd(),
                n_embd: self.n_embd(),
            });
        }
        self.token_types = Some(table);
        Ok(self)
    }

    /// Marks the model as having no language-model head (`reason`, e.g. `a BERT
    /// encoder`): [`logits`](Self::logits) is then [`DecoderInputError::NoHead`].
    #[must_use]
    pub fn without_head(mut self, reason: &'static str) -> Self {
        self.head = Head::Absent(reason);
        self
    }

    /// The token-type table, if the model has one.
    #[must_use]
    pub fn token_types(&self) -> Option<&Embedding<T>> {
        self.token_types.as_ref()
    }

    /// Whether the model has a language-model head.
    #[must_use]
    pub fn has_head(&self) -> bool {
        self.head == Head::Present
    }

    fn head_or_error(&self) -> Result<(), DecoderInputError> {
        match self.head {
            Head::Present => Ok(()),
            Head::Absent(reason) => Err(DecoderInputError::NoHead { reason }),
        }
    }

    /// The token table and output head, dense or quantized.
    #[must_use]
    pub fn tables(&self) -> &TokenTables<T> {
        &self.tables
    }

    /// The dense embedding and output head (`None` when the tables are quantized).
    #[must_use]
    pub fn model(&self) -> Option<&EmbeddingAndHead<T>> {
        match &self.tables {
            TokenTables::Dense(model) => Some(model),
            TokenTables::Quantized(_) => None,
        }
    }

    /// The embedding and output head, mutably (for optimizer steps).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::Quantized`](tokenloom_embedding::EmbeddingError::Quantized) when
    /// the tables are quantized: dequantize first ([`into_dense`](Self::into_dense)).
    pub fn model_mut(&mut self) -> Result<&mut EmbeddingAndHead<T>, DecoderInputError> {
        match &mut self.tables {
            TokenTables::Dense(model) => Ok(model),
            TokenTables::Quantized(q) => {
                Err(q.embedding().not_trainable("an optimizer step").into())
            }
        }
    }

    /// The dense token embedding (`None` when the tables are quantized).
    #[must_use]
    pub fn embedding(&self) -> Option<&Embedding<T>> {
        self.model().map(EmbeddingAndHead::embedding)
    }

    /// The number of token ids.
    #[must_use]
    pub fn vocab_size(&self) -> usize {
        self.tables.vocab_size()
    }

    /// The width of the hidden states.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        self.tables.n_embd()
    }

    /// Whether the output head shares the token table (false without a head).
    #[must_use]
    pub fn is_tied(&self) -> bool {
        self.has_head() && self.tables.is_tied()
    }

    /// This decoder input with dense, trainable tables in `T` (quantized tables decoded;
    /// dense ones unchanged).
    ///
    /// # Errors
    ///
    /// Allocation errors.
    pub fn into_dense(self) -> Result<Self, DecoderInputError> {
        Ok(Self {
            tables: TokenTables::Dense(self.tables.into_dense()?),
            ..self
        })
    }

    /// The position scheme.
    #[must_use]
    pub fn positions(&self) -> &PositionEncoding<T, C> {
        &self.positions
    }

    /// The context length.
    #[must_use]
    pub fn max_positions(&self) -> usize {
        self.max_positions
    }

    /// The padding id.
    #[must_use]
    pub fn pad_id(&self) -> Option<u32> {
        self.pad_id
    }

    /// The embedding scale.
    #[must_use]
    pub fn embedding_scale(&self) -> Option<f64> {
        self.embedding_scale
    }

    /// Pads ragged sequences with this model's pad id (see [`TokenBatch::pad`]).
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::NoPadId`] when the model has no pad id,
    /// [`DecoderInputError::SequenceTooLong`] for a sequence past `max_positions`, and the
    /// errors of [`TokenBatch::pad`].
    pub fn pad_batch<S: AsRef<[u32]>>(
        &self,
        sequences: &[S],
        side: PaddingSide,
    ) -> Result<TokenBatch, DecoderInputError> {
        let pad_id = self.pad_id.ok_or(DecoderInputError::NoPadId)?;
        if let Some((index, len)) = sequences
            .iter()
            .map(|s| s.as_ref().len())
            .enumerate()
            .find(|&(_, len)| len > self.max_positions)
        {
            return Err(DecoderInputError::SequenceTooLong {
                index,
                len,
                max_positions: self.max_positions,
            });
        }
        TokenBatch::pad(sequences, pad_id, side)
    }

    /// The hidden states `(batch, seq_len, n_embd)` entering the first decoder block:
    /// the token embeddings, times the embedding scale if any, plus the absolute position
    /// table at each token's position id (sinusoidal or learned). With RoPE nothing is
    /// added; the output carries the cache to rotate q/k inside attention.
    ///
    /// # Errors
    ///
    /// The id errors of the embedding (naming batch and position), and
    /// [`DecoderInputError::PositionOutOfRange`] for a position id at or past
    /// `max_positions`.
    pub fn forward<'a>(
        &'a self,
        batch: &'a TokenBatch,
    ) -> Result<DecoderInputOutput<'a, T, C>, DecoderInputError> {
        check_position_ids(
            batch.position_ids().as_slice(),
            batch.seq_len(),
            self.max_positions,
        )?;
        let positions = self
            .positions
            .additive_table()
            .map(|table| AbsolutePositions {
                table: table.view(),
                position_ids: batch.position_ids().view(),
            });
        let mut hidden = self.tables.lookup(batch.ids().view())?;
        let token_type_row = self
            .token_types
            .as_ref()
            .map(|t| &t.weight().as_slice()[..t.n_embd()]);
        finish_in_place(
            hidden.as_mut_slice(),
            self.embedding_scale,
            token_type_row,
            positions,
        );
        if let Some(norm) = &self.embedding_norm {
            layer_norm_rows_in_place(
                hidden.as_mut_slice(),
                norm.weight.as_slice(),
                norm.bias.as_ref().map(Tensor::as_slice),
                norm.eps,
            );
        }
        let rope = match &self.positions {
            PositionEncoding::Rope(cache) => Some(cache),
            _ => None,
        };
        Ok(DecoderInputOutput {
            hidden,
            batch,
            rope,
            layers: self.layer_ropes.as_ref(),
            scheme: self.positions.name(),
        })
    }
}
