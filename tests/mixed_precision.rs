//! Mixed precision against PyTorch's autocast path and an exact f64 reference
//! (`tests/reference/generated/mixed_precision.py`): half tables looked up into f32
//! (exact), and half upstream gradients accumulated into the f32 gradient of a master
//! table (at least as close to the exact sum as autocast's f32 backward).

mod common;

use serde_json::Value;
use tokenloom::embedding::{EmbeddingOptions, functional};
use tokenloom::tensor::{Accumulate, Element, bf16, f16};

const CASES: &str = include_str!("reference/generated/mixed_precision.json");

use common::json_floats as floats;

fn dims2(v: &Value) -> [usize; 2] {
    let rows = v.as_array().expect("rows");
    [rows.len(), rows[0].as_array().expect("a row").len()]
}

/// The max |error| of the f32 gradient from a `H` upstream gradient against `expected`.
fn backward_error<H: Element>(case: &Value) -> f64 {
    let ids: Vec<i64> = floats(&case["ids"]).into_iter().map(|x| x as i64).collect();
    let [batch, seq_len] = dims2(&case["ids"]);
    let grad_output: Vec<H> = floats(&case["grad_output"])
        .into_iter()
        .map(H::from_f64_lossy)
        .collect();
    let expected = floats(&case["expected"]);
    let [vocab_size, n_embd] = dims2(&case["expected"]);
    // Every value of the file is a half value already: the conversion is exact.
    assert!(
        grad_output
            .iter()
            .zip(floats(&case["grad_output"]))
            .all(|(h, x)| h.as_f64() == x)
    );
    let options = EmbeddingOptions {
        padding_idx: case["padding_idx"].as_u64().map(|p| p as usize),
        scale_grad_by_freq: case["scale_grad_by_freq"].as_bool().expect("a flag"),
        ..EmbeddingOptions::default()
    };
    let mut grad_weight = vec![7.0f32; vocab_size * n_embd];
    functional::backward_dense_cast(
        (&ids[..], [batch, seq_len]),
        (&grad_output[..], [batch, seq_len, n_embd]),
        (&mut grad_weight[..], [vocab_size, n_embd]),
        &options,
        Accumulate::Replace,
    )
    .expect("the backward runs");
    grad_weight
        .iter()
        .zip(&expected)
        .map(|(&g, &e)| (f64::from(g) - e).abs())
        .fold(0.0, f64::max)
}

#[test]
fn half_gradients_into_f32_are_at_least_as_close_as_autocast() {
    let file: Value = serde_json::from_str(CASES).expect("the golden file parses");
    let cases = file["backward"].as_array().expect("backward cases");
    assert_eq!(cases.len(), 3);
    for case in cases {
        let name = case["name"].as_str().expect("a name");
        let torch_error = case["torch_max_abs_error"].as_f64().expect("an error");
        let ours = match case["half"].as_str().expect("a dtype") {
            "bfloat16" => backward_error::<bf16>(case),
            _ => backward_error::<f16>(case),
        };
        // The exact f64 sum rounded once: within half an f32 ulp of values below 2^16.
        assert!(
            ours <= torch_error,
            "{name}: {ours:e} > autocast's {torch_error:e}"
        );
        assert!(ours <= 2f64.powi(16 - 24), "{name}: {ours:e}");
        println!("{name}: tokenloom {ours:e}, autocast {torch_error:e}");
    }
}

#[test]
fn half_tables_look_up_into_f32_exactly() {
    let file: Value = serde_json::from_str(CASES).expect("the golden file parses");
    for case in file["lookup"].as_array().expect("lookup cases") {
        let name = case["name"].as_str().expect("a name");
        let ids: Vec<u32> = floats(&case["ids"]).into_iter().map(|x| x as u32).collect();
        let [batch, seq_len] = dims2(&case["ids"]);
        let [vocab_size, n_embd] = dims2(&case["table"]);
        let expected = floats(&case["expected"]);
        let mut out = vec![0.0f32; batch * seq_len * n_embd];
        let out_dims = [batch, seq_len, n_embd];
        match case["half"].as_str().expect("a dtype") {
            "bfloat16" => {
                let table: Vec<bf16> = floats(&case["table"])
                    .into_iter()
                    .map(bf16::from_f64)
                    .collect();
                functional::lookup_cast_into(
                    (&table[..], [vocab_size, n_embd]),
                    (&ids[..], [batch, seq_len]),
                    (&mut out[..], out_dims),
                )
            }
            _ => {
                let table: Vec<f16> = floats(&case["table"])
                    .into_iter()
                    .map(f16::from_f64)
                    .collect();
                functional::lookup_cast_into(
                    (&table[..], [vocab_size, n_embd]),
                    (&ids[..], [batch, seq_len]),
                    (&mut out[..], out_dims),
                )
            }
        }
        .expect("the lookup runs");
        let got: Vec<f64> = out.iter().map(|&x| f64::from(x)).collect();
        assert_eq!(got, expected, "{name}");
    }
}
