//! RoPE matches HuggingFace (half-split, every scaling variant) and Meta (interleaved) on
//! the reference vectors, in both tensor layouts, with offsets and explicit position ids,
//! in f64, f32 and bf16.

mod common;

use common::{Case, assert_close, max_abs, max_abs_diff, swap_dims_1_2};
use tokenloom::positions::{
    Llama3Scaling, QkLayout, RopeCache, RopeConfig, RopeLayout, RopeScaling, TokenPositions,
    convert_qk_layout,
};
use tokenloom::tensor::{Element, Tensor, TensorView, bf16, matmul_transposed};

fn dims4(shape: &[usize]) -> [usize; 4] {
    shape.try_into().expect("rank 4")
}

/// Parses the case's config through the HF config parser, as a `config.json` would be.
fn hf_rope_config(case: &Case) -> RopeConfig {
    let c = case.get("config");
    let json = serde_json::json!({
        "model_type": "llama",
        "hidden_size": c["head_dim"].as_u64().unwrap() * c["num_heads"].as_u64().unwrap(),
        "head_dim": c["head_dim"],
        "num_attention_heads": c["num_heads"],
        "num_key_value_heads": c["num_kv_heads"],
        "max_position_embeddings": c["max_position_embeddings"],
        "rope_parameters": c["rope_parameters"],
    });
    tokenloom::decoder_input::ModelSpec::from_hf_json(&json.to_string(), "config.json".as_ref())
        .expect("reference config parses")
        .main_rope()
        .expect("a RoPE")
        .clone()
}

fn to_dtype<T: Element>(xs: &[f64]) -> Vec<T> {
    xs.iter().map(|&x| T::from_f64_lossy(x)).collect()
}

fn to_f64<T: Element>(xs: &[T]) -> Vec<f64> {
    xs.iter().map(|x| x.as_f64()).collect()
}

/// Rotates a `(batch, heads, seq, head_dim)` tensor with explicit ids, and checks that the
/// `(batch, seq, heads, head_dim)` layout gives the same numbers.
fn rotate_both_layouts<T: Element>(
    cache: &RopeCache<impl tokenloom::positions::CacheFloat>,
    x: &[T],
    dims: [usize; 4],
    ids: &Tensor<u32>,
) -> Vec<f64> {
    let bhsd = cache
        .apply(
            TensorView::new(x, &dims).unwrap(),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Ids(ids.view()),
        )
        .unwrap();
    let [b, h, s, d] = dims;
    let x_bshd = swap_dims_1_2(x, dims);
    let bshd = cache
        .apply(
            TensorView::new(&x_bshd, &[b, s, h, d]).unwrap(),
            QkLayout::BatchSeqHeads,
            TokenPositions::Ids(ids.view()),
        )
        .unwrap();
    let back = swap_dims_1_2(bshd.as_slice(), [b, s, h, d]);
    assert!(
        to_f64(&back) == to_f64(bhsd.as_slice()),
        "the two tensor layouts disagree"
    );
    to_f64(bhsd.as_slice())
}

fn check_hf_case(name: &str) {
    check_hf(&common::case(name), name);
}

