//! tokenloom's candle ops inside candle's autograd: gradients against candle's own ops
//! (or the definition where candle has none), position ids, dtypes, and refusals.

use tokenloom::adapters::candle_core::{DType, Device, Module, Tensor, Var};
use tokenloom::candle::{Embedding, RopePositions, Rotary, embedding, logits, op_error, rope};
use tokenloom::embedding::{EmbeddingError, EmbeddingOptions, MaxNorm, NormType};
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout};

type Error = Box<dyn std::error::Error>;

fn max_diff(a: &Tensor, b: &Tensor) -> Result<f64, Error> {
    Ok((a.to_dtype(DType::F64)? - b.to_dtype(DType::F64)?)?
        .abs()?
        .flatten_all()?
        .max(0)?
        .to_scalar::<f64>()?)
}

/// The embedding's gradient under padding_idx and scale_grad_by_freq, against the
/// definition: the sum of the rows' gradients per id, divided by the id's count, none for
/// the padding row.
#[test]
fn embedding_gradient_is_pytorchs() -> Result<(), Error> {
    let device = Device::Cpu;
    let (vocab_size, n_embd) = (7, 3);
    let table = Var::randn(0f64, 1.0, (vocab_size, n_embd), &device)?;
    let ids_vec: Vec<i64> = vec![3, 1, 3, 0, 3, 6, 1, 0];
    let ids = Tensor::from_vec(ids_vec.clone(), (2, 4), &device)?;
    let upstream = Tensor::randn(0f64, 1.0, (2, 4, n_embd), &device)?;
    let options = EmbeddingOptions {
        padding_idx: Some(0),
        scale_grad_by_freq: true,
        ..EmbeddingOptions::default()
    };
    let rows = embedding(table.as_tensor(), &ids, &options)?;
    assert_eq!(
        max_diff(
            &rows,
            &table
                .as_tensor()
                .embedding(&ids.flatten_all()?)?
                .reshape((2, 4, n_embd))?
        )?,
        0.0
    );
    let grads = (rows * &upstream)?.sum_all()?.backward()?;
    let got = grads.get(&table).ok_or("no gradient")?.to_vec2::<f64>()?;

    let upstream = upstream.flatten_to(1)?.to_vec2::<f64>()?;
    let mut expected = vec![vec![0.0f64; n_embd]; vocab_size];
    for (pos, &id) in ids_vec.iter().enumerate() {
        if id == 0 {
            continue;
        }
        let count = ids_vec.iter().filter(|&&other| other == id).count() as f64;
        for (e, g) in expected[id as usize].iter_mut().zip(&upstream[pos]) {
            *e += g / count;
        }
    }
    for (row, (g, e)) in got.iter().zip(&expected).enumerate() {
        for (a, b) in g.iter().zip(e) {
            assert!((a - b).abs() <= 1e-12, "row {row}: {a} vs {b}");
        }
    }
    assert!(
        got[0].iter().all(|&v| v == 0.0),
        "the padding row got a gradient"
    );
    Ok(())
}

/// The head's gradients (hidden and weight) against candle's matmul autograd, in f32
/// and with a logit scale.
#[test]
fn head_gradients_equal_candles_matmul() -> Result<(), Error> {
    let device = Device::Cpu;
    let weight = Var::randn(0f32, 1.0, (11, 5), &device)?;
    let hidden = Var::randn(0f32, 1.0, (2, 3, 5), &device)?;
    let upstream = Tensor::randn(0f32, 1.0, (2, 3, 11), &device)?;
    let scale = 0.25;

    let ours = logits(hidden.as_tensor(), weight.as_tensor(), scale)?;
    let theirs = (hidden
        .as_tensor()
        .broadcast_matmul(&weight.as_tensor().t()?)?
        * scale)?;
    assert!(max_diff(&ours, &theirs)? <= 1e-6);
    let g_ours = (ours * &upstream)?.sum_all()?.backward()?;
    let g_theirs = (theirs * &upstream)?.sum_all()?.backward()?;
    for var in [&hidden, &weight] {
        let diff = max_diff(
            g_ours.get(var).ok_or("no gradient")?,
            g_theirs.get(var).ok_or("no gradient")?,
        )?;
        assert!(diff <= 1e-5, "{diff}");
    }
    Ok(())
}

