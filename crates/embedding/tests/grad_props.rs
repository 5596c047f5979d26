//! Property tests of the embedding backward, the padding row, frozen tables, and a
//! finite-difference check of the tied head in f64.

use proptest::prelude::*;
use tokenloom_embedding::{
    AdamW, Embedding, EmbeddingAndHead, EmbeddingConfig, EmbeddingError, EmbeddingOptions, GradSum,
    Init, Sgd, TieOptions,
};
use tokenloom_tensor::{Accumulate, Tensor, TensorView};

/// A table, ids of shape (batch, seq_len) with repeats, a grad_output and options.
fn case() -> impl Strategy<Value = (Embedding<f64>, Tensor<u32>, Tensor<f64>)> {
    (
        1usize..40,
        1usize..8,
        1usize..4,
        1usize..10,
        any::<u64>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(
            |(vocab_size, n_embd, batch, seq_len, seed, padded, scale)| {
                let max_id = u32::try_from(vocab_size - 1).unwrap();
                (
                    prop::collection::vec(
                        prop_oneof![Just(0u32), Just(max_id), 0..=max_id],
                        batch * seq_len,
                    ),
                    prop::collection::vec(-4.0f64..4.0, batch * seq_len * n_embd),
                    0..vocab_size,
                )
                    .prop_map(move |(ids, grad, pad)| {
                        let options = EmbeddingOptions {
                            padding_idx: padded.then_some(pad),
                            max_norm: None,
                            scale_grad_by_freq: scale,
                            ..EmbeddingOptions::default()
                        };
                        let table = Embedding::seeded(vocab_size, n_embd, Init::default(), seed)
                            .unwrap()
                            .with_options(options)
                            .unwrap();
                        (
                            table,
                            Tensor::from_vec(ids, &[batch, seq_len]).unwrap(),
                            Tensor::from_vec(grad, &[batch, seq_len, n_embd]).unwrap(),
                        )
                    })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(96)))]

    /// Each row of the dense gradient is the sum of the grad_output rows of its id
    /// (divided by the count with scale_grad_by_freq); the padding row is exactly zero.
    #[test]
    fn dense_rows_are_grouped_sums((table, ids, grad) in case()) {
        let dense = table.backward_dense(&ids, grad.view()).unwrap();
        let n_embd = table.n_embd();
        for row in 0..table.vocab_size() {
            let occurrences: Vec<usize> = ids.as_slice().iter().enumerate().filter(|(_, id)| **id as usize == row).map(|(i, _)| i).collect();
            let got = dense.row(row).unwrap();
            if table.options().padding_idx == Some(row) || occurrences.is_empty() {
                prop_assert!(got.iter().all(|&g| g == 0.0), "row {row} should be zero");
                continue;
            }
            for (j, &g) in got.iter().enumerate() {
                let mut want: f64 = occurrences.iter().map(|&i| grad.as_slice()[i * n_embd + j]).sum();
                if table.options().scale_grad_by_freq {
                    want /= occurrences.len() as f64;
                }
                prop_assert!((g - want).abs() <= 1e-12, "row {row}, col {j}: {g} vs {want}");
            }
        }
        // Row sums of the gradient add up to the total of grad_output, minus the padding rows.
        if !table.options().scale_grad_by_freq {
            let pad = table.options().padding_idx.map(|p| p as u32);
            let want: f64 = grad.rows().zip(ids.as_slice()).filter(|(_, id)| Some(**id) != pad).map(|(r, _)| r.iter().sum::<f64>()).sum();
            let got: f64 = dense.as_slice().iter().sum();
            prop_assert!((got - want).abs() <= 1e-9 * (1.0 + want.abs()));
        }
    }

    /// Sparse and dense gradients agree exactly; the sparse rows are sorted and distinct
    /// and exclude the padding row; accumulation adds exactly.
    #[test]
    fn sparse_and_dense_agree((table, ids, grad) in case()) {
        let dense = table.backward_dense(&ids, grad.view()).unwrap();
        let sparse = table.backward_sparse(&ids, grad.view()).unwrap();
        prop_assert_eq!(sparse.to_dense().unwrap(), dense.clone());
        prop_assert!(sparse.rows().windows(2).all(|w| w[0] < w[1]));
        if let Some(p) = table.options().padding_idx {
            prop_assert!(!sparse.rows().contains(&(p as u32)));
        }
        // Replace into a dirty buffer overwrites it; Add twice doubles.
        let mut buf = Tensor::from_vec(vec![7.0; dense.as_slice().len()], dense.dims()).unwrap();
        table.backward_dense_into(&ids, grad.view(), buf.view_mut(), Accumulate::Replace).unwrap();
        prop_assert_eq!(&buf, &dense);
        table.backward_dense_into(&ids, grad.view(), buf.view_mut(), Accumulate::Add).unwrap();
        prop_assert!(buf.as_slice().iter().zip(dense.as_slice()).all(|(b, d)| *b == 2.0 * d));
        // Same inputs, same bits.
        prop_assert_eq!(table.backward_dense(&ids, grad.view()).unwrap(), dense);
    }

    /// Optimizer steps never move the padding row, and never touch a frozen table.
    #[test]
    fn padding_and_frozen_rows_never_change((table, ids, grad) in case(), lr in 0.001f64..1.0) {
        let dense = table.backward_dense(&ids, grad.view()).unwrap();
        let sparse = table.backward_sparse(&ids, grad.view()).unwrap();
        let mut trained = table.clone();
        trained.step_dense(&mut AdamW::new(lr), dense.view()).unwrap();
        trained.step_sparse(&mut Sgd::new(lr).with_momentum(0.9), &sparse).unwrap();
        if let Some(p) = table.options().padding_idx {
            prop_assert_eq!(trained.row(p as u32).unwrap(), table.row(p as u32).unwrap());
        }
        // Sparse steps leave untouched rows alone.
        let mut lazy = table.clone();
        lazy.step_sparse(&mut AdamW::new(lr), &sparse).unwrap();
        for row in 0..table.vocab_size() as u32 {
            if !sparse.rows().contains(&row) {
                prop_assert_eq!(lazy.row(row).unwrap(), table.row(row).unwrap());
            }
        }
        let mut frozen = Embedding::from_pretrained(table.weight().clone(), true).unwrap();
        let before = frozen.clone();
        let frozen_dense = frozen.step_dense(&mut Sgd::new(lr), dense.view());
        prop_assert!(matches!(frozen_dense, Err(EmbeddingError::Frozen { .. })), "{:?}", frozen_dense);
        let frozen_sparse = frozen.step_sparse(&mut AdamW::new(lr), &sparse);
        prop_assert!(matches!(frozen_sparse, Err(EmbeddingError::Frozen { .. })), "{:?}", frozen_sparse);
        prop_assert!(frozen.weight_data_mut().is_err());
        prop_assert_eq!(frozen, before);
    }
}

