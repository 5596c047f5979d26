//! Tests of `scatter`.

use tokenloom_tensor::{bf16, f16};

use super::*;

/// Bit patterns of `T` from a fixed LCG, plus the signed zeros and extremes.
fn patterns<T: Element>(len: usize) -> Vec<T> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut values: Vec<T> = (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            T::from_bits64(state >> 11)
        })
        .collect();
    values.extend([
        T::zero(),
        -T::zero(),
        T::max_value(),
        T::min_positive_value(),
    ]);
    values
}

fn same<T: Element>(a: T, b: T) -> bool {
    a.to_bits64() == b.to_bits64() || (a.is_nan() && b.is_nan())
}

/// A one-token group's shortcut gives the bits of the `f64` sum rounded once, for
/// every dtype, replacing or adding, signed zeros included.
fn one_token_shortcut_matches_the_f64_sum<T: Element>() {
    let n_embd = 4096 + 4;
    let row = patterns::<T>(4096);
    let old = {
        let mut old = patterns::<T>(4096 + 1);
        old.remove(0); // shifted against `row`
        old.reverse();
        old
    };
    let groups = RowGroups::new(&[7u32], None);
    for accumulate in [Accumulate::Replace, Accumulate::Add] {
        let mut dst = old.clone();
        let how = RowSum {
            grad_sum: GradSum::F64,
            scale_grad_by_freq: false,
            accumulate,
        };
        let mut scatter =
            Scatter::plan::<T, T>(&groups, row.len(), n_embd, 1, Layout::Compact, how).unwrap();
        scatter.run(&groups, &row, &mut dst);
        for j in 0..n_embd {
            let sum = 0.0 + row[j].as_f64();
            let expected = match accumulate {
                Accumulate::Replace => T::from_f64_lossy(sum),
                Accumulate::Add => T::from_f64_lossy(old[j].as_f64() + sum),
            };
            assert!(
                same(dst[j], expected),
                "{} {accumulate:?}: {:?} + {:?} gave {:?}, the f64 sum {:?}",
                T::DTYPE,
                old[j],
                row[j],
                dst[j],
                expected
            );
        }
    }
}

#[test]
fn one_token_shortcut_matches_the_f64_sum_in_every_dtype() {
    one_token_shortcut_matches_the_f64_sum::<f32>();
    one_token_shortcut_matches_the_f64_sum::<f64>();
    one_token_shortcut_matches_the_f64_sum::<f16>();
    one_token_shortcut_matches_the_f64_sum::<bf16>();
}
