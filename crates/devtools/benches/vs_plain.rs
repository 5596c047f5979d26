//! tokenloom's kernels beside the plain loops a skeptic would write
//! ([`tokenloom_devtools::plain_loops`]), on the same buffers, on 1 and on 2 threads: a
//! private rayon pool of that size for both contenders (`_t1`, `_t2`); the decode step,
//! which never splits, on the calling thread. Each group also holds the copy roofline of
//! the bytes it must move.
//!
//! Run: `cargo bench -p tokenloom-devtools --bench vs_plain`, then
//! `cargo run --release -p tokenloom-devtools --example bench_report -- vs_plain` for the
//! table of ratios (docs/benchmarks.md, "Never slower than the plain loop").

use std::hint::black_box;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use rayon::ThreadPool;
use tokenloom::embedding::{Embedding, EmbeddingOptions, GradSum};
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions};
use tokenloom::tensor::{
    Accumulate, Operand, Tensor, TensorViewMut, for_each_chunk_mut, matmul_into,
};
use tokenloom_devtools::{gemm_peer, plain_loops};

const VOCAB_SIZE: usize = 32000;
const N_EMBD: usize = 4096;

fn pools() -> [(usize, ThreadPool); 2] {
    [1, 2].map(|n| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("a rayon pool");
        (n, pool)
    })
}

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + salt) % 251) as f32 / 128.0 - 1.0)
        .collect()
}

/// `n` ids spread over the vocabulary, or over `distinct` ids when given (each repeated
/// about `n / distinct` times, in a scrambled order).
fn ids(n: usize, distinct: Option<usize>) -> Vec<u32> {
    (0..n as u64)
        .map(|i| {
            let h = (i * 2_654_435_761) % VOCAB_SIZE as u64;
            match distinct {
                None => h as u32,
                Some(d) => ((h % d as u64) * (VOCAB_SIZE / d) as u64) as u32,
            }
        })
        .collect()
}

fn group<'a>(c: &'a mut Criterion, name: &str, bytes: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Bytes(bytes as u64));
    g
}

/// The copy roofline of `bytes`, split across `pool` like the kernels are.
fn roofline(g: &mut BenchmarkGroup<'_, WallTime>, bytes: usize, pools: &[(usize, ThreadPool)]) {
    let src = vec![1u8; bytes];
    let mut dst = vec![0u8; bytes];
    let chunk = 1 << 20;
    for (n, pool) in pools {
        g.bench_function(format!("roofline_copy_t{n}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    for_each_chunk_mut(&mut dst, chunk, |i, d| {
                        d.copy_from_slice(&black_box(&src)[i * chunk..i * chunk + d.len()]);
                    });
                })
            })
        });
    }
}

fn lookup(c: &mut Criterion) {
    let pools = pools();
    let table = Embedding::from_weight(
        Tensor::from_vec(values(VOCAB_SIZE * N_EMBD, 0), &[VOCAB_SIZE, N_EMBD]).unwrap(),
    )
    .unwrap();
    for (batch, seq_len) in [(1, 512), (8, 512)] {
        let n = batch * seq_len;
        let ids = Tensor::from_vec(ids(n, None), &[batch, seq_len]).unwrap();
        let mut out = vec![0.0f32; n * N_EMBD];
        let mut g = group(
            c,
            &format!("vs_plain_lookup_{batch}x{seq_len}_of_32000x4096_f32"),
            n * N_EMBD * 4,
        );
        roofline(&mut g, n * N_EMBD * 4, &pools);
        for (threads, pool) in &pools {
            g.bench_function(format!("tokenloom_t{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        table
                            .forward_into(
                                &ids,
                                TensorViewMut::new(&mut out, &[batch, seq_len, N_EMBD]).unwrap(),
                            )
                            .unwrap()
                    })
                })
            });
            g.bench_function(format!("plain_t{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        plain_loops::gather(
                            table.weight().as_slice(),
                            N_EMBD,
                            ids.as_slice(),
                            &mut out,
                            *threads,
                        )
                    })
                })
            });
        }
        g.finish();
    }

    // Decode: one token, on the calling thread; the plain loop is one row copy.
    let one = Tensor::from_vec(ids(1, None), &[1, 1]).unwrap();
    let mut out = vec![0.0f32; N_EMBD];
    let mut g = group(c, "vs_plain_decode_1x1_of_32000x4096_f32", N_EMBD * 4);
    g.bench_function("tokenloom_t1", |b| {
        b.iter(|| {
            table
                .forward_into(
                    black_box(&one),
                    TensorViewMut::new(&mut out, &[1, 1, N_EMBD]).unwrap(),
                )
                .unwrap()
        })
    });
    g.bench_function("plain_t1", |b| {
        b.iter(|| {
            let start = black_box(one.as_slice())[0] as usize * N_EMBD;
            out.copy_from_slice(&table.weight().as_slice()[start..start + N_EMBD]);
        })
    });
    g.finish();
}

