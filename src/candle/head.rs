//! The output head `logit_scale · hidden @ weightᵀ` as a candle op: forward by
//! `functional::logits_into`, backward by `functional::logits_backward` (both gradients
//! from one call).

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use tokenloom_embedding::functional;
use tokenloom_tensor::adapters::candle::cpu_view;
use tokenloom_tensor::{TensorViewMut, try_filled};

use super::{Float, for_float, wrap};

/// The logits `logit_scale · hidden @ weightᵀ` of a `(vocab_size, n_embd)` head over
/// `hidden (…, n_embd)`, shape `(…, vocab_size)`, as a candle op with a backward for both
/// operands. Pass the embedding table as `weight` for a tied head: candle's autograd adds
/// this gradient to the lookup's. `hidden` and `weight` share one float dtype; `f16`/`bf16`
/// accumulate in `f32`.
///
/// # Errors
///
/// A candle error wrapping tokenloom's shape and dtype errors
/// ([`EmbeddingError`](tokenloom_embedding::EmbeddingError)), and
/// [`EmbeddingError::InvalidOption`](tokenloom_embedding::EmbeddingError::InvalidOption)
/// for a `logit_scale` that is not finite.
pub fn logits(hidden: &Tensor, weight: &Tensor, logit_scale: f64) -> candle_core::Result<Tensor> {
    hidden
        .contiguous()?
        .apply_op2(&weight.contiguous()?, Logits { logit_scale })
}

/// The forward op (hidden, weight) → logits.
struct Logits {
    logit_scale: f64,
}

fn logits_of<T: Float>(
    hidden: &CpuStorage,
    hidden_layout: &Layout,
    weight: &CpuStorage,
    weight_layout: &Layout,
    logit_scale: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let hidden = cpu_view::<T>(hidden, hidden_layout).map_err(wrap)?;
    let weight = cpu_view::<T>(weight, weight_layout).map_err(wrap)?;
    let out = functional::logits(hidden, weight, logit_scale).map_err(wrap)?;
    let (shape, data) = out.into_parts();
    Ok((T::to_cpu_storage_owned(data), Shape::from(shape.dims())))
}

impl CustomOp2 for Logits {
    fn name(&self) -> &'static str {
        "tokenloom-logits"
    }

    fn cpu_fwd(
        &self,
        hidden: &CpuStorage,
        hidden_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        for_float!(hidden, "hidden", T => logits_of::<T>(
            hidden, hidden_layout, weight, weight_layout, self.logit_scale,
        ))
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        _logits: &Tensor,
        grad_logits: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // One call computes both gradients, packed one after the other in a flat tensor;
        // the two are views of it (no copy).
        let packed = hidden.apply_op3_no_bwd(
            weight,
            &grad_logits.contiguous()?,
            &LogitsBackward {
                logit_scale: self.logit_scale,
            },
        )?;
        let n_hidden = hidden.elem_count();
        let grad_hidden = packed.narrow(0, 0, n_hidden)?.reshape(hidden.shape())?;
        let grad_weight = packed
            .narrow(0, n_hidden, weight.elem_count())?
            .reshape(weight.shape())?;
        Ok((Some(grad_hidden), Some(grad_weight)))
    }
}

/// The backward op (hidden, weight, grad_logits) → `[grad_hidden, grad_weight]`, flat.
struct LogitsBackward {
    logit_scale: f64,
}

fn logits_grads<T: Float>(
    (hidden, hidden_layout): (&CpuStorage, &Layout),
    (weight, weight_layout): (&CpuStorage, &Layout),
    (grad_logits, grad_layout): (&CpuStorage, &Layout),
    logit_scale: f64,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let hidden = cpu_view::<T>(hidden, hidden_layout).map_err(wrap)?;
    let weight = cpu_view::<T>(weight, weight_layout).map_err(wrap)?;
    let grad_logits = cpu_view::<T>(grad_logits, grad_layout).map_err(wrap)?;
    let (n_hidden, n_weight) = (hidden.as_slice().len(), weight.as_slice().len());
    let len = n_hidden
        .checked_add(n_weight)
        .ok_or_else(|| candle_core::Error::Msg("the head's gradients overflow usize".into()))?;
    let mut packed = try_filled(len, T::zero(), "head gradients").map_err(wrap)?;
    let (grad_hidden, grad_weight) = packed.split_at_mut(n_hidden);
    functional::logits_backward(
        hidden,
        weight,
        grad_logits,
        logit_scale,
        TensorViewMut::new(grad_weight, weight.shape().dims()).map_err(wrap)?,
        TensorViewMut::new(grad_hidden, hidden.shape().dims()).map_err(wrap)?,
    )
    .map_err(wrap)?;
    Ok((T::to_cpu_storage_owned(packed), Shape::from(len)))
}

impl CustomOp3 for LogitsBackward {
    fn name(&self) -> &'static str {
        "tokenloom-logits-backward"
    }

    fn cpu_fwd(
        &self,
        hidden: &CpuStorage,
        hidden_layout: &Layout,
        weight: &CpuStorage,
        weight_layout: &Layout,
        grad_logits: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        for_float!(hidden, "hidden", T => logits_grads::<T>(
            (hidden, hidden_layout),
            (weight, weight_layout),
            (grad_logits, grad_layout),
            self.logit_scale,
        ))
    }
}
