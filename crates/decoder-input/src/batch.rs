//! Batches of token ids with their attention mask and position ids: from ragged
//! sequences (padding left or right) and from a flat token stream (pretraining windows).

use tokenloom_tensor::{Shape, Tensor};

use crate::error::DecoderInputError;

/// Which side of a sequence the padding goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaddingSide {
    /// Pad at the start (generation: the last token of every row lines up).
    Left,
    /// Pad at the end (training, classification).
    Right,
}

/// A `(batch, seq_len)` batch of token ids with its attention mask (1 = real token,
/// 0 = padding) and position ids.
///
/// Invariant: the three tensors are rank 2 with the same shape and no zero dimension,
/// and the mask holds only 0 and 1; enforced by [`TokenBatch::from_parts`], through which
/// every constructor goes.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::{PaddingSide, TokenBatch};
///
/// let batch = TokenBatch::pad(&[vec![5, 6, 7], vec![8]], 0, PaddingSide::Left)?;
/// assert_eq!(batch.ids().as_slice(), &[5, 6, 7, 0, 0, 8]);
/// assert_eq!(batch.attention_mask().as_slice(), &[1, 1, 1, 0, 0, 1]);
/// // As HuggingFace: cumsum(mask) − 1, and 1 at the padding.
/// assert_eq!(batch.position_ids().as_slice(), &[0, 1, 2, 1, 1, 0]);
/// # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    ids: Tensor<u32>,
    attention_mask: Tensor<u8>,
    position_ids: Tensor<u32>,
}

impl TokenBatch {
    /// A batch from its parts.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::BatchShape`] when the ids are not `(batch, seq_len)` or the
    /// other parts differ in shape, [`DecoderInputError::EmptyBatch`] for a zero
    /// dimension, and [`DecoderInputError::MaskValue`] for a mask entry other than 0/1.
    pub fn from_parts(
        ids: Tensor<u32>,
        attention_mask: Tensor<u8>,
        position_ids: Tensor<u32>,
    ) -> Result<Self, DecoderInputError> {
        let shape = ids.shape();
        let (batch, seq_len) =
            shape
                .dims2("TokenBatch")
                .map_err(|_| DecoderInputError::BatchShape {
                    what: "token ids (batch, seq_len)",
                    expected: Shape::new(&[shape.elem_count().max(1), 1]).unwrap_or(shape),
                    got: shape,
                })?;
        if batch == 0 || seq_len == 0 {
            return Err(DecoderInputError::EmptyBatch);
        }
        for (what, got) in [
            ("attention_mask", attention_mask.shape()),
            ("position_ids", position_ids.shape()),
        ] {
            if got != shape {
                return Err(DecoderInputError::BatchShape {
                    what,
                    expected: shape,
                    got,
                });
            }
        }
        if let Some(i) = attention_mask.as_slice().iter().position(|&m| m > 1) {
            return Err(DecoderInputError::MaskValue {
                value: attention_mask.as_slice()[i],
                batch: i / seq_len,
                index: i % seq_len,
            });
        }
        Ok(Self {
            ids,
            attention_mask,
            position_ids,
        })
    }

    /// Unpadded ids `(batch, seq_len)` (or `(seq_len,)`, taken as a batch of one) at
    /// positions `offset .. offset + seq_len` — prefill with offset 0, or a KV-cache
    /// decode step with offset = tokens already cached.
    ///
    /// # Errors
    ///
    /// As [`TokenBatch::from_parts`], and [`DecoderInputError::BatchShape`] for ids of
    /// another rank.
    pub fn with_offset(ids: Tensor<u32>, offset: usize) -> Result<Self, DecoderInputError> {
        let ids = if ids.shape().rank() == 1 {
            ids.unsqueeze_batch()?
        } else {
            ids
        };
        let shape = ids.shape();
        let seq_len = shape.dims().get(1).copied().unwrap_or(0);
        let positions: Vec<u32> = (0..shape.elem_count())
            .map(|i| position_u32(offset.saturating_add(i % seq_len.max(1))))
            .collect::<Result<_, _>>()?;
        let mask = vec![1u8; shape.elem_count()];
        Self::from_parts(
            ids,
            Tensor::from_shape_vec(mask, shape)?,
            Tensor::from_shape_vec(positions, shape)?,
        )
    }

    /// Unpadded ids at positions `0 .. seq_len`; see [`TokenBatch::with_offset`].
    ///
    /// # Errors
    ///
    /// As [`TokenBatch::with_offset`].
    pub fn new(ids: Tensor<u32>) -> Result<Self, DecoderInputError> {
        Self::with_offset(ids, 0)
    }

