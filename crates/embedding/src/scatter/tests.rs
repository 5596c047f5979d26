//! Tests of `scatter`.

use tokenloom_tensor::{TensorError, bf16, f16};

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

/// Shuffles `ids` in place with a fixed LCG seeded by `state` (Fisher–Yates).
fn shuffle(ids: &mut [u32], mut state: u64) {
    for i in (1..ids.len()).rev() {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ids.swap(i, (state >> 33) as usize % (i + 1));
    }
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
    let groups = RowGroups::new(&[7u32], None).unwrap();
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

/// The AVX2 build of the loops (when this CPU has AVX2) writes the bits the baseline
/// build writes, for every sum mode, dtype pair, layout and option; ids of 1, 2–4 and
/// many tokens cover the three paths of `add_rows`.
fn both_builds_agree<G: Element, T: Element>() {
    let isa = Isa::detect();
    let n_embd = 67; // not a multiple of any vector width
    // id 3 once, id 5 three times, id 1 twenty times, id 0 padding, spread out.
    let mut ids = vec![1u32; 20];
    ids.extend([3, 5, 5, 5, 0, 0]);
    shuffle(&mut ids, 7u64);
    let grad: Vec<G> = (0..ids.len() * n_embd)
        .map(|i| G::from_f64_lossy(((i * 7919) % 1000) as f64 / 97.0 - 5.0))
        .collect();
    let old: Vec<T> = (0..8 * n_embd)
        .map(|i| T::from_f64_lossy(((i * 104_729) % 777) as f64 / 13.0 - 30.0))
        .collect();
    for padding in [None, Some(0)] {
        let groups = RowGroups::new(&ids, padding).unwrap();
        for grad_sum in [GradSum::F64, GradSum::F32] {
            for scale_grad_by_freq in [false, true] {
                for accumulate in [Accumulate::Replace, Accumulate::Add] {
                    let how = RowSum {
                        grad_sum,
                        scale_grad_by_freq,
                        accumulate,
                    };
                    let run = |isa: Isa| {
                        let mut dst = old.clone();
                        let mut scatter = Scatter::plan::<G, T>(
                            &groups,
                            grad.len(),
                            n_embd,
                            8,
                            Layout::Dense,
                            how,
                        )
                        .unwrap();
                        scatter.run_isa(isa, &groups, &grad, &mut dst);
                        dst
                    };
                    let (baseline, detected) = (run(Isa::Baseline), run(isa));
                    assert!(
                        baseline.iter().zip(&detected).all(|(&a, &b)| same(a, b)),
                        "{} into {}, {how:?}, padding {padding:?}: {isa:?} differs from the baseline",
                        G::DTYPE,
                        T::DTYPE
                    );
                    assert_ne!(baseline, old, "the scatter wrote nothing");
                }
            }
        }
    }
}

#[test]
fn the_avx2_build_gives_the_baseline_bits() {
    #[cfg(target_arch = "x86_64")]
    assert_eq!(
        matches!(Isa::detect(), Isa::Avx2(_)),
        std::arch::is_x86_feature_detected!("avx2"),
        "the dispatch takes the AVX2 build exactly when the CPU has AVX2"
    );
    both_builds_agree::<f32, f32>();
    both_builds_agree::<f64, f64>();
    both_builds_agree::<f16, f32>();
    both_builds_agree::<bf16, f32>();
    both_builds_agree::<bf16, bf16>();
    both_builds_agree::<f16, f16>();
}

/// Flushing a repeated id's rows `FLUSH` at a time gives the bits of one running sum per
/// element in position order: ids with one token less than a flush, a flush, one more,
/// two flushes and two plus one, over rows of whole column chunks and a tail.
fn flushes_give_the_running_sum<G: Element, T: Element>(grad_sum: GradSum) {
    let n_embd = 64 + 67;
    let counts = [FLUSH - 1, FLUSH, FLUSH + 1, 2 * FLUSH, 2 * FLUSH + 1];
    let mut ids: Vec<u32> = (0u32..)
        .zip(counts)
        .flat_map(|(id, c)| std::iter::repeat_n(id, c))
        .collect();
    shuffle(&mut ids, 11u64);
    let grad: Vec<G> = (0..ids.len() * n_embd)
        .map(|i| G::from_f64_lossy(((i * 7919) % 1013) as f64 / 7.0 - 70.0 + 1e-3 / 3.0))
        .collect();
    let old: Vec<T> = (0..counts.len() * n_embd)
        .map(|i| T::from_f64_lossy(((i * 104_729) % 777) as f64 / 13.0 - 30.0))
        .collect();
    let groups = RowGroups::new(&ids, None).unwrap();
    for scale in [false, true] {
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            let how = RowSum {
                grad_sum,
                scale_grad_by_freq: scale,
                accumulate,
            };
            let mut dst = old.clone();
            let rows = counts.len();
            Scatter::plan::<G, T>(&groups, grad.len(), n_embd, rows, Layout::Dense, how)
                .unwrap()
                .run(&groups, &grad, &mut dst);
            let add = accumulate == Accumulate::Add;
            for (id, &count) in counts.iter().enumerate() {
                for j in 0..n_embd {
                    let o = old[id * n_embd + j];
                    let xs = ids.iter().enumerate().filter(|&(_, &i)| i as usize == id);
                    let xs = xs.map(|(p, _)| grad[p * n_embd + j]);
                    let expected = if grad_sum == GradSum::F32 {
                        let term = 1.0f32 / count as f32;
                        let start = if add { o.as_f32() } else { 0.0 };
                        let s = xs.fold(start, |s, x| {
                            if scale {
                                s + x.as_f32() * term
                            } else {
                                s + x.as_f32()
                            }
                        });
                        T::from_f32_lossy(s)
                    } else {
                        let s = xs.fold(0.0f64, |s, x| s + x.as_f64());
                        let s = if scale { s / count as f64 } else { s };
                        T::from_f64_lossy(if add { o.as_f64() + s } else { s })
                    };
                    let got = dst[id * n_embd + j];
                    assert!(
                        same(got, expected),
                        "{} into {}, {how:?}: id {id} ({count} tokens), column {j}: {got:?}, the running sum {expected:?}",
                        G::DTYPE,
                        T::DTYPE
                    );
                }
            }
        }
    }
}

