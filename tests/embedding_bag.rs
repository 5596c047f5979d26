//! PyTorch's EmbeddingBag against torch's own numbers
//! (`tests/reference/generated/embedding_bag.py`): every mode, offsets and 2-D ids,
//! `include_last_offset`, per-sample weights, `padding_idx`, tied maxima and
//! `scale_grad_by_freq`, forward and backward, in f64 and f32; and the refusals.

mod common;

use serde_json::Value;
use tokenloom::embedding::EmbeddingError;
use tokenloom::embedding::functional::{
    BagMode, BagOptions, Bags, embedding_bag_backward, embedding_bag_into,
    embedding_bag_per_sample_weights_backward,
};
use tokenloom::tensor::{Accumulate, Element};

const CASES: &str = include_str!("reference/generated/embedding_bag.json");

use common::json_floats as floats;

fn ints(v: &Value) -> Vec<i64> {
    floats(v).into_iter().map(|x| x as i64).collect()
}

fn assert_close(what: &str, name: &str, got: &[f64], expected: &[f64], tolerance: f64) {
    assert_eq!(got.len(), expected.len(), "{name}: {what} length");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        assert!(
            (g - e).abs() <= tolerance * (1.0 + e.abs()),
            "{name}: {what}[{i}] = {g}, torch gives {e} (tolerance {tolerance})"
        );
    }
}