    /// Pads ragged sequences to `(batch, max_len)` with `pad_id` on `side`. The mask is 1
    /// at real tokens; position ids count real tokens only (`cumsum(mask) − 1`, and 1 at
    /// the padding), as HuggingFace computes them, so a left-padded row's first real
    /// token is at position 0.
    ///
    /// # Errors
    ///
    /// [`DecoderInputError::EmptyBatch`] for no sequences and
    /// [`DecoderInputError::EmptySequence`] for a sequence without tokens.
    pub fn pad<S: AsRef<[u32]>>(
        sequences: &[S],
        pad_id: u32,
        side: PaddingSide,
    ) -> Result<Self, DecoderInputError> {
        if sequences.is_empty() {
            return Err(DecoderInputError::EmptyBatch);
        }
        if let Some(index) = sequences.iter().position(|s| s.as_ref().is_empty()) {
            return Err(DecoderInputError::EmptySequence { index });
        }
        let max_len = sequences
            .iter()
            .map(|s| s.as_ref().len())
            .max()
            .unwrap_or(0);
        let batch = sequences.len();
        let mut ids = Vec::with_capacity(batch * max_len);
        let mut mask = Vec::with_capacity(batch * max_len);
        let mut positions = Vec::with_capacity(batch * max_len);
        for seq in sequences {
            let seq = seq.as_ref();
            let pad = max_len - seq.len();
            let pad_at = match side {
                PaddingSide::Left => 0..pad,
                PaddingSide::Right => seq.len()..max_len,
            };
            let mut real = seq.iter();
            let mut seen = 0usize;
            for i in 0..max_len {
                if pad_at.contains(&i) {
                    ids.push(pad_id);
                    mask.push(0);
                    positions.push(1);
                } else {
                    ids.push(*real.next().expect("one real token per unpadded slot"));
                    mask.push(1);
                    positions.push(position_u32(seen)?);
                    seen += 1;
                }
            }
        }
        let shape = Shape::new(&[batch, max_len])?;
        Self::from_parts(
            Tensor::from_shape_vec(ids, shape)?,
            Tensor::from_shape_vec(mask, shape)?,
            Tensor::from_shape_vec(positions, shape)?,
        )
    }

    /// The token ids `(batch, seq_len)`.
    #[must_use]
    pub fn ids(&self) -> &Tensor<u32> {
        &self.ids
    }

    /// The attention mask `(batch, seq_len)`: 1 at real tokens, 0 at padding.
    #[must_use]
    pub fn attention_mask(&self) -> &Tensor<u8> {
        &self.attention_mask
    }

    /// The position ids `(batch, seq_len)`.
    #[must_use]
    pub fn position_ids(&self) -> &Tensor<u32> {
        &self.position_ids
    }

    /// The batch size.
    #[must_use]
    pub fn batch(&self) -> usize {
        self.ids.dims()[0]
    }

    /// The padded sequence length.
    #[must_use]
    pub fn seq_len(&self) -> usize {
        self.ids.dims()[1]
    }
}

/// A position id as `u32`, or [`DecoderInputError::PositionOutOfRange`] past `u32::MAX`
/// (offsets near `usize::MAX` saturate first and land here too).
fn position_u32(position: usize) -> Result<u32, DecoderInputError> {
    u32::try_from(position).map_err(|_| DecoderInputError::PositionOutOfRange {
        position,
        batch: 0,
        index: 0,
        max_positions: u32::MAX as usize,
    })
}

/// One training batch cut from a token stream: inputs and the next-token targets.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamBatch {
    /// The input windows `(batch, seq_len)`, at positions `0 .. seq_len`.
    pub inputs: TokenBatch,
    /// The targets `(batch, seq_len)`: each input shifted by one token.
    pub targets: Tensor<u32>,
}

/// Cuts a flat token stream into consecutive, non-overlapping `(batch, seq_len)` windows
/// with next-token targets (the pretraining case). Window `w` is
/// `stream[w·seq_len .. (w+1)·seq_len]` and its target is the same range shifted by one,
/// so `(stream.len() − 1) / seq_len` windows fit; the last batch may hold fewer than
/// `batch_size` rows. Flattening every batch's inputs gives back the start of the stream.
///
/// # Errors
///
/// [`DecoderInputError::ZeroSize`] for a zero `batch_size` or `seq_len`, and
/// [`DecoderInputError::StreamTooShort`] when the stream has fewer than `seq_len + 1`
/// tokens.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::stream_batches;
///
/// let stream: Vec<u32> = (0..10).collect();
/// let batches: Vec<_> = stream_batches(&stream, 2, 3)?.collect::<Result<_, _>>()?;
/// assert_eq!(batches.len(), 2); // 3 windows: a batch of 2, then a batch of 1
/// assert_eq!(batches[0].inputs.ids().as_slice(), &[0, 1, 2, 3, 4, 5]);
/// assert_eq!(batches[0].targets.as_slice(), &[1, 2, 3, 4, 5, 6]);
/// assert_eq!(batches[1].targets.as_slice(), &[7, 8, 9]);
/// # Ok::<(), tokenloom_decoder_input::DecoderInputError>(())
/// ```
pub fn stream_batches(
    stream: &[u32],
    batch_size: usize,
    seq_len: usize,
) -> Result<impl Iterator<Item = Result<StreamBatch, DecoderInputError>> + '_, DecoderInputError> {
    if batch_size == 0 {
        return Err(DecoderInputError::ZeroSize { name: "batch_size" });
    }
    if seq_len == 0 {
        return Err(DecoderInputError::ZeroSize { name: "seq_len" });
    }
    let needed = seq_len.saturating_add(1);
    if stream.len() < needed {
        return Err(DecoderInputError::StreamTooShort {
            stream_len: stream.len(),
            seq_len,
            needed,
        });
    }
    let n_windows = (stream.len() - 1) / seq_len;
    Ok((0..n_windows).step_by(batch_size).map(move |first| {
        let rows = batch_size.min(n_windows - first);
        let start = first * seq_len;
        let inputs = stream[start..start + rows * seq_len].to_vec();
        let targets = stream[start + 1..start + rows * seq_len + 1].to_vec();
        Ok(StreamBatch {
            inputs: TokenBatch::new(Tensor::from_vec(inputs, &[rows, seq_len])?)?,
            targets: Tensor::from_vec(targets, &[rows, seq_len])?,
        })
    }))
}