/// Central finite differences of `loss(E) = Σ G ⊙ (s · E[ids] @ Eᵀ)`, where `E` is used
/// both by the lookup and by the tied head, against the analytic gradient
/// (lookup part + projection part, in one buffer).
#[test]
fn tied_head_gradient_matches_finite_differences() {
    let (vocab_size, n_embd) = (7, 5);
    let ids = Tensor::from_vec(vec![1u32, 3, 3, 0, 6, 2], &[2, 3]).unwrap();
    let g: Vec<f64> = (0..6 * vocab_size)
        .map(|i| ((i * 7919) % 13) as f64 / 6.5 - 1.0)
        .collect();
    let g = Tensor::from_vec(g, &[2, 3, vocab_size]).unwrap();
    for padding_idx in [None, Some(3)] {
        let table = EmbeddingConfig::new(vocab_size, n_embd)
            .with_init(Init::normal(0.5))
            .init_seeded::<f64>(11)
            .unwrap();
        let table = table
            .with_options(EmbeddingOptions {
                padding_idx,
                ..EmbeddingOptions::default()
            })
            .unwrap();
        let options = TieOptions::scaled_for(n_embd);
        let loss = |weight: &Tensor<f64>| -> f64 {
            let t = Embedding::from_weight(weight.clone()).unwrap();
            let model = EmbeddingAndHead::tied(t, options).unwrap();
            let x = model.lookup(&ids).unwrap();
            let logits = model.logits(x.view()).unwrap();
            logits
                .as_slice()
                .iter()
                .zip(g.as_slice())
                .map(|(a, b)| a * b)
                .sum()
        };
        let model = EmbeddingAndHead::tied(table.clone(), options).unwrap();
        let x = model.lookup(&ids).unwrap();
        let mut grads = model.zero_grads().unwrap();
        let grad_x = model
            .backward_logits(x.view(), g.view(), &mut grads)
            .unwrap();
        model
            .backward_lookup(&ids, grad_x.view(), &mut grads)
            .unwrap();

        let eps = 1e-6;
        for i in 0..vocab_size * n_embd {
            let mut plus = table.weight().clone();
            plus.as_mut_slice()[i] += eps;
            let mut minus = table.weight().clone();
            minus.as_mut_slice()[i] -= eps;
            let mut fd = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            // PyTorch semantics: the padding row gets no gradient through the lookup, but
            // still through the projection. Remove the lookup path's share for that row.
            if padding_idx == Some(i / n_embd) {
                let through_lookup: f64 = ids
                    .as_slice()
                    .iter()
                    .enumerate()
                    .filter(|(_, id)| **id as usize == i / n_embd)
                    .map(|(t, _)| grad_x.as_slice()[t * n_embd + i % n_embd])
                    .sum();
                fd -= through_lookup;
            }
            let got = grads.embedding.as_slice()[i];
            assert!(
                (got - fd).abs() <= 1e-7 * (1.0 + fd.abs()),
                "element {i} (padding {padding_idx:?}): {got} vs {fd}"
            );
        }
    }
}

