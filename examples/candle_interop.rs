//! A candle user's RoPE with the rope scaling candle-nn lacks, and the embedding backward
//! into a candle gradient buffer — tokenloom's kernels on candle's own memory.
//!
//! 1. Read a HuggingFace `config.json` with llama3 rope scaling (LLaMA 3.1), write
//!    tokenloom's cos/sin into candle tensors, and rotate candle q/k with candle-nn's
//!    `rope` (half-split) and `rope_i` (interleaved) and with tokenloom in place on
//!    candle's buffers; the results agree.
//! 2. Look up and back-propagate through a candle embedding table, comparing with
//!    candle's own `Embedding` forward and autograd; tokenloom writes the gradient into a
//!    candle buffer without copying the table.
//!
//! 3. The fused head and cross-entropy on candle's hidden states, head and targets,
//!    against candle-nn's `cross_entropy` of the materialised logits and candle's
//!    autograd; the gradients land in candle buffers lent together with the inputs
//!    (`lend`: every tensor of a step in one call, typed by its handle).
//!
//! Run with `cargo run --release --example candle_interop --features candle-nn`. The last
//! line is `candle interop: N checks passed`.

use tokenloom::adapters::candle::{FlattenLending, lend, read, write};
use tokenloom::adapters::candle_core::{DType, Device, Module, Tensor, Var};
use tokenloom::embedding::{EmbeddingOptions, functional};
use tokenloom::positions::{
    Direction, QkLayout, RopeCache, RopeLayout, RopeScaling, RopeTables, TokenPositions,
};
use tokenloom::tensor::Accumulate;

type Error = Box<dyn std::error::Error>;

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f32, Error> {
    Ok((a - b)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_dtype(DType::F32)?
        .to_scalar::<f32>()?)
}

