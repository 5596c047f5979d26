//! tokenloom's kernels beside the plain loops a skeptic would write
//! ([`tokenloom_devtools::plain_loops`]), on the same buffers, on 1 and on 2 threads: a
//! private rayon pool of that size for every contender (`_t1`, `_t2`); the decode step,
//! which never splits, on the calling thread. Memory-bound cases also hold the copy
//! roofline of the bytes they must move.
//!
//! Two modes:
//!
//! - `cargo bench -p tokenloom-devtools --bench vs_plain` — criterion, one function
//!   after the other (throughput; `bench_report vs_plain` turns it into a table);
//! - `cargo bench -p tokenloom-devtools --bench vs_plain -- --interleaved` — every round
//!   runs each contender of a case once, in rotating order
//!   ([`tokenloom_devtools::interleave`]), and prints the markdown table of
//!   docs/benchmarks/plain-loop.md ("Never slower than the plain loop"): on a shared VM
//!   only interleaved ratios are tighter than the machine's drift. Three ratios per
//!   kernel: of the two medians, of the two minimums, and *paired* — the median over the
//!   rounds of the ratio within a round ([`Timing::paired_ratio`](tokenloom_devtools::interleave::Timing::paired_ratio)),
//!   from which the drift between rounds cancels. With `--pinned` as well,
//!   both pools are `tokenloom::tensor::pinned_pool`s (each thread on its own CPU) for
//!   every contender alike: on a VM whose scheduler queues a woken pool thread on its
//!   waker's busy vCPU, the unpinned 2-thread pools measure the scheduler as much as the
//!   kernels (docs/benchmarks/next-to-pytorch.md, "The second thread waits on the first
//!   one's CPU").

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use rayon::ThreadPool;
use tokenloom::embedding::{Embedding, EmbeddingOptions, GradSum};
use tokenloom::positions::{
    Direction, QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions,
};
use tokenloom::tensor::{
    Accumulate, Operand, Tensor, TensorViewMut, for_each_chunk_mut, matmul_into,
};
use tokenloom_devtools::interleave::{Contender, time_interleaved};
use tokenloom_devtools::{gemm_peer, plain_loops};

const VOCAB_SIZE: usize = 32000;
const N_EMBD: usize = 4096;
const N_IDS: usize = 4096;
const ROPE: (usize, usize, usize, usize) = (1, 2048, 32, 128);
const GEMM: (usize, usize, usize) = (128, 1024, 8000);
const LOOKUPS: [(usize, usize); 2] = [(1, 512), (8, 512)];

fn values(len: usize, salt: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7 + salt) % 251) as f32 / 128.0 - 1.0)
        .collect()
}

/// `n` ids drawn uniformly from the vocabulary (4096 of 32000: about 250 ids occur
/// twice or more, as in a real batch), or from `distinct` ids spread over it (each
/// repeated about `n / distinct` times), in a scrambled order.
fn ids(n: usize, distinct: Option<usize>) -> Vec<u32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let r = state >> 33;
            match distinct {
                None => (r % VOCAB_SIZE as u64) as u32,
                Some(d) => ((r % d as u64) * (VOCAB_SIZE / d) as u64) as u32,
            }
        })
        .collect()
}

/// Everything the cases borrow.
struct Data {
    pools: [(usize, ThreadPool); 2],
    table: Embedding<f32>,
    /// A zero table: the backward reads only its shape and options.
    shape_table: Embedding<f32>,
    f32_sum: Embedding<f32>,
    grad_output: Tensor<f32>,
    random_ids: Tensor<u32>,
    distinct_ids: Tensor<u32>,
    /// The ids of the (1, 512) and (8, 512) lookups, and of the decode step.
    lookup_ids: [Tensor<u32>; 2],
    decode_id: Tensor<u32>,
    rope_x: Vec<f32>,
    rope_caches: [RopeCache<f32>; 2],
    gemm_h: Tensor<f32>,
    gemm_e: Tensor<f32>,
    /// The source of the roofline copies (as large as the largest output).
    copy_src: Vec<f32>,
}