/// The lookup's own gradient, against finite differences of `Σ G ⊙ E[ids]` with
/// `scale_grad_by_freq` (the only option that changes its value).
#[test]
fn lookup_gradient_matches_finite_differences() {
    let ids = Tensor::from_vec(vec![2u32, 2, 0, 2, 1], &[5]).unwrap();
    let table = EmbeddingConfig::new(4, 3)
        .with_scale_grad_by_freq(true)
        .init_seeded::<f64>(3)
        .unwrap();
    let g = Tensor::from_vec((0..15).map(|i| f64::from(i) * 0.1 - 0.7).collect(), &[5, 3]).unwrap();
    let grad = table.backward_dense(&ids, g.view()).unwrap();
    // Σ G ⊙ E[ids] is linear: its derivative w.r.t. E[r][j] is Σ_{t: id_t = r} G[t][j],
    // which scale_grad_by_freq divides by the count of r.
    let counts = [1.0, 1.0, 3.0, 0.0];
    for (r, &count) in counts.iter().enumerate() {
        for j in 0..3 {
            let mut fd = 0.0;
            let eps = 1e-3;
            for sign in [1.0, -1.0] {
                let mut w = table.weight().clone();
                w.as_mut_slice()[r * 3 + j] += sign * eps;
                let t = Embedding::from_weight(w).unwrap();
                let out = t.forward(&ids).unwrap();
                fd += sign
                    * out
                        .as_slice()
                        .iter()
                        .zip(g.as_slice())
                        .map(|(a, b)| a * b)
                        .sum::<f64>();
            }
            fd /= 2.0 * eps;
            let want = if count > 0.0 { fd / count } else { 0.0 };
            let got = grad.as_slice()[r * 3 + j];
            assert!((got - want).abs() < 1e-9, "({r}, {j}): {got} vs {want}");
        }
    }
}

