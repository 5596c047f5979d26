//! The chunk loop of [`super::linear_cross_entropy`]: checks, then per chunk of tokens
//! one GEMM into the logits buffer, the rows' losses and gradients in place, and the two
//! gradient GEMMs.

use std::sync::Mutex;

use tokenloom_tensor::{
    Accumulate, Element, Operand, TensorView, TensorViewMut, TokenId, for_each_chunk_mut,
    matmul_into, try_filled,
};

use super::options::CrossEntropyOptions;
use super::plan::{Plan, add_head_grad, check_grads};
use super::row::RowForward;
use super::{LinearCrossEntropy, LinearCrossEntropyGrads};
use crate::error::EmbeddingError;
use crate::lookup::table_dims;

/// The head the logits come from.
pub(super) enum Head<'w, T> {
    /// A dense `(vocab_size, n_embd)` matrix: forward and backward.
    Dense(TensorView<'w, T>),
    /// GGUF blocks, decoded on the fly: the forward loss only.
    #[cfg(feature = "io")]
    Quantized(&'w crate::QuantizedEmbedding),
}

impl<T: Element> Head<'_, T> {
    fn dims(&self) -> Result<(usize, usize), EmbeddingError> {
        match self {
            Head::Dense(w) => table_dims(*w),
            #[cfg(feature = "io")]
            Head::Quantized(q) => Ok((q.vocab_size(), q.n_embd())),
        }
    }

    /// `out = hc @ headᵀ`.
    pub(super) fn logits(
        &self,
        hc: TensorView<'_, T>,
        out: TensorViewMut<'_, T>,
    ) -> Result<(), EmbeddingError> {
        match self {
            Head::Dense(w) => Ok(matmul_into(
                hc,
                Operand::AsIs,
                *w,
                Operand::Transposed,
                out,
                Accumulate::Replace,
            )?),
            #[cfg(feature = "io")]
            Head::Quantized(q) => q.logits_into(hc, 1.0, out),
        }
    }
}

pub(super) fn run<T: Element, I: TokenId>(
    hidden: TensorView<'_, T>,
    head: Head<'_, T>,
    targets: TensorView<'_, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, EmbeddingError> {
    let (vocab_size, n_embd) = head.dims()?;
    let plan = Plan::new(
        hidden,
        vocab_size,
        n_embd,
        vocab_size,
        targets,
        token_weights,
        options,
    )?;
    let mut grads = grads;
    let dense_head = match &head {
        Head::Dense(w) => Some(*w),
        #[cfg(feature = "io")]
        Head::Quantized(q) if grads.is_some() => {
            return Err(q.not_trainable("linear_cross_entropy backward"));
        }
        #[cfg(feature = "io")]
        Head::Quantized(_) => None,
    };
    if let (Some(g), Some(w)) = (&grads, dense_head) {
        check_grads(g, &hidden.shape(), &w.shape())?;
    }
    let (n_tokens, chunk_tokens) = (plan.n_tokens, plan.chunk_tokens);
    let mut rows_out = try_filled(n_tokens, RowForward::default(), "linear_cross_entropy rows")?;
    let mut logits = try_filled(
        chunk_tokens.saturating_mul(vocab_size),
        T::zero(),
        "linear_cross_entropy logits chunk",
    )?;
    let h = hidden.as_slice();
    for (chunk, start) in (0..n_tokens).step_by(chunk_tokens).enumerate() {
        let rows = chunk_tokens.min(n_tokens - start);
        let hc = TensorView::new(&h[start * n_embd..(start + rows) * n_embd], &[rows, n_embd])?;
        let block = &mut logits[..rows * vocab_size];
        head.logits(hc, TensorViewMut::new(&mut *block, &[rows, vocab_size])?)?;
        let backward = grads.as_ref().map(|g| g.grad_scale);
        rows_pass(
            &plan,
            block,
            start,
            backward,
            &mut rows_out[start..start + rows],
        );
        if let (Some(g), Some(head)) = (grads.as_mut(), dense_head) {
            let dx = TensorView::new(&*block, &[rows, vocab_size])?;
            if let Some(gh) = g.hidden.as_mut() {
                let gh_rows = &mut gh.as_mut_slice()[start * n_embd..(start + rows) * n_embd];
                matmul_into(
                    dx,
                    Operand::AsIs,
                    head,
                    Operand::AsIs,
                    TensorViewMut::new(gh_rows, &[rows, n_embd])?,
                    g.accumulate,
                )?;
            }
            add_head_grad(g, chunk, dx, hc)?;
        }
    }

    plan.finish(&rows_out)
}

/// The rows of one chunk of logits `block` `(rows, vocab_size)`, tokens `start..`: each
/// row's forward results into `rows_out`, and, when `grad_scale` is given, the row
/// overwritten with its gradient `d loss / d logits` times the token's share.
pub(super) fn rows_pass<A: Element>(
    plan: &Plan<'_>,
    block: &mut [A],
    start: usize,
    grad_scale: Option<f64>,
    rows_out: &mut [RowForward],
) {
    let (vocab_size, row_len) = (plan.vocab_size, plan.row_len);
    let (math, cols) = (plan.math, &plan.columns[start..]);
    let store = grad_scale.is_some();
    let out = Mutex::new(rows_out);
    for_each_chunk_mut(block, row_len, |r, row| {
        let fwd = math.finish(&math.stats(row, cols[r], store, 0), vocab_size);
        if let Some(scale) = grad_scale {
            let g = plan.share(start + r, scale);
            math.backward(row, cols[r], &fwd, g, vocab_size, store);
        }
        if let Ok(mut out) = out.lock() {
            out[r] = fwd;
        }
    });
}
