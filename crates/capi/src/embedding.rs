//! The embedding kernels: lookup, renorm, dense and row-sparse backward, logits.

use tokenloom_embedding::{EmbeddingOptions, MaxNorm, NormType, functional};
use tokenloom_tensor::{Accumulate, Element};

use crate::error::{Failure, TokenloomStatus, run};
use crate::tensor::{Raw, Tagged, TokenloomTensor, check_disjoint, describe, with_float, with_id};

/// `padding_idx` as PyTorch takes it (negative counts from the end), or none.
fn options(
    vocab_size: usize,
    has_padding_idx: bool,
    padding_idx: i64,
    scale_grad_by_freq: bool,
) -> Result<EmbeddingOptions, Failure> {
    let padding_idx = if has_padding_idx {
        Some(EmbeddingOptions::resolve_padding_idx(
            padding_idx,
            vocab_size,
        )?)
    } else {
        None
    };
    Ok(EmbeddingOptions {
        padding_idx,
        max_norm: None,
        scale_grad_by_freq,
        ..EmbeddingOptions::default()
    })
}

/// The lookup `out[i] = table[ids[i]]` (as `torch.nn.functional.embedding`).
///
/// Shapes: table `(vocab_size, n_embd)`; ids `(seq_len)` or `(batch, seq_len)` of u32,
/// i32 or i64; out `ids.shape + (n_embd)`, the table's float dtype or a wider one (a
/// bf16/f16 table into f32 or f64 activations, f32 into f64: exact).
///
/// # Safety
///
/// Each non-null descriptor's `data` must address as many elements of its dtype as its
/// dimensions say, valid for the call; `out` must not be read or written by another
/// thread during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_lookup(
    table: *const TokenloomTensor,
    ids: *const TokenloomTensor,
    out: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let (table, ids, out) = (
            describe(table, "table")?,
            describe(ids, "ids")?,
            describe(out, "out")?,
        );
        check_disjoint(&out, &[&table, &ids])?;
        use crate::tensor::TokenloomDtype as D;
        match (table.dtype, out.dtype) {
            (a, b) if a == b => with_float!(table, |T| with_id!(ids, |I| {
                // SAFETY: the caller's contract (this function's) and `check_disjoint`.
                let (table, ids, out) =
                    unsafe { (table.view::<T>()?, ids.view::<I>()?, out.view_mut::<T>()?) };
                Ok(functional::lookup_into(table, ids, out, None)?)
            })),
            // Mixed precision: a half (or f32) table read into wider activations, exactly.
            (D::F16, D::F32) => lookup_cast::<half::f16, f32>((&table, &ids, &out)),
            (D::Bf16, D::F32) => lookup_cast::<half::bf16, f32>((&table, &ids, &out)),
            (D::F16, D::F64) => lookup_cast::<half::f16, f64>((&table, &ids, &out)),
            (D::Bf16, D::F64) => lookup_cast::<half::bf16, f64>((&table, &ids, &out)),
            (D::F32, D::F64) => lookup_cast::<f32, f64>((&table, &ids, &out)),
            (a, b) => Err(Failure::new(
                TokenloomStatus::BadDtype,
                format!(
                    "a table of dtype {} into out of dtype {}: the dtypes must be equal, or out a wider float",
                    a.name(),
                    b.name()
                ),
            )),
        }
    })
}

/// The lookup of `Src` rows into `Dst` activations (`lookup_cast_into`).
fn lookup_cast<Src: Tagged + Element, Dst: Tagged + Element>(
    (table, ids, out): (&Raw, &Raw, &Raw),
) -> Result<(), Failure> {
    with_id!(ids, |I| {
        // SAFETY: the caller's contract (`tokenloom_lookup`'s) and `check_disjoint`.
        let (table, ids, out) = unsafe {
            (
                table.view::<Src>()?,
                ids.view::<I>()?,
                out.view_mut::<Dst>()?,
            )
        };
        Ok(functional::lookup_cast_into(table, ids, out)?)
    })
}

/// PyTorch's `max_norm` side effect on the caller's table: rows referenced by `ids`
/// whose `norm_type`-norm (a p > 0, or infinity) exceeds `max_norm` are scaled in place
/// by `max_norm / (norm + 1e-7)`. The number of rows changed is written to
/// `n_renormed` when it is not null.
///
/// # Safety
///
/// As [`tokenloom_lookup`]; `n_renormed` is null or points to a `size_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_renorm(
    table: *const TokenloomTensor,
    ids: *const TokenloomTensor,
    max_norm: f64,
    norm_type: f64,
    n_renormed: *mut usize,
) -> TokenloomStatus {
    run(|| {
        let (table, ids) = (describe(table, "table")?, describe(ids, "ids")?);
        check_disjoint(&table, &[&ids])?;
        let max_norm = MaxNorm {
            max_norm,
            norm_type: if norm_type == f64::INFINITY {
                NormType::Infinity
            } else {
                NormType::P(norm_type)
            },
        };
        EmbeddingOptions {
            max_norm: Some(max_norm),
            ..EmbeddingOptions::default()
        }
        .validate(usize::MAX)?;
        let rows = with_float!(table, |T| with_id!(ids, |I| {
            // SAFETY: the caller's contract and `check_disjoint`.
            let (table, ids) = unsafe { (table.view_mut::<T>()?, ids.view::<I>()?) };
            Ok(functional::renorm(table, ids, &max_norm)?)
        }))?;
        if !n_renormed.is_null() {
            // SAFETY: non-null, and the caller's contract says it points to a size_t.
            unsafe { *n_renormed = rows.len() };
        }
        Ok(())
    })
}

