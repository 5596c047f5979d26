//! tokenloom's kernels on parameters an `ndarray` program owns: lookup, backward and an
//! AdamW step, on the arrays themselves (no copy of the table), checked against
//! tokenloom's owned types.
//!
//! Run with `cargo run --release --example ndarray_interop --features ndarray`.

use ndarray::{Array2, Array3};
use tokenloom::embedding::{AdamW, Embedding, EmbeddingOptions, Init, functional};
use tokenloom::tensor::{Accumulate, Tensor};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (vocab_size, n_embd) = (3000, 64);
    let mut checks = 0;
    let mut check = |what: &str, diff: f32| {
        println!("{what:<48} max |difference| = {diff:e}");
        assert!(diff == 0.0, "{what}: {diff}");
        checks += 1;
    };

    // The framework's parameter, and tokenloom's own copy of it to compare with.
    let reference = Embedding::<f32>::seeded(vocab_size, n_embd, Init::normal(0.02), 7)?;
    let mut table =
        Array2::from_shape_vec((vocab_size, n_embd), reference.weight().as_slice().to_vec())?;
    let table_ptr = table.as_ptr();

    // PyTorch-style i64 ids, (batch 2, seq_len 4): "I love dogs" and more.
    let ids = Array2::from_shape_vec((2, 4), vec![73i64, 786, 2934, 2, 73, 73, 10, 11])?;

    // 1. Lookup into an ndarray output buffer.
    let mut hidden = Array3::<f32>::zeros((2, 4, n_embd));
    functional::lookup_into(&table, &ids, &mut hidden, None)?;
    let ids_u32 = Tensor::from_vec(ids.iter().map(|&i| i as u32).collect(), &[2, 4])?;
    let want = reference.forward(&ids_u32)?;
    check(
        "lookup (2, 4) -> (2, 4, 64)",
        max_diff(hidden.as_slice().unwrap(), want.as_slice()),
    );

    // 2. Dense backward into the framework's gradient buffer: only its shape and the
    //    options are needed, never the table.
    let grad_output = Array3::from_shape_fn((2, 4, n_embd), |(b, s, j)| {
        ((b * 31 + s * 7 + j) % 13) as f32 / 13.0 - 0.5
    });
    let mut grad_weight = Array2::<f32>::zeros((vocab_size, n_embd));
    let options = EmbeddingOptions::default();
    functional::backward_dense(
        &ids,
        &grad_output,
        &mut grad_weight,
        &options,
        Accumulate::Replace,
    )?;
    let want_grad =
        reference.backward_dense(&ids_u32, (grad_output.as_slice().unwrap(), [2, 4, n_embd]))?;
    check(
        "dense backward into (3000, 64) ndarray gradient",
        max_diff(grad_weight.as_slice().unwrap(), want_grad.as_slice()),
    );

    // 3. Sparse backward: the same rows.
    let mut sparse = tokenloom::embedding::SparseGrad::new();
    functional::backward_sparse(&ids, &grad_output, vocab_size, &options, &mut sparse)?;
    let dense_from_sparse = sparse.to_dense()?;
    check(
        "sparse backward (7 distinct rows)",
        max_diff(
            dense_from_sparse.as_slice(),
            grad_weight.as_slice().unwrap(),
        ),
    );

    // 4. An AdamW step on the ndarray parameter, in place.
    let mut opt = AdamW::new(1e-3).with_weight_decay(0.01);
    functional::step_dense(&mut opt, &mut table, &grad_weight, None)?;
    let mut stepped = reference.clone();
    let mut opt_reference = AdamW::new(1e-3).with_weight_decay(0.01);
    stepped.step_dense(&mut opt_reference, &want_grad)?;
    check(
        "AdamW step on the ndarray table",
        max_diff(table.as_slice().unwrap(), stepped.weight().as_slice()),
    );
    assert_eq!(table.as_ptr(), table_ptr, "the table was updated in place");

    // A transposed (strided) array is refused, never silently copied.
    let err = functional::lookup(table.t(), &ids, None).unwrap_err();
    println!("a transposed table is an error: {err}");

    println!("ndarray interop: {checks} checks passed");
    Ok(())
}
