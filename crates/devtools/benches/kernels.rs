//! Throughput of the memory-bound kernels against a memory-copy roofline measured in the
//! same run, at decoder-sized shapes. Every group holds a `roofline_copy` (a
//! `copy_from_slice` of the bytes the operation must move), the obviously-correct
//! `naive` kernel (also the test oracle's logic), and tokenloom's kernels.
//!
//! Run: `cargo bench -p tokenloom-devtools --bench kernels`, then `cargo run --release -p tokenloom-devtools --example bench_report`
//! for the table with ratios (see docs/benchmarks/criterion-2026-11-28.md).

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use tokenloom::embedding::{Embedding, QuantizedEmbedding};
use tokenloom::io::{GgmlType, QuantizedMatrix, quantize_q8_0};
use tokenloom::positions::{
    Direction, QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions,
};
use tokenloom::tensor::{
    Accumulate, Element, Operand, Tensor, TensorViewMut, bf16, f16, for_each_chunk_mut, matmul_into,
};
use tokenloom_devtools::gemm_peer;

/// A cheap, deterministic table: the values do not matter to a memory-bound kernel.
fn table<T: Element>(vocab_size: usize, n_embd: usize) -> Embedding<T> {
    let data: Vec<T> = (0..vocab_size * n_embd)
        .map(|i| T::from_f32_lossy((i % 251) as f32 / 128.0 - 1.0))
        .collect();
    Embedding::from_weight(Tensor::from_vec(data, &[vocab_size, n_embd]).unwrap()).unwrap()
}

fn make_ids(batch: usize, seq_len: usize, vocab_size: usize) -> Tensor<u32> {
    let n = batch * seq_len;
    let ids = (0..n as u64)
        .map(|i| ((i * 2_654_435_761) % vocab_size as u64) as u32)
        .collect();
    Tensor::from_vec(ids, &[batch, seq_len]).unwrap()
}

fn group<'a>(c: &'a mut Criterion, name: &str, bytes: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(bytes as u64));
    g
}

/// The roofline: copying `bytes` between preallocated buffers, on one thread
/// (`copy_from_slice`) and split across the thread pool like the kernels are (1 MiB
/// chunks). The report compares every kernel with the faster of the two.
fn roofline(g: &mut BenchmarkGroup<'_, WallTime>, bytes: usize) {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    g.bench_function("roofline_copy_1thread", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&src)))
    });
    let chunk = 1 << 20;
    g.bench_function("roofline_copy_threads", |b| {
        b.iter(|| {
            for_each_chunk_mut(&mut dst, chunk, |i, d| {
                d.copy_from_slice(&black_box(&src)[i * chunk..i * chunk + d.len()])
            });
        })
    });
}

/// Element-by-element lookup: the naive oracle.
fn naive_lookup<T: Copy>(table: &[T], n_embd: usize, ids: &[u32], out: &mut [T]) {
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..n_embd {
            out[i * n_embd + j] = table[id as usize * n_embd + j];
        }
    }
}

fn lookup_group<T: Element>(
    c: &mut Criterion,
    name: &str,
    batch: usize,
    seq_len: usize,
    vocab_size: usize,
    n_embd: usize,
    all: bool,
) {
    let t = table::<T>(vocab_size, n_embd);
    let ids = make_ids(batch, seq_len, vocab_size);
    let out_len = batch * seq_len * n_embd;
    let bytes = out_len * std::mem::size_of::<T>();
    let mut g = group(c, name, bytes);
    roofline(&mut g, bytes);
    let mut out = vec![T::zero(); out_len];
    if all {
        g.bench_function("naive", |b| {
            b.iter(|| naive_lookup(t.weight().as_slice(), n_embd, ids.as_slice(), &mut out))
        });
    }
    g.bench_function("forward_into", |b| {
        b.iter(|| {
            t.forward_into(
                &ids,
                TensorViewMut::new(&mut out, &[batch, seq_len, n_embd]).unwrap(),
            )
            .unwrap();
        })
    });
    if all {
        g.bench_function("forward_alloc", |b| {
            b.iter(|| black_box(t.forward(&ids).unwrap()))
        });
        let mut buffer = Some(t.forward(&ids).unwrap());
        g.bench_function("forward_reusing", |b| {
            b.iter(|| {
                let out = t.forward_reusing(&ids, buffer.take().unwrap()).unwrap();
                buffer = Some(black_box(out));
            })
        });
    }
    g.finish();
}