impl Data {
    fn new(pinned: bool) -> Self {
        let pools = [1, 2].map(|n| {
            let pool = if pinned {
                tokenloom::tensor::pinned_pool(n).expect("a pinned pool")
            } else {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .expect("a rayon pool")
            };
            (n, pool)
        });
        let weight = Tensor::from_vec(values(VOCAB_SIZE * N_EMBD, 0), &[VOCAB_SIZE, N_EMBD]);
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
        let (_, seq_len, n_heads, head_dim) = ROPE;
        let rope_caches = [RopeLayout::HalfSplit, RopeLayout::Interleaved].map(|layout| {
            RopeCache::new(&RopeConfig::new(head_dim, 10000.0, layout), seq_len).unwrap()
        });
        let (m, k, n) = GEMM;
        Self {
            pools,
            table: Embedding::from_weight(weight.unwrap()).unwrap(),
            shape_table,
            f32_sum,
            grad_output: Tensor::from_vec(values(N_IDS * N_EMBD, 3), &[1, N_IDS, N_EMBD]).unwrap(),
            random_ids: Tensor::from_vec(ids(N_IDS, None), &[1, N_IDS]).unwrap(),
            distinct_ids: Tensor::from_vec(ids(N_IDS, Some(100)), &[1, N_IDS]).unwrap(),
            lookup_ids: LOOKUPS.map(|(batch, seq_len)| {
                Tensor::from_vec(ids(batch * seq_len, None), &[batch, seq_len]).unwrap()
            }),
            decode_id: Tensor::from_vec(ids(1, None), &[1, 1]).unwrap(),
            rope_x: values(seq_len * n_heads * head_dim, 5),
            rope_caches,
            gemm_h: Tensor::from_vec(values(m * k, 1), &[m, k]).unwrap(),
            gemm_e: Tensor::from_vec(values(n * k, 2), &[n, k]).unwrap(),
            copy_src: values(VOCAB_SIZE * N_EMBD, 9),
        }
    }
}

/// One benchmark case: its contenders write into an output of `out_len` elements.
struct Case<'a> {
    name: String,
    out_len: usize,
    throughput: Throughput,
    contenders: Vec<Contender<'a>>,
}

impl<'a> Case<'a> {
    fn new(name: String, out_len: usize, throughput: Throughput) -> Self {
        Self {
            name,
            out_len,
            throughput,
            contenders: Vec::new(),
        }
    }

    /// A contender run inside the `threads`-thread pool.
    fn on(
        &mut self,
        data: &'a Data,
        name: &str,
        threads: usize,
        mut run: impl FnMut(&mut [f32]) + Send + 'a,
    ) {
        let pool = &data.pools[threads - 1].1;
        self.contenders.push(Contender::new(
            format!("{name}_t{threads}"),
            move |out: &mut [f32]| pool.install(|| run(out)),
        ));
    }

    /// The roofline: copying `len` elements into the output, split like the kernels.
    fn roofline(&mut self, data: &'a Data, len: usize) {
        let src = &data.copy_src[..len];
        for threads in [1, 2] {
            self.on(data, "roofline_copy", threads, move |out| {
                let chunk = 1 << 18;
                for_each_chunk_mut(&mut out[..len], chunk, |i, d| {
                    d.copy_from_slice(&black_box(src)[i * chunk..i * chunk + d.len()]);
                });
            });
        }
    }
}

fn lookup_cases(data: &Data) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    for ((batch, seq_len), ids) in LOOKUPS.into_iter().zip(&data.lookup_ids) {
        let n = batch * seq_len;
        let mut case = Case::new(
            format!("lookup_{batch}x{seq_len}_of_32000x4096_f32"),
            n * N_EMBD,
            Throughput::Bytes((n * N_EMBD * 4) as u64),
        );
        case.roofline(data, n * N_EMBD);
        for threads in [1, 2] {
            case.on(data, "tokenloom", threads, move |out| {
                let out = TensorViewMut::new(out, &[batch, seq_len, N_EMBD]).unwrap();
                data.table.forward_into(ids, out).unwrap();
            });
            case.on(data, "plain", threads, move |out| {
                plain_loops::gather(
                    data.table.weight().as_slice(),
                    N_EMBD,
                    ids.as_slice(),
                    out,
                    threads,
                );
            });
        }
        cases.push(case);
    }
    // Decode: one token, on the calling thread; the plain loop is one row copy.
    let one = &data.decode_id;
    let mut case = Case::new(
        "decode_1x1_of_32000x4096_f32".into(),
        N_EMBD,
        Throughput::Bytes((N_EMBD * 4) as u64),
    );
    case.contenders
        .push(Contender::new("tokenloom_t1", move |out: &mut [f32]| {
            let out = TensorViewMut::new(out, &[1, 1, N_EMBD]).unwrap();
            data.table.forward_into(black_box(one), out).unwrap();
        }));
    case.contenders
        .push(Contender::new("plain_t1", move |out: &mut [f32]| {
            let start = black_box(one.as_slice())[0] as usize * N_EMBD;
            out.copy_from_slice(&data.table.weight().as_slice()[start..start + N_EMBD]);
        }));
    cases.push(case);
    cases
}

