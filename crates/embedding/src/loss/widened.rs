//! [`super::linear_cross_entropy`] on `f16` and `bf16` hidden states and head: the
//! products, the logits and both gradients are computed and accumulated in `f32`, and
//! each gradient is rounded to the element type once, at the end.
//!
//! The head is widened block by block (`WIDEN_BLOCK_BYTES` of `f32` at a time), never
//! as a whole; the head's gradient is accumulated over the chunks in one `f32`
//! `(vocab_size, n_embd)` buffer — as Liger-Kernel's `accum_dtype=torch.float32` does —
//! so that it is rounded once instead of once per chunk.

use tokenloom_tensor::{
    Accumulate, Element, Operand, TensorView, TensorViewMut, TokenId, for_each_chunk_mut,
    matmul_into, try_filled,
};

use super::kernel::rows_pass;
use super::options::CrossEntropyOptions;
use super::plan::{Plan, check_grads};
use super::row::RowForward;
use super::{LinearCrossEntropy, LinearCrossEntropyGrads};
use crate::error::EmbeddingError;
use crate::lookup::table_dims;

/// The `f32` bytes of one widened block of head rows: large enough that the GEMM's
/// packing of the chunk's hidden states is paid over many columns, small enough that
/// the widened copy stays a small part of the loss's extra memory. Measured on
/// `(2048, 2048) x (32000, 2048)` bf16, 2 threads: 4 MiB 7.3 s, 16 MiB 5.3-5.6 s,
/// 64 MiB 6.0-6.3 s (`docs/benchmarks/loss-head.md`).
const WIDEN_BLOCK_BYTES: usize = 16 << 20;

/// `dst[i] = src[i]` widened to `f32` (exact for `f16` and `bf16`), split over threads.
fn widen<T: Element>(src: &[T], dst: &mut [f32], row_len: usize) {
    for_each_chunk_mut(dst, row_len.max(1), |r, out| {
        let from = &src[r * row_len..r * row_len + out.len()];
        for (o, &x) in out.iter_mut().zip(from) {
            *o = x.as_f32();
        }
    });
}

/// `out = acc` or `out = out + acc`, rounded once to `T`.
fn store<T: Element>(acc: &[f32], out: &mut [T], accumulate: Accumulate, row_len: usize) {
    for_each_chunk_mut(out, row_len.max(1), |r, out| {
        let from = &acc[r * row_len..r * row_len + out.len()];
        for (o, &a) in out.iter_mut().zip(from) {
            *o = T::from_f32_lossy(match accumulate {
                Accumulate::Add => o.as_f32() + a,
                _ => a,
            });
        }
    });
}

/// The scratch buffers of one call, all `f32`.
struct Scratch {
    /// The chunk's hidden states `(rows, n_embd)`.
    hidden: Vec<f32>,
    /// The chunk's logits, then their gradient, `(rows, vocab_size)`.
    logits: Vec<f32>,
    /// One block of head rows `(block_rows, n_embd)`.
    head_block: Vec<f32>,
    /// One block of logits `(rows, block_rows)`, contiguous for the GEMM.
    logits_block: Vec<f32>,
    /// The chunk's hidden-state gradient `(rows, n_embd)`, when asked.
    grad_hidden: Vec<f32>,
    /// The head's gradient `(vocab_size, n_embd)`, summed over the chunks, when asked.
    grad_head: Vec<f32>,
}

pub(super) fn run<T: Element, I: TokenId>(
    hidden: TensorView<'_, T>,
    head: TensorView<'_, T>,
    targets: TensorView<'_, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
) -> Result<LinearCrossEntropy, EmbeddingError> {
    run_in_blocks(
        hidden,
        head,
        targets,
        token_weights,
        options,
        grads,
        WIDEN_BLOCK_BYTES,
    )
}