/// RoPE's backward is the transpose of its forward: ⟨rope(x), g⟩ = ⟨x, ∇ₓ⟨rope(x), g⟩⟩,
/// in both q/k layouts, both pair layouts, with offsets and with (left-padded) i64
/// position ids; and the rotation matches the rotation by explicit ids.
#[test]
fn rope_backward_is_the_transpose() -> Result<(), Error> {
    let device = Device::Cpu;
    let (batch, seq_len, n_heads, head_dim) = (2, 5, 3, 8);
    for pair_layout in [RopeLayout::HalfSplit, RopeLayout::Interleaved] {
        let cache = RopeCache::<f64>::new(&RopeConfig::new(head_dim, 10_000.0, pair_layout), 16)?;
        for qk_layout in [QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq] {
            let rotary = Rotary::from_cache(&cache, qk_layout, &device)?;
            let dims = match qk_layout {
                QkLayout::BatchSeqHeads => (batch, seq_len, n_heads, head_dim),
                _ => (batch, n_heads, seq_len, head_dim),
            };
            let x = Var::randn(0f64, 1.0, dims, &device)?;
            let g = Tensor::randn(0f64, 1.0, dims, &device)?;
            let ids = Tensor::new(&[[3i64, 4, 5, 6, 7], [0, 0, 1, 2, 3]], &device)?;
            for positions in [RopePositions::Offset(3), RopePositions::Ids(ids.clone())] {
                let y = rotary.forward(x.as_tensor(), &positions)?;
                let inner = (&y * &g)?.sum_all()?;
                let grad = inner.backward()?;
                let grad = grad.get(&x).ok_or("no gradient")?;
                let adjoint = (x.as_tensor() * grad)?.sum_all()?.to_scalar::<f64>()?;
                let inner = inner.to_scalar::<f64>()?;
                assert!(
                    (inner - adjoint).abs() <= 1e-10,
                    "{pair_layout:?} {qk_layout:?}: {inner} vs {adjoint}"
                );
                // The gradient is not the forward rotation (a wrong direction fails here).
                assert!(max_diff(grad, &rotary.forward(&g, &positions)?)? > 1e-3);
            }
            // Offset 3 on every row is ids 3..8 on every row.
            let row_ids = Tensor::new(&[[3u32, 4, 5, 6, 7], [3, 4, 5, 6, 7]], &device)?;
            let by_offset = rotary.forward(x.as_tensor(), &RopePositions::Offset(3))?;
            let by_ids = rotary.forward(x.as_tensor(), &RopePositions::Ids(row_ids))?;
            assert_eq!(max_diff(&by_offset, &by_ids)?, 0.0);
        }
    }
    Ok(())
}

/// f16 and bf16 tables and activations run (f32 accumulation inside), and the tables
/// may be a narrowed view of a duplicated cache.
#[test]
fn half_dtypes_and_strided_tables() -> Result<(), Error> {
    let device = Device::Cpu;
    for dtype in [DType::F16, DType::BF16] {
        let table = Tensor::randn(0f32, 1.0, (9, 4), &device)?.to_dtype(dtype)?;
        let layer = Embedding::new(table.clone(), EmbeddingOptions::default())?;
        let rows = layer.forward(&Tensor::new(&[2u32, 8], &device)?)?;
        assert_eq!(rows.dtype(), dtype);
        assert_eq!(
            max_diff(&rows, &table.embedding(&Tensor::new(&[2u32, 8], &device)?)?)?,
            0.0
        );
        let scores = layer.logits(&rows)?;
        let expected = rows
            .to_dtype(DType::F32)?
            .matmul(&table.to_dtype(DType::F32)?.t()?)?;
        assert!(max_diff(&scores, &expected)? <= 0.05 * 4.0);
    }
    // A duplicated (positions, head_dim) cache, as transformers builds it: its first half.
    let cache = RopeCache::<f32>::new(&RopeConfig::new(4, 10_000.0, RopeLayout::HalfSplit), 6)?;
    let cos = Tensor::from_slice(cache.cos().as_slice(), (6, 2), &device)?;
    let sin = Tensor::from_slice(cache.sin().as_slice(), (6, 2), &device)?;
    let (cos_dup, sin_dup) = (
        Tensor::cat(&[&cos, &cos], 1)?,
        Tensor::cat(&[&sin, &sin], 1)?,
    );
    let x = Tensor::randn(0f32, 1.0, (1, 6, 2, 4), &device)?;
    let (layout, qk, at) = (
        RopeLayout::HalfSplit,
        QkLayout::BatchSeqHeads,
        RopePositions::Offset(0),
    );
    let y = rope(&x, &cos, &sin, layout, qk, &at)?;
    let y_view = rope(
        &x,
        &cos_dup.narrow(1, 0, 2)?,
        &sin_dup.narrow(1, 0, 2)?,
        layout,
        qk,
        &at,
    )?;
    assert_eq!(max_diff(&y, &y_view)?, 0.0);
    Ok(())
}

fn source_message(err: &tokenloom::adapters::candle_core::Error) -> String {
    err.to_string()
}