#[test]
fn tying_an_unscaled_normal_table_is_refused_with_the_numbers() {
    let table = Embedding::<f32>::seeded(1000, 256, Init::default(), 0).unwrap();
    let err = EmbeddingAndHead::tied(table.clone(), TieOptions::default()).unwrap_err();
    let EmbeddingError::LogitStdTooLarge {
        expected_logit_std, ..
    } = err
    else {
        panic!("expected LogitStdTooLarge, got {err:?}")
    };
    assert!(
        (expected_logit_std - 16.0).abs() < 0.5,
        "√256 · 1 · 1 = 16, got {expected_logit_std}"
    );
    // The safe scale, a small init, or an explicit higher limit are accepted.
    assert!(EmbeddingAndHead::tied(table.clone(), TieOptions::scaled_for(256)).is_ok());
    let small = Embedding::<f32>::seeded(1000, 256, Init::normal(0.02), 0).unwrap();
    let model = EmbeddingAndHead::tied(small, TieOptions::default()).unwrap();
    assert!(model.expected_initial_logit_std(1.0).expected_logit_std < 0.5);
    let options = TieOptions {
        max_initial_logit_std: 20.0,
        ..TieOptions::default()
    };
    assert!(EmbeddingAndHead::tied(table, options).is_ok());
}

#[test]
fn gradient_buffers_must_match_the_model() {
    let table = Embedding::<f64>::seeded(5, 3, Init::normal(0.1), 0).unwrap();
    let untied = EmbeddingAndHead::untied(table.clone(), table.weight().clone()).unwrap();
    let tied = EmbeddingAndHead::tied(table, TieOptions::default()).unwrap();
    let h = Tensor::from_vec(vec![0.5; 6], &[2, 3]).unwrap();
    let g = Tensor::from_vec(vec![0.1; 10], &[2, 5]).unwrap();
    let mut tied_grads = tied.zero_grads().unwrap();
    assert!(matches!(
        untied.backward_logits(h.view(), g.view(), &mut tied_grads),
        Err(EmbeddingError::GradientsMismatch { tied: false })
    ));
    let wrong = Tensor::from_vec(vec![0.1; 6], &[2, 3]).unwrap();
    assert!(matches!(
        tied.backward_logits(h.view(), wrong.view(), &mut tied_grads),
        Err(EmbeddingError::GradShape {
            what: "grad_logits",
            ..
        })
    ));
    assert!(matches!(
        tied.logits(TensorView::new(&[1.0; 4], &[2, 2]).unwrap()),
        Err(EmbeddingError::GradShape {
            what: "hidden states",
            ..
        })
    ));
    let mut opt = AdamW::new(0.1);
    let mut untied2 = untied.clone();
    let untied_grads = untied.zero_grads().unwrap();
    untied2.step(&mut opt, &untied_grads).unwrap();
    // One optimizer per model: its state has 2 · 15 entries now.
    let mut tied2 = tied.clone();
    assert!(matches!(
        tied2.step(&mut opt, &tied_grads),
        Err(EmbeddingError::OptimizerStateMismatch {
            state_len: 30,
            n_params: 15
        })
    ));
}

/// `(vocab_size, n_embd, ids, grad_output, starting gradient, padding_idx,
/// scale_grad_by_freq)`.
type F32Case = (
    usize,
    usize,
    Vec<u32>,
    Vec<f32>,
    Vec<f32>,
    Option<usize>,
    bool,
);

