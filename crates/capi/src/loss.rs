//! The fused output projection and cross-entropy (`tokenloom_linear_cross_entropy`).

use tokenloom_embedding::functional::{
    self, CrossEntropyOptions, LinearCrossEntropyGrads, LogitScale, Reduction,
};
use tokenloom_tensor::Accumulate;

use crate::error::{Failure, TokenloomStatus, run};
use crate::tensor::{
    Raw, TokenloomTensor, check_disjoint, describe, describe_optional, with_float, with_id,
};

/// The options of [`tokenloom_linear_cross_entropy`]; start from
/// [`tokenloom_cross_entropy_options_default`] and set fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TokenloomCrossEntropyOptions {
    /// Non-zero: tokens whose target is `ignore_index` count for nothing.
    pub has_ignore_index: i32,
    /// PyTorch's `ignore_index` (default -100).
    pub ignore_index: i64,
    /// PyTorch's `label_smoothing`, in [0, 1].
    pub label_smoothing: f64,
    /// The z-loss weight (Liger's `lse_square_scale`), ≥ 0.
    pub z_loss: f64,
    /// 0: no scale; 1: logits · `logit_scale` (Cohere); 2: logits / `logit_scale` (Granite).
    pub logit_scale_kind: i32,
    /// The scale's value.
    pub logit_scale: f64,
    /// Logit softcapping (Gemma 2); 0 for none.
    pub softcap: f64,
    /// 0: none (per-token losses in `losses`); 1: sum; 2: mean (the default).
    pub reduction: i32,
    /// Tokens per chunk of logits; 0 for the default (32 MiB of logits).
    pub chunk_tokens: usize,
    /// The upstream gradient of the loss (1 for `loss.backward()`).
    pub grad_scale: f64,
    /// Non-zero: add to the gradient buffers instead of overwriting them.
    pub accumulate: i32,
}

/// The default options: `ignore_index` -100, no smoothing, z-loss, scale or softcap,
/// mean reduction, the default chunk, upstream gradient 1, overwrite.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_cross_entropy_options_default() -> TokenloomCrossEntropyOptions {
    TokenloomCrossEntropyOptions {
        has_ignore_index: 1,
        ignore_index: -100,
        label_smoothing: 0.0,
        z_loss: 0.0,
        logit_scale_kind: 0,
        logit_scale: 1.0,
        softcap: 0.0,
        reduction: 2,
        chunk_tokens: 0,
        grad_scale: 1.0,
        accumulate: 0,
    }
}

fn invalid(message: String) -> Failure {
    Failure::new(TokenloomStatus::InvalidArgument, message)
}

impl TokenloomCrossEntropyOptions {
    fn to_options(self) -> Result<CrossEntropyOptions, Failure> {
        let mut o = CrossEntropyOptions::default();
        o.ignore_index = (self.has_ignore_index != 0).then_some(self.ignore_index);
        o.label_smoothing = self.label_smoothing;
        o.z_loss = self.z_loss;
        o.logit_scale = match self.logit_scale_kind {
            0 => LogitScale::None,
            1 => LogitScale::Multiply(self.logit_scale),
            2 => LogitScale::Divide(self.logit_scale),
            k => return Err(invalid(format!("logit_scale_kind {k} is not 0, 1 or 2"))),
        };
        o.softcap = (self.softcap != 0.0).then_some(self.softcap);
        o.reduction = match self.reduction {
            0 => Reduction::None,
            1 => Reduction::Sum,
            2 => Reduction::Mean,
            r => return Err(invalid(format!("reduction {r} is not 0, 1 or 2"))),
        };
        o.chunk_tokens = (self.chunk_tokens != 0).then_some(self.chunk_tokens);
        Ok(o)
    }
}