#[test]
fn flushes_give_the_running_sum_in_every_mode() {
    flushes_give_the_running_sum::<f32, f32>(GradSum::F64);
    flushes_give_the_running_sum::<bf16, bf16>(GradSum::F64);
    flushes_give_the_running_sum::<f16, f32>(GradSum::F64);
    flushes_give_the_running_sum::<bf16, bf16>(GradSum::F32);
    flushes_give_the_running_sum::<f16, f16>(GradSum::F32);
}

#[test]
fn the_scatters_own_memory_is_a_typed_error_when_it_cannot_be_had() {
    let err = try_with_capacity::<Mark>(usize::MAX / 4, "embedding backward (grouping the ids)")
        .unwrap_err();
    let EmbeddingError::Tensor(TensorError::AllocationFailed { op, bytes }) = err else {
        panic!("{err}");
    };
    assert_eq!(op, "embedding backward (grouping the ids)");
    assert_eq!(bytes, usize::MAX);
    // Room, not length: the marks of a task are filled in its pass.
    let marks = try_with_capacity::<Mark>(3, "marks").unwrap();
    assert!(marks.is_empty() && marks.capacity() >= 3);
}

#[test]
fn groups_and_marks_are_planned_for_every_task() {
    let ids = [5u32, 1, 5, 5, 9, 1];
    let groups = RowGroups::new(&ids, Some(9)).unwrap();
    assert_eq!(groups.ids().collect::<Vec<_>>(), [1, 5]);
    let scatter = Scatter::plan::<f32, f32>(
        &groups,
        ids.len() * 4,
        4,
        10,
        Layout::Dense,
        RowSum::of(&EmbeddingOptions::default(), Accumulate::Replace),
    )
    .unwrap();
    let planned: usize = scatter.marks.iter().map(Vec::capacity).sum();
    assert!(
        planned >= groups.groups.len(),
        "{planned} marks for 2 groups"
    );
}

