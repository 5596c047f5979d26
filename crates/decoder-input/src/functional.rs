//! The decoder input on borrowed memory: the embedding rows of a batch, scaled, plus
//! the absolute position rows — into a caller's buffer — and its backward into the
//! caller's gradient buffers. [`DecoderInput`](crate::DecoderInput) owns its tables and
//! calls these.

use tokenloom_embedding::{
    EmbeddingError, EmbeddingOptions, MaxNorm,
    functional::{backward_dense, lookup_into},
};
use tokenloom_tensor::{
    Accumulate, Element, Tensor, TensorLike, TensorLikeMut, TensorView, TensorViewMut, TokenId,
    try_filled,
};

use crate::error::DecoderInputError;

/// An absolute position table and the position of every token: the rows added to the
/// embeddings (sinusoidal or learned schemes).
#[derive(Clone, Copy, Debug)]
pub struct AbsolutePositions<'a, T> {
    /// The `(max_positions, n_embd)` table.
    pub table: TensorView<'a, T>,
    /// The position of each token, `(batch, seq_len)` like the ids.
    pub position_ids: TensorView<'a, u32>,
}

/// The hidden states entering the first decoder block, on memory the caller owns:
/// `out = embedding_scale · table[ids] + positions.table[positions.position_ids]`, each
/// element computed in `f64` and rounded once (the scale and the position rows are
/// optional; RoPE adds nothing here — it rotates q/k inside attention).
///
/// # Shapes
///
/// - table: `(vocab_size, n_embd)`; ids and position ids: `(batch, seq_len)` or
///   `(seq_len,)`; position table: `(max_positions, n_embd)`
/// - out: `ids.shape + (n_embd,)`
///
/// # Errors
///
/// The lookup's errors (an id outside the vocabulary names its batch and position),
/// [`DecoderInputError::BatchShape`] for position ids or a position table of the wrong
/// shape, [`DecoderInputError::PositionOutOfRange`] for a position past the table, and
/// [`DecoderInputError::BadScale`] for a scale that is not positive and finite. On error
/// `out` is unchanged.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::functional::{AbsolutePositions, embed_into};
/// use tokenloom_tensor::TensorView;
///
/// let table = [1.0f32, 1.0, 2.0, 2.0, 3.0, 3.0]; // (vocab_size 3, n_embd 2)
/// let positions = [0.5f32, 0.0, 0.0, 0.5]; // (max_positions 2, n_embd 2)
/// let position_ids = [0u32, 1];
/// let mut out = [0.0f32; 4];
/// embed_into(
///     (&table[..], [3, 2]),
///     (&[2i64, 0][..], [1, 2]),
///     Some(2.0),
///     None,
///     Some(AbsolutePositions {
///         table: TensorView::new(&positions, &[2, 2])?,
///         position_ids: TensorView::new(&position_ids, &[1, 2])?,
///     }),
///     (&mut out[..], [1, 2, 2]),
/// )?;
/// assert_eq!(out, [6.5, 6.0, 2.0, 2.5]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn embed_into<'t, 'i, 'o, T: Element, I: TokenId>(
    table: impl TensorLike<'t, T>,
    ids: impl TensorLike<'i, I>,
    embedding_scale: Option<f64>,
    max_norm: Option<&MaxNorm>,
    positions: Option<AbsolutePositions<'_, T>>,
    out: impl TensorLikeMut<'o, T>,
) -> Result<(), DecoderInputError> {
    let (table, ids) = (
        table.try_view().map_err(EmbeddingError::from)?,
        ids.try_view().map_err(EmbeddingError::from)?,
    );
    let mut out = out.try_view_mut().map_err(EmbeddingError::from)?;
    check_scale(embedding_scale)?;
    if let Some(positions) = positions {
        check_positions(
            positions,
            ids.shape(),
            table.dims().get(1).copied().unwrap_or(0),
        )?;
    }
    lookup_into(table, ids, &mut out, max_norm)?;
    finish_in_place(out.as_mut_slice(), embedding_scale, None, positions);
    Ok(())
}

/// A learned absolute position table's gradient and what selects its rows: the backward
/// counterpart of [`AbsolutePositions`].
#[derive(Debug)]
pub struct AbsolutePositionGrads<'a, 'g, T> {
    /// The position of each token, `(batch, seq_len)` like the ids.
    pub position_ids: TensorView<'a, u32>,
    /// The `(max_positions, n_embd)` gradient of the position table.
    pub grad_table: TensorViewMut<'g, T>,
    /// The position table's options (its gradient sum, `padding_idx` if any).
    pub options: &'a EmbeddingOptions,
}

