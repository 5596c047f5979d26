//! PyTorch's EmbeddingBag (`tokenloom_embedding_bag`, `tokenloom_embedding_bag_backward`)
//! on the caller's buffers.

use tokenloom_embedding::EmbeddingOptions;
use tokenloom_embedding::functional::{
    BagMode, BagOptions, Bags, embedding_bag_backward, embedding_bag_into,
};
use tokenloom_tensor::{Accumulate, TokenId};

use crate::error::{Failure, TokenloomStatus, run};
use crate::tensor::{
    Raw, Tagged, TokenloomTensor, check_disjoint, describe, describe_optional, with_float, with_id,
};

/// How a bag's rows are reduced (PyTorch's `mode`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomBagMode {
    /// The (weighted) sum.
    Sum = 0,
    /// The mean (PyTorch's default).
    Mean = 1,
    /// The element-wise maximum.
    Max = 2,
}

fn invalid(message: String) -> Failure {
    Failure::new(TokenloomStatus::InvalidArgument, message)
}

/// The bag options from the C arguments.
fn bag_options(
    mode_tag: i32,
    vocab_size: usize,
    has_padding_idx: bool,
    padding_idx: i64,
    scale_grad_by_freq: bool,
) -> Result<BagOptions, Failure> {
    let mode = match mode_tag {
        0 => BagMode::Sum,
        1 => BagMode::Mean,
        2 => BagMode::Max,
        other => {
            return Err(invalid(format!(
                "bag mode tag {other} is not 0 (sum), 1 (mean) or 2 (max)"
            )));
        }
    };
    let mut options = BagOptions::new(mode).with_scale_grad_by_freq(scale_grad_by_freq);
    if has_padding_idx {
        options = options.with_padding_idx(EmbeddingOptions::resolve_padding_idx(
            padding_idx,
            vocab_size,
        )?);
    }
    Ok(options)
}

/// The bags: 2-D `ids` without offsets, or 1-D `ids` cut at `offsets` (same dtype).
///
/// # Safety
///
/// The caller's contract.
unsafe fn bags<'a, I: Tagged + TokenId>(
    ids: &Raw,
    offsets: Option<&Raw>,
    include_last_offset: bool,
) -> Result<Bags<'a, I>, Failure> {
    // SAFETY: forwarded to the caller.
    let ids = unsafe { ids.view::<I>()? };
    Ok(match offsets {
        None => Bags::from_rows(ids)?,
        Some(offsets) => {
            // SAFETY: forwarded to the caller.
            let offsets = unsafe { offsets.view::<I>()? };
            Bags::from_offsets(ids, offsets.as_slice(), include_last_offset)?
        }
    })
}

/// An optional input as a slice.
///
/// # Safety
///
/// The caller's contract.
unsafe fn optional_slice<'a, X: Tagged>(raw: Option<&Raw>) -> Result<Option<&'a [X]>, Failure> {
    // SAFETY: forwarded to the caller.
    raw.map(|r| unsafe { r.view::<X>() }.map(|v| v.as_slice()))
        .transpose()
}