fn run_case<T: Element>(case: &Value, tolerance: f64) {
    let name = case["name"].as_str().expect("a name");
    let mode = match case["mode"].as_str().expect("a mode") {
        "sum" => BagMode::Sum,
        "mean" => BagMode::Mean,
        _ => BagMode::Max,
    };
    let mut options = BagOptions::new(mode)
        .with_scale_grad_by_freq(case["scale_grad_by_freq"].as_bool().expect("a flag"));
    if let Some(p) = case["padding_idx"].as_u64() {
        options = options.with_padding_idx(p as usize);
    }
    let cast = |v: &Value| -> Vec<T> { floats(v).into_iter().map(T::from_f64_lossy).collect() };
    let weight = cast(&case["weight"]);
    let vocab_size = case["weight"].as_array().expect("rows").len();
    let n_embd = weight.len() / vocab_size;
    let ids = ints(&case["ids"]);
    let bags = if case["offsets"].is_null() {
        let rows = case["ids"].as_array().expect("2-D ids").len();
        Bags::from_rows((&ids[..], [rows, ids.len() / rows])).expect("bags")
    } else {
        let offsets = ints(&case["offsets"]);
        let include_last = case["include_last_offset"].as_bool().expect("a flag");
        Bags::from_offsets(&ids[..], &offsets, include_last).expect("bags")
    };
    let n_bags = bags.n_bags();
    let psw = (!case["per_sample_weights"].is_null()).then(|| cast(&case["per_sample_weights"]));

    let mut out = vec![T::zero(); n_bags * n_embd];
    let mut max_indices = vec![-7i64; n_bags * n_embd];
    let max = (mode == BagMode::Max).then_some(&mut max_indices[..]);
    embedding_bag_into(
        (&weight[..], [vocab_size, n_embd]),
        &bags,
        psw.as_deref(),
        &options,
        (&mut out[..], [n_bags, n_embd]),
        max,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    let wide = |xs: &[T]| xs.iter().map(|x| x.as_f64()).collect::<Vec<_>>();
    assert_close(
        "output",
        name,
        &wide(&out),
        &floats(&case["output"]),
        tolerance,
    );
    if mode == BagMode::Max {
        assert_eq!(
            max_indices,
            ints(&case["max_indices"]),
            "{name}: max_indices"
        );
    }

    let grad_out = cast(&case["grad_out"]);
    let mut grad_weight = vec![T::from_f64_lossy(99.0); vocab_size * n_embd];
    embedding_bag_backward(
        &bags,
        psw.as_deref(),
        (&grad_out[..], [n_bags, n_embd]),
        (mode == BagMode::Max).then_some(&max_indices[..]),
        &options,
        (&mut grad_weight[..], [vocab_size, n_embd]),
        Accumulate::Replace,
    )
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_close(
        "grad_weight",
        name,
        &wide(&grad_weight),
        &floats(&case["grad_weight"]),
        tolerance,
    );

    if let Some(psw) = &psw {
        let mut grad_psw = vec![T::zero(); psw.len()];
        embedding_bag_per_sample_weights_backward(
            (&weight[..], [vocab_size, n_embd]),
            &bags,
            (&grad_out[..], [n_bags, n_embd]),
            &options,
            &mut grad_psw,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = floats(&case["grad_per_sample_weights"]);
        assert_close(
            "grad_per_sample_weights",
            name,
            &wide(&grad_psw),
            &expected,
            tolerance,
        );
    }
}

#[test]
fn every_mode_matches_torch() {
    let file: Value = serde_json::from_str(CASES).expect("the golden file parses");
    let cases = file["cases"].as_array().expect("cases");
    assert!(cases.len() >= 13, "{} cases", cases.len());
    for case in cases {
        match case["dtype"].as_str().expect("a dtype") {
            "float64" => run_case::<f64>(case, 1e-12),
            // tokenloom sums in f64 and rounds once; torch sums in f32.
            _ => run_case::<f32>(case, 2e-6),
        }
    }
}

#[test]
fn bad_bags_are_typed_errors() {
    let ids = [1u32, 2, 3];
    let err = Bags::from_offsets(&ids[..], &[1u32, 2], false).unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::InvalidOffset {
                index: 0,
                offset: 1,
                ..
            }
        ),
        "{err}"
    );
    let err = Bags::from_offsets(&ids[..], &[0u32, 2, 1], false).unwrap_err();
    assert_eq!(
        err.to_string(),
        "embedding_bag: offsets[2] = 1 (of 3 ids) must not be below the offset before it"
    );
    let err = Bags::from_offsets(&ids[..], &[0u32, 4], false).unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::InvalidOffset {
                index: 1,
                offset: 4,
                ..
            }
        ),
        "{err}"
    );
    let err = Bags::from_offsets(&ids[..], &[], false).unwrap_err();
    assert!(matches!(err, EmbeddingError::InvalidOffset { .. }), "{err}");
    let err = Bags::from_offsets(&[1i64, 2][..], &[0, -1], false).unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::InvalidOffset {
                index: 1,
                offset: -1,
                ..
            }
        ),
        "{err}"
    );
    let err = Bags::from_offsets(&ids[..], &[0u32], true).unwrap_err();
    assert!(matches!(err, EmbeddingError::InvalidOffset { .. }), "{err}");
    assert!(matches!(
        Bags::from_rows(&ids[..]).unwrap_err(),
        EmbeddingError::IdsRank { .. }
    ));

    let table = [0.0f32; 8];
    let bags = Bags::from_offsets(&[0u32, 5], &[0u32], false).expect("bags");
    let mut out = [0.0f32; 2];
    let err = embedding_bag_into(
        (&table[..], [4, 2]),
        &bags,
        None,
        &BagOptions::default(),
        (&mut out[..], [1, 2]),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("token id 5"), "{err}");
    let bags = Bags::from_offsets(&[0u32, 3], &[0u32], false).expect("bags");
    let err = embedding_bag_into(
        (&table[..], [4, 2]),
        &bags,
        Some(&[1.0, 1.0]),
        &BagOptions::new(BagMode::Mean),
        (&mut out[..], [1, 2]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::BagOption {
                option: "per_sample_weights",
                ..
            }
        ),
        "{err}"
    );
    let err = embedding_bag_into(
        (&table[..], [4, 2]),
        &bags,
        None,
        &BagOptions::new(BagMode::Max),
        (&mut out[..], [1, 2]),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::BagOption {
                option: "max_indices",
                ..
            }
        ),
        "{err}"
    );
    let err = embedding_bag_into(
        (&table[..], [4, 2]),
        &bags,
        None,
        &BagOptions::default(),
        (&mut out[..], [2, 1]),
        None,
    )
    .unwrap_err();
    assert!(matches!(err, EmbeddingError::OutputShape { .. }), "{err}");
    // A max_indices that names an id outside its bag.
    let mut grad = [0.0f32; 8];
    let err = embedding_bag_backward(
        &bags,
        None,
        (&out[..], [1, 2]),
        Some(&[1, 0]),
        &BagOptions::new(BagMode::Max),
        (&mut grad[..], [4, 2]),
        Accumulate::Replace,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::BagOption {
                option: "max_indices",
                ..
            }
        ),
        "{err}"
    );
}
