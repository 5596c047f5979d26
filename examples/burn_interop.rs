//! tokenloom's kernels on burn's `TensorData` (what `Tensor::into_data` gives and
//! `Tensor::from_data` takes back): lookup with burn's i64 ids, dense backward, RoPE in
//! place on a query and an AdamW step, on the `TensorData` buffers themselves (no copy),
//! checked against tokenloom's owned types.
//!
//! A `TensorData` carries its element type at run time, so each call names the element
//! and id types (`lookup_into::<f32, i64>`), as with candle.
//!
//! Run with `cargo run --release --example burn_interop --features burn`.

use tokenloom::adapters::burn_std::{DType, TensorData};
use tokenloom::embedding::{AdamW, Embedding, EmbeddingOptions, Init, functional};
use tokenloom::positions::{Direction, QkLayout, RopeCache, TokenPositions};
use tokenloom::tensor::{Accumulate, Tensor, TensorLike};

type Error = Box<dyn std::error::Error>;

fn max_diff(a: &TensorData, b: &[f32]) -> Result<f32, Error> {
    let a = a.as_slice::<f32>()?;
    assert_eq!(a.len(), b.len());
    Ok(a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs())))
}

fn main() -> Result<(), Error> {
    let (vocab_size, n_embd) = (3000, 64);
    let mut checks = 0;
    let mut check = |what: &str, diff: f32| {
        println!("{what:<48} max |difference| = {diff:e}");
        assert!(diff == 0.0, "{what}: {diff}");
        checks += 1;
    };

    // The framework's parameter, and tokenloom's own copy of it to compare with.
    let reference = Embedding::<f32>::seeded(vocab_size, n_embd, Init::normal(0.02), 7)?;
    let mut table = TensorData::new(reference.weight().as_slice().to_vec(), [vocab_size, n_embd]);
    let table_ptr = table.as_slice::<f32>()?.as_ptr();

    // burn's Int tensors on the NdArray backend are i64: "I love dogs" and more.
    let ids = TensorData::new(vec![73i64, 786, 2934, 2, 73, 73, 10, 11], [2, 4]);

    // 1. Lookup into a burn output buffer.
    let mut hidden = TensorData::zeros::<f32, _>([2, 4, n_embd]);
    functional::lookup_into::<f32, i64>(&table, &ids, &mut hidden, None)?;
    let ids_u32 = Tensor::from_vec(
        ids.as_slice::<i64>()?.iter().map(|&i| i as u32).collect(),
        &[2, 4],
    )?;
    check(
        "lookup (2, 4) -> (2, 4, 64)",
        max_diff(&hidden, reference.forward(&ids_u32)?.as_slice())?,
    );

    // 2. Dense backward into burn's gradient buffer.
    let grad_output = TensorData::new(
        (0..2 * 4 * n_embd)
            .map(|i| (i % 13) as f32 / 13.0 - 0.5)
            .collect::<Vec<_>>(),
        [2, 4, n_embd],
    );
    let mut grad_weight = TensorData::zeros::<f32, _>([vocab_size, n_embd]);
    let options = EmbeddingOptions::default();
    functional::backward_dense::<f32, i64>(
        &ids,
        &grad_output,
        &mut grad_weight,
        &options,
        Accumulate::Replace,
    )?;
    let want_grad =
        reference.backward_dense(&ids_u32, TensorLike::<f32>::try_view(&grad_output)?)?;
    check(
        "dense backward into (3000, 64) burn gradient",
        max_diff(&grad_weight, want_grad.as_slice())?,
    );

    // 3. RoPE in place on a burn query (batch, n_heads, seq_len, head_dim), LLaMA 3.1's
    //    settings from its config.json.
    let spec = tokenloom::decoder_input::ModelSpec::from_hf_json(
        include_str!("../tests/data/configs/llama-3.1-8b.config.json"),
        "llama-3.1-8b.config.json".as_ref(),
    )?;
    let rope = spec.main_rope().ok_or("LLaMA 3.1 rotates")?.clone();
    let (batch, n_heads, seq_len, head_dim) = (2, 4, 16, rope.head_dim);
    let cache = RopeCache::<f32>::new(&rope, 8000 + seq_len)?;
    let q: Vec<f32> = (0..batch * n_heads * seq_len * head_dim)
        .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
        .collect();
    let mut q_burn = TensorData::new(q.clone(), [batch, n_heads, seq_len, head_dim]);
    let positions = TokenPositions::Offset(8000);
    cache.rotate_in_place::<f32>(
        &mut q_burn,
        QkLayout::BatchHeadsSeq,
        positions,
        Direction::Forward,
    )?;
    let q = Tensor::from_vec(q, &[batch, n_heads, seq_len, head_dim])?;
    let want_q = cache.apply(&q, QkLayout::BatchHeadsSeq, positions)?;
    check(
        "RoPE in place on a (2, 4, 16, 128) burn query",
        max_diff(&q_burn, want_q.as_slice())?,
    );

    // 4. An AdamW step on the burn parameter, in place.
    let mut opt = AdamW::new(1e-3).with_weight_decay(0.01);
    functional::step_dense::<f32, _>(&mut opt, &mut table, &grad_weight, None)?;
    let mut stepped = reference.clone();
    let mut opt_reference = AdamW::new(1e-3).with_weight_decay(0.01);
    stepped.step_dense(&mut opt_reference, &want_grad)?;
    check(
        "AdamW step on the burn table",
        max_diff(&table, stepped.weight().as_slice())?,
    );
    assert_eq!(
        table.as_slice::<f32>()?.as_ptr(),
        table_ptr,
        "the table was updated in place"
    );

    // A table of another element type is refused by name, never converted silently.
    let bf16_table = table.clone().convert_dtype(DType::BF16);
    let err = functional::lookup::<f32, i64>(&bf16_table, &ids, None).unwrap_err();
    println!("a bf16 table read as f32 is an error: {err}");

    println!("burn interop: {checks} checks passed");
    Ok(())
}