/// Backward of [`embed_into`] on memory the caller owns: the gradient of the hidden
/// states `(batch, seq_len, n_embd)` summed into the token table's gradient — times the
/// embedding scale, each element of `scale · grad_hidden` rounded to `T` first, as
/// PyTorch's `mul` backward materializes it — and, for a learned absolute table, into the
/// position table's gradient. `accumulate` applies to both.
///
/// # Errors
///
/// The embedding backward's errors (an id outside the vocabulary names its batch and
/// position; a `grad_hidden` that is not `ids.shape + (n_embd,)`),
/// [`DecoderInputError::BadScale`], [`DecoderInputError::BatchShape`] and
/// [`DecoderInputError::PositionOutOfRange`] for the positions, and
/// [`TensorError::AllocationFailed`](tokenloom_tensor::TensorError::AllocationFailed) for
/// the scaled gradient's scratch. Everything is checked before anything is written: on
/// error both gradients are unchanged.
///
/// # Examples
///
/// ```
/// use tokenloom_decoder_input::functional::{AbsolutePositionGrads, embed_backward_into};
/// use tokenloom_embedding::EmbeddingOptions;
/// use tokenloom_tensor::{Accumulate, TensorView, TensorViewMut};
///
/// // Two tokens (ids 2 and 2) at positions 0 and 1, n_embd 2, scale 2.
/// let grad_hidden = [1.0f32, 0.5, 0.25, 1.0];
/// let mut grad_table = [0.0f32; 6]; // (vocab_size 3, n_embd 2)
/// let mut grad_positions = [0.0f32; 4]; // (max_positions 2, n_embd 2)
/// let options = EmbeddingOptions::default();
/// embed_backward_into(
///     (&[2u32, 2][..], [1, 2]),
///     (&grad_hidden[..], [1, 2, 2]),
///     Some(2.0),
///     &options,
///     (&mut grad_table[..], [3, 2]),
///     Some(AbsolutePositionGrads {
///         position_ids: TensorView::new(&[0u32, 1], &[1, 2])?,
///         grad_table: TensorViewMut::new(&mut grad_positions, &[2, 2])?,
///         options: &options,
///     }),
///     Accumulate::Replace,
/// )?;
/// assert_eq!(grad_table, [0.0, 0.0, 0.0, 0.0, 2.5, 3.0]);
/// assert_eq!(grad_positions, grad_hidden);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn embed_backward_into<'i, 'g, 'w, T: Element, I: TokenId>(
    ids: impl TensorLike<'i, I>,
    grad_hidden: impl TensorLike<'g, T>,
    embedding_scale: Option<f64>,
    options: &EmbeddingOptions,
    grad_table: impl TensorLikeMut<'w, T>,
    positions: Option<AbsolutePositionGrads<'_, '_, T>>,
    accumulate: Accumulate,
) -> Result<(), DecoderInputError> {
    let (ids, grad_hidden) = (ids.try_view()?, grad_hidden.try_view()?);
    let grad_table = grad_table.try_view_mut()?;
    check_scale(embedding_scale)?;
    if let Some(p) = &positions {
        check_positions(
            AbsolutePositions {
                table: p.grad_table.as_view(),
                position_ids: p.position_ids,
            },
            ids.shape(),
            grad_table.dims().get(1).copied().unwrap_or(0),
        )?;
    }
    // The scaled gradient, if any, in a scratch buffer sized by the caller's input.
    let scaled: Tensor<T>;
    let grad_embedding = match embedding_scale {
        Some(scale) => {
            let mut data = try_filled(
                grad_hidden.as_slice().len(),
                T::zero(),
                "embed_backward_into",
            )?;
            for (d, &g) in data.iter_mut().zip(grad_hidden.as_slice()) {
                *d = T::from_f64_lossy(g.as_f64() * scale);
            }
            scaled = Tensor::from_shape_vec(data, grad_hidden.shape())?;
            scaled.view()
        }
        None => grad_hidden,
    };
    backward_dense(ids, grad_embedding, grad_table, options, accumulate)?;
    if let Some(p) = positions {
        backward_dense(
            p.position_ids,
            grad_hidden,
            p.grad_table,
            p.options,
            accumulate,
        )?;
    }
    Ok(())
}