fn lookups(c: &mut Criterion) {
    lookup_group::<f32>(
        c,
        "lookup_8x512_of_32000x4096_f32",
        8,
        512,
        32000,
        4096,
        true,
    );
    lookup_group::<f32>(
        c,
        "lookup_4x2048_of_128256x4096_f32",
        4,
        2048,
        128_256,
        4096,
        true,
    );
    lookup_group::<f64>(
        c,
        "lookup_8x512_of_32000x4096_f64",
        8,
        512,
        32000,
        4096,
        false,
    );
    lookup_group::<bf16>(
        c,
        "lookup_8x512_of_32000x4096_bf16",
        8,
        512,
        32000,
        4096,
        false,
    );

    // Decode: one token.
    let t = table::<f32>(32000, 4096);
    let one = make_ids(1, 1, 32000);
    let mut g = group(c, "decode_1x1_of_32000x4096_f32", 4096 * 4);
    roofline(&mut g, 4096 * 4);
    let mut out = vec![0.0f32; 4096];
    g.bench_function("naive", |b| {
        b.iter(|| naive_lookup(t.weight().as_slice(), 4096, one.as_slice(), &mut out))
    });
    g.bench_function("forward_into", |b| {
        b.iter(|| {
            t.forward_into(&one, TensorViewMut::new(&mut out, &[1, 1, 4096]).unwrap())
                .unwrap()
        })
    });
    g.bench_function("forward_alloc", |b| {
        b.iter(|| black_box(t.forward(&one).unwrap()))
    });
    g.finish();
}

/// Zero the gradient, then add each token's row: the naive (PyTorch-like) oracle.
fn naive_dense_backward(ids: &[u32], grad_output: &[f32], n_embd: usize, grad: &mut [f32]) {
    grad.fill(0.0);
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..n_embd {
            grad[id as usize * n_embd + j] += grad_output[i * n_embd + j];
        }
    }
}

/// Each touched row's gradient, summed in position order, in a map keyed by id: the
/// naive oracle of the row-sparse gradient.
fn naive_sparse_backward(
    ids: &[u32],
    grad_output: &[f32],
    n_embd: usize,
) -> std::collections::BTreeMap<u32, Vec<f32>> {
    let mut rows = std::collections::BTreeMap::new();
    for (i, &id) in ids.iter().enumerate() {
        let row = rows.entry(id).or_insert_with(|| vec![0.0f32; n_embd]);
        for (r, g) in row
            .iter_mut()
            .zip(&grad_output[i * n_embd..(i + 1) * n_embd])
        {
            *r += g;
        }
    }
    rows
}

fn backward(c: &mut Criterion) {
    let (vocab_size, n_embd) = (32000, 4096);
    let t = table::<f32>(vocab_size, n_embd);
    let ids = make_ids(1, 4096, vocab_size);
    let grad_output = table::<f32>(4096, n_embd)
        .into_weight()
        .reshape(&[1, 4096, n_embd])
        .unwrap();
    let bytes = vocab_size * n_embd * 4;
    let mut g = group(c, "dense_backward_4096_ids_of_32000x4096_f32", bytes);
    roofline(&mut g, bytes);
    let mut grad = vec![0.0f32; vocab_size * n_embd];
    g.bench_function("naive", |b| {
        b.iter(|| naive_dense_backward(ids.as_slice(), grad_output.as_slice(), n_embd, &mut grad))
    });
    g.bench_function("backward_dense_into", |b| {
        b.iter(|| {
            let view = TensorViewMut::new(&mut grad, &[vocab_size, n_embd]).unwrap();
            t.backward_dense_into(&ids, grad_output.view(), view, Accumulate::Replace)
                .unwrap();
        })
    });
    g.finish();

    // Sparse: proportional to the touched rows, not to vocab_size.
    for (n_ids, vocab_size) in [(64, 32000), (4096, 32000), (4096, 128_256)] {
        let t = table::<f32>(vocab_size, n_embd);
        let ids = make_ids(1, n_ids, vocab_size);
        let grad_output = table::<f32>(n_ids, n_embd)
            .into_weight()
            .reshape(&[1, n_ids, n_embd])
            .unwrap();
        let mut g = group(
            c,
            &format!("sparse_backward_{n_ids}_ids_of_{vocab_size}x4096_f32"),
            n_ids * n_embd * 4,
        );
        roofline(&mut g, n_ids * n_embd * 4);
        g.bench_function("naive", |b| {
            b.iter(|| {
                black_box(naive_sparse_backward(
                    ids.as_slice(),
                    grad_output.as_slice(),
                    n_embd,
                ))
            })
        });
        g.bench_function("backward_sparse", |b| {
            b.iter(|| black_box(t.backward_sparse(&ids, grad_output.view()).unwrap()))
        });
        let mut grad = t.backward_sparse(&ids, grad_output.view()).unwrap();
        g.bench_function("backward_sparse_into", |b| {
            b.iter(|| {
                t.backward_sparse_into(&ids, grad_output.view(), &mut grad)
                    .unwrap()
            })
        });
        g.finish();
    }
}

