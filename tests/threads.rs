//! Kernels that split work across threads give bit-identical results for any thread
//! count (inputs above the parallel threshold, run on pools of 1, 2 and 3 threads).

use std::collections::BTreeSet;
use std::sync::Mutex;
use tokenloom::embedding::{Embedding, EmbeddingConfig, EmbeddingOptions, GradSum, Init};
use tokenloom::positions::{
    Direction, QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions,
};

use tokenloom::tensor::{
    Accumulate, PARALLEL_MIN_BYTES, Par, Tensor, bf16, for_each_chunk_mut, matmul_transposed,
    with_par,
};

fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

fn bits<T: tokenloom::tensor::Element>(t: &Tensor<T>) -> Vec<u64> {
    t.as_slice().iter().map(|x| x.to_bits64()).collect()
}

#[test]
fn lookup_backward_rope_and_logits_do_not_depend_on_the_thread_count() {
    let (vocab_size, n_embd) = (3000, 256);
    let table = EmbeddingConfig::new(vocab_size, n_embd)
        .with_scale_grad_by_freq(true)
        .with_padding_idx(5)
        .init_seeded::<f32>(1)
        .unwrap();
    // 2048 tokens with many repeats: 2 MiB outputs, above the threshold.
    let ids: Vec<u32> = (0..2048u32).map(|i| (i * 7919 + i / 3) % 700).collect();
    let ids = Tensor::from_vec(ids, &[4, 512]).unwrap();
    let grad = Embedding::<f32>::seeded(4 * 512, n_embd, Init::default(), 2)
        .unwrap()
        .into_weight();
    let grad = grad.reshape(&[4, 512, n_embd]).unwrap();
    let config = RopeConfig::new(128, 10000.0, RopeLayout::HalfSplit);
    let cache = RopeCache::<f32>::new(&config, 512).unwrap();
    let x: Vec<bf16> = (0..512 * 16 * 128)
        .map(|i| bf16::from_f32((i % 97) as f32 / 13.0 - 3.0))
        .collect();

    let run = || {
        let forward = table.forward(&ids).unwrap();
        // The threaded path of the lookup writes into a caller's buffer.
        let mut into = Tensor::<f32>::zeros(&[4, 512, n_embd]).unwrap();
        table.forward_into(&ids, &mut into).unwrap();
        assert_eq!(into, forward);
        let dense = table.backward_dense(&ids, grad.view()).unwrap();
        let f32_sum = table
            .clone()
            .with_options(EmbeddingOptions {
                grad_sum: GradSum::F32,
                ..*table.options()
            })
            .unwrap()
            .backward_dense(&ids, grad.view())
            .unwrap();
        let mut accumulated = dense.clone();
        table
            .backward_dense_into(&ids, grad.view(), accumulated.view_mut(), Accumulate::Add)
            .unwrap();
        let sparse = table
            .backward_sparse(&ids, grad.view())
            .unwrap()
            .to_dense()
            .unwrap();
        // Tied logits for one and for eight tokens (the dot-product path, 3 MB of
        // table) and for 64 tokens (the GEMM).
        let logits: Vec<_> = [1, 8, 64]
            .into_iter()
            .map(|rows| {
                let h = grad.as_slice()[..rows * n_embd].to_vec();
                let h = Tensor::from_vec(h, &[rows, n_embd]).unwrap();
                bits(&matmul_transposed(h.view(), table.weight().view()).unwrap())
            })
            .collect();
        let mut rotated = Vec::new();
        for layout in [QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq] {
            let mut q = Tensor::from_vec(x.clone(), &[1, 512, 16, 128]).unwrap();
            if layout == QkLayout::BatchHeadsSeq {
                q = q.reshape(&[1, 16, 512, 128]).unwrap();
            }
            let mut out = Tensor::<bf16>::zeros(q.dims()).unwrap();
            cache
                .rotate_into(
                    &q,
                    &mut out,
                    layout,
                    TokenPositions::Offset(0),
                    Direction::Forward,
                )
                .unwrap();
            cache
                .rotate_in_place(
                    q.view_mut(),
                    layout,
                    TokenPositions::Offset(0),
                    Direction::Forward,
                )
                .unwrap();
            assert_eq!(bits(&out), bits(&q), "out of place differs from in place");
            rotated.push(bits(&q));
        }
        (
            bits(&forward),
            bits(&dense),
            bits(&f32_sum),
            bits(&accumulated),
            bits(&sparse),
            logits,
            rotated,
        )
    };
    let one = on_threads(1, run);
    assert_eq!(on_threads(2, run), one, "2 threads differ from 1");
    assert_eq!(on_threads(3, run), one, "3 threads differ from 1");
    // Forced onto the calling thread, per call, inside a 3-thread pool: the same bits.
    assert_eq!(
        on_threads(3, || with_par(Par::Seq, run)),
        one,
        "Par::Seq differs"
    );
}

/// Every kernel splits its work with `for_each_chunk_mut` (or `gemm` on rayon's current
/// pool): the chunks run on the pool the caller `install`ed, and on the calling thread
/// alone under `with_par(Par::Seq, …)`.
#[test]
fn work_runs_on_the_callers_pool_or_on_the_calling_thread() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .thread_name(|i| format!("framework-pool-{i}"))
        .build()
        .unwrap();
    let names = |par: Par| -> BTreeSet<String> {
        let seen = Mutex::new(BTreeSet::new());
        let mut data = vec![0u8; 4 * PARALLEL_MIN_BYTES];
        pool.install(|| {
            with_par(par, || {
                for_each_chunk_mut(&mut data, 4096, |_, chunk| {
                    chunk.fill(1);
                    let name = std::thread::current().name().unwrap_or("?").to_owned();
                    seen.lock().unwrap().insert(name);
                    std::thread::sleep(std::time::Duration::from_micros(20));
                });
            })
        });
        assert!(data.iter().all(|&x| x == 1));
        seen.into_inner().unwrap()
    };
    let pooled = names(Par::Rayon);
    // Without the `parallel` feature every kernel stays on the calling thread.
    assert_eq!(pooled.len() > 1, cfg!(feature = "parallel"), "{pooled:?}");
    assert!(
        pooled.iter().all(|n| n.starts_with("framework-pool-")),
        "{pooled:?}"
    );
    let sequential = names(Par::Seq);
    assert_eq!(sequential.len(), 1, "{sequential:?}");
    assert!(
        sequential.iter().all(|n| n.starts_with("framework-pool-")),
        "{sequential:?}"
    );
}