/// The dense gradient of an embedding weight: the rows of `grad_output` scatter-added
/// by id into `grad_weight` `(vocab_size, n_embd)`, replacing its contents
/// (`accumulate` false) or adding to them (`accumulate` true). `padding_idx` (when
/// `has_padding_idx`; negative counts from the end, as PyTorch) gets no gradient;
/// `scale_grad_by_freq` divides each row by its id's count. Sums run in f64 in position
/// order: bit-identical for any thread count. Mixed precision: a bf16/f16 `grad_output`
/// may go into an f32 or f64 `grad_weight` (and f32 into f64), each term widened exactly.
///
/// # Safety
///
/// As [`tokenloom_lookup`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_backward_dense(
    ids: *const TokenloomTensor,
    grad_output: *const TokenloomTensor,
    grad_weight: *const TokenloomTensor,
    has_padding_idx: bool,
    padding_idx: i64,
    scale_grad_by_freq: bool,
    accumulate: bool,
) -> TokenloomStatus {
    run(|| {
        let (ids, grad_output, grad_weight) = (
            describe(ids, "ids")?,
            describe(grad_output, "grad_output")?,
            describe(grad_weight, "grad_weight")?,
        );
        check_disjoint(&grad_weight, &[&ids, &grad_output])?;
        let vocab_size = grad_weight.shape.dims().first().copied().unwrap_or(0);
        let options = options(vocab_size, has_padding_idx, padding_idx, scale_grad_by_freq)?;
        let accumulate = if accumulate {
            Accumulate::Add
        } else {
            Accumulate::Replace
        };
        use crate::tensor::TokenloomDtype as D;
        let args = (&ids, &grad_output, &grad_weight, &options, accumulate);
        match (grad_output.dtype, grad_weight.dtype) {
            (g, w) if g == w => with_float!(grad_weight, |T| backward_cast::<T, T>(args)),
            // Mixed precision: a half (or f32) upstream gradient into a wider gradient.
            (D::F16, D::F32) => backward_cast::<half::f16, f32>(args),
            (D::Bf16, D::F32) => backward_cast::<half::bf16, f32>(args),
            (D::F16, D::F64) => backward_cast::<half::f16, f64>(args),
            (D::Bf16, D::F64) => backward_cast::<half::bf16, f64>(args),
            (D::F32, D::F64) => backward_cast::<f32, f64>(args),
            (g, w) => Err(Failure::new(
                TokenloomStatus::BadDtype,
                format!(
                    "grad_output of dtype {} into grad_weight of dtype {}: the dtypes must be equal, or the gradient a wider float",
                    g.name(),
                    w.name()
                ),
            )),
        }
    })
}

/// The arguments of [`backward_cast`].
type BackwardArgs<'a> = (&'a Raw, &'a Raw, &'a Raw, &'a EmbeddingOptions, Accumulate);

/// `backward_dense_cast::<G, T>` on checked descriptors.
fn backward_cast<G: Tagged + Element, T: Tagged + Element>(
    (ids, grad_output, grad_weight, options, accumulate): BackwardArgs<'_>,
) -> Result<(), Failure> {
    with_id!(ids, |I| {
        // SAFETY: the caller's contract and `check_disjoint` (in the caller).
        let (ids, g, gw) = unsafe {
            (
                ids.view::<I>()?,
                grad_output.view::<G>()?,
                grad_weight.view_mut::<T>()?,
            )
        };
        Ok(functional::backward_dense_cast(
            ids, g, gw, options, accumulate,
        )?)
    })
}

