//! The lookup matches `torch.nn.functional.embedding` on the reference vectors, exactly.

mod common;

use common::Case;
use tokenloom::embedding::{Embedding, EmbeddingError};
use tokenloom::tensor::Tensor;

fn forward_case_f64(name: &str) {
    let case = common::case(name);
    let (w_shape, weight) = case.tensor("inputs/weight");
    let (ids_shape, ids) = case.ids("inputs/ids");
    let (out_shape, want) = case.tensor("expected/output");
    let table = Embedding::from_weight(Tensor::from_vec(weight, &w_shape).unwrap()).unwrap();
    let ids = Tensor::from_vec(ids, &ids_shape).unwrap();
    let out = table.forward(&ids).unwrap();
    assert_eq!(out.dims(), &out_shape[..], "{name}: output shape");
    // tolerance 0: a lookup is an exact copy.
    assert_eq!(case.f64("tolerance/abs"), 0.0);
    assert_eq!(out.as_slice(), &want[..], "{name}: output");
}

#[test]
fn basic_lookup_matches_pytorch() {
    forward_case_f64("emb_fwd_basic_f64");
}

#[test]
fn odd_batch_with_repeated_ids_matches_pytorch() {
    forward_case_f64("emb_fwd_odd_batch_repeated_f64");
}

#[test]
fn padding_row_is_returned_as_stored() {
    // F.embedding returns a non-zero padding row unchanged; only nn.Embedding's init
    // zeroes it.
    forward_case_f64("emb_padding_idx_f64");
}

#[test]
fn float32_lookup_is_an_exact_copy() {
    let case = common::case("emb_fwd_bwd_f32");
    let (w_shape, weight) = case.tensor("inputs/weight");
    let (ids_shape, ids) = case.ids("inputs/ids");
    let (_, want) = case.tensor("expected/output");
    // f32 values stored as f64 cast back exactly.
    let weight: Vec<f32> = weight.iter().map(|&x| x as f32).collect();
    let table = Embedding::from_weight(Tensor::from_vec(weight, &w_shape).unwrap()).unwrap();
    let out = table
        .forward(&Tensor::from_vec(ids, &ids_shape).unwrap())
        .unwrap();
    let got: Vec<f64> = out.as_slice().iter().map(|&x| f64::from(x)).collect();
    assert_eq!(got, want);
}

#[test]
fn inputs_pytorch_rejects_are_typed_errors() {
    let case = common::case("emb_errors");
    let table = Embedding::<f64>::from_weight(Tensor::zeros(&[5, 3]).unwrap()).unwrap();
    let inputs: Vec<&str> = case
        .get("expected/cases")
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["input"].as_str().unwrap())
        .collect();
    assert!(inputs.contains(&"id == num_embeddings"));
    // id == num_embeddings: IndexError in PyTorch, a typed error here.
    assert_eq!(
        table.forward(&[0, 5]).unwrap_err(),
        EmbeddingError::TokenOutOfRange {
            token: 5,
            batch: 0,
            position: 1,
            vocab_size: 5
        }
    );
    // id < 0: PyTorch's i64 ids are read as they are, and a negative one is the same
    // typed error naming it, never a wrap-around read.
    assert_eq!(
        table.forward(&[0i64, 2, -1]).unwrap_err(),
        EmbeddingError::TokenOutOfRange {
            token: -1,
            batch: 0,
            position: 2,
            vocab_size: 5
        }
    );
    // So is a u32 id that started life as -1 (u32::MAX).
    assert!(matches!(
        table.forward(&[u32::MAX]),
        Err(EmbeddingError::TokenOutOfRange {
            token: 4_294_967_295,
            ..
        })
    ));
    // Float ids cannot be expressed: ids are u32, i32 or i64 by type.
}

use common::assert_close;
use tokenloom::embedding::{
    EmbeddingAndHead, EmbeddingOptions, GradSum, MaxNorm, NormType, TieOptions,
};
use tokenloom::tensor::TensorView;

