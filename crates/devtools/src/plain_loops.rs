//! The plain loops a skeptic would write instead of calling tokenloom: the baselines of
//! the `vs_plain_*` benchmark groups (issue "Never slower than the plain loop"). They are
//! not the exactness oracles (those live in the tests and sum in `f64`); they are the
//! fastest *simple* code: one memset of the gradient then an `f32` scatter-add in id
//! order, one `copy_from_slice` per looked-up row, a RoPE loop from `x` into `out` that
//! reads a token's cos/sin row once for all its heads. With `threads > 1` they split the
//! work into `threads` contiguous parts on rayon's current pool, as the peer-bench
//! anchors do; with 1 they run on the calling thread. Ids are trusted (checked by the
//! caller once, outside the timed loop); a bad id panics on the slice index.

use rayon::prelude::*;

/// `out[i, :] = table[ids[i], :]`, one `copy_from_slice` per row.
///
/// # Panics
///
/// If an id is outside the table or `out` is not `ids.len() × n_embd`.
pub fn gather<T: Copy + Send + Sync>(
    table: &[T],
    n_embd: usize,
    ids: &[u32],
    out: &mut [T],
    threads: usize,
) {
    assert_eq!(out.len(), ids.len() * n_embd, "out is not (ids, n_embd)");
    let rows = |ids: &[u32], out: &mut [T]| {
        for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(n_embd)) {
            let start = id as usize * n_embd;
            dst.copy_from_slice(&table[start..start + n_embd]);
        }
    };
    if threads <= 1 || ids.len() < 2 {
        rows(ids, out);
    } else {
        let per = ids.len().div_ceil(threads);
        out.par_chunks_mut(per * n_embd)
            .zip(ids.par_chunks(per))
            .for_each(|(out, ids)| rows(ids, out));
    }
}

/// Zeroes `buf`, split into `threads` parts.
pub fn zero(buf: &mut [f32], threads: usize) {
    if threads <= 1 {
        buf.fill(0.0);
    } else {
        let per = buf.len().div_ceil(threads).next_multiple_of(1024);
        buf.par_chunks_mut(per).for_each(|d| d.fill(0.0));
    }
}

/// `grad_weight[ids[i], :] += grad_output[i, :]` in `f32`, in id order. With threads the
/// vocabulary rows are split into contiguous ranges and every thread scans all ids for
/// its own range (no atomics: ATen's CPU scheme).
///
/// # Panics
///
/// If an id is outside `grad_weight` or the lengths do not match `n_embd`.
pub fn scatter_add(
    grad_weight: &mut [f32],
    n_embd: usize,
    grad_output: &[f32],
    ids: &[u32],
    threads: usize,
) {
    let vocab_size = grad_weight.len() / n_embd;
    let per = vocab_size.div_ceil(threads.max(1));
    let body = |part: usize, chunk: &mut [f32]| {
        let lo = part * per;
        let hi = lo + chunk.len() / n_embd;
        for (i, &id) in ids.iter().enumerate() {
            let id = id as usize;
            if (lo..hi).contains(&id) {
                let dst = &mut chunk[(id - lo) * n_embd..(id - lo + 1) * n_embd];
                let src = &grad_output[i * n_embd..(i + 1) * n_embd];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += *s;
                }
            }
        }
    };
    if threads <= 1 {
        body(0, grad_weight);
    } else {
        grad_weight
            .par_chunks_mut(per * n_embd)
            .enumerate()
            .for_each(|(part, chunk)| body(part, chunk));
    }
}

/// The dense backward: [`zero`] then [`scatter_add`].
///
/// # Panics
///
/// As [`scatter_add`].
pub fn dense_backward(
    grad_weight: &mut [f32],
    n_embd: usize,
    grad_output: &[f32],
    ids: &[u32],
    threads: usize,
) {
    zero(grad_weight, threads);
    scatter_add(grad_weight, n_embd, grad_output, ids, threads);
}

/// The shape and pair layout of a plain RoPE call: `x` and `out` are
/// `(batch, seq_len, n_heads, head_dim)`, position = the `seq_len` index, the tables
/// `(seq_len, head_dim / 2)`.
#[derive(Clone, Copy, Debug)]
pub struct RopeShape {
    /// Batch rows.
    pub batch: usize,
    /// Tokens per batch row.
    pub seq_len: usize,
    /// Heads per token.
    pub n_heads: usize,
    /// Width of a head (even).
    pub head_dim: usize,
    /// Adjacent pairs `(2i, 2i+1)` instead of half-split `(i, i + head_dim/2)`.
    pub interleaved: bool,
}

/// RoPE from `x` into `out` (both `(batch, seq_len, n_heads, head_dim)`), `x` kept:
/// per token, the cos/sin rows are sliced once and every head rotated with them.
///
/// # Panics
///
/// If a length does not match `shape`.
pub fn rope(
    out: &mut [f32],
    x: &[f32],
    cos: &[f32],
    sin: &[f32],
    shape: RopeShape,
    threads: usize,
) {
    let RopeShape {
        batch,
        seq_len,
        n_heads,
        head_dim,
        interleaved,
    } = shape;
    let half = head_dim / 2;
    assert_eq!(x.len(), batch * seq_len * n_heads * head_dim, "x shape");
    assert_eq!(out.len(), x.len(), "out shape");
    assert_eq!(cos.len(), seq_len * half, "cos shape");
    assert_eq!(sin.len(), seq_len * half, "sin shape");
    let token = n_heads * head_dim;
    let rows = |first: usize, out: &mut [f32], x: &[f32]| {
        for (r, (orow, xrow)) in out
            .chunks_exact_mut(token)
            .zip(x.chunks_exact(token))
            .enumerate()
        {
            let p = (first + r) % seq_len;
            let (c, s) = (
                &cos[p * half..(p + 1) * half],
                &sin[p * half..(p + 1) * half],
            );
            for (o, x) in orow
                .chunks_exact_mut(head_dim)
                .zip(xrow.chunks_exact(head_dim))
            {
                if interleaved {
                    for ((o, x), (c, s)) in o
                        .chunks_exact_mut(2)
                        .zip(x.chunks_exact(2))
                        .zip(c.iter().zip(s))
                    {
                        o[0] = x[0] * c - x[1] * s;
                        o[1] = x[0] * s + x[1] * c;
                    }
                } else {
                    let (x1, x2) = x.split_at(half);
                    let (o1, o2) = o.split_at_mut(half);
                    for i in 0..half {
                        o1[i] = x1[i] * c[i] - x2[i] * s[i];
                        o2[i] = x1[i] * s[i] + x2[i] * c[i];
                    }
                }
            }
        }
    };
    if threads <= 1 {
        rows(0, out, x);
    } else {
        let per = (batch * seq_len).div_ceil(threads);
        out.par_chunks_mut(per * token)
            .zip(x.par_chunks(per * token))
            .enumerate()
            .for_each(|(part, (out, x))| rows(part * per, out, x));
    }
}