/// The fused `F.cross_entropy(F.linear(hidden, head), targets)` and, when the buffers are
/// given, the gradients of hidden and head — without the `(N, vocab_size)` logits.
///
/// Shapes: hidden `(…, n_embd)`; head `(vocab_size, n_embd)` of the same float dtype;
/// targets `(…)` of u32, i32 or i64; `token_weights` null or f64 `(N)`; `grad_hidden`
/// null or hidden's shape; `grad_head` null or head's shape; `losses` null or f64 `(N)`
/// (each token's weighted loss); `lse` null or f64 `(N)`; `argmax` null or u32 `(N)`.
/// The reduced loss is written to `*loss`.
///
/// # Safety
///
/// As [`crate::embedding::tokenloom_lookup`]; `options` and `loss` point to valid values.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tokenloom_linear_cross_entropy(
    hidden: *const TokenloomTensor,
    head: *const TokenloomTensor,
    targets: *const TokenloomTensor,
    token_weights: *const TokenloomTensor,
    options: *const TokenloomCrossEntropyOptions,
    grad_hidden: *const TokenloomTensor,
    grad_head: *const TokenloomTensor,
    loss: *mut f64,
    losses: *const TokenloomTensor,
    lse: *const TokenloomTensor,
    argmax: *const TokenloomTensor,
) -> TokenloomStatus {
    run(|| {
        if options.is_null() || loss.is_null() {
            return Err(Failure::new(
                TokenloomStatus::NullPointer,
                "options and loss must not be null".to_owned(),
            ));
        }
        // SAFETY: non-null (checked above), plain data read by value; the caller's contract.
        let raw_options = unsafe { *options };
        let mut o = raw_options.to_options()?;
        let (hidden, head, targets) = (
            describe(hidden, "hidden")?,
            describe(head, "head")?,
            describe(targets, "targets")?,
        );
        let weights = describe_optional(token_weights, "token_weights")?;
        let (gh, gw) = (
            describe_optional(grad_hidden, "grad_hidden")?,
            describe_optional(grad_head, "grad_head")?,
        );
        let (losses, lse, argmax) = (
            describe_optional(losses, "losses")?,
            describe_optional(lse, "lse")?,
            describe_optional(argmax, "argmax")?,
        );
        let inputs: Vec<&Raw> = [Some(&hidden), Some(&head), Some(&targets), weights.as_ref()]
            .into_iter()
            .flatten()
            .collect();
        let outputs: Vec<Raw> = [gh, gw, losses, lse, argmax]
            .into_iter()
            .flatten()
            .collect();
        for (i, out) in outputs.iter().enumerate() {
            let mut others = inputs.clone();
            others.extend(
                outputs
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, r)| r),
            );
            check_disjoint(out, &others)?;
        }
        let n_tokens = targets.shape.elem_count();
        for (raw, what) in [(&losses, "losses"), (&lse, "lse"), (&argmax, "argmax")] {
            if let Some(raw) = raw
                && raw.shape.elem_count() != n_tokens
            {
                return Err(Failure::new(
                    TokenloomStatus::BadShape,
                    format!(
                        "{what} has shape {}, one value per token ({n_tokens}) is needed",
                        raw.shape
                    ),
                ));
            }
        }
        o.return_lse = lse.is_some();
        o.return_argmax = argmax.is_some();
        if losses.is_some() && o.reduction != Reduction::None {
            return Err(invalid(
                "losses is given but the reduction is not 0 (none)".to_owned(),
            ));
        }
        // SAFETY: the caller's contract and `check_disjoint`.
        let weights = match &weights {
            Some(w) => Some(unsafe { w.view::<f64>()? }),
            None => None,
        };
        let out = with_float!(head, |T| with_id!(targets, |I| {
            let mut grads = LinearCrossEntropyGrads::<T>::new()
                .grad_scale(raw_options.grad_scale)
                .accumulate(if raw_options.accumulate != 0 {
                    Accumulate::Add
                } else {
                    Accumulate::Replace
                });
            // SAFETY: the caller's contract and `check_disjoint`.
            unsafe {
                if let Some(g) = &gh {
                    grads = grads.with_hidden(g.view_mut::<T>()?)?;
                }
                if let Some(g) = &gw {
                    grads = grads.with_head(g.view_mut::<T>()?)?;
                }
            }
            let want_grads = gh.is_some() || gw.is_some();
            // SAFETY: the caller's contract.
            let (h, w, t) =
                unsafe { (hidden.view::<T>()?, head.view::<T>()?, targets.view::<I>()?) };
            Ok(functional::linear_cross_entropy(
                h,
                w,
                t,
                weights.as_ref().map(|w| w.as_slice()),
                &o,
                want_grads.then_some(grads),
            )?)
        }))?;
        // SAFETY (each block): the caller's contract and `check_disjoint`; the lengths
        // were checked against the token count above.
        if let (Some(raw), Some(values)) = (&losses, &out.losses) {
            unsafe { raw.view_mut::<f64>()? }
                .as_mut_slice()
                .copy_from_slice(values);
        }
        if let (Some(raw), Some(values)) = (&lse, &out.lse) {
            unsafe { raw.view_mut::<f64>()? }
                .as_mut_slice()
                .copy_from_slice(values);
        }
        if let (Some(raw), Some(values)) = (&argmax, &out.argmax) {
            unsafe { raw.view_mut::<u32>()? }
                .as_mut_slice()
                .copy_from_slice(values);
        }
        // SAFETY: non-null (checked first), and the caller's contract.
        unsafe { *loss = out.loss };
        Ok(())
    })
}