fn backward_cases(data: &Data) -> Vec<Case<'_>> {
    let mut cases = Vec::new();
    for (ids_name, ids) in [
        ("random", &data.random_ids),
        ("100_distinct", &data.distinct_ids),
    ] {
        for (mode, accumulate) in [
            ("dense", Accumulate::Replace),
            ("accumulate", Accumulate::Add),
        ] {
            // The bytes the plain loop must move: the gradient written (dense), the
            // incoming rows read.
            let rows = N_IDS * N_EMBD * 4;
            let bytes = match accumulate {
                Accumulate::Replace => VOCAB_SIZE * N_EMBD * 4 + rows,
                Accumulate::Add => rows,
            };
            let mut case = Case::new(
                format!("{mode}_backward_4096_{ids_name}_ids_of_32000x4096_f32"),
                VOCAB_SIZE * N_EMBD,
                Throughput::Bytes(bytes as u64),
            );
            if accumulate == Accumulate::Replace {
                case.roofline(data, VOCAB_SIZE * N_EMBD);
            }
            for threads in [1, 2] {
                for (name, table) in [
                    ("tokenloom", &data.shape_table),
                    ("tokenloom_f32_sum", &data.f32_sum),
                ] {
                    case.on(data, name, threads, move |out| {
                        let view = TensorViewMut::new(out, &[VOCAB_SIZE, N_EMBD]).unwrap();
                        table
                            .backward_dense_into(ids, data.grad_output.view(), view, accumulate)
                            .unwrap();
                    });
                }
                case.on(data, "plain", threads, move |out| {
                    let (grad_output, ids) = (data.grad_output.as_slice(), ids.as_slice());
                    match accumulate {
                        Accumulate::Replace => {
                            plain_loops::dense_backward(out, N_EMBD, grad_output, ids, threads);
                        }
                        Accumulate::Add => {
                            plain_loops::scatter_add(out, N_EMBD, grad_output, ids, threads)
                        }
                    }
                });
            }
            cases.push(case);
        }
    }
    cases
}

fn rope_cases(data: &Data) -> Vec<Case<'_>> {
    let (batch, seq_len, n_heads, head_dim) = ROPE;
    let len = batch * seq_len * n_heads * head_dim;
    let dims = [batch, seq_len, n_heads, head_dim];
    let mut cases = Vec::new();
    for (name, cache) in ["half_split", "interleaved"]
        .into_iter()
        .zip(&data.rope_caches)
    {
        let mut case = Case::new(
            format!("rope_out_of_place_1x2048x32x128_{name}_f32"),
            len,
            Throughput::Bytes((2 * len * 4) as u64),
        );
        case.roofline(data, len);
        let shape = plain_loops::RopeShape {
            batch,
            seq_len,
            n_heads,
            head_dim,
            interleaved: cache.config().layout == RopeLayout::Interleaved,
        };
        for threads in [1, 2] {
            case.on(data, "tokenloom", threads, move |out| {
                let out = TensorViewMut::new(out, &dims).unwrap();
                cache
                    .tables()
                    .rotate_into(
                        (&data.rope_x[..], dims),
                        out,
                        QkLayout::BatchSeqHeads,
                        TokenPositions::Offset(0),
                        Direction::Forward,
                    )
                    .unwrap();
            });
            case.on(data, "plain", threads, move |out| {
                let (cos, sin) = (cache.cos().as_slice(), cache.sin().as_slice());
                plain_loops::rope(out, &data.rope_x, cos, sin, shape, threads);
            });
        }
        cases.push(case);
    }
    cases
}