/// Loads an embedding case as (table with the case's options, ids, grad_output).
fn load_case(case: &Case) -> (Embedding<f64>, Tensor<u32>, Tensor<f64>) {
    let (w_shape, weight) = case.tensor("inputs/weight");
    let (ids_shape, ids) = case.ids("inputs/ids");
    let (g_shape, grad_output) = case.tensor("inputs/grad_output");
    let config = case.get("config");
    let vocab_size = w_shape[0];
    let options = EmbeddingOptions {
        padding_idx: config["padding_idx"]
            .as_i64()
            .map(|p| EmbeddingOptions::resolve_padding_idx(p, vocab_size).unwrap()),
        max_norm: config["max_norm"].as_f64().map(|max_norm| MaxNorm {
            max_norm,
            norm_type: match &config["norm_type"] {
                serde_json::Value::String(s) if s == "inf" => NormType::Infinity,
                v => NormType::P(v.as_f64().unwrap()),
            },
        }),
        scale_grad_by_freq: config["scale_grad_by_freq"].as_bool().unwrap(),
        grad_sum: GradSum::F64,
    };
    let table = Embedding::from_weight(Tensor::from_vec(weight, &w_shape).unwrap())
        .unwrap()
        .with_options(options)
        .unwrap();
    (
        table,
        Tensor::from_vec(ids, &ids_shape).unwrap(),
        Tensor::from_vec(grad_output, &g_shape).unwrap(),
    )
}

fn backward_case_f64(name: &str, tol: f64) {
    let case = common::case(name);
    let (table, ids, grad_output) = load_case(&case);
    let (_, want) = case.tensor("expected/grad_weight");
    let dense = table.backward_dense(&ids, grad_output.view()).unwrap();
    assert_close(&format!("{name} grad_weight"), dense.as_slice(), &want, tol);
    // The sparse gradient holds the same numbers at the touched rows, and nothing else.
    let sparse = table.backward_sparse(&ids, grad_output.view()).unwrap();
    assert_eq!(sparse.to_dense().unwrap(), dense, "{name}: sparse vs dense");
}

#[test]
fn dense_backward_matches_pytorch() {
    // Summation in position order, as PyTorch: these are exact.
    backward_case_f64("emb_fwd_basic_f64", 0.0);
    backward_case_f64("emb_backward_dense_f64", 0.0);
    backward_case_f64("emb_fwd_odd_batch_repeated_f64", 1e-14);
}

#[test]
fn padding_row_gets_exactly_zero_gradient() {
    let case = common::case("emb_padding_idx_f64");
    backward_case_f64("emb_padding_idx_f64", 0.0);
    let (table, ids, grad_output) = load_case(&case);
    assert_eq!(table.options().padding_idx, Some(2));
    assert!(
        ids.as_slice().contains(&2),
        "the case looks the padding id up"
    );
    let dense = table.backward_dense(&ids, grad_output.view()).unwrap();
    assert!(dense.row(2).unwrap().iter().all(|&g| g == 0.0));
    let sparse = table.backward_sparse(&ids, grad_output.view()).unwrap();
    assert!(!sparse.rows().contains(&2));
}

#[test]
fn max_norm_matches_pytorch_as_an_explicit_step() {
    let case = common::case("emb_max_norm_l2_f64");
    let tol = case.f64("tolerance/abs");
    let (mut table, ids, grad_output) = load_case(&case);
    let before = table.weight().clone();
    // forward alone never modifies the table, yet returns PyTorch's output.
    let out = table.forward(&ids).unwrap();
    let (_, want_out) = case.tensor("expected/output");
    assert_close("output", out.as_slice(), &want_out, tol);
    assert_eq!(table.weight(), &before);
    // The explicit step reproduces PyTorch's in-place side effect.
    let renormed = table.renorm_in_place(&ids).unwrap();
    let want_rows: Vec<usize> = case
        .get("expected/renormed_rows")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(renormed, want_rows);
    let (_, want_weight) = case.tensor("expected/weight_after_forward");
    assert_close(
        "weight_after_forward",
        table.weight().as_slice(),
        &want_weight,
        tol,
    );
    // Row 8 is not referenced and stays as it was.
    assert_eq!(table.row(8).unwrap(), before.row(8).unwrap());
    // The gradient ignores the renorm (a plain index_add).
    let (_, want_grad) = case.tensor("expected/grad_weight");
    let grad = table.backward_dense(&ids, grad_output.view()).unwrap();
    assert_close("grad_weight", grad.as_slice(), &want_grad, tol);
    // Renormalising again changes nothing: norms are now just below max_norm.
    assert_eq!(table.renorm_in_place(&ids).unwrap(), Vec::<usize>::new());
}