/// f32 ids-with-repeats cases for the two summation modes.
fn f32_case() -> impl Strategy<Value = F32Case> {
    (
        1usize..12,
        1usize..9,
        1usize..40,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(|(vocab_size, n_embd, n, padded, scale)| {
            let max_id = u32::try_from(vocab_size - 1).unwrap();
            (
                Just(vocab_size),
                Just(n_embd),
                prop::collection::vec(0..=max_id, n),
                // Values that round differently in f32 and f64 sums, and signed zeros.
                prop::collection::vec(
                    prop_oneof![Just(-0.0f32), Just(0.0f32), -1e4f32..1e4, -1e-3f32..1e-3],
                    n * n_embd,
                ),
                prop::collection::vec(-4.0f32..4.0, vocab_size * n_embd),
                (0..vocab_size).prop_map(move |p| padded.then_some(p)),
                Just(scale),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(256)))]

    /// `GradSum::F32` gives the plain loop's bits (memset, then `grad[id] += g`, times
    /// `1 / count` in f32 with scale_grad_by_freq — PyTorch's CPU arithmetic), replacing
    /// and adding; `GradSum::F64` gives each row's f64 sum in position order, rounded
    /// once (then added in f64 when accumulating). Dense and sparse alike.
    #[test]
    fn f32_sum_is_the_plain_loop_and_f64_sum_rounds_once(
        (vocab_size, n_embd, ids, grad, start, padding_idx, scale) in f32_case()
    ) {
        let n = ids.len();
        let count = |id: u32| ids.iter().filter(|&&i| i == id).count();
        for accumulate in [Accumulate::Replace, Accumulate::Add] {
            // The plain loop.
            let mut plain = match accumulate {
                Accumulate::Replace => vec![0.0f32; vocab_size * n_embd],
                Accumulate::Add => start.clone(),
            };
            for (i, &id) in ids.iter().enumerate() {
                if Some(id as usize) == padding_idx {
                    continue;
                }
                let term = if scale { 1.0f32 / count(id) as f32 } else { 1.0 };
                for j in 0..n_embd {
                    let g = grad[i * n_embd + j];
                    let o = &mut plain[id as usize * n_embd + j];
                    *o += if scale { g * term } else { g };
                }
            }
            // The f64 sums.
            let mut exact = match accumulate {
                Accumulate::Replace => vec![0.0f32; vocab_size * n_embd],
                Accumulate::Add => start.clone(),
            };
            for id in 0..vocab_size as u32 {
                if Some(id as usize) == padding_idx || count(id) == 0 {
                    continue;
                }
                for j in 0..n_embd {
                    let mut s = 0.0f64;
                    for (i, _) in ids.iter().enumerate().filter(|&(_, &x)| x == id) {
                        s += f64::from(grad[i * n_embd + j]);
                    }
                    if scale {
                        s /= count(id) as f64;
                    }
                    let o = &mut exact[id as usize * n_embd + j];
                    *o = match accumulate {
                        Accumulate::Replace => s as f32,
                        Accumulate::Add => (f64::from(*o) + s) as f32,
                    };
                }
            }
            for (grad_sum, want) in [(GradSum::F32, &plain), (GradSum::F64, &exact)] {
                let options = EmbeddingOptions { padding_idx, scale_grad_by_freq: scale, grad_sum, ..EmbeddingOptions::default() };
                let mut got = match accumulate {
                    Accumulate::Replace => vec![7.0f32; vocab_size * n_embd],
                    Accumulate::Add => start.clone(),
                };
                tokenloom_embedding::functional::backward_dense(
                    &ids[..],
                    (&grad[..], [n, n_embd]),
                    (&mut got[..], [vocab_size, n_embd]),
                    &options,
                    accumulate,
                )
                .unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                prop_assert_eq!(bits(&got), bits(want), "{:?} {:?}", grad_sum, accumulate);
                if accumulate == Accumulate::Replace {
                    let mut sparse = tokenloom_embedding::SparseGrad::new();
                    tokenloom_embedding::functional::backward_sparse(&ids[..], (&grad[..], [n, n_embd]), vocab_size, &options, &mut sparse).unwrap();
                    prop_assert_eq!(bits(sparse.to_dense().unwrap().as_slice()), bits(want), "sparse {:?}", grad_sum);
                }
            }
        }
    }
}