fn gemm_case(data: &Data) -> Case<'_> {
    let (m, k, n) = GEMM;
    let mut case = Case::new(
        format!("gemm_{m}x{k}x{n}_f32"),
        m * n,
        Throughput::Elements((2 * m * k * n) as u64), // FLOPs, as elements
    );
    let (h, e) = (&data.gemm_h, &data.gemm_e);
    for threads in [1, 2] {
        case.on(data, "tokenloom", threads, move |out| {
            let out = TensorViewMut::new(out, &[m, n]).unwrap();
            matmul_into(
                h.view(),
                Operand::AsIs,
                e.view(),
                Operand::Transposed,
                out,
                Accumulate::Replace,
            )
            .unwrap();
        });
        case.on(data, "gemm_crate", threads, move |out| {
            gemm_peer::gemm_abt(h.as_slice(), e.as_slice(), out, (m, k, n));
        });
    }
    // matrixmultiply runs its own threads (MATMUL_NUM_THREADS, read once per process); it
    // is compared with the 2-thread contenders.
    case.contenders.push(Contender::new(
        "matrixmultiply_t2",
        move |out: &mut [f32]| {
            gemm_peer::matrixmultiply_abt(h.as_slice(), e.as_slice(), out, (m, k, n));
        },
    ));
    case
}

fn criterion_mode(cases: &mut [Case<'_>]) {
    let mut c = Criterion::default().configure_from_args();
    for case in cases {
        let mut out = vec![0.0f32; case.out_len];
        let mut g = c.benchmark_group(format!("vs_plain_{}", case.name));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(case.throughput.clone());
        for contender in &mut case.contenders {
            g.bench_function(&contender.name, |b| b.iter(|| (contender.run)(&mut out)));
        }
        g.finish();
    }
    c.final_summary();
}

/// The baseline of contender `name`: the plain loop on the same threads; for the GEMM,
/// the fastest other GEMM on the same threads.
fn baseline<'t>(
    name: &str,
    timings: &'t [tokenloom_devtools::interleave::Timing],
) -> Option<&'t tokenloom_devtools::interleave::Timing> {
    let threads = name.rsplit_once("_t")?.1;
    let others = timings.iter().filter(|t| {
        !t.name.starts_with("tokenloom")
            && !t.name.starts_with("roofline")
            && t.name
                .rsplit_once("_t")
                .is_some_and(|(_, th)| th == threads)
    });
    others.min_by_key(|t| t.median)
}

fn interleaved_mode(cases: &mut [Case<'_>]) {
    let rounds = 31;
    println!(
        "| case | kernel | threads | median | min | baseline | its median | its min | ratio (median) | ratio (min) | ratio (paired) | × copy roofline |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for case in cases {
        let mut out = vec![0.0f32; case.out_len];
        let timings = time_interleaved(
            &mut case.contenders,
            &mut out,
            rounds,
            Duration::from_millis(150),
        );
        let roofline = timings
            .iter()
            .filter(|t| t.name.starts_with("roofline"))
            .map(|t| t.median)
            .min();
        for t in timings.iter().filter(|t| t.name.starts_with("tokenloom")) {
            let Some(b) = baseline(&t.name, &timings) else {
                continue;
            };
            let (kernel, threads) = t.name.rsplit_once("_t").unwrap_or((&t.name, "?"));
            let roof = roofline.map_or("–".into(), |r| {
                format!("{:.2}×", t.median.as_secs_f64() / r.as_secs_f64())
            });
            println!(
                "| {} | {kernel} | {threads} | {:.3?} | {:.3?} | {} | {:.3?} | {:.3?} | {:.2}× | {:.2}× | {} | {roof} |",
                case.name,
                t.median,
                t.min,
                b.name.rsplit_once("_t").map_or(b.name.as_str(), |(n, _)| n),
                b.median,
                b.min,
                t.median.as_secs_f64() / b.median.as_secs_f64(),
                t.min.as_secs_f64() / b.min.as_secs_f64(),
                t.paired_ratio(b).map_or("–".into(), |r| format!("{r:.2}×")),
            );
        }
    }
}

fn main() {
    let interleaved = std::env::args().any(|a| a == "--interleaved");
    let data = Data::new(interleaved && std::env::args().any(|a| a == "--pinned"));
    let mut cases = lookup_cases(&data);
    cases.extend(backward_cases(&data));
    cases.extend(rope_cases(&data));
    cases.push(gemm_case(&data));
    if interleaved {
        let filter: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with("--"))
            .collect();
        cases.retain(|c| filter.iter().all(|f| c.name.contains(f.as_str())));
        interleaved_mode(&mut cases);
    } else {
        criterion_mode(&mut cases);
    }
}