/// Bad input is a typed error naming the numbers, never a panic.
#[test]
fn refusals_name_the_problem() -> Result<(), Error> {
    let device = Device::Cpu;
    let table = Tensor::zeros((5, 2), DType::F32, &device)?;
    let err = embedding(
        &table,
        &Tensor::new(&[[1i64, 9]], &device)?,
        &EmbeddingOptions::default(),
    )
    .unwrap_err();
    assert!(
        source_message(&err).contains("token id 9 at batch 0, position 1 is outside vocab_size 5"),
        "{err}"
    );
    let err = embedding(
        &table,
        &Tensor::new(&[1f32], &device)?,
        &EmbeddingOptions::default(),
    )
    .unwrap_err();
    assert!(source_message(&err).contains("u32, i64 or i32"), "{err}");
    let err = embedding(
        &table.to_dtype(DType::U32)?,
        &Tensor::new(&[1u32], &device)?,
        &EmbeddingOptions::default(),
    )
    .unwrap_err();
    assert!(
        source_message(&err).contains("f32, f64, f16 or bf16"),
        "{err}"
    );

    let max_norm = EmbeddingOptions {
        max_norm: Some(MaxNorm {
            max_norm: 1.0,
            norm_type: NormType::P(2.0),
        }),
        ..EmbeddingOptions::default()
    };
    let err = Embedding::new(table.clone(), max_norm).unwrap_err();
    let wrapped = op_error(&err).and_then(|e| e.downcast_ref::<EmbeddingError>());
    assert!(
        matches!(
            wrapped,
            Some(EmbeddingError::InvalidOption {
                name: "max_norm",
                ..
            })
        ),
        "{err:?}"
    );

    let cache = RopeCache::<f32>::new(&RopeConfig::new(4, 10_000.0, RopeLayout::HalfSplit), 4)?;
    let rotary = Rotary::from_cache(&cache, QkLayout::BatchSeqHeads, &device)?;
    let x = Tensor::zeros((1, 3, 1, 4), DType::F32, &device)?;
    let err = rotary.forward(&x, &RopePositions::Offset(2)).unwrap_err();
    assert!(source_message(&err).contains('4'), "{err}");
    let err = rotary
        .forward(
            &x,
            &RopePositions::Ids(Tensor::new(&[[0i64, -1, 2]], &device)?),
        )
        .unwrap_err();
    assert!(source_message(&err).contains("-1"), "{err}");
    Ok(())
}

/// The fused head + cross-entropy against the logits op and a cross-entropy built from
/// candle's own ops: the loss and both gradients, with an ignored target and an upstream
/// gradient other than 1; untracked inputs compute the loss alone.
#[test]
fn fused_loss_equals_logits_and_candles_cross_entropy() -> Result<(), Error> {
    use tokenloom::candle::linear_cross_entropy;
    use tokenloom::embedding::functional::CrossEntropyOptions;
    let device = Device::Cpu;
    let (tokens, n_embd, vocab_size) = (7, 5, 13);
    let hidden = Var::randn(0f64, 1.0, (tokens, n_embd), &device)?;
    let head = Var::randn(0f64, 1.0, (vocab_size, n_embd), &device)?;
    let targets = Tensor::new(&[3i64, 0, 12, -100, 5, 5, 1], &device)?;
    let options = CrossEntropyOptions::default(); // mean, ignore_index -100
    let ours =
        (linear_cross_entropy(hidden.as_tensor(), head.as_tensor(), &targets, &options)? * 3.0)?;

    // Candle's own: log-softmax, the target's entry, mean over the counted tokens.
    let scores = logits(hidden.as_tensor(), head.as_tensor(), 1.0)?;
    let max = scores.max_keepdim(1)?;
    let shifted = scores.broadcast_sub(&max)?;
    let log_p = shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(1)?.log()?)?;
    let keep = targets.ge(0i64)?;
    let safe = keep.where_cond(&targets, &targets.zeros_like()?)?;
    let picked = log_p.gather(&safe.unsqueeze(1)?, 1)?.squeeze(1)?;
    let counted = keep.to_dtype(DType::F64)?;
    let n_counted = counted.sum_all()?.to_scalar::<f64>()?;
    let theirs = ((picked * &counted)?.sum_all()?.neg()? * (3.0 / n_counted))?;

    assert!(max_diff(&ours, &theirs)? <= 1e-12, "{ours} vs {theirs}");
    let (g_ours, g_theirs) = (ours.backward()?, theirs.backward()?);
    for var in [&hidden, &head] {
        let diff = max_diff(
            g_ours.get(var).ok_or("no gradient")?,
            g_theirs.get(var).ok_or("no gradient")?,
        )?;
        assert!(diff <= 1e-12, "{diff}");
    }
    // Untracked inputs: the loss alone, the same number.
    let plain = linear_cross_entropy(
        &hidden.as_tensor().detach(),
        &head.as_tensor().detach(),
        &targets,
        &options,
    )?;
    assert!(max_diff(&(plain * 3.0)?, &ours)? <= 1e-12);
    Ok(())
}