/// Splitting a scatter into more tasks for its hot memory changes where each row is
/// computed, never its bits: one task per thread and one row per task give the same
/// gradient, with the `f64` sum (`Mode::Exact`) and the `f32` one (`Mode::Direct`),
/// replacing and adding.
#[test]
fn the_hot_memory_split_keeps_the_bits() {
    let (n_embd, n_rows) = (40, 50);
    // Ten ids with 2 × FLUSH + 3 tokens, ten with 2, the rest single.
    let mut ids: Vec<u32> = (0u32..10)
        .flat_map(|id| std::iter::repeat_n(id * 5, 2 * FLUSH + 3))
        .chain((0u32..10).flat_map(|id| [id * 5 + 1, id * 5 + 1]))
        .chain((0u32..10).map(|id| id * 5 + 2))
        .collect();
    shuffle(&mut ids, 5);
    let grad: Vec<f32> = patterns(ids.len() * n_embd)[..ids.len() * n_embd].to_vec();
    let old: Vec<f32> = patterns(n_rows * n_embd)[..n_rows * n_embd].to_vec();
    let groups = RowGroups::new(&ids, None).unwrap();
    for grad_sum in [GradSum::F64, GradSum::F32] {
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            let how = RowSum {
                grad_sum,
                scale_grad_by_freq: false,
                accumulate,
            };
            let run = |budget: usize| {
                let mut scatter = Scatter::plan_split::<f32, f32>(
                    &groups,
                    grad.len(),
                    n_embd,
                    n_rows,
                    Layout::Dense,
                    how,
                    budget,
                )
                .unwrap();
                let n_tasks = scatter.tasks.len();
                let mut dst = old.clone();
                scatter.run(&groups, &grad, &mut dst);
                (dst, n_tasks)
            };
            let (whole, few) = run(usize::MAX);
            let (split, many) = run(1);
            assert!(many > few && many >= 10, "{few} tasks, then {many}");
            assert!(
                whole.iter().zip(&split).all(|(&a, &b)| same(a, b)),
                "{grad_sum:?}, {accumulate:?}: the split changed the bits"
            );
        }
    }
}

/// A replaced dense gradient of at least [`STREAM_ROWS_MIN_BYTES`] writes its single-token
/// rows with non-temporal stores: the same bits as the ordinary stores, with rows at
/// every offset from a 32-byte boundary (`n_embd` odd), next to repeated ids and gaps,
/// in `f32` and `f64` (streamed) and `bf16` (not streamed, same rule).
fn streamed_rows_keep_the_bits<T: Element>() {
    let n_embd = 4099;
    let row_bytes = n_embd * std::mem::size_of::<T>();
    let n_rows = STREAM_ROWS_MIN_BYTES.div_ceil(row_bytes);
    // Single tokens on rows 0..40 and at the end, id 3 four times, id 40 twenty times.
    let mut ids: Vec<u32> = (0u32..40).chain([n_rows as u32 - 1]).collect();
    ids.extend([3, 3, 3].into_iter().chain(std::iter::repeat_n(40, 20)));
    shuffle(&mut ids, 11);
    let grad: Vec<T> = patterns(ids.len() * n_embd)[..ids.len() * n_embd].to_vec();
    let groups = RowGroups::new(&ids, None).unwrap();
    for grad_sum in [GradSum::F64, GradSum::F32] {
        let how = RowSum {
            grad_sum,
            scale_grad_by_freq: false,
            accumulate: Accumulate::Replace,
        };
        let plan = |n_rows: usize| {
            Scatter::plan::<T, T>(&groups, grad.len(), n_embd, n_rows, Layout::Dense, how).unwrap()
        };
        assert!(!plan(n_rows - 1).stream_rows, "below the threshold");
        let run = |stream_rows: bool| {
            let mut scatter = plan(n_rows);
            assert!(scatter.stream_rows);
            scatter.stream_rows = stream_rows;
            let mut dst = vec![T::from_f32_lossy(7.5); n_rows * n_embd];
            scatter.run(&groups, &grad, &mut dst);
            dst
        };
        let (streamed, stored) = (run(true), run(false));
        assert!(
            streamed.iter().zip(&stored).all(|(&a, &b)| same(a, b)),
            "{} {grad_sum:?}: streaming the rows changed the bits",
            T::DTYPE
        );
        let touched = |dst: &[T], id: usize| dst[id * n_embd..(id + 1) * n_embd].to_vec();
        assert!(touched(&streamed, 41).iter().all(|&x| x.to_bits64() == 0));
        assert!(same(
            touched(&streamed, 7)[5],
            T::zero() + grad[ids.iter().position(|&id| id == 7).unwrap() * n_embd + 5]
        ));
    }
    let add = RowSum {
        grad_sum: GradSum::F64,
        scale_grad_by_freq: false,
        accumulate: Accumulate::Add,
    };
    let scatter =
        Scatter::plan::<T, T>(&groups, grad.len(), n_embd, n_rows, Layout::Dense, add).unwrap();
    assert!(
        !scatter.stream_rows,
        "an accumulated gradient is read: never streamed"
    );
}

#[test]
fn streamed_rows_keep_the_bits_in_every_dtype() {
    streamed_rows_keep_the_bits::<f32>();
    streamed_rows_keep_the_bits::<f64>();
    streamed_rows_keep_the_bits::<bf16>();
}