/// Per-element RoPE from the cache, the naive oracle (half-split pairs, (b, s, h, d)),
/// widening each element to f32 and rounding it back.
fn naive_rope<T: Element>(
    x: &mut [T],
    cache: &RopeCache<f32>,
    seq_len: usize,
    n_heads: usize,
    head_dim: usize,
) {
    let half = head_dim / 2;
    for s in 0..seq_len {
        let (cos, sin) = (cache.cos_row(s).unwrap(), cache.sin_row(s).unwrap());
        for h in 0..n_heads {
            let base = (s * n_heads + h) * head_dim;
            for i in 0..half {
                let (a, b) = (x[base + i].as_f32(), x[base + i + half].as_f32());
                x[base + i] = T::from_f32_lossy(a * cos[i] - b * sin[i]);
                x[base + i + half] = T::from_f32_lossy(b * cos[i] + a * sin[i]);
            }
        }
    }
}

/// The naive oracle, then `apply_in_place` for both pair layouts and both tensor
/// layouts, on `x`.
fn rope_kernels<T: Element>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    x: &mut [T],
    caches: [(&str, &RopeCache<f32>); 2],
    (seq_len, n_heads, head_dim): (usize, usize, usize),
) {
    let half_split = caches[0].1;
    g.bench_function("naive", |b| {
        b.iter(|| naive_rope(x, half_split, seq_len, n_heads, head_dim))
    });
    for (name, cache) in caches {
        for (layout_name, layout, dims) in [
            (
                "bshd",
                QkLayout::BatchSeqHeads,
                [1, seq_len, n_heads, head_dim],
            ),
            (
                "bhsd",
                QkLayout::BatchHeadsSeq,
                [1, n_heads, seq_len, head_dim],
            ),
        ] {
            g.bench_function(format!("apply_in_place_{name}_{layout_name}"), |b| {
                b.iter(|| {
                    cache
                        .rotate_in_place(
                            TensorViewMut::new(x, &dims).unwrap(),
                            layout,
                            TokenPositions::Offset(0),
                            Direction::Forward,
                        )
                        .unwrap()
                })
            });
        }
    }
}

fn rope(c: &mut Criterion) {
    let shape @ (seq_len, n_heads, head_dim) = (2048, 32, 128);
    let n = seq_len * n_heads * head_dim;
    let half_split = RopeCache::<f32>::new(
        &RopeConfig::new(head_dim, 10000.0, RopeLayout::HalfSplit),
        seq_len,
    )
    .unwrap();
    let interleaved = RopeCache::<f32>::new(
        &RopeConfig::new(head_dim, 10000.0, RopeLayout::Interleaved),
        seq_len,
    )
    .unwrap();
    // The first cache is the naive kernel's (half-split pairs).
    let caches = [("half_split", &half_split), ("interleaved", &interleaved)];
    let values = |i: usize| (i % 97) as f32 / 48.0 - 1.0;

    let mut g = group(c, "rope_1x2048x32x128_f32", n * 4);
    roofline(&mut g, n * 4);
    let mut x: Vec<f32> = (0..n).map(values).collect();
    rope_kernels(&mut g, &mut x, caches, shape);
    g.finish();

    let mut g = group(c, "rope_1x2048x32x128_bf16", n * 2);
    roofline(&mut g, n * 2);
    let mut x: Vec<bf16> = (0..n).map(|i| bf16::from_f32(values(i))).collect();
    rope_kernels(&mut g, &mut x, caches, shape);
    g.finish();

    let mut g = group(c, "rope_1x2048x32x128_f16", n * 2);
    roofline(&mut g, n * 2);
    let mut x: Vec<f16> = (0..n).map(|i| f16::from_f32(values(i))).collect();
    rope_kernels(&mut g, &mut x, caches, shape);
    g.finish();
}

