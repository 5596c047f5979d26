//! The lookup matches `torch.nn.functional.embedding` on the reference vectors, exactly.

mod common;

use common::Case;
use tokenloom::embedding::{Embedding, EmbeddingError};
use tokenloom::tensor::Tensor;

fn forward_case_f64(name: &str) {
    let case = Case::load(name);
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
    let case = Case::load("emb_fwd_bwd_f32");
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
    let case = Case::load("emb_errors");
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
    // A negative id, once it has crossed into the u32 id type, is a huge id: still an
    // error, never a wrap-around read.
    let negative = (-1i64) as u32;
    assert!(matches!(
        table.forward(&[negative]),
        Err(EmbeddingError::TokenOutOfRange {
            token: u32::MAX,
            ..
        })
    ));
    // Float ids cannot be expressed: ids are u32 by type.
}
