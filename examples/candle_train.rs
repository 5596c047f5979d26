//! A tiny candle model trained with tokenloom's kernels inside candle's autograd, checked
//! step by step against the same model built from candle's own ops.
//!
//! The model: token ids → embedding (tokenloom's op, `padding_idx` 0) → a linear layer
//! (candle) → RoPE on its heads (tokenloom's op; candle-nn's `rope_slow`, built from
//! candle ops, in the reference) → the tied head over the embedding table and the
//! cross-entropy: on even steps tokenloom's fused op (no logits materialised), on odd
//! steps tokenloom's logits op and candle-nn's loss; the tied head gives the padding row
//! a gradient too, as in PyTorch. Each step computes the loss and every parameter's
//! gradient both ways, compares them, and takes an SGD step with tokenloom's gradients.
//!
//! Run with `cargo run --example candle_train --features candle-nn`. The last line is
//! `candle train: N steps, gradients equal to candle's own ops (max |Δ| X)`.

use tokenloom::adapters::candle_core::{DType, Device, IndexOp, Module, Tensor, Var};
use tokenloom::candle::{Embedding, RopePositions, Rotary, linear_cross_entropy};
use tokenloom::embedding::EmbeddingOptions;
use tokenloom::embedding::functional::CrossEntropyOptions;
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout};

type Error = Box<dyn std::error::Error>;

const VOCAB_SIZE: usize = 64;
const N_EMBD: usize = 32;
const N_HEADS: usize = 4;
const HEAD_DIM: usize = N_EMBD / N_HEADS;
const BATCH: usize = 2;
const SEQ_LEN: usize = 12;
const PADDING_IDX: u32 = 0;
const STEPS: usize = 6;
const LEARNING_RATE: f64 = 0.1;
const TOLERANCE: f32 = 1e-5;

/// The parameters both models share.
struct Params {
    table: Var,
    weight: Var,
    bias: Var,
}

/// The loss with tokenloom's ops for the embedding, RoPE and the tied head (`fused`: the
/// head and the cross-entropy in one op; otherwise the logits op and candle-nn's loss).
fn loss_tokenloom(
    p: &Params,
    rotary: &Rotary,
    ids: &Tensor,
    targets: &Tensor,
    fused: bool,
) -> Result<Tensor, Error> {
    let options = EmbeddingOptions {
        padding_idx: Some(PADDING_IDX as usize),
        ..EmbeddingOptions::default()
    };
    let embedding = Embedding::new(p.table.as_tensor().clone(), options)?;
    let x = embedding.forward(ids)?; // (batch, seq_len, n_embd)
    let h = x.broadcast_matmul(&p.weight.t()?)?.broadcast_add(&p.bias)?;
    let q = h.reshape((BATCH, SEQ_LEN, N_HEADS, HEAD_DIM))?;
    let q = rotary.forward(&q, &RopePositions::Offset(0))?;
    let h = q.reshape((BATCH, SEQ_LEN, N_EMBD))?;
    if fused {
        // The tied head and the cross-entropy in one op: no (tokens, vocab_size) logits.
        let options = CrossEntropyOptions::default();
        return Ok(linear_cross_entropy(
            &h,
            embedding.table(),
            targets,
            &options,
        )?);
    }
    let logits = embedding.logits(&h)?; // (batch, seq_len, vocab_size)
    let loss = candle_nn::loss::cross_entropy(
        &logits.reshape((BATCH * SEQ_LEN, VOCAB_SIZE))?,
        &targets.flatten_all()?,
    )?;
    Ok(loss)
}

/// The same loss from candle's own ops: `index_select` with the padding row's gradient
/// masked out, `rope_slow`, `matmul` with the transposed table.
fn loss_candle(
    p: &Params,
    rotary: &Rotary,
    ids: &Tensor,
    targets: &Tensor,
) -> Result<Tensor, Error> {
    let table = p.table.as_tensor();
    let flat_ids = ids.flatten_all()?;
    let rows = table.embedding(&flat_ids)?;
    // padding_idx: the padding row is read, but gets no gradient.
    let keep = flat_ids
        .ne(PADDING_IDX)?
        .to_dtype(DType::F32)?
        .unsqueeze(1)?;
    let rows = (rows.broadcast_mul(&keep)?
        + table
            .detach()
            .embedding(&flat_ids)?
            .broadcast_mul(&(1.0 - &keep)?)?)?;
    let x = rows.reshape((BATCH, SEQ_LEN, N_EMBD))?;
    let h = x.broadcast_matmul(&p.weight.t()?)?.broadcast_add(&p.bias)?;
    // rope_slow takes (batch, n_heads, seq_len, head_dim).
    let q = h
        .reshape((BATCH, SEQ_LEN, N_HEADS, HEAD_DIM))?
        .transpose(1, 2)?
        .contiguous()?;
    let q = candle_nn::rotary_emb::rope_slow(&q, rotary.cos(), rotary.sin())?;
    let h = q.transpose(1, 2)?.reshape((BATCH, SEQ_LEN, N_EMBD))?;
    let logits = h.broadcast_matmul(&table.t()?)?;
    let loss = candle_nn::loss::cross_entropy(
        &logits.reshape((BATCH * SEQ_LEN, VOCAB_SIZE))?,
        &targets.flatten_all()?,
    )?;
    Ok(loss)
}

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32, Error> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