#[test]
fn float32_gradient_within_the_stated_tolerance() {
    let case = common::case("emb_fwd_bwd_f32");
    let (w_shape, weight) = case.tensor("inputs/weight");
    let (ids_shape, ids) = case.ids("inputs/ids");
    let (g_shape, grad_output) = case.tensor("inputs/grad_output");
    let f32s = |xs: Vec<f64>| xs.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let table = Embedding::from_weight(Tensor::from_vec(f32s(weight), &w_shape).unwrap()).unwrap();
    let ids = Tensor::from_vec(ids, &ids_shape).unwrap();
    let grad_output = Tensor::from_vec(f32s(grad_output), &g_shape).unwrap();
    let grad = table.backward_dense(&ids, grad_output.view()).unwrap();
    let got: Vec<f64> = grad.as_slice().iter().map(|&x| f64::from(x)).collect();
    let (_, native) = case.tensor("expected/grad_weight");
    assert_close(
        "vs PyTorch f32",
        &got,
        &native,
        case.f64("tolerance/abs_grad_weight_vs_native"),
    );
    // Summing in f64 and rounding once: within one f32 rounding of the exact sum.
    let (_, exact) = case.tensor("expected_float64_from_same_inputs/grad_weight");
    for (g, e) in got.iter().zip(&exact) {
        assert!(
            (g - e).abs() <= e.abs() * f64::from(f32::EPSILON),
            "{g} vs {e}"
        );
    }
}

#[test]
fn tied_logits_and_gradients_match_pytorch() {
    let case = common::case("tied_logits_f64");
    let tol = case.f64("tolerance/abs");
    let (e_shape, e) = case.tensor("inputs/E");
    let (h_shape, h) = case.tensor("inputs/h");
    let (g_shape, g) = case.tensor("inputs/grad_logits");
    let table = Embedding::from_weight(Tensor::from_vec(e, &e_shape).unwrap()).unwrap();
    let options = TieOptions {
        max_initial_logit_std: 100.0,
        ..TieOptions::default()
    };
    let model = EmbeddingAndHead::tied(table, options).unwrap();
    let h = TensorView::new(&h, &h_shape).unwrap();
    let logits = model.logits(h).unwrap();
    let (l_shape, want) = case.tensor("expected/logits");
    assert_eq!(logits.dims(), &l_shape[..]);
    assert_close("logits", logits.as_slice(), &want, tol);
    let mut grads = model.zero_grads().unwrap();
    let grad_h = model
        .backward_logits(h, TensorView::new(&g, &g_shape).unwrap(), &mut grads)
        .unwrap();
    let (_, want_h) = case.tensor("expected/grad_h");
    assert_close("grad_h", grad_h.as_slice(), &want_h, tol);
    let (_, want_e) = case.tensor("expected/grad_E");
    assert_close("grad_E", grads.embedding.as_slice(), &want_e, tol);
    assert!(grads.head.is_none(), "tied: one parameter, one gradient");
}

#[test]
fn tied_round_trip_gradient_sums_both_uses() {
    let case = common::case("tied_roundtrip_grad_f64");
    let tol = case.f64("tolerance/abs");
    let (e_shape, e) = case.tensor("inputs/E");
    let (ids_shape, ids) = case.ids("inputs/ids");
    let (g_shape, g) = case.tensor("inputs/grad_logits");
    let table = Embedding::from_weight(Tensor::from_vec(e, &e_shape).unwrap())
        .unwrap()
        .with_options(EmbeddingOptions {
            padding_idx: Some(0),
            ..EmbeddingOptions::default()
        })
        .unwrap();
    let options = TieOptions {
        max_initial_logit_std: 100.0,
        ..TieOptions::default()
    };
    let model = EmbeddingAndHead::tied(table, options).unwrap();
    let ids = Tensor::from_vec(ids, &ids_shape).unwrap();
    let x = model.lookup(&ids).unwrap();
    let (_, want_x) = case.tensor("expected/x");
    assert_eq!(x.as_slice(), &want_x[..]);
    let logits = model.logits(x.view()).unwrap();
    let (_, want_logits) = case.tensor("expected/logits");
    assert_close("logits", logits.as_slice(), &want_logits, tol);

    let mut grads = model.zero_grads().unwrap();
    let grad_x = model
        .backward_logits(x.view(), TensorView::new(&g, &g_shape).unwrap(), &mut grads)
        .unwrap();
    let (_, projection_part) = case.tensor("expected/grad_E_projection_part");
    assert_close(
        "projection part",
        grads.embedding.as_slice(),
        &projection_part,
        tol,
    );
    model
        .backward_lookup(&ids, grad_x.view(), &mut grads)
        .unwrap();
    let (_, total) = case.tensor("expected/grad_E_total");
    assert_close("grad_E_total", grads.embedding.as_slice(), &total, tol);
}
