//! The fused output head and cross-entropy as a candle op: the loss without the
//! `(tokens, vocab_size)` logits, by `functional::linear_cross_entropy` in chunks.
//! Its gradients are computed in the same pass (as Liger-Kernel's fused loss), kept by
//! the op, and scaled by the loss's upstream gradient in the backward.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Device, Layout, Shape, Tensor};
use tokenloom_embedding::EmbeddingError;
use tokenloom_embedding::functional::{
    self, CrossEntropyOptions, LinearCrossEntropyGrads, Reduction,
};
use tokenloom_tensor::adapters::candle::cpu_view;
use tokenloom_tensor::{TensorViewMut, try_filled};

use super::{Float, for_float, for_ids, wrap};

/// The cross-entropy of the logits `hidden @ headᵀ` (transformed as `options` says:
/// logit scale, softcap, label smoothing, z-loss, `ignore_index`) against `targets`,
/// reduced to a scalar (`Reduction::Mean` or `Reduction::Sum`), without materialising
/// the logits; a candle op with a backward for `hidden` `(…, n_embd)` and `head`
/// `(vocab_size, n_embd)` (the embedding table for a tied head). The targets are `(…)`
/// ids (`u32`, `i64` or `i32`). The loss has the hidden states' dtype; it is computed
/// in `f64` from `f32` (or wider) products.
///
/// When `hidden` or `head` is tracked by candle's autograd, the gradients are computed
/// in the same pass and kept until the backward; otherwise only the loss is.
///
/// # Errors
///
/// A candle error wrapping [`EmbeddingError`]: a target outside the vocabulary (naming
/// it), no target that counts with a mean, `Reduction::None` (per-token losses have no
/// scalar to back-propagate: call
/// [`functional::linear_cross_entropy`](tokenloom_embedding::functional::linear_cross_entropy)),
/// and shape or dtype errors.
pub fn linear_cross_entropy(
    hidden: &Tensor,
    head: &Tensor,
    targets: &Tensor,
    options: &CrossEntropyOptions,
) -> candle_core::Result<Tensor> {
    if options.reduction == Reduction::None {
        return Err(wrap(EmbeddingError::InvalidOption {
            name: "reduction",
            value: 0.0,
            requirement: "must be Mean or Sum in the candle op (a scalar loss)",
        }));
    }
    let want_grads = hidden.track_op() || head.track_op();
    hidden.contiguous()?.apply_op3(
        &head.contiguous()?,
        &targets.contiguous()?,
        FusedLoss {
            options: options.clone(),
            want_grads,
            grads: Mutex::new(None),
        },
    )
}

/// The op (hidden, head, targets) → the scalar loss; the gradients of its forward.
struct FusedLoss {
    options: CrossEntropyOptions,
    want_grads: bool,
    /// `(d loss / d hidden, d loss / d head)` for an upstream gradient of 1.
    grads: Mutex<Option<(Tensor, Tensor)>>,
}

impl FusedLoss {
    fn run<T: Float>(
        &self,
        (hidden, hidden_layout): (&CpuStorage, &Layout),
        (head, head_layout): (&CpuStorage, &Layout),
        (targets, targets_layout): (&CpuStorage, &Layout),
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let hidden = cpu_view::<T>(hidden, hidden_layout).map_err(wrap)?;
        let head = cpu_view::<T>(head, head_layout).map_err(wrap)?;
        let zeros = |len: usize| try_filled(len, T::zero(), "linear_cross_entropy gradient");
        let (mut grad_hidden, mut grad_head) = if self.want_grads {
            (
                zeros(hidden.as_slice().len()).map_err(wrap)?,
                zeros(head.as_slice().len()).map_err(wrap)?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let loss = for_ids!(targets, "targets", I => {
            let targets = cpu_view::<I>(targets, targets_layout).map_err(wrap)?;
            let grads = if self.want_grads {
                let mut g = LinearCrossEntropyGrads::new();
                g.hidden = Some(TensorViewMut::new(&mut grad_hidden, hidden.shape().dims()).map_err(wrap)?);
                g.head = Some(TensorViewMut::new(&mut grad_head, head.shape().dims()).map_err(wrap)?);
                Some(g)
            } else {
                None
            };
            functional::linear_cross_entropy(hidden, head, targets, None, &self.options, grads)
                .map_err(wrap)?
        });
        if self.want_grads {
            let cpu = &Device::Cpu;
            let grads = (
                Tensor::from_vec(grad_hidden, hidden.shape().dims(), cpu)?,
                Tensor::from_vec(grad_head, head.shape().dims(), cpu)?,
            );
            *self
                .grads
                .lock()
                .map_err(|_| candle_core::Error::Msg("a poisoned gradient slot".into()))? =
                Some(grads);
        }
        let loss = T::from_f64_lossy(loss.loss);
        Ok((T::to_cpu_storage_owned(vec![loss]), Shape::from(())))
    }
}

impl CustomOp3 for FusedLoss {
    fn name(&self) -> &'static str {
        "tokenloom-linear-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        hidden: &CpuStorage,
        hidden_layout: &Layout,
        head: &CpuStorage,
        head_layout: &Layout,
        targets: &CpuStorage,
        targets_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let args = (
            (hidden, hidden_layout),
            (head, head_layout),
            (targets, targets_layout),
        );
        for_float!(hidden, "hidden", T => self.run::<T>(args.0, args.1, args.2))
    }

    fn bwd(
        &self,
        _hidden: &Tensor,
        _head: &Tensor,
        _targets: &Tensor,
        _loss: &Tensor,
        grad_loss: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grads = self
            .grads
            .lock()
            .map_err(|_| candle_core::Error::Msg("a poisoned gradient slot".into()))?
            .clone();
        let Some((grad_hidden, grad_head)) = grads else {
            return Err(candle_core::Error::Msg(
                "tokenloom-linear-cross-entropy: no gradients were kept (neither input was tracked at the forward)".into(),
            ));
        };
        Ok((
            Some(grad_hidden.broadcast_mul(grad_loss)?),
            Some(grad_head.broadcast_mul(grad_loss)?),
            None,
        ))
    }
}