fn main() -> Result<(), Error> {
    let device = Device::Cpu;
    let mut checks = 0;
    let mut check = |what: &str, diff: f32, tolerance: f32| {
        println!("{what:<60} max |difference| = {diff:e}");
        assert!(diff <= tolerance, "{what}: {diff} > {tolerance}");
        checks += 1;
    };

    // --- 1. RoPE with llama3 scaling, which candle-nn cannot compute itself ---
    let spec = tokenloom::decoder_input::ModelSpec::from_hf_json(
        include_str!("../tests/data/configs/llama-3.1-8b.config.json"),
        "llama-3.1-8b.config.json".as_ref(),
    )?;
    let rope = spec.main_rope().expect("LLaMA 3.1 rotates").clone();
    assert!(matches!(rope.scaling, RopeScaling::Llama3(_)));
    let (batch, seq_len, head_dim) = (2, 64, rope.head_dim);
    let (n_heads, n_kv_heads) = (4, 2); // a few heads of the real model's shape
    let half = head_dim / 2;
    let first_position = 8000; // past the 8192-token original context after a while

    // tokenloom's cos/sin (f64 angles, llama3 frequencies) written into candle tensors.
    let cos = Tensor::zeros((seq_len, half), DType::F32, &device)?;
    let sin = Tensor::zeros((seq_len, half), DType::F32, &device)?;
    // Both written in one lending (a lending inside a mutable one is refused: it could
    // wait for its own lock).
    lend((write::<f32>(&cos), write::<f32>(&sin)), |(cos, sin)| {
        rope.cos_sin_into(131_072, first_position, cos, sin)
    })
    .flat()?;
    let cache = RopeCache::<f32>::new(&rope, first_position + seq_len)?;
    let from_cache = Tensor::from_slice(
        &cache.cos().as_slice()[first_position * half..],
        (seq_len, half),
        &device,
    )?;
    check(
        "cos written into candle == tokenloom's cache",
        max_diff(&cos, &from_cache)?,
        0.0,
    );

    type CandleRope =
        fn(&Tensor, &Tensor, &Tensor) -> tokenloom::adapters::candle_core::Result<Tensor>;
    let candle_ropes: [(RopeLayout, &str, CandleRope); 2] = [
        (
            RopeLayout::HalfSplit,
            "rope (half-split)",
            candle_nn::rotary_emb::rope,
        ),
        (
            RopeLayout::Interleaved,
            "rope_i (interleaved)",
            candle_nn::rotary_emb::rope_i,
        ),
    ];
    for (layout, name, candle_rope) in candle_ropes {
        for (what, heads) in [("q", n_heads), ("k", n_kv_heads)] {
            let x = Tensor::randn(0f32, 1.0, (batch, heads, seq_len, head_dim), &device)?;
            let by_candle = candle_rope(&x, &cos, &sin)?;
            // tokenloom in place on candle's own buffer, with candle's cos/sin tables:
            // three tensors in one lending, each typed by its handle.
            lend(
                (read::<f32>(&cos), read::<f32>(&sin), write::<f32>(&x)),
                |(cos, sin, x)| {
                    RopeTables::new(cos, sin, layout)?.rotate_in_place(
                        x,
                        QkLayout::BatchHeadsSeq,
                        TokenPositions::Offset(0),
                        Direction::Forward,
                    )
                },
            )
            .flat()?;
            check(
                &format!("candle-nn {name} vs tokenloom in place, {what}"),
                max_diff(&by_candle, &x)?,
                1e-6,
            );
        }
    }

    // --- 2. Embedding lookup and backward on a candle table ---
    let (vocab_size, n_embd) = (3000, 64);
    let table = Var::randn(0f32, 1.0, (vocab_size, n_embd), &device)?;
    let ids = Tensor::new(&[[73u32, 786, 2934, 73], [1, 2, 3, 2934]], &device)?;
    let embedding = candle_nn::Embedding::new(table.as_tensor().clone(), n_embd);
    let by_candle = embedding.forward(&ids)?;
    let hidden = Tensor::zeros((2, 4, n_embd), DType::F32, &device)?;
    // The table and the ids are read in place; the output is candle's buffer.
    lend(
        (
            write::<f32>(&hidden),
            read::<f32>(table.as_tensor()),
            read::<u32>(&ids),
        ),
        |(out, table, ids)| functional::lookup_into(table, ids, out, None),
    )
    .flat()?;
    check(
        "candle Embedding::forward vs tokenloom lookup",
        max_diff(&by_candle, &hidden)?,
        0.0,
    );

    // Candle's autograd: d(sum(E[ids] * g))/dE.
    let g = Tensor::randn(0f32, 1.0, (2, 4, n_embd), &device)?;
    let grads = (by_candle * &g)?.sum_all()?.backward()?;
    let by_autograd = grads
        .get(table.as_tensor())
        .expect("the table has a gradient");
    // tokenloom: from candle's ids and upstream gradient into a candle gradient buffer;
    // the (3000, 64) table itself is not needed and never copied.
    let grad_weight = Tensor::zeros((vocab_size, n_embd), DType::F32, &device)?;
    lend(
        (
            write::<f32>(&grad_weight),
            read::<u32>(&ids),
            read::<f32>(&g),
        ),
        |(grad_weight, ids, g)| {
            functional::backward_dense(
                ids,
                g,
                grad_weight,
                &EmbeddingOptions::default(),
                Accumulate::Replace,
            )
        },
    )
    .flat()?;
    check(
        "candle autograd vs tokenloom dense backward",
        max_diff(by_autograd, &grad_weight)?,
        1e-6,
    );

    // --- 3. The fused head and loss on candle's tensors, against candle's autograd ---
    let (n_tokens, n_embd, vocab_size) = (6, 32, 500);
    let hidden = Var::randn(0f32, 1.0, (n_tokens, n_embd), &device)?;
    let head = Var::randn(0f32, 0.2, (vocab_size, n_embd), &device)?;
    let targets = Tensor::new(&[3u32, 499, 0, 17, 17, 250], &device)?;
    let logits = hidden.as_tensor().matmul(&head.as_tensor().t()?)?;
    let by_candle = candle_nn::loss::cross_entropy(&logits, &targets)?;
    let grads = by_candle.backward()?;
    let (gh_candle, gw_candle) = (
        grads
            .get(hidden.as_tensor())
            .expect("hidden has a gradient"),
        grads.get(head.as_tensor()).expect("head has a gradient"),
    );
    // tokenloom: the loss and both gradients into candle buffers, without the logits.
    let grad_hidden = Tensor::zeros((n_tokens, n_embd), DType::F32, &device)?;
    let grad_head = Tensor::zeros((vocab_size, n_embd), DType::F32, &device)?;
    let loss = lend(
        (
            read::<f32>(hidden.as_tensor()),
            read::<f32>(head.as_tensor()),
            read::<u32>(&targets),
            write::<f32>(&grad_hidden),
            write::<f32>(&grad_head),
        ),
        |(h, w, t, gh, gw)| {
            let grads = functional::LinearCrossEntropyGrads::new()
                .with_hidden(gh)?
                .with_head(gw)?;
            let out = functional::linear_cross_entropy(
                h,
                w,
                t,
                None,
                &functional::CrossEntropyOptions::default(),
                Some(grads),
            )?;
            Ok::<_, Error>(out.loss)
        },
    )
    .flat()?;
    check(
        "candle cross_entropy(h @ Wᵀ) vs tokenloom fused loss",
        (loss as f32 - by_candle.to_scalar::<f32>()?).abs(),
        1e-5,
    );
    check(
        "candle autograd vs tokenloom fused, d loss / d hidden",
        max_diff(gh_candle, &grad_hidden)?,
        1e-5,
    );
    check(
        "candle autograd vs tokenloom fused, d loss / d head",
        max_diff(gw_candle, &grad_head)?,
        1e-5,
    );

    println!("candle interop: {checks} checks passed");
    Ok(())
}