/// The row-sparse gradient of a `(vocab_size, n_embd)` embedding weight: the distinct
/// touched row ids, increasing, into `rows` (u32, `(capacity)`), and their gradient rows
/// into the first rows of `values` (`(capacity, n_embd)`); their number into `n_rows`.
/// `capacity` must be at least the number of distinct ids (the number of ids always
/// suffices). Options as [`tokenloom_backward_dense`].
///
/// # Safety
///
/// As [`tokenloom_lookup`]; `n_rows` points to a `size_t`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature: one argument per option
pub unsafe extern "C" fn tokenloom_backward_sparse(
    ids: *const TokenloomTensor,
    grad_output: *const TokenloomTensor,
    vocab_size: usize,
    has_padding_idx: bool,
    padding_idx: i64,
    scale_grad_by_freq: bool,
    rows: *const TokenloomTensor,
    values: *const TokenloomTensor,
    n_rows: *mut usize,
) -> TokenloomStatus {
    run(|| {
        if n_rows.is_null() {
            return Err(Failure::new(TokenloomStatus::NullPointer, "n_rows is null"));
        }
        let (ids, grad_output, rows, values) = (
            describe(ids, "ids")?,
            describe(grad_output, "grad_output")?,
            describe(rows, "rows")?,
            describe(values, "values")?,
        );
        check_disjoint(&rows, &[&ids, &grad_output, &values])?;
        check_disjoint(&values, &[&ids, &grad_output])?;
        let options = options(vocab_size, has_padding_idx, padding_idx, scale_grad_by_freq)?;
        let count = with_float!(values, |T| with_id!(ids, |I| {
            // SAFETY: the caller's contract and `check_disjoint`.
            let (ids, g, mut rows_out, values_out) = unsafe {
                (
                    ids.view::<I>()?,
                    grad_output.view::<T>()?,
                    rows.view_mut::<u32>()?,
                    values.view_mut::<T>()?,
                )
            };
            // Straight into the caller's buffers: no gradient is allocated or copied.
            let capacity = values_out.shape().dims().first().copied().unwrap_or(0);
            if rows_out.shape().rank() != 1 || rows_out.as_slice().len() != capacity {
                return Err(Failure::new(
                    TokenloomStatus::BadShape,
                    format!(
                        "rows {} and values {} must be (capacity) and (capacity, n_embd)",
                        rows_out.shape(),
                        values_out.shape()
                    ),
                ));
            }
            let n = functional::backward_sparse_into(
                ids,
                g,
                vocab_size,
                &options,
                rows_out.as_mut_slice(),
                values_out,
            )?;
            Ok(n)
        }))?;
        // SAFETY: non-null (checked first), and the caller's contract.
        unsafe { *n_rows = count };
        Ok(())
    })
}

/// The output projection `out = logit_scale · hidden @ weightᵀ`: hidden `(…, n_embd)`,
/// weight `(vocab_size, n_embd)` (the embedding table when tied), out `(…, vocab_size)`.
///
/// # Safety
///
/// As [`tokenloom_lookup`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_logits(
    hidden: *const TokenloomTensor,
    weight: *const TokenloomTensor,
    logit_scale: f64,
    out: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let (hidden, weight, out) = (
            describe(hidden, "hidden")?,
            describe(weight, "weight")?,
            describe(out, "out")?,
        );
        check_disjoint(&out, &[&hidden, &weight])?;
        with_float!(weight, |T| {
            // SAFETY: the caller's contract and `check_disjoint`.
            let (h, w, o) = unsafe {
                (
                    hidden.view::<T>()?,
                    weight.view::<T>()?,
                    out.view_mut::<T>()?,
                )
            };
            Ok(functional::logits_into(h, w, logit_scale, o)?)
        })
    })
}

/// Backward of [`tokenloom_logits`]: adds `logit_scale · grad_logitsᵀ @ hidden` to
/// `grad_weight` and writes `grad_hidden = logit_scale · grad_logits @ weight`.
///
/// # Safety
///
/// As [`tokenloom_lookup`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_logits_backward(
    hidden: *const TokenloomTensor,
    weight: *const TokenloomTensor,
    grad_logits: *const TokenloomTensor,
    logit_scale: f64,
    grad_weight: *const TokenloomTensor,
    grad_hidden: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        let (hidden, weight, grad_logits, grad_weight, grad_hidden) = (
            describe(hidden, "hidden")?,
            describe(weight, "weight")?,
            describe(grad_logits, "grad_logits")?,
            describe(grad_weight, "grad_weight")?,
            describe(grad_hidden, "grad_hidden")?,
        );
        check_disjoint(
            &grad_weight,
            &[&hidden, &weight, &grad_logits, &grad_hidden],
        )?;
        check_disjoint(&grad_hidden, &[&hidden, &weight, &grad_logits])?;
        with_float!(weight, |T| {
            // SAFETY: the caller's contract and `check_disjoint`.
            let (h, w, g, gw, gh) = unsafe {
                (
                    hidden.view::<T>()?,
                    weight.view::<T>()?,
                    grad_logits.view::<T>()?,
                    grad_weight.view_mut::<T>()?,
                    grad_hidden.view_mut::<T>()?,
                )
            };
            Ok(functional::logits_backward(h, w, g, logit_scale, gw, gh)?)
        })
    })
}