/// PyTorch's `F.embedding_bag` forward: `table` `(vocab_size, n_embd)`, `ids` 2-D (each
/// row a bag; `offsets` NULL) or 1-D with `offsets` (same integer dtype; with
/// `include_last_offset` the last offset ends the last bag), `per_sample_weights` (mode
/// sum, one per id, the table's dtype; or NULL), `mode_tag` a [`TokenloomBagMode`],
/// `padding_idx` left out of every bag; `out` `(n_bags, n_embd)`; in max mode
/// `max_indices` (i64, `(n_bags, n_embd)`) receives the arg-max ids the backward needs
/// (NULL otherwise).
///
/// # Safety
///
/// As [`tokenloom_lookup`](crate::tokenloom_lookup).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature
pub unsafe extern "C" fn tokenloom_embedding_bag(
    table: *const TokenloomTensor,
    ids: *const TokenloomTensor,
    offsets: *const TokenloomTensor,
    include_last_offset: bool,
    per_sample_weights: *const TokenloomTensor,
    mode_tag: i32,
    has_padding_idx: bool,
    padding_idx: i64,
    out: *const TokenloomTensor,
    max_indices: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let (table, ids, out) = (
            describe(table, "table")?,
            describe(ids, "ids")?,
            describe(out, "out")?,
        );
        let offsets = describe_optional(offsets, "offsets")?;
        let weights = describe_optional(per_sample_weights, "per_sample_weights")?;
        let max_indices = describe_optional(max_indices, "max_indices")?;
        let mut inputs = vec![&table, &ids];
        inputs.extend(offsets.as_ref().into_iter().chain(weights.as_ref()));
        check_disjoint(
            &out,
            &[&inputs[..], max_indices.as_ref().as_slice()].concat(),
        )?;
        if let Some(m) = &max_indices {
            check_disjoint(m, &inputs)?;
        }
        let vocab_size = table.shape.dims().first().copied().unwrap_or(0);
        let options = bag_options(mode_tag, vocab_size, has_padding_idx, padding_idx, false)?;
        with_float!(table, |T| with_id!(ids, |I| {
            // SAFETY: the caller's contract and `check_disjoint`.
            unsafe {
                let bags = bags::<I>(&ids, offsets.as_ref(), include_last_offset)?;
                let weights = optional_slice::<T>(weights.as_ref())?;
                let max = match &max_indices {
                    Some(m) => Some(m.view_mut::<i64>()?.into_mut_slice()),
                    None => None,
                };
                Ok(embedding_bag_into(
                    table.view::<T>()?,
                    &bags,
                    weights,
                    &options,
                    out.view_mut::<T>()?,
                    max,
                )?)
            }
        }))
    })
}

/// The table's gradient of [`tokenloom_embedding_bag`] into `grad_weight`
/// `(vocab_size, n_embd)`, replacing it or (`accumulate`) adding to it: the bags and
/// options as the forward's, `grad_out` `(n_bags, n_embd)`, `max_indices` as the
/// forward wrote them (max mode), `scale_grad_by_freq` dividing by each id's count.
/// Summed in f64, rounded once.
///
/// # Safety
///
/// As [`tokenloom_lookup`](crate::tokenloom_lookup).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature
pub unsafe extern "C" fn tokenloom_embedding_bag_backward(
    ids: *const TokenloomTensor,
    offsets: *const TokenloomTensor,
    include_last_offset: bool,
    per_sample_weights: *const TokenloomTensor,
    grad_out: *const TokenloomTensor,
    max_indices: *const TokenloomTensor,
    mode_tag: i32,
    has_padding_idx: bool,
    padding_idx: i64,
    scale_grad_by_freq: bool,
    grad_weight: *const TokenloomTensor,
    accumulate: bool,
) -> TokenloomStatus {
    run(|| {
        let (ids, grad_out, grad_weight) = (
            describe(ids, "ids")?,
            describe(grad_out, "grad_out")?,
            describe(grad_weight, "grad_weight")?,
        );
        let offsets = describe_optional(offsets, "offsets")?;
        let weights = describe_optional(per_sample_weights, "per_sample_weights")?;
        let max_indices = describe_optional(max_indices, "max_indices")?;
        let mut inputs = vec![&ids, &grad_out];
        inputs.extend(
            offsets
                .as_ref()
                .into_iter()
                .chain(weights.as_ref())
                .chain(max_indices.as_ref()),
        );
        check_disjoint(&grad_weight, &inputs)?;
        let vocab_size = grad_weight.shape.dims().first().copied().unwrap_or(0);
        let options = bag_options(
            mode_tag,
            vocab_size,
            has_padding_idx,
            padding_idx,
            scale_grad_by_freq,
        )?;
        let accumulate = if accumulate {
            Accumulate::Add
        } else {
            Accumulate::Replace
        };
        with_float!(grad_weight, |T| with_id!(ids, |I| {
            // SAFETY: the caller's contract and `check_disjoint`.
            unsafe {
                let bags = bags::<I>(&ids, offsets.as_ref(), include_last_offset)?;
                let weights = optional_slice::<T>(weights.as_ref())?;
                let max = optional_slice::<i64>(max_indices.as_ref())?;
                Ok(embedding_bag_backward(
                    &bags,
                    weights,
                    grad_out.view::<T>()?,
                    max,
                    &options,
                    grad_weight.view_mut::<T>()?,
                    accumulate,
                )?)
            }
        }))
    })
}
