//! The output head and its loss without the logits: the fused linear cross-entropy
//! (Liger-Kernel's `LigerFusedLinearCrossEntropyLoss`, Apple's Cut Cross-Entropy), on the
//! CPU, exact, over chunks of tokens.
//!
//! `linear_cross_entropy(hidden, head, targets, …)` computes PyTorch's
//! `F.cross_entropy(F.linear(hidden, head), targets)` — and, in the same pass, the
//! gradients of `hidden` and `head` — while holding at most one chunk of
//! `(chunk_tokens, vocab_size)` logits: for 8192 tokens and a 128,256-token vocabulary,
//! 32 MiB instead of the 4.2 GB of logits and 4.2 GB of their gradient.
//!
//! # Order of the sums (the same bits for any thread count)
//!
//! Per chunk, the logits are one GEMM (bit-identical for any thread count, see
//! [`tokenloom_tensor::matmul_into`]); each row's log-sum-exp, loss and gradient are
//! summed in `f64` in column order by one thread; the loss is the sum of the token
//! losses in token order, in `f64`; the head's gradient adds the chunks' GEMMs in chunk
//! order. Threads split rows and GEMM tiles, never a sum.
//!
//! # `f16` and `bf16`
//!
//! Half-precision hidden states and head are widened to `f32` block by block (never the
//! whole head at once); the products, the logits, their gradient and both gradient
//! GEMMs are `f32`, and each gradient is rounded to the element type once, at the end —
//! the head's after summing every chunk in one `f32` `(vocab_size, n_embd)` buffer (as
//! Liger-Kernel's `accum_dtype=torch.float32`). The loss is therefore the `f32` loss of
//! the same values, not that of logits rounded to `bf16` as `F.linear` in `bf16` gives.

mod kernel;
mod options;
mod plan;
mod row;
mod sharded;
mod widened;

use tokenloom_tensor::{
    Accumulate, DType, Element, TensorLike, TensorLikeMut, TensorViewMut, TokenId,
};

use crate::error::EmbeddingError;

pub use options::{
    CrossEntropyOptions, DEFAULT_CHUNK_BYTES, LogitScale, Reduction, default_chunk_tokens,
};
pub use row::ShardStats;
pub use sharded::{VocabCombine, linear_cross_entropy_sharded};

/// The gradient buffers [`linear_cross_entropy`] fills, and the upstream gradient.
///
/// Built by [`LinearCrossEntropyGrads::new`] and its `with_*` methods.
#[derive(Debug)]
#[non_exhaustive]
pub struct LinearCrossEntropyGrads<'g, T> {
    /// `d loss / d hidden`, the hidden states' shape.
    pub hidden: Option<TensorViewMut<'g, T>>,
    /// `d loss / d head`, `(vocab_size, n_embd)`.
    pub head: Option<TensorViewMut<'g, T>>,
    /// Overwrite the buffers, or add to them (a tied head adding to the embedding's
    /// gradient, gradient accumulation).
    pub accumulate: Accumulate,
    /// The upstream gradient of the returned `loss` (`1` for `loss.backward()`).
    pub grad_scale: f64,
}

impl<'g, T> LinearCrossEntropyGrads<'g, T> {
    /// No buffers yet, `Accumulate::Replace`, upstream gradient 1.
    pub fn new() -> Self {
        Self {
            hidden: None,
            head: None,
            accumulate: Accumulate::Replace,
            grad_scale: 1.0,
        }
    }

    /// Fills `grad_hidden` (the hidden states' shape).
    ///
    /// # Errors
    ///
    /// Tensor errors for a buffer that is not a contiguous row-major tensor.
    pub fn with_hidden(
        mut self,
        grad_hidden: impl TensorLikeMut<'g, T>,
    ) -> Result<Self, EmbeddingError> {
        self.hidden = Some(grad_hidden.try_view_mut()?);
        Ok(self)
    }

    /// Fills `grad_head`, `(vocab_size, n_embd)`.
    ///
    /// # Errors
    ///
    /// As [`with_hidden`](Self::with_hidden).
    pub fn with_head(
        mut self,
        grad_head: impl TensorLikeMut<'g, T>,
    ) -> Result<Self, EmbeddingError> {
        self.head = Some(grad_head.try_view_mut()?);
        Ok(self)
    }

    /// Adds to the buffers instead of overwriting them.
    pub fn accumulate(mut self, accumulate: Accumulate) -> Self {
        self.accumulate = accumulate;
        self
    }

    /// The upstream gradient of the returned loss.
    pub fn grad_scale(mut self, grad_scale: f64) -> Self {
        self.grad_scale = grad_scale;
        self
    }
}

impl<T> Default for LinearCrossEntropyGrads<'_, T> {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`linear_cross_entropy`] returns.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LinearCrossEntropy {
    /// The reduced loss (for [`Reduction::None`], the sum of `losses`).
    pub loss: f64,
    /// Each token's loss, for [`Reduction::None`] (`0` for ignored tokens).
    pub losses: Option<Vec<f64>>,
    /// How many tokens count (target not the `ignore_index`).
    pub n_targets: usize,
    /// The sum of their weights (`n_targets` without token weights): the mean's divisor.
    pub weight_sum: f64,
    /// Each token's log-sum-exp, when asked.
    pub lse: Option<Vec<f64>>,
    /// Each token's argmax, when asked.
    pub argmax: Option<Vec<u32>>,
    /// The tokens per chunk used.
    pub chunk_tokens: usize,
}

