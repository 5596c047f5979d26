//! Optimizer steps on the caller's parameter, gradient and state buffers
//! (`tokenloom_adamw_step`, `tokenloom_sgd_step`): dense, or row-sparse as
//! `tokenloom_backward_sparse` leaves the gradient. Nothing is allocated.

use tokenloom_embedding::{AdamW, EmbeddingOptions, Optimizer, Sgd, functional};
use tokenloom_tensor::TensorViewMut;

use crate::error::{Failure, TokenloomStatus, run};
use crate::tensor::{
    Raw, TokenloomTensor, check_disjoint, describe, describe_optional, with_float,
};

/// AdamW's hyperparameters; start from [`tokenloom_adamw_default`] and set fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TokenloomAdamW {
    /// The learning rate.
    pub lr: f64,
    /// Decay of the first moment (PyTorch's default 0.9).
    pub beta1: f64,
    /// Decay of the second moment (0.999).
    pub beta2: f64,
    /// Added to the denominator (1e-8).
    pub eps: f64,
    /// Decoupled weight decay (0.01).
    pub weight_decay: f64,
}

/// PyTorch's `torch.optim.AdamW` defaults with learning rate `lr`.
#[unsafe(no_mangle)]
pub extern "C" fn tokenloom_adamw_default(lr: f64) -> TokenloomAdamW {
    TokenloomAdamW {
        lr,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.01,
    }
}

/// The padding row, resolved against the parameter's rows.
fn padding(
    weight: &Raw,
    has_padding_idx: bool,
    padding_idx: i64,
) -> Result<Option<usize>, Failure> {
    if !has_padding_idx {
        return Ok(None);
    }
    let vocab_size = weight.shape.dims().first().copied().unwrap_or(0);
    Ok(Some(EmbeddingOptions::resolve_padding_idx(
        padding_idx,
        vocab_size,
    )?))
}

/// One step of `opt` on `weight` with the gradient: dense when `rows` is `None`.
fn step<O: Optimizer>(
    opt: &mut O,
    weight: &Raw,
    grad: &Raw,
    rows: Option<&Raw>,
    padding_idx: Option<usize>,
) -> Result<(), Failure> {
    with_float!(weight, |T| {
        // SAFETY: the caller's contract and `check_disjoint` (in the callers).
        let (w, g) = unsafe { (weight.view_mut::<T>()?, grad.view::<T>()?) };
        match rows {
            None => Ok(functional::step_dense(opt, w, g, padding_idx)?),
            Some(rows) => {
                // SAFETY: as above.
                let rows = unsafe { rows.view::<u32>()? };
                if rows.shape().rank() != 1 {
                    return Err(Failure::new(
                        TokenloomStatus::BadShape,
                        format!("rows must be (n), got {}", rows.shape()),
                    ));
                }
                Ok(functional::step_sparse_rows(
                    opt,
                    w,
                    rows.as_slice(),
                    g,
                    padding_idx,
                )?)
            }
        }
    })
}

/// The state buffer `(…)` of f32 as a slice, checked for the parameter's size.
///
/// # Safety
///
/// The caller's contract and `check_disjoint`.
unsafe fn state<'a>(raw: &Raw) -> Result<&'a mut [f32], Failure> {
    // SAFETY: forwarded to the caller.
    let view: TensorViewMut<'a, f32> = unsafe { raw.view_mut::<f32>()? };
    Ok(view.into_mut_slice())
}