pub(crate) fn check_scale(embedding_scale: Option<f64>) -> Result<(), DecoderInputError> {
    match embedding_scale {
        Some(value) if !(value.is_finite() && value > 0.0) => Err(DecoderInputError::BadScale {
            name: "embedding_scale",
            value,
        }),
        _ => Ok(()),
    }
}

/// Position ids shaped like the ids, a `(_, n_embd)` table, every position inside it.
pub(crate) fn check_positions<T>(
    positions: AbsolutePositions<'_, T>,
    ids_shape: tokenloom_tensor::Shape,
    n_embd: usize,
) -> Result<(), DecoderInputError> {
    if positions.position_ids.shape() != ids_shape {
        return Err(DecoderInputError::BatchShape {
            what: "position ids",
            expected: ids_shape,
            got: positions.position_ids.shape(),
        });
    }
    let max_positions = positions.table.dims().first().copied().unwrap_or(0);
    let expected = tokenloom_tensor::Shape::new(&[max_positions, n_embd])?;
    if positions.table.shape() != expected {
        return Err(DecoderInputError::BatchShape {
            what: "position table",
            expected,
            got: positions.table.shape(),
        });
    }
    let seq_len = ids_shape.dims().last().copied().unwrap_or(1);
    check_position_ids(positions.position_ids.as_slice(), seq_len, max_positions)
}

/// Every position id below `max_positions`; the first that is not is named by its batch
/// row and index (`seq_len` tokens per row).
pub(crate) fn check_position_ids(
    position_ids: &[u32],
    seq_len: usize,
    max_positions: usize,
) -> Result<(), DecoderInputError> {
    let seq_len = seq_len.max(1);
    match position_ids
        .iter()
        .position(|&p| p as usize >= max_positions)
    {
        Some(i) => Err(DecoderInputError::PositionOutOfRange {
            position: position_ids[i] as usize,
            batch: i / seq_len,
            index: i % seq_len,
            max_positions,
        }),
        None => Ok(()),
    }
}

/// Scales looked-up rows, adds a token-type row (BERT's segment 0) and the position rows,
/// in place, each step rounded once to `T` in PyTorch's order (everything checked).
pub(crate) fn finish_in_place<T: Element>(
    hidden: &mut [T],
    embedding_scale: Option<f64>,
    token_type_row: Option<&[T]>,
    positions: Option<AbsolutePositions<'_, T>>,
) {
    if let Some(scale) = embedding_scale {
        for x in hidden.iter_mut() {
            *x = T::from_f64_lossy(x.as_f64() * scale);
        }
    }
    if let Some(extra) = token_type_row {
        for row in hidden.chunks_exact_mut(extra.len()) {
            for (x, &e) in row.iter_mut().zip(extra) {
                *x = T::from_f64_lossy(x.as_f64() + e.as_f64());
            }
        }
    }
    if let Some(AbsolutePositions {
        table,
        position_ids,
    }) = positions
    {
        let n_embd = table.dims()[1];
        for (row, &p) in hidden.chunks_exact_mut(n_embd).zip(position_ids.as_slice()) {
            let pe = &table.as_slice()[p as usize * n_embd..(p as usize + 1) * n_embd];
            for (x, &e) in row.iter_mut().zip(pe) {
                *x = T::from_f64_lossy(x.as_f64() + e.as_f64());
            }
        }
    }
}

/// LayerNorm over each `n_embd`-wide row, in place: `(x − mean) / √(var + eps) · weight
/// (+ bias)`, the biased variance as PyTorch's `nn.LayerNorm`, computed in f64 and rounded
/// once to `T`.
pub(crate) fn layer_norm_rows_in_place<T: Element>(
    hidden: &mut [T],
    weight: &[T],
    bias: Option<&[T]>,
    eps: f64,
) {
    let n = weight.len();
    if n == 0 {
        return;
    }
    // n_embd is far below 2^53
    #[allow(clippy::cast_precision_loss)]
    let count = n as f64;
    for row in hidden.chunks_exact_mut(n) {
        let mean = row.iter().map(|x| x.as_f64()).sum::<f64>() / count;
        let var = row
            .iter()
            .map(|x| {
                let d = x.as_f64() - mean;
                d * d
            })
            .sum::<f64>()
            / count;
        let rstd = 1.0 / (var + eps).sqrt();
        for (i, x) in row.iter_mut().enumerate() {
            let mut y = (x.as_f64() - mean) * rstd * weight[i].as_f64();
            if let Some(b) = bias {
                y += b[i].as_f64();
            }
            *x = T::from_f64_lossy(y);
        }
    }
}