fn main() -> Result<(), Error> {
    let device = Device::Cpu;
    let params = Params {
        table: Var::randn(0f32, 0.5, (VOCAB_SIZE, N_EMBD), &device)?,
        weight: Var::randn(
            0f32,
            (N_EMBD as f32).recip().sqrt(),
            (N_EMBD, N_EMBD),
            &device,
        )?,
        bias: Var::zeros(N_EMBD, DType::F32, &device)?,
    };
    // LLaMA's RoPE (theta 10000, half-split pairs), f32 tables from f64 angles.
    let config = RopeConfig::new(HEAD_DIM, 10_000.0, RopeLayout::HalfSplit);
    let rotary = Rotary::from_cache(
        &RopeCache::<f32>::new(&config, SEQ_LEN)?,
        QkLayout::BatchSeqHeads,
        &device,
    )?;

    // A batch with padding (id 0) at the end of the second row, and targets.
    let ids = Tensor::rand(0f32, VOCAB_SIZE as f32, (BATCH, SEQ_LEN), &device)?
        .floor()?
        .clamp(1f32, (VOCAB_SIZE - 1) as f32)?
        .to_dtype(DType::U32)?;
    let pad = Tensor::zeros((1, 3), DType::U32, &device)?;
    let ids = ids.slice_assign(&[1..2, SEQ_LEN - 3..SEQ_LEN], &pad)?;
    let targets = ids.i((.., 1..))?.pad_with_zeros(1, 0, 1)?; // next token, 0 at the end

    let mut worst = 0f32;
    let mut first_loss = None;
    let mut last_loss = 0f32;
    for step in 0..STEPS {
        // Even steps fuse the head and the loss; odd steps materialise the logits.
        let loss_t = loss_tokenloom(&params, &rotary, &ids, &targets, step % 2 == 0)?;
        let loss_c = loss_candle(&params, &rotary, &ids, &targets)?;
        let (grads_t, grads_c) = (loss_t.backward()?, loss_c.backward()?);
        let loss_diff = max_diff(&loss_t, &loss_c)?;
        let mut step_worst = loss_diff;
        for (name, var) in [
            ("table", &params.table),
            ("weight", &params.weight),
            ("bias", &params.bias),
        ] {
            let g_t = grads_t
                .get(var)
                .ok_or(format!("no tokenloom gradient for {name}"))?;
            let g_c = grads_c
                .get(var)
                .ok_or(format!("no candle gradient for {name}"))?;
            let diff = max_diff(g_t, g_c)?;
            step_worst = step_worst.max(diff);
            assert!(
                diff <= TOLERANCE,
                "step {step}: the {name} gradients differ by {diff:e}"
            );
        }
        assert!(
            loss_diff <= TOLERANCE,
            "step {step}: the losses differ by {loss_diff:e}"
        );
        let loss = loss_t.to_scalar::<f32>()?;
        println!("step {step}: loss {loss:.6}, max |Δ| of the loss and gradients {step_worst:e}");
        first_loss.get_or_insert(loss);
        last_loss = loss;
        worst = worst.max(step_worst);
        for var in [&params.table, &params.weight, &params.bias] {
            let grad = grads_t.get(var).ok_or("no gradient")?;
            var.set(&(var.as_tensor() - (grad * LEARNING_RATE)?)?)?;
        }
    }
    let first_loss = first_loss.ok_or("no steps")?;
    assert!(
        last_loss < first_loss,
        "the loss did not fall: {first_loss} → {last_loss}"
    );
    println!(
        "candle train: {STEPS} steps, gradients equal to candle's own ops (max |Δ| {worst:.1e})"
    );
    Ok(())
}
