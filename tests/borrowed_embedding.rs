//! The embedding's borrowed layer: on memory the caller owns, with `u32`, `i32` and `i64`
//! ids, it gives the owned types' results bit for bit, and its errors name the numbers.

use proptest::prelude::*;
use tokenloom::embedding::{
    AdamW, Embedding, EmbeddingAndHead, EmbeddingError, EmbeddingOptions, Init, SparseGrad,
    TieOptions, functional,
};
use tokenloom::tensor::{Accumulate, Tensor};

/// A table, ids `(batch, seq_len)` and an upstream gradient.
fn case() -> impl Strategy<Value = (Embedding<f32>, Vec<u32>, [usize; 2], Vec<f32>)> {
    (1usize..40, 1usize..9, 1usize..4, 1usize..7, any::<u64>()).prop_flat_map(
        |(vocab_size, n_embd, batch, seq_len, seed)| {
            let table =
                Embedding::<f32>::seeded(vocab_size, n_embd, Init::default(), seed).unwrap();
            let len = batch * seq_len;
            (
                Just(table),
                prop::collection::vec(0..u32::try_from(vocab_size).unwrap(), len),
                Just([batch, seq_len]),
                prop::collection::vec(-2.0f32..2.0, len * n_embd),
            )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    /// u32, i32 and i64 ids on the caller's buffer give the owned lookup's bits, and the
    /// dense and sparse backward on the caller's gradient buffer give the owned ones'.
    #[test]
    fn borrowed_equals_owned((table, ids, dims, grad_output) in case(), padding in any::<bool>()) {
        let table = if padding {
            table.with_options(EmbeddingOptions { padding_idx: Some(0), scale_grad_by_freq: true, ..EmbeddingOptions::default() }).unwrap()
        } else {
            table
        };
        let (vocab_size, n_embd) = (table.vocab_size(), table.n_embd());
        let ids_u32 = Tensor::from_vec(ids.clone(), &dims).unwrap();
        let ids_i32: Vec<i32> = ids.iter().map(|&i| i32::try_from(i).unwrap()).collect();
        let ids_i64: Vec<i64> = ids.iter().map(|&i| i64::from(i)).collect();
        let weight: Vec<f32> = table.weight().as_slice().to_vec(); // "the framework's" table
        let owned = table.forward(&ids_u32).unwrap();
        let out_dims = [dims[0], dims[1], n_embd];
        for got in [
            functional::lookup((&weight[..], [vocab_size, n_embd]), (&ids_i32[..], dims), None).unwrap(),
            functional::lookup((&weight[..], [vocab_size, n_embd]), (&ids_i64[..], dims), None).unwrap(),
        ] {
            prop_assert_eq!(&got, &owned);
        }
        let mut out = vec![0.0f32; owned.as_slice().len()];
        functional::lookup_into((&weight[..], [vocab_size, n_embd]), (&ids_i64[..], dims), (&mut out[..], out_dims), None).unwrap();
        prop_assert_eq!(&out[..], owned.as_slice());

        let g = Tensor::from_vec(grad_output.clone(), &out_dims).unwrap();
        let owned_grad = table.backward_dense(&ids_u32, &g).unwrap();
        let mut grad_weight = vec![f32::NAN; vocab_size * n_embd];
        functional::backward_dense((&ids_i64[..], dims), &g, (&mut grad_weight[..], [vocab_size, n_embd]), table.options(), Accumulate::Replace).unwrap();
        prop_assert_eq!(&grad_weight[..], owned_grad.as_slice());
        let mut sparse = SparseGrad::new();
        functional::backward_sparse((&ids_i32[..], dims), &g, vocab_size, table.options(), &mut sparse).unwrap();
        prop_assert_eq!(&sparse, &table.backward_sparse(&ids_u32, &g).unwrap());

        // The same sparse gradient in the caller's buffers (capacity: one row per id),
        // the rest of the buffers untouched.
        let capacity = ids.len();
        let mut rows = vec![u32::MAX; capacity];
        let mut values = vec![f32::NAN; capacity * n_embd];
        let n = functional::backward_sparse_into((&ids_i64[..], dims), &g, vocab_size, table.options(), &mut rows, (&mut values[..], [capacity, n_embd])).unwrap();
        prop_assert_eq!(&rows[..n], sparse.rows());
        prop_assert_eq!(&values[..n * n_embd], sparse.values().as_slice());
        prop_assert!(rows[n..].iter().all(|&r| r == u32::MAX));
        prop_assert!(values[n * n_embd..].iter().all(|v| v.is_nan()));
        if n > 1 {
            let err = functional::backward_sparse_into((&ids_i64[..], dims), &g, vocab_size, table.options(), &mut rows[..n - 1], (&mut values[..], [capacity, n_embd])).unwrap_err();
            prop_assert!(matches!(err, EmbeddingError::SparseCapacity { .. }), "{}", err);
        }

        // AdamW with its moments in the caller's buffers steps as the owning AdamW,
        // from the caller's sparse rows as from a SparseGrad, over two steps.
        let mut own_weight = weight.clone();
        let mut own = AdamW::new(1e-2).with_weight_decay(0.1);
        let (mut m, mut v) = (vec![0.0f32; weight.len()], vec![0.0f32; weight.len()]);
        let mut caller_weight = weight.clone();
        let mut steps = 0;
        for _ in 0..2 {
            functional::step_sparse(&mut own, (&mut own_weight[..], [vocab_size, n_embd]), &sparse, table.options().padding_idx).unwrap();
            let mut borrowed = AdamW::with_state(1e-2, &mut m, &mut v, steps).with_weight_decay(0.1);
            functional::step_sparse_rows(&mut borrowed, (&mut caller_weight[..], [vocab_size, n_embd]), &rows[..n], (&values[..n * n_embd], [n, n_embd]), table.options().padding_idx).unwrap();
            steps = borrowed.steps();
        }
        prop_assert_eq!(steps, 2);
        prop_assert_eq!(&caller_weight, &own_weight);
    }
}

#[test]
fn negative_and_large_ids_name_batch_and_position() {
    let weight = [0.0f32; 12];
    for (ids, token) in [
        (&[0i64, 1, 2, -7][..], -7),
        (&[0i64, 1, 2, 40000][..], 40000),
    ] {
        assert_eq!(
            functional::lookup((&weight[..], [4, 3]), (ids, [2, 2]), None).unwrap_err(),
            EmbeddingError::TokenOutOfRange {
                token,
                batch: 1,
                position: 1,
                vocab_size: 4
            }
        );
    }
    let err = functional::lookup((&weight[..], [4, 3]), &[i32::MIN], None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token id -2147483648 at batch 0, position 0 is outside vocab_size 4"
    );
    // A table of the wrong rank, an output of the wrong shape: typed errors, no write.
    assert!(matches!(
        functional::lookup(&weight, &[0u32], None),
        Err(EmbeddingError::WeightShape { .. })
    ));
    let mut out = [9.0f32; 6];
    assert!(matches!(
        functional::lookup_into(
            (&weight[..], [4, 3]),
            &[0u32, 1],
            (&mut out[..], [3, 2]),
            None
        ),
        Err(EmbeddingError::OutputShape { .. })
    ));
    assert_eq!(out, [9.0; 6]);
    // The backward's padding row must be inside the gradient it writes.
    let mut grad = [0.0f32; 12];
    let options = EmbeddingOptions {
        padding_idx: Some(4),
        ..EmbeddingOptions::default()
    };
    assert!(matches!(
        functional::backward_dense(
            &[0u32],
            (&[1.0f32; 3][..], [1, 3]),
            (&mut grad[..], [4, 3]),
            &options,
            Accumulate::Add
        ),
        Err(EmbeddingError::PaddingIdxOutOfRange { .. })
    ));
}

/// Tied logits, their backward and an AdamW step on the caller's table equal what
/// `EmbeddingAndHead` and `Embedding::step_dense` compute on their own copy — for one row
/// (the decode dot-product path) and for many (the GEMM).
#[test]
fn logits_and_optimizer_steps_on_borrowed_parameters() {
    let (vocab_size, n_embd) = (50, 16);
    let table = Embedding::<f32>::seeded(vocab_size, n_embd, Init::normal(0.1), 3).unwrap();
    let model = EmbeddingAndHead::tied(table.clone(), TieOptions::scaled_for(n_embd)).unwrap();
    let scale = model.logit_scale();
    let weight = table.weight().as_slice().to_vec();
    let ptr = weight.as_ptr();
    for rows in [1usize, 12] {
        let hidden: Vec<f32> = (0..rows * n_embd)
            .map(|i| ((i * 7) % 11) as f32 / 5.0 - 1.0)
            .collect();
        let h = Tensor::from_vec(hidden.clone(), &[rows, n_embd]).unwrap();
        let want = model.logits(&h).unwrap();
        let got = functional::logits(&h, (&weight[..], [vocab_size, n_embd]), scale).unwrap();
        assert_eq!(got, want, "{rows} rows");

        let g = Tensor::from_vec(
            (0..rows * vocab_size)
                .map(|i| ((i * 3) % 7) as f32 - 3.0)
                .collect(),
            &[rows, vocab_size],
        )
        .unwrap();
        let mut grads = model.zero_grads().unwrap();
        let want_h = model.backward_logits(&h, &g, &mut grads).unwrap();
        let mut grad_weight = vec![0.0f32; vocab_size * n_embd];
        let mut grad_hidden = vec![0.0f32; rows * n_embd];
        functional::logits_backward(
            &h,
            (&weight[..], [vocab_size, n_embd]),
            &g,
            scale,
            (&mut grad_weight[..], [vocab_size, n_embd]),
            (&mut grad_hidden[..], [rows, n_embd]),
        )
        .unwrap();
        assert_eq!(&grad_hidden[..], want_h.as_slice());
        assert_eq!(&grad_weight[..], grads.embedding.as_slice());

        // One AdamW step on the caller's table, in place.
        let mut owned = table.clone();
        let mut opt_owned = AdamW::new(1e-2).with_weight_decay(0.1);
        owned.step_dense(&mut opt_owned, &grads.embedding).unwrap();
        let mut borrowed = table.weight().as_slice().to_vec();
        let mut opt = AdamW::new(1e-2).with_weight_decay(0.1);
        functional::step_dense(
            &mut opt,
            (&mut borrowed[..], [vocab_size, n_embd]),
            (&grad_weight[..], [vocab_size, n_embd]),
            None,
        )
        .unwrap();
        assert_eq!(&borrowed[..], owned.weight().as_slice());
    }
    assert_eq!(
        weight.as_ptr(),
        ptr,
        "the caller's table was never reallocated"
    );
}

#[test]
fn caller_state_of_the_wrong_size_and_bad_rows_are_errors() {
    use tokenloom::embedding::Sgd;
    let mut weight = vec![1.0f32; 8];
    let grad = [1.0f32; 8];
    let (mut m, mut v) = (vec![0.0f32; 7], vec![0.0f32; 8]);
    let mut adamw = AdamW::with_state(0.1, &mut m, &mut v, 0);
    let err = functional::step_dense(
        &mut adamw,
        (&mut weight[..], [4, 2]),
        (&grad[..], [4, 2]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::OptimizerStateMismatch {
                state_len: 7,
                n_params: 8
            }
        ),
        "{err}"
    );
    assert_eq!(weight, [1.0; 8], "nothing written on error");

    let mut velocity = vec![0.0f32; 8];
    let mut sgd = Sgd::with_velocity(0.5, 0.9, &mut velocity);
    let err = functional::step_sparse_rows(
        &mut sgd,
        (&mut weight[..], [4, 2]),
        &[4],
        (&grad[..2], [1, 2]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, EmbeddingError::SparseGradMismatch { .. }),
        "{err}"
    );
    let err = functional::step_sparse_rows(
        &mut sgd,
        (&mut weight[..], [4, 2]),
        &[1, 2],
        (&grad[..2], [1, 2]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, EmbeddingError::GradShape { what: "values", .. }),
        "{err}"
    );
    functional::step_sparse_rows(
        &mut sgd,
        (&mut weight[..], [4, 2]),
        &[1],
        (&grad[..2], [1, 2]),
        None,
    )
    .unwrap();
    assert_eq!(&weight[2..4], [0.5, 0.5]);
    assert_eq!(
        &velocity[2..4],
        [1.0, 1.0],
        "the velocity is in the caller's buffer"
    );
}