/// The tied output projection `logits = h @ Eᵀ` through tokenloom's `matmul_into` and
/// through the peers called directly (matrixmultiply, the `gemm` crate), at a prefill
/// shape and at decode shapes (one token of one or of eight sequences).
fn tied_projection(c: &mut Criterion) {
    for (m, k, n) in [(512, 2048, 32000), (1, 2048, 32000), (8, 2048, 32000)] {
        let h = table::<f32>(m, k).into_weight();
        let e = table::<f32>(n, k).into_weight();
        let mut out = vec![0.0f32; m * n];
        let name = format!("tied_projection_{m}x{k}x{n}_f32");
        let mut g = if m <= 8 {
            // Decode steps: memory-bound (the table is read once), so against the roofline.
            let mut g = group(c, &name, n * k * 4);
            roofline(&mut g, n * k * 4);
            g
        } else {
            let mut g = c.benchmark_group(name);
            g.sample_size(10)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(5));
            g.throughput(Throughput::Elements((2 * m * k * n) as u64)); // FLOPs, as elements
            g
        };
        g.bench_function("tokenloom_matmul_into", |b| {
            b.iter(|| {
                matmul_into(
                    h.view(),
                    Operand::AsIs,
                    e.view(),
                    Operand::Transposed,
                    TensorViewMut::new(&mut out, &[m, n]).unwrap(),
                    Accumulate::Replace,
                )
                .unwrap()
            })
        });
        g.bench_function("matrixmultiply_sgemm", |b| {
            b.iter(|| {
                gemm_peer::matrixmultiply_abt(h.as_slice(), e.as_slice(), &mut out, (m, k, n))
            })
        });
        g.bench_function("gemm_crate", |b| {
            b.iter(|| gemm_peer::gemm_abt(h.as_slice(), e.as_slice(), &mut out, (m, k, n)))
        });
        g.finish();
    }
}

