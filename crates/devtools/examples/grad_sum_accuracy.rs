//! How far `GradSum::F32` lands from the exact gradient, against the default
//! `GradSum::F64`: 4096 tokens of n_embd 256 over 100 or 4 distinct ids (each ~41 or
//! ~1024 times), gradient values uniform in [−1, 1), for `f32` and `bf16` gradients. The
//! reference is the sum in `f64` (exact to far below either's error here).
//!
//! Run: `cargo run --release -p tokenloom-devtools --example grad_sum_accuracy`
//! (docs/benchmarks/plain-loop.md quotes its output).

use tokenloom::embedding::{EmbeddingOptions, GradSum, functional};
use tokenloom::tensor::{Accumulate, Element, bf16};

fn errors<T: Element>(distinct: u32) -> [(f64, f64); 2] {
    let (n, n_embd, vocab_size) = (4096usize, 256usize, 1000usize);
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut uniform = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    let ids: Vec<u32> = (0..n)
        .map(|i| (i as u32 * 2_654_435_761) % distinct * 7)
        .collect();
    let grad: Vec<T> = (0..n * n_embd)
        .map(|_| T::from_f64_lossy(uniform()))
        .collect();
    let mut exact = vec![0.0f64; vocab_size * n_embd];
    for (i, &id) in ids.iter().enumerate() {
        for j in 0..n_embd {
            exact[id as usize * n_embd + j] += grad[i * n_embd + j].as_f64();
        }
    }
    let scale = exact.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    [GradSum::F64, GradSum::F32].map(|grad_sum| {
        let mut got = vec![T::zero(); vocab_size * n_embd];
        let options = EmbeddingOptions {
            grad_sum,
            ..EmbeddingOptions::default()
        };
        functional::backward_dense(
            &ids[..],
            (&grad[..], [n, n_embd]),
            (&mut got[..], [vocab_size, n_embd]),
            &options,
            Accumulate::Replace,
        )
        .expect("valid shapes");
        let (mut max_abs, mut max_rel) = (0.0f64, 0.0f64);
        for (g, e) in got.iter().zip(&exact) {
            let err = (g.as_f64() - e).abs();
            max_abs = max_abs.max(err);
            if e.abs() > 1e-3 * scale {
                max_rel = max_rel.max(err / e.abs());
            }
        }
        (max_abs / scale, max_rel)
    })
}

fn main() {
    println!(
        "| gradient dtype | repeats per id | GradSum::F64: max error / max |g| | max relative | GradSum::F32: max error / max |g| | max relative |"
    );
    println!("|---|---|---|---|---|---|");
    for distinct in [100u32, 4] {
        let repeats = 4096 / distinct;
        for (dtype, [f64_sum, f32_sum]) in [
            ("f32", errors::<f32>(distinct)),
            ("bf16", errors::<bf16>(distinct)),
        ] {
            println!(
                "| {dtype} | {repeats} | {:.1e} | {:.1e} | {:.1e} | {:.1e} |",
                f64_sum.0, f64_sum.1, f32_sum.0, f32_sum.1
            );
        }
    }
}