/// The fused output projection and cross-entropy: the loss of `targets` under the logits
/// `hidden @ headᵀ` (scaled and softcapped as `options` say), and, when `grads` is given,
/// the gradients of `hidden` and `head`, without ever holding more than one chunk of
/// logits.
///
/// The sums have one order whatever the thread count (the same bits with one thread or
/// many): each chunk's logits are one GEMM, each row's log-sum-exp, loss and gradient are
/// summed in `f64` by one thread, the loss is the sum of the token losses in token order,
/// and the head's gradient adds the chunks' GEMMs in chunk order.
///
/// # Shapes
///
/// - hidden: `(…, n_embd)`, e.g. `(batch, seq_len, n_embd)` or `(N, n_embd)`
/// - head: `(vocab_size, n_embd)`, the tied embedding table or a separate one
/// - targets: `(…)`, one id per token (`u32`, `i32` or `i64`), or the `ignore_index`
/// - token_weights: `N` values, or `None` for weight 1
///
/// `f32` and `f64` compute in their own type. `f16` and `bf16` compute in `f32`: the head
/// is widened block by block, the logits and their gradient are `f32`, and each gradient
/// is rounded once at the end (the head's after summing every chunk in an `f32`
/// `(vocab_size, n_embd)` buffer, as Liger-Kernel's `accum_dtype=torch.float32`).
///
/// # Errors
///
/// [`EmbeddingError::WeightShape`], [`EmbeddingError::GradShape`] (hidden states,
/// targets, weights or gradient buffers of the wrong shape),
/// [`EmbeddingError::TargetOutOfRange`] naming the token,
/// [`EmbeddingError::BadTokenWeight`], [`EmbeddingError::NoTargets`] for a mean over no
/// tokens, [`EmbeddingError::InvalidOption`], [`EmbeddingError::NonFiniteLoss`] naming the
/// first token whose loss is not finite, and allocation errors.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::functional::{self, CrossEntropyOptions, LinearCrossEntropyGrads};
///
/// // Two tokens, n_embd = 2, a tied (vocab_size = 3, n_embd = 2) table.
/// let table = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let hidden = [2.0f64, 0.0, 0.0, 1.0];
/// let targets = [0u32, 2];
/// let (mut grad_hidden, mut grad_head) = ([0.0f64; 4], [0.0f64; 6]);
/// let grads = LinearCrossEntropyGrads::new()
///     .with_hidden((&mut grad_hidden[..], [2, 2]))?
///     .with_head((&mut grad_head[..], [3, 2]))?;
/// let out = functional::linear_cross_entropy(
///     (&hidden[..], [2, 2]),
///     (&table[..], [3, 2]),
///     (&targets[..], [2]),
///     None,
///     &CrossEntropyOptions::default(),
///     Some(grads),
/// )?;
/// // Token 0: logits (2, 0, 2), target 0; token 1: logits (0, 1, 1), target 2.
/// let lse0 = (2f64.exp() * 2.0 + 1.0).ln();
/// let lse1 = (1.0 + 2.0 * 1f64.exp()).ln();
/// assert!((out.loss - ((lse0 - 2.0) + (lse1 - 1.0)) / 2.0).abs() < 1e-12);
/// assert!(grad_head.iter().any(|&g| g != 0.0));
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn linear_cross_entropy<'h, 'w, 't, T, I>(
    hidden: impl TensorLike<'h, T>,
    head: impl TensorLike<'w, T>,
    targets: impl TensorLike<'t, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, EmbeddingError>
where
    T: Element,
    I: TokenId,
{
    let (hidden, head, targets) = (hidden.try_view()?, head.try_view()?, targets.try_view()?);
    if matches!(T::DTYPE, DType::F16 | DType::BF16) {
        return widened::run(hidden, head, targets, token_weights, options, grads);
    }
    kernel::run(
        hidden,
        kernel::Head::Dense(head),
        targets,
        token_weights,
        options,
        grads,
    )
}

/// The forward loss of [`linear_cross_entropy`] against a quantized head — a GGUF
/// model's `output.weight`, or its tied `token_embd.weight` — decoded block by block
/// into each chunk's logits, never into a dense table: evaluation loss and perplexity
/// ([`LinearCrossEntropy::perplexity`]) of a quantized model.
///
/// # Errors
///
/// As [`linear_cross_entropy`].
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::QuantizedEmbedding;
/// use tokenloom_embedding::functional::{self, CrossEntropyOptions};
/// use tokenloom_io::{GgmlType, QuantizedMatrix, quantize_q8_0};
///
/// // A (vocab_size = 4, n_embd = 32) Q8_0 head.
/// let values: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
/// let head = QuantizedEmbedding::new(QuantizedMatrix::from_bytes(
///     GgmlType::Q8_0, quantize_q8_0(&values), 4, 32)?)?;
/// let hidden = vec![0.1f32; 2 * 32];
/// let out = functional::linear_cross_entropy_quantized(
///     (&hidden[..], [2, 32]), &head, (&[1u32, 3][..], [2]), None,
///     &CrossEntropyOptions::default())?;
/// assert!(out.loss > 0.0 && out.perplexity() > 1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[cfg(feature = "io")]
pub fn linear_cross_entropy_quantized<'h, 't, T, I>(
    hidden: impl TensorLike<'h, T>,
    head: &crate::QuantizedEmbedding,
    targets: impl TensorLike<'t, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
) -> Result<LinearCrossEntropy, EmbeddingError>
where
    T: Element,
    I: TokenId,
{
    kernel::run(
        hidden.try_view()?,
        kernel::Head::Quantized(head),
        targets.try_view()?,
        token_weights,
        options,
        None,
    )
}

impl LinearCrossEntropy {
    /// `exp(loss)`: the perplexity, for a mean loss.
    pub fn perplexity(&self) -> f64 {
        self.loss.exp()
    }
}