/// A `(rows, cols)` matrix of `qtype` blocks for timing: Q8_0 quantized from real values,
/// the K-quants random bytes with small, normal f16 scales (the values do not change the
/// work; subnormal scales could).
fn quantized_matrix(qtype: GgmlType, values: &[f32], rows: usize, cols: usize) -> QuantizedMatrix {
    if qtype == GgmlType::Q8_0 {
        return QuantizedMatrix::from_bytes(qtype, quantize_q8_0(values), rows, cols).unwrap();
    }
    let (block_elems, block_bytes) = qtype.block_layout().unwrap();
    let (block_elems, block_bytes) = (block_elems as usize, block_bytes as usize);
    let scales: &[usize] = match qtype {
        GgmlType::Q4K | GgmlType::Q5K => &[0, 2],
        GgmlType::Q6K => &[208],
        other => panic!("no scale offsets for {other:?}"),
    };
    let mut bytes: Vec<u8> = (0..rows * cols / block_elems * block_bytes)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect();
    for block in bytes.chunks_exact_mut(block_bytes) {
        for &at in scales {
            block[at..at + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        }
    }
    QuantizedMatrix::from_bytes(qtype, bytes, rows, cols).unwrap()
}

/// The Q8_0 decode logits a skeptic writes: per row, per block, `d · Σ q·h`, one thread.
fn plain_q8_0_logits(blocks: &[u8], h: &[f32], out: &mut [f32]) {
    let row_bytes = h.len() / 32 * 34;
    for (row, o) in blocks.chunks_exact(row_bytes).zip(out.iter_mut()) {
        let mut sum = 0.0f32;
        for (block, hs) in row.chunks_exact(34).zip(h.chunks_exact(32)) {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            let mut s = 0.0f32;
            for (&q, &x) in block[2..].iter().zip(hs) {
                s += f32::from(q as i8) * x;
            }
            sum += d * s;
        }
        *o = sum;
    }
}

/// The Q8_0 lookup a skeptic writes: each id's row decoded value by value, one thread.
fn plain_q8_0_lookup(blocks: &[u8], n_embd: usize, ids: &[u32], out: &mut [f32]) {
    let row_bytes = n_embd / 32 * 34;
    for (&id, dst) in ids.iter().zip(out.chunks_exact_mut(n_embd)) {
        let row = &blocks[id as usize * row_bytes..(id as usize + 1) * row_bytes];
        for (block, dst) in row.chunks_exact(34).zip(dst.chunks_exact_mut(32)) {
            let d = f16::from_le_bytes([block[0], block[1]]).to_f32();
            for (o, &q) in dst.iter_mut().zip(&block[2..]) {
                *o = f32::from(q as i8) * d;
            }
        }
    }
}

/// Quantized tables against the dense `f32` table in the same run: decode logits
/// (`h @ Eᵀ` for one token, memory-bound: each function's throughput counts the bytes of
/// the table it reads) and a prefill-sized lookup (throughput counts the `f32` rows
/// written), with the skeptic's plain Q8_0 loops.
fn quantized(c: &mut Criterion) {
    let (n, k) = (32000, 2048);
    let dense = table::<f32>(n, k);
    let formats = [GgmlType::Q8_0, GgmlType::Q4K, GgmlType::Q6K];
    let tables: Vec<QuantizedEmbedding> = formats
        .iter()
        .map(|&q| {
            QuantizedEmbedding::new(quantized_matrix(q, dense.weight().as_slice(), n, k)).unwrap()
        })
        .collect();

    let f32_bytes = n * k * 4;
    let mut g = group(c, "quantized_decode_logits_1x2048_of_32000x2048", f32_bytes);
    roofline(&mut g, f32_bytes);
    let h = table::<f32>(1, k).into_weight();
    let mut out = vec![0.0f32; n];
    g.throughput(Throughput::Bytes(f32_bytes as u64));
    g.bench_function("f32_dense_matmul_into", |b| {
        b.iter(|| {
            matmul_into(
                h.view(),
                Operand::AsIs,
                dense.weight().view(),
                Operand::Transposed,
                TensorViewMut::new(&mut out, &[1, n]).unwrap(),
                Accumulate::Replace,
            )
            .unwrap()
        })
    });
    for (format, t) in formats.iter().zip(&tables) {
        g.throughput(Throughput::Bytes(t.bytes_in_memory() as u64));
        let name = format.name().to_lowercase();
        g.bench_function(format!("{name}_logits_into"), |b| {
            b.iter(|| t.logits_into(&h, 1.0, (&mut out[..], [1, n])).unwrap())
        });
        if *format == GgmlType::Q8_0 {
            let all: Vec<u8> = (0..n)
                .flat_map(|r| t.table().row_bytes(r).to_vec())
                .collect();
            g.bench_function("q8_0_plain_loop_1thread", |b| {
                b.iter(|| plain_q8_0_logits(&all, h.as_slice(), &mut out))
            });
        }
    }
    g.finish();

    let (batch, seq_len) = (8, 512);
    let ids = make_ids(batch, seq_len, n);
    let out_bytes = batch * seq_len * k * 4;
    let mut g = group(c, "quantized_lookup_8x512_of_32000x2048", out_bytes);
    roofline(&mut g, out_bytes);
    let mut out = vec![0.0f32; batch * seq_len * k];
    let shape = [batch, seq_len, k];
    g.bench_function("f32_dense_forward_into", |b| {
        b.iter(|| dense.forward_into(&ids, (&mut out[..], shape)).unwrap())
    });
    for (format, t) in formats.iter().zip(&tables) {
        let name = format.name().to_lowercase();
        g.bench_function(format!("{name}_forward_into"), |b| {
            b.iter(|| t.forward_into(&ids, (&mut out[..], shape)).unwrap())
        });
    }
    let all: Vec<u8> = (0..n)
        .flat_map(|r| tables[0].table().row_bytes(r).to_vec())
        .collect();
    g.bench_function("q8_0_plain_loop_1thread", |b| {
        b.iter(|| plain_q8_0_lookup(&all, k, ids.as_slice(), &mut out))
    });
    g.finish();
}

criterion_group!(benches, lookups, backward, rope, tied_projection, quantized);
criterion_main!(benches);