/// One AdamW step on `weight` `(vocab_size, n_embd)` (any float dtype) with its state in
/// the caller's f32 buffers `m` and `v` (the weight's shape, zeros before the first
/// step) and `*steps` the number of steps taken before (incremented on success). The
/// gradient is dense (`grad` of the weight's shape) when `rows` is NULL, otherwise
/// row-sparse: `rows` (u32, `(n)`, distinct) and `grad` `(n, n_embd)`, as
/// [`tokenloom_backward_sparse`](crate::tokenloom_backward_sparse) writes them (only the
/// listed rows and their moments change: lazy Adam). `padding_idx`'s row never changes.
///
/// # Safety
///
/// As [`tokenloom_lookup`](crate::tokenloom_lookup); `steps` and `hyper` point to a
/// `uint64_t` and a [`TokenloomAdamW`].
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature
pub unsafe extern "C" fn tokenloom_adamw_step(
    weight: *const TokenloomTensor,
    grad: *const TokenloomTensor,
    rows: *const TokenloomTensor,
    m: *const TokenloomTensor,
    v: *const TokenloomTensor,
    steps: *mut u64,
    hyper: *const TokenloomAdamW,
    has_padding_idx: bool,
    padding_idx: i64,
) -> TokenloomStatus {
    run(|| {
        if steps.is_null() || hyper.is_null() {
            return Err(Failure::new(
                TokenloomStatus::NullPointer,
                "steps or hyper is null",
            ));
        }
        let (weight, grad, m, v) = (
            describe(weight, "weight")?,
            describe(grad, "grad")?,
            describe(m, "m")?,
            describe(v, "v")?,
        );
        let rows = describe_optional(rows, "rows")?;
        let mut inputs = vec![&grad];
        inputs.extend(rows.as_ref());
        check_disjoint(&weight, &[&inputs[..], &[&m, &v]].concat())?;
        check_disjoint(&m, &[&inputs[..], &[&v]].concat())?;
        check_disjoint(&v, &inputs)?;
        let padding_idx = padding(&weight, has_padding_idx, padding_idx)?;
        // SAFETY: non-null (checked first), and the caller's contract.
        let (hyper, taken) = unsafe { (*hyper, *steps) };
        // SAFETY: the caller's contract and the checks above.
        let (m, v) = unsafe { (state(&m)?, state(&v)?) };
        let mut opt =
            AdamW::with_state(hyper.lr, m, v, taken).with_weight_decay(hyper.weight_decay);
        (opt.beta1, opt.beta2, opt.eps) = (hyper.beta1, hyper.beta2, hyper.eps);
        step(&mut opt, &weight, &grad, rows.as_ref(), padding_idx)?;
        // SAFETY: non-null (checked first), and the caller's contract.
        unsafe { *steps = opt.steps() };
        Ok(())
    })
}

/// One SGD step (`torch.optim.SGD`: L2 `weight_decay`, `momentum` with dampening 0) on
/// `weight` with a dense or row-sparse gradient as in [`tokenloom_adamw_step`]; with
/// `momentum` ≠ 0 the velocity is the caller's f32 buffer `velocity` (the weight's
/// shape, zeros before the first step), otherwise `velocity` may be NULL.
///
/// # Safety
///
/// As [`tokenloom_lookup`](crate::tokenloom_lookup).
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)] // a C signature
pub unsafe extern "C" fn tokenloom_sgd_step(
    weight: *const TokenloomTensor,
    grad: *const TokenloomTensor,
    rows: *const TokenloomTensor,
    velocity: *const TokenloomTensor,
    lr: f64,
    momentum: f64,
    weight_decay: f64,
    has_padding_idx: bool,
    padding_idx: i64,
) -> TokenloomStatus {
    run(|| {
        let (weight, grad) = (describe(weight, "weight")?, describe(grad, "grad")?);
        let rows = describe_optional(rows, "rows")?;
        let velocity = describe_optional(velocity, "velocity")?;
        let mut inputs = vec![&grad];
        inputs.extend(rows.as_ref());
        let mut written = inputs.clone();
        written.extend(velocity.as_ref());
        check_disjoint(&weight, &written)?;
        if let Some(velocity) = &velocity {
            check_disjoint(velocity, &inputs)?;
        }
        let padding_idx = padding(&weight, has_padding_idx, padding_idx)?;
        let mut empty: [f32; 0] = [];
        let buffer: &mut [f32] = match &velocity {
            // SAFETY: the caller's contract and the checks above.
            Some(velocity) => unsafe { state(velocity)? },
            None if momentum == 0.0 => &mut empty,
            None => {
                return Err(Failure::new(
                    TokenloomStatus::NullPointer,
                    "velocity is null with a momentum other than 0",
                ));
            }
        };
        let mut opt = Sgd::with_velocity(lr, momentum, buffer).with_weight_decay(weight_decay);
        step(&mut opt, &weight, &grad, rows.as_ref(), padding_idx)
    })
}