/// [`run`], widening `block_bytes` of head rows at a time.
fn run_in_blocks<T: Element, I: TokenId>(
    hidden: TensorView<'_, T>,
    head: TensorView<'_, T>,
    targets: TensorView<'_, I>,
    token_weights: Option<&[f64]>,
    options: &CrossEntropyOptions,
    grads: Option<LinearCrossEntropyGrads<'_, T>>,
    block_bytes: usize,
) -> Result<LinearCrossEntropy, EmbeddingError> {
    let (vocab_size, n_embd) = table_dims(head)?;
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
    if let Some(g) = &grads {
        check_grads(g, &hidden.shape(), &head.shape())?;
    }
    let (n_tokens, chunk_tokens) = (plan.n_tokens, plan.chunk_tokens);
    let block_rows = (block_bytes / (n_embd.max(1) * 4)).clamp(1, vocab_size.max(1));
    let want_hidden = grads.as_ref().is_some_and(|g| g.hidden.is_some());
    let want_head = grads.as_ref().is_some_and(|g| g.head.is_some());
    let buffer = |len: usize, what| try_filled(len, 0.0f32, what);
    let mut s = Scratch {
        hidden: buffer(
            chunk_tokens.saturating_mul(n_embd),
            "linear_cross_entropy hidden",
        )?,
        logits: buffer(
            chunk_tokens.saturating_mul(vocab_size),
            "linear_cross_entropy logits",
        )?,
        head_block: buffer(
            block_rows.saturating_mul(n_embd),
            "linear_cross_entropy head",
        )?,
        logits_block: buffer(
            chunk_tokens.saturating_mul(block_rows),
            "linear_cross_entropy",
        )?,
        grad_hidden: buffer(
            if want_hidden {
                chunk_tokens * n_embd
            } else {
                0
            },
            "linear_cross_entropy grad_hidden",
        )?,
        grad_head: buffer(
            if want_head {
                vocab_size.saturating_mul(n_embd)
            } else {
                0
            },
            "linear_cross_entropy grad_head",
        )?,
    };
    let mut rows_out = try_filled(n_tokens, RowForward::default(), "linear_cross_entropy rows")?;
    let (h, w) = (hidden.as_slice(), head.as_slice());
    for start in (0..n_tokens).step_by(chunk_tokens) {
        let rows = chunk_tokens.min(n_tokens - start);
        let hc = &mut s.hidden[..rows * n_embd];
        widen(&h[start * n_embd..(start + rows) * n_embd], hc, n_embd);
        let hc = TensorView::new(&*hc, &[rows, n_embd])?;
        let logits = &mut s.logits[..rows * vocab_size];
        for v0 in (0..vocab_size).step_by(block_rows) {
            let vb = block_rows.min(vocab_size - v0);
            let wb = &mut s.head_block[..vb * n_embd];
            widen(&w[v0 * n_embd..(v0 + vb) * n_embd], wb, n_embd);
            let lb = &mut s.logits_block[..rows * vb];
            matmul_into(
                hc,
                Operand::AsIs,
                TensorView::new(&*wb, &[vb, n_embd])?,
                Operand::Transposed,
                TensorViewMut::new(&mut *lb, &[rows, vb])?,
                Accumulate::Replace,
            )?;
            for (r, from) in lb.chunks_exact(vb).enumerate() {
                logits[r * vocab_size + v0..r * vocab_size + v0 + vb].copy_from_slice(from);
            }
        }
        let backward = grads.as_ref().map(|g| g.grad_scale);
        rows_pass(
            &plan,
            logits,
            start,
            backward,
            &mut rows_out[start..start + rows],
        );
        if backward.is_none() || !(want_hidden || want_head) {
            continue;
        }
        for v0 in (0..vocab_size).step_by(block_rows) {
            let vb = block_rows.min(vocab_size - v0);
            let wb = &mut s.head_block[..vb * n_embd];
            widen(&w[v0 * n_embd..(v0 + vb) * n_embd], wb, n_embd);
            let lb = &mut s.logits_block[..rows * vb];
            for (r, to) in lb.chunks_exact_mut(vb).enumerate() {
                to.copy_from_slice(&logits[r * vocab_size + v0..r * vocab_size + v0 + vb]);
            }
            let dx = TensorView::new(&*lb, &[rows, vb])?;
            if want_hidden {
                matmul_into(
                    dx,
                    Operand::AsIs,
                    TensorView::new(&*wb, &[vb, n_embd])?,
                    Operand::AsIs,
                    TensorViewMut::new(&mut s.grad_hidden[..rows * n_embd], &[rows, n_embd])?,
                    if v0 == 0 {
                        Accumulate::Replace
                    } else {
                        Accumulate::Add
                    },
                )?;
            }
            if want_head {
                matmul_into(
                    dx,
                    Operand::Transposed,
                    hc,
                    Operand::AsIs,
                    TensorViewMut::new(
                        &mut s.grad_head[v0 * n_embd..(v0 + vb) * n_embd],
                        &[vb, n_embd],
                    )?,
                    Accumulate::Add,
                )?;
            }
        }
        if let Some(gh) = grads.as_mut().and_then(|g| {
            let mode = g.accumulate;
            g.hidden.as_mut().map(|b| (b, mode))
        }) {
            let (buffer, mode) = gh;
            let out = &mut buffer.as_mut_slice()[start * n_embd..(start + rows) * n_embd];
            store(&s.grad_hidden[..rows * n_embd], out, mode, n_embd);
        }
    }
    if let Some(g) = grads.as_mut() {
        let mode = g.accumulate;
        if let Some(gw) = g.head.as_mut() {
            store(&s.grad_head, gw.as_mut_slice(), mode, n_embd);
        }
    }
    plan.finish(&rows_out)
}