fn backward(c: &mut Criterion) {
    let pools = pools();
    let n = 4096;
    let shape_table = Embedding::from_weight(
        Tensor::from_vec(vec![0.0f32; VOCAB_SIZE * N_EMBD], &[VOCAB_SIZE, N_EMBD]).unwrap(),
    )
    .unwrap();
    let f32_sum = shape_table
        .clone()
        .with_options(EmbeddingOptions {
            grad_sum: GradSum::F32,
            ..EmbeddingOptions::default()
        })
        .unwrap();
    let grad_output = Tensor::from_vec(values(n * N_EMBD, 3), &[1, n, N_EMBD]).unwrap();
    let mut grad = vec![0.0f32; VOCAB_SIZE * N_EMBD];
    for (ids_name, distinct) in [("random", None), ("100_distinct", Some(100))] {
        let ids = Tensor::from_vec(ids(n, distinct), &[1, n]).unwrap();
        for (mode, accumulate) in [
            ("dense", Accumulate::Replace),
            ("accumulate", Accumulate::Add),
        ] {
            // The bytes the plain loop must move: the whole gradient written (dense) plus
            // the incoming rows read and their destination rows read and written.
            let rows = n * N_EMBD * 4;
            let bytes = match accumulate {
                Accumulate::Replace => VOCAB_SIZE * N_EMBD * 4 + rows,
                Accumulate::Add => rows,
            };
            let mut g = group(
                c,
                &format!("vs_plain_{mode}_backward_4096_{ids_name}_ids_of_32000x4096_f32"),
                bytes,
            );
            for (threads, pool) in &pools {
                g.bench_function(format!("tokenloom_t{threads}"), |b| {
                    b.iter(|| {
                        pool.install(|| {
                            let view =
                                TensorViewMut::new(&mut grad, &[VOCAB_SIZE, N_EMBD]).unwrap();
                            shape_table
                                .backward_dense_into(&ids, grad_output.view(), view, accumulate)
                                .unwrap()
                        })
                    })
                });
                g.bench_function(format!("tokenloom_f32_sum_t{threads}"), |b| {
                    b.iter(|| {
                        pool.install(|| {
                            let view =
                                TensorViewMut::new(&mut grad, &[VOCAB_SIZE, N_EMBD]).unwrap();
                            f32_sum
                                .backward_dense_into(&ids, grad_output.view(), view, accumulate)
                                .unwrap()
                        })
                    })
                });
                g.bench_function(format!("plain_t{threads}"), |b| {
                    b.iter(|| {
                        pool.install(|| match accumulate {
                            Accumulate::Replace => plain_loops::dense_backward(
                                &mut grad,
                                N_EMBD,
                                grad_output.as_slice(),
                                ids.as_slice(),
                                *threads,
                            ),
                            Accumulate::Add => plain_loops::scatter_add(
                                &mut grad,
                                N_EMBD,
                                grad_output.as_slice(),
                                ids.as_slice(),
                                *threads,
                            ),
                        })
                    })
                });
            }
            g.finish();
            // Accumulating forever grows the values; start every mode from zero.
            grad.fill(0.0);
        }
    }
}

fn rope(c: &mut Criterion) {
    let pools = pools();
    let (batch, seq_len, n_heads, head_dim) = (1, 2048, 32, 128);
    let len = batch * seq_len * n_heads * head_dim;
    let x = values(len, 5);
    let mut out = vec![0.0f32; len];
    for (name, layout) in [
        ("half_split", RopeLayout::HalfSplit),
        ("interleaved", RopeLayout::Interleaved),
    ] {
        let cache =
            RopeCache::<f32>::new(&RopeConfig::new(head_dim, 10000.0, layout), seq_len).unwrap();
        let tables = cache.tables();
        let shape = plain_loops::RopeShape {
            batch,
            seq_len,
            n_heads,
            head_dim,
            interleaved: layout == RopeLayout::Interleaved,
        };
        let dims = [batch, seq_len, n_heads, head_dim];
        let mut g = group(
            c,
            &format!("vs_plain_rope_out_of_place_1x2048x32x128_{name}_f32"),
            2 * len * 4,
        );
        roofline(&mut g, len * 4, &pools);
        for (threads, pool) in &pools {
            g.bench_function(format!("tokenloom_t{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        tables
                            .apply_into(
                                (&x[..], dims),
                                TensorViewMut::new(&mut out, &dims).unwrap(),
                                QkLayout::BatchSeqHeads,
                                TokenPositions::Offset(0),
                            )
                            .unwrap()
                    })
                })
            });
            g.bench_function(format!("plain_t{threads}"), |b| {
                b.iter(|| {
                    pool.install(|| {
                        plain_loops::rope(
                            &mut out,
                            &x,
                            cache.cos().as_slice(),
                            cache.sin().as_slice(),
                            shape,
                            *threads,
                        )
                    })
                })
            });
        }
        g.finish();
    }
}

fn gemm(c: &mut Criterion) {
    let pools = pools();
    let (m, k, n) = (128, 1024, 8000);
    let h = Tensor::from_vec(values(m * k, 1), &[m, k]).unwrap();
    let e = Tensor::from_vec(values(n * k, 2), &[n, k]).unwrap();
    let mut out = vec![0.0f32; m * n];
    let mut g = c.benchmark_group(format!("vs_plain_gemm_{m}x{k}x{n}_f32"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    g.throughput(Throughput::Elements((2 * m * k * n) as u64)); // FLOPs, as elements
    for (threads, pool) in &pools {
        g.bench_function(format!("tokenloom_t{threads}"), |b| {
            b.iter(|| {
                pool.install(|| {
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
            })
        });
        g.bench_function(format!("gemm_crate_t{threads}"), |b| {
            b.iter(|| {
                pool.install(|| {
                    gemm_peer::gemm_abt(h.as_slice(), e.as_slice(), &mut out, (m, k, n))
                })
            })
        });
    }
    // matrixmultiply runs its own threads (MATMUL_NUM_THREADS, read once per process).
    g.bench_function("matrixmultiply", |b| {
        b.iter(|| gemm_peer::matrixmultiply_abt(h.as_slice(), e.as_slice(), &mut out, (m, k, n)))
    });
    g.finish();
}

criterion_group!(benches, lookup, backward, rope, gemm);
criterion_main!(benches);