fn check_hf(case: &Case, name: &str) {
    let config = hf_rope_config(case);
    assert_eq!(config.layout, RopeLayout::HalfSplit);
    let tol = case.f64("tolerance/abs");
    let (ids_shape, ids) = case.ids("inputs/position_ids");
    let max_positions = *ids.iter().max().unwrap() as usize + 1;
    let cache = RopeCache::<f64>::new(&config, max_positions).unwrap();
    let ids = Tensor::from_vec(ids, &ids_shape).unwrap();

    // Frequencies and attention scaling.
    let (_, inv_freq) = case.tensor("expected/inv_freq");
    assert_close(
        &format!("{name} inv_freq"),
        cache.inv_freq(),
        &inv_freq,
        tol,
    );
    assert!((cache.attention_factor() - case.f64("expected/attention_scaling")).abs() < 1e-15);

    // cos/sin: HF stores cat(freqs, freqs) per (batch, seq).
    let (cos_shape, want_cos) = case.tensor("expected/cos");
    let (_, want_sin) = case.tensor("expected/sin");
    let rot = cos_shape[2];
    let half = rot / 2;
    assert_eq!(config.rotary_dim, rot, "{name}: rotary_dim");
    for (t, &pos) in ids.as_slice().iter().enumerate() {
        for j in 0..rot {
            let got_cos = cache.cos_row(pos as usize).unwrap()[j % half];
            let got_sin = cache.sin_row(pos as usize).unwrap()[j % half];
            assert!(
                (got_cos - want_cos[t * rot + j]).abs() <= tol,
                "{name}: cos at token {t}, dim {j}"
            );
            assert!(
                (got_sin - want_sin[t * rot + j]).abs() <= tol,
                "{name}: sin at token {t}, dim {j}"
            );
        }
    }

    // q and k, both tensor layouts.
    for (input, expected) in [
        ("inputs/q", "expected/q_embed"),
        ("inputs/k", "expected/k_embed"),
    ] {
        let (shape, x) = case.tensor(input);
        let (_, want) = case.tensor(expected);
        let got = rotate_both_layouts(&cache, &x, dims4(&shape), &ids);
        assert_close(&format!("{name} {expected}"), &got, &want, tol);

        // Rows whose positions are contiguous also match through the offset API.
        let [b, h, s, d] = dims4(&shape);
        for row in 0..b {
            let row_ids = &ids.as_slice()[row * s..(row + 1) * s];
            if row_ids.windows(2).all(|w| w[1] == w[0] + 1) {
                let chunk = &x[row * h * s * d..(row + 1) * h * s * d];
                let out = cache
                    .apply(
                        TensorView::new(chunk, &[1, h, s, d]).unwrap(),
                        QkLayout::BatchHeadsSeq,
                        TokenPositions::Offset(row_ids[0] as usize),
                    )
                    .unwrap();
                assert_close(
                    &format!("{name} {expected} row {row} by offset"),
                    out.as_slice(),
                    &want[row * h * s * d..(row + 1) * h * s * d],
                    tol,
                );
            }
        }
    }

    // Reduced-precision blocks: inputs rounded to f32 / bf16, compared with the float64
    // result from the same rounded inputs.
    let max_position = max_positions as f64;
    if case.json.get("native_float32").is_some() {
        let cache32 = RopeCache::<f32>::new(&config, max_positions).unwrap();
        for (input, expected) in [("q", "q_embed"), ("k", "k_embed")] {
            let (shape, x) = case.tensor(&format!("native_float32/{input}"));
            let (_, want) = case.tensor(&format!(
                "native_float32/expected_float64_from_rounded_inputs/{expected}"
            ));
            let got = rotate_both_layouts(&cache32, &to_dtype::<f32>(&x), dims4(&shape), &ids);
            let tol32 = (1e-6 + 3e-8 * max_position) * 1.5 * max_abs(&x).max(1.0);
            assert_close(&format!("{name} f32 {expected}"), &got, &want, tol32);
        }
    }
    if case.json.get("native_bfloat16").is_some() {
        let cache32 = RopeCache::<f32>::new(&config, max_positions).unwrap();
        for (input, expected) in [("q", "q_embed"), ("k", "k_embed")] {
            let (shape, x) = case.tensor(&format!("native_bfloat16/{input}"));
            let (_, want) = case.tensor(&format!(
                "native_bfloat16/expected_float64_from_rounded_inputs/{expected}"
            ));
            let got = rotate_both_layouts(&cache32, &to_dtype::<bf16>(&x), dims4(&shape), &ids);
            let ours = max_abs_diff(&got, &want);
            // One bf16 rounding of an f32 result (8-bit significand, unit roundoff 2^-8).
            assert!(
                ours <= 2f64.powi(-8) * max_abs(&want),
                "{name} bf16 {expected}: error {ours}"
            );
            // And never worse than HuggingFace's own bf16 path.
            let hf = case.f64(&format!("native_bfloat16/{expected}_err/max_abs"));
            assert!(ours <= hf, "{name} bf16 {expected}: ours {ours} > HF {hf}");
        }
    }
}

#[test]
fn hf_default() {
    check_hf_case("rope_hf_default_f64");
}

#[test]
fn hf_explicit_position_ids_per_row() {
    check_hf_case("rope_hf_offset_batch3_f64");
}

#[test]
fn hf_partial_rotary() {
    check_hf_case("rope_hf_partial_0p5_f64");
}

#[test]
fn hf_linear() {
    check_hf_case("rope_hf_linear_f64");
}

#[test]
fn hf_dynamic_ntk_short() {
    check_hf_case("rope_hf_dynamic_short_f64");
}

#[test]
fn hf_yarn() {
    check_hf_case("rope_hf_yarn_f64");
}

/// transformers' "proportional" RoPE (Gemma 4), from the committed generator
/// `tests/reference/generated/rope_proportional.py`.
#[test]
fn hf_proportional() {
    let generated =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/generated");
    let name = "rope_hf_proportional_f64";
    let case = Case::load(&generated, name);
    check_hf(&case, name);
    let config = hf_rope_config(&case);
    assert_eq!(
        config.rotary_dim, config.head_dim,
        "the rotation spans the head"
    );
    assert_eq!(
        config.scaling,
        RopeScaling::Proportional {
            factor: 1.0,
            partial_rotary_factor: 0.25
        }
    );
}