#[cfg(test)]
mod tests {
    use tokenloom_tensor::bf16;

    use super::*;

    /// Blocks of 1, 5 and 37 head rows (a partial last block included) and chunks of 1
    /// and 4 tokens give the results of one block, within f32 summation order.
    #[test]
    fn blocks_of_head_rows_change_nothing_but_the_order_of_sums() {
        let (n, e, v) = (6, 8, 37);
        let value = |i: usize| bf16::from_f64(((i * 7919) % 113) as f64 / 40.0 - 1.4);
        let hidden: Vec<bf16> = (0..n * e).map(value).collect();
        let head: Vec<bf16> = (0..v * e).map(|i| value(i + 11)).collect();
        let targets = [3u32, 36, 0, 17, 36, 5];
        let solve = |block_rows: usize, chunk: usize| {
            let (mut gh, mut gw) = (vec![bf16::ZERO; n * e], vec![bf16::ZERO; v * e]);
            let options = CrossEntropyOptions {
                chunk_tokens: Some(chunk),
                label_smoothing: 0.1,
                ..CrossEntropyOptions::default()
            };
            let grads = LinearCrossEntropyGrads::new()
                .with_hidden((&mut gh[..], [n, e]))
                .and_then(|g| g.with_head((&mut gw[..], [v, e])))
                .map(Some);
            let out = grads.and_then(|grads| {
                run_in_blocks(
                    TensorView::new(&hidden, &[n, e])?,
                    TensorView::new(&head, &[v, e])?,
                    TensorView::new(&targets, &[n])?,
                    None,
                    &options,
                    grads,
                    block_rows * e * 4,
                )
            });
            (out.map(|o| o.loss), gh, gw)
        };
        let (loss, gh, gw) = solve(v, 6);
        let loss = loss.expect("one block");
        for (block_rows, chunk) in [(1, 1), (5, 4), (5, 1), (37, 4), (64, 6)] {
            let (l, h, w) = solve(block_rows, chunk);
            let l = l.expect("blocks");
            assert!(
                (l - loss).abs() < 1e-6,
                "{block_rows} {chunk}: {l} vs {loss}"
            );
            for (a, b) in h.iter().zip(&gh).chain(w.iter().zip(&gw)) {
                // One bf16 rounding apart at most.
                assert!((a.to_f64() - b.to_f64()).abs() <= b.to_f64().abs() / 128.0 + 1e-6);
            }
        }
        assert!(gw.iter().any(|g| g.to_f64() != 0.0) && gh.iter().any(|g| g.to_f64() != 0.0));
    }
}