#[test]
fn hf_llama3() {
    check_hf_case("rope_hf_llama3_f64");
}

fn meta_rope_config(case: &Case) -> RopeConfig {
    let c = case.get("config");
    let head_dim = c["head_dim"].as_u64().unwrap() as usize;
    let mut config = RopeConfig::new(
        head_dim,
        c["theta"].as_f64().unwrap(),
        RopeLayout::Interleaved,
    );
    if let Some(rot) = c["rotary_dim"].as_u64() {
        config = config.with_rotary_dim(rot as usize);
    }
    if c["use_scaled"].as_bool().unwrap() {
        let s = &c["scaling"];
        config = config.with_scaling(RopeScaling::Llama3(Llama3Scaling {
            factor: s["scale_factor"].as_f64().unwrap(),
            low_freq_factor: s["low_freq_factor"].as_f64().unwrap(),
            high_freq_factor: s["high_freq_factor"].as_f64().unwrap(),
            original_max_position_embeddings: s["old_context_len"].as_u64().unwrap() as usize,
        }));
    }
    config
}

fn check_meta_case(name: &str) {
    let case = common::case(name);
    let config = meta_rope_config(&case);
    let tol = case.f64("tolerance/abs");
    let start_pos = case.get("config/start_pos").as_u64().unwrap() as usize;
    let (shape, _) = case.tensor("inputs/xq");
    let seq_len = shape[1];
    let cache = RopeCache::<f64>::new(&config, start_pos + seq_len).unwrap();

    let (_, real) = case.tensor("expected/freqs_cis_real");
    let (_, imag) = case.tensor("expected/freqs_cis_imag");
    let half = config.rotary_dim / 2;
    for s in 0..seq_len {
        assert_close(
            &format!("{name} cos {s}"),
            cache.cos_row(start_pos + s).unwrap(),
            &real[s * half..(s + 1) * half],
            tol,
        );
        assert_close(
            &format!("{name} sin {s}"),
            cache.sin_row(start_pos + s).unwrap(),
            &imag[s * half..(s + 1) * half],
            tol,
        );
    }
    for (input, expected) in [
        ("inputs/xq", "expected/xq_out"),
        ("inputs/xk", "expected/xk_out"),
    ] {
        let (shape, x) = case.tensor(input);
        let (_, want) = case.tensor(expected);
        let out = cache
            .apply(
                TensorView::new(&x, &shape).unwrap(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Offset(start_pos),
            )
            .unwrap();
        assert_close(&format!("{name} {expected}"), out.as_slice(), &want, tol);
    }
    if case.json.get("native_bfloat16").is_some() {
        let cache32 = RopeCache::<f32>::new(&config, start_pos + seq_len).unwrap();
        for (input, expected) in [("xq", "xq_out"), ("xk", "xk_out")] {
            let (shape, x) = case.tensor(&format!("native_bfloat16/{input}"));
            let (_, want) = case.tensor(&format!(
                "native_bfloat16/expected_float64_from_rounded_inputs/{expected}"
            ));
            let x = to_dtype::<bf16>(&x);
            let out = cache32
                .apply(
                    TensorView::new(&x, &shape).unwrap(),
                    QkLayout::BatchSeqHeads,
                    TokenPositions::Offset(start_pos),
                )
                .unwrap();
            let ours = max_abs_diff(&to_f64(out.as_slice()), &want);
            assert!(
                ours <= 2f64.powi(-8) * max_abs(&want),
                "{name} bf16 {expected}: error {ours}"
            );
            let meta = case.f64(&format!("native_bfloat16/{expected}_err/max_abs"));
            assert!(
                ours <= meta,
                "{name} bf16 {expected}: ours {ours} > Meta {meta}"
            );
        }
    }
}

#[test]
fn meta_default() {
    check_meta_case("rope_meta_default_f64");
}

#[test]
fn meta_kv_cache_offset() {
    check_meta_case("rope_meta_offset_batch3_f64");
}

/// Interleaved weights + interleaved RoPE give the same attention inputs as converted
/// weights + half-split RoPE, up to the per-head permutation; mixing them up does not.
#[test]
fn layout_conversion_is_equivalent() {
    let case = common::case("rope_layout_equivalence_f64");
    let tol = case.f64("tolerance/abs");
    let n_heads = case.get("config/num_heads").as_u64().unwrap() as usize;
    let head_dim = case.get("config/head_dim").as_u64().unwrap() as usize;
    let start_pos = case.get("config/start_pos").as_u64().unwrap() as usize;
    let theta = case.f64("config/theta");
    let (x_shape, x) = case.tensor("inputs/x");
    let (w_shape, wq_meta) = case.tensor("inputs/wq_meta");
    let seq_len = x_shape[1];
    let hidden = x_shape[2];

    let wq_meta = Tensor::from_vec(wq_meta, &w_shape).unwrap();
    let wq_hf = convert_qk_layout(
        wq_meta.view(),
        "q_proj",
        n_heads,
        head_dim,
        head_dim,
        RopeLayout::Interleaved,
        RopeLayout::HalfSplit,
    )
    .unwrap();
    let (_, want_wq_hf) = case.tensor("expected/wq_hf");
    assert_eq!(wq_hf.as_slice(), &want_wq_hf[..], "permuted weight");
    // And back again, bit for bit.
    let back = convert_qk_layout(
        wq_hf.view(),
        "q_proj",
        n_heads,
        head_dim,
        head_dim,
        RopeLayout::HalfSplit,
        RopeLayout::Interleaved,
    )
    .unwrap();
    assert_eq!(back, wq_meta);

    let x2 = TensorView::new(&x, &[seq_len, hidden]).unwrap();
    let xq_meta = matmul_transposed(x2, wq_meta.view()).unwrap(); // (S, H*D) = (1, S, H, D)
    let xq_hf_bshd = matmul_transposed(x2, wq_hf.view()).unwrap();
    let (_, want) = case.tensor("expected/xq_meta");
    assert_close("xq_meta", xq_meta.as_slice(), &want, tol);
    let xq_hf = swap_dims_1_2(xq_hf_bshd.as_slice(), [1, seq_len, n_heads, head_dim]);
    let (_, want) = case.tensor("expected/xq_hf");
    assert_close("xq_hf", &xq_hf, &want, tol);

    let meta_cache = RopeCache::<f64>::new(
        &RopeConfig::new(head_dim, theta, RopeLayout::Interleaved),
        start_pos + seq_len,
    )
    .unwrap();
    let hf_cache = RopeCache::<f64>::new(
        &RopeConfig::new(head_dim, theta, RopeLayout::HalfSplit),
        start_pos + seq_len,
    )
    .unwrap();
    let meta_out = meta_cache
        .apply(
            TensorView::new(xq_meta.as_slice(), &[1, seq_len, n_heads, head_dim]).unwrap(),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(start_pos),
        )
        .unwrap();
    let (_, want) = case.tensor("expected/rope_meta_out");
    assert_close("rope_meta_out", meta_out.as_slice(), &want, tol);
    let hf_out = hf_cache
        .apply(
            TensorView::new(&xq_hf, &[1, n_heads, seq_len, head_dim]).unwrap(),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Offset(start_pos),
        )
        .unwrap();
    let (_, want_hf) = case.tensor("expected/rope_hf_out");
    assert_close("rope_hf_out", hf_out.as_slice(), &want_hf, tol);

    // Attention scores q_m · q_n per head agree between the two pipelines.
    let hf_bshd = swap_dims_1_2(hf_out.as_slice(), [1, n_heads, seq_len, head_dim]);
    for h in 0..n_heads {
        for m in 0..seq_len {
            for n in 0..seq_len {
                let dot = |v: &[f64]| -> f64 {
                    let a = &v[(m * n_heads + h) * head_dim..][..head_dim];
                    let b = &v[(n * n_heads + h) * head_dim..][..head_dim];
                    a.iter().zip(b).map(|(x, y)| x * y).sum()
                };
                assert!(
                    (dot(meta_out.as_slice()) - dot(&hf_bshd)).abs() < 1e-12,
                    "score head {h} ({m}, {n})"
                );
            }
        }
    }

    // The classic porting bug: half-split RoPE on Meta-ordered vectors.
    let meta_bhsd = swap_dims_1_2(xq_meta.as_slice(), [1, seq_len, n_heads, head_dim]);
    let wrong = hf_cache
        .apply(
            TensorView::new(&meta_bhsd, &[1, n_heads, seq_len, head_dim]).unwrap(),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Offset(start_pos),
        )
        .unwrap();
    let (_, want_wrong) = case.tensor("expected/hf_rope_on_meta_order_WRONG");
    assert_close(
        "hf_rope_on_meta_order_WRONG",
        wrong.as_slice(),
        &want_wrong,
        tol,
    );
    let meta_out_bhsd = swap_dims_1_2(meta_out.as_slice(), [1, seq_len, n_heads, head_dim]);
    assert!(
        max_abs_diff(wrong.as_slice(), &meta_out_bhsd) > 1e-3,
        "the wrong pipeline must differ"
    );
}
