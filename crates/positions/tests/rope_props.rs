//! Property tests of RoPE: the laws of the rotation, for random configs in both layouts,
//! partial rotary, and every scaling variant.

use proptest::prelude::*;
use tokenloom_positions::{
    Direction, PositionError, QkLayout, RopeCache, RopeConfig, RopeLayout, RopeScaling,
    TokenPositions, convert_qk_layout,
};
use tokenloom_tensor::{Tensor, TensorView, TensorViewMut, matmul_transposed};

use tokenloom_testkit::strategies::{rope_config as config, rope_layout as layout};

/// A config, a (batch, seq_len, n_heads, head_dim) tensor and an offset.
fn case() -> impl Strategy<Value = (RopeConfig, [usize; 4], Vec<f64>, usize)> {
    (config(), 1usize..3, 1usize..6, 1usize..4, 0usize..2000).prop_flat_map(
        |(config, b, s, h, offset)| {
            let dims = [b, s, h, config.head_dim];
            let len: usize = dims.iter().product();
            (
                Just(config),
                Just(dims),
                prop::collection::vec(-3.0f64..3.0, len),
                Just(offset),
            )
        },
    )
}

fn apply(
    cache: &RopeCache<f64>,
    x: &[f64],
    dims: [usize; 4],
    positions: TokenPositions<'_>,
) -> Vec<f64> {
    cache
        .apply(
            TensorView::new(x, &dims).unwrap(),
            QkLayout::BatchSeqHeads,
            positions,
        )
        .unwrap()
        .into_parts()
        .1
}

/// The (x, y) pairs of one head in the config's layout.
fn pairs(head: &[f64], config: &RopeConfig) -> Vec<(f64, f64)> {
    let half = config.rotary_dim / 2;
    (0..half)
        .map(|i| match config.layout {
            RopeLayout::Interleaved => (head[2 * i], head[2 * i + 1]),
            RopeLayout::HalfSplit => (head[i], head[i + half]),
            other => panic!("this oracle knows no {other:?} pairs"),
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    /// Each pair's norm is multiplied by the attention factor (1 without YaRN/LongRoPE),
    /// and the pass-through part is untouched.
    #[test]
    fn rotation_preserves_pair_norms((config, dims, x, offset) in case()) {
        let cache = RopeCache::<f64>::new(&config, offset + dims[1]).unwrap();
        let s = cache.attention_factor();
        let out = apply(&cache, &x, dims, TokenPositions::Offset(offset));
        for (hx, hy) in x.chunks(config.head_dim).zip(out.chunks(config.head_dim)) {
            for ((a, b), (c, d)) in pairs(hx, &config).into_iter().zip(pairs(hy, &config)) {
                let before = a.hypot(b) * s;
                let after = c.hypot(d);
                prop_assert!((before - after).abs() <= 1e-12 * (1.0 + before), "{before} vs {after}");
            }
            prop_assert_eq!(&hx[config.rotary_dim..], &hy[config.rotary_dim..]);
        }
    }

    /// Position 0 is the identity (exactly, without an attention factor).
    #[test]
    fn position_zero_is_identity((config, dims, x, _) in case()) {
        let cache = RopeCache::<f64>::new(&config, 1).unwrap();
        let single = [dims[0], 1, dims[2], dims[3]];
        let x = &x[..single.iter().product()];
        let out = apply(&cache, x, single, TokenPositions::Offset(0));
        let s = cache.attention_factor();
        let want: Vec<f64> = x.iter().enumerate().map(|(i, v)| if i % config.head_dim < config.rotary_dim { v * s } else { *v }).collect();
        prop_assert_eq!(out, want);
    }

    /// inverse ∘ apply is the identity, for every scaling (including an attention factor).
    #[test]
    fn inverse_undoes_apply((config, dims, x, offset) in case()) {
        let cache = RopeCache::<f64>::new(&config, offset + dims[1]).unwrap();
        let mut y = Tensor::from_vec(apply(&cache, &x, dims, TokenPositions::Offset(offset)), &dims).unwrap();
        cache.rotate_in_place(y.view_mut(), QkLayout::BatchSeqHeads, TokenPositions::Offset(offset), Direction::Inverse).unwrap();
        tokenloom_testkit::reference::assert_close("inverse", y.as_slice(), &x, 1e-12);
    }

    /// Decoding token by token with an offset gives exactly the prefill result.
    #[test]
    fn decode_with_offset_equals_prefill((config, dims, x, offset) in case()) {
        let cache = RopeCache::<f64>::new(&config, offset + dims[1]).unwrap();
        let prefill = apply(&cache, &x, dims, TokenPositions::Offset(offset));
        let [b, s, h, d] = dims;
        for bi in 0..b {
            for si in 0..s {
                let start = ((bi * s + si) * h) * d;
                let token = &x[start..start + h * d];
                let decoded = apply(&cache, token, [1, 1, h, d], TokenPositions::Offset(offset + si));
                prop_assert_eq!(&decoded[..], &prefill[start..start + h * d]);
            }
        }
    }

    /// The backward pass is the transpose: <G, rope(x)> = <backward(G), x>.
    #[test]
    fn backward_is_the_adjoint((config, dims, x, offset) in case(), seed in any::<u64>()) {
        let cache = RopeCache::<f64>::new(&config, offset + dims[1]).unwrap();
        let g: Vec<f64> = (0..x.len()).map(|i| (((i as u64).wrapping_mul(2654435761) ^ seed) % 1000) as f64 / 500.0 - 1.0).collect();
        let y = apply(&cache, &x, dims, TokenPositions::Offset(offset));
        let mut gx = g.clone();
        cache.rotate_in_place(TensorViewMut::new(&mut gx, &dims).unwrap(), QkLayout::BatchSeqHeads, TokenPositions::Offset(offset), Direction::Backward).unwrap();
        let lhs: f64 = g.iter().zip(&y).map(|(a, b)| a * b).sum();
        let rhs: f64 = gx.iter().zip(&x).map(|(a, b)| a * b).sum();
        prop_assert!((lhs - rhs).abs() <= 1e-10 * (1.0 + lhs.abs()), "{lhs} vs {rhs}");
    }

    /// <R_m q, R_n k> depends only on m − n (default scaling, any layout).
    #[test]
    fn scores_depend_only_on_relative_position(
        half_head in 1usize..32, layout in layout(), theta in 100.0f64..1e6,
        q in prop::collection::vec(-2.0f64..2.0, 64), k in prop::collection::vec(-2.0f64..2.0, 64),
        m in 0usize..500, n in 0usize..500, shift in 0usize..500,
    ) {
        let d = 2 * half_head;
        let config = RopeConfig::new(d, theta, layout);
        let cache = RopeCache::<f64>::new(&config, 1100).unwrap();
        let score = |m: usize, n: usize| -> f64 {
            let qm = apply(&cache, &q[..d], [1, 1, 1, d], TokenPositions::Offset(m));
            let kn = apply(&cache, &k[..d], [1, 1, 1, d], TokenPositions::Offset(n));
            qm.iter().zip(&kn).map(|(a, b)| a * b).sum()
        };
        let (a, b) = (score(m, n), score(m + shift, n + shift));
        prop_assert!((a - b).abs() <= 1e-9, "{a} vs {b}");
    }

    /// Converting q/k weights to the other layout and switching the RoPE layout leaves
    /// every attention score unchanged, with grouped-query attention.
    #[test]
    fn layout_conversion_preserves_scores(
        half_head in 1usize..8, n_kv_heads in 1usize..3, group in 1usize..3, n_embd in 1usize..6,
        seq_len in 1usize..5, offset in 0usize..100, seed in any::<u64>(), partial in any::<bool>(),
    ) {
        let head_dim = 2 * half_head;
        let rotary_dim = if partial { 2 * half_head.div_ceil(2) } else { head_dim };
        let n_heads = n_kv_heads * group;
        let val = |i: usize| (((i as u64 ^ seed).wrapping_mul(0x9E3779B97F4A7C15) >> 40) % 2000) as f64 / 1000.0 - 1.0;
        let x = Tensor::from_vec((0..seq_len * n_embd).map(val).collect(), &[seq_len, n_embd]).unwrap();
        let wq = Tensor::from_vec((0..n_heads * head_dim * n_embd).map(|i| val(i + 7919)).collect(), &[n_heads * head_dim, n_embd]).unwrap();
        let wk = Tensor::from_vec((0..n_kv_heads * head_dim * n_embd).map(|i| val(i + 104_729)).collect(), &[n_kv_heads * head_dim, n_embd]).unwrap();
        let scores = |layout: RopeLayout, wq: &Tensor<f64>, wk: &Tensor<f64>| -> Vec<f64> {
            let cache = RopeCache::<f64>::new(&RopeConfig::new(head_dim, 1e4, layout).with_rotary_dim(rotary_dim), offset + seq_len).unwrap();
            let q = matmul_transposed(x.view(), wq.view()).unwrap();
            let k = matmul_transposed(x.view(), wk.view()).unwrap();
            let q = apply(&cache, q.as_slice(), [1, seq_len, n_heads, head_dim], TokenPositions::Offset(offset));
            let k = apply(&cache, k.as_slice(), [1, seq_len, n_kv_heads, head_dim], TokenPositions::Offset(offset));
            let mut out = Vec::new();
            for h in 0..n_heads {
                let kv = h / group;
                for m in 0..seq_len {
                    for n in 0..seq_len {
                        let qm = &q[(m * n_heads + h) * head_dim..][..head_dim];
                        let kn = &k[(n * n_kv_heads + kv) * head_dim..][..head_dim];
                        out.push(qm.iter().zip(kn).map(|(a, b)| a * b).sum());
                    }
                }
            }
            out
        };
        let convert = |w: &Tensor<f64>, heads: usize| convert_qk_layout(w.view(), "proj", heads, head_dim, rotary_dim, RopeLayout::Interleaved, RopeLayout::HalfSplit).unwrap();
        let (wq_hf, wk_hf) = (convert(&wq, n_heads), convert(&wk, n_kv_heads));
        tokenloom_testkit::reference::assert_close("scores", &scores(RopeLayout::HalfSplit, &wq_hf, &wk_hf), &scores(RopeLayout::Interleaved, &wq, &wk), 1e-12);
        // Round trip is bit-exact.
        let back = convert_qk_layout(wq_hf.view(), "proj", n_heads, head_dim, rotary_dim, RopeLayout::HalfSplit, RopeLayout::Interleaved).unwrap();
        prop_assert_eq!(back, wq);
    }

    /// f16 and bf16 activations rotate in f32 and round once: within one rounding of the
    /// f64 result.
    #[test]
    fn half_precision_within_one_rounding((config, dims, x, offset) in case()) {
        use tokenloom_tensor::{Element, bf16, f16};
        fn check<T: Element>(config: &RopeConfig, dims: [usize; 4], x: &[f64], offset: usize, unit_roundoff: f64) -> Result<(), TestCaseError> {
            let xs: Vec<T> = x.iter().map(|&v| T::from_f64_lossy(v)).collect();
            let rounded: Vec<f64> = xs.iter().map(|v| v.as_f64()).collect();
            let c64 = RopeCache::<f64>::new(config, offset + dims[1]).unwrap();
            let c32 = RopeCache::<f32>::new(config, offset + dims[1]).unwrap();
            let want = apply(&c64, &rounded, dims, TokenPositions::Offset(offset));
            let got = c32.apply(TensorView::new(&xs, &dims).unwrap(), QkLayout::BatchSeqHeads, TokenPositions::Offset(offset)).unwrap();
            let bound = (unit_roundoff + 1e-6) * 3.0 * c64.attention_factor().max(1.0) * 2.0;
            for (g, w) in got.as_slice().iter().zip(&want) {
                prop_assert!((g.as_f64() - w).abs() <= bound * (1.0 + w.abs()), "{} vs {w}", g.as_f64());
            }
            Ok(())
        }
        check::<f16>(&config, dims, &x, offset, 2f64.powi(-11))?;
        check::<bf16>(&config, dims, &x, offset, 2f64.powi(-8))?;
    }
}

#[test]
fn bad_inputs_are_errors() {
    let config = RopeConfig::new(8, 1e4, RopeLayout::HalfSplit);
    let cache = RopeCache::<f32>::new(&config, 10).unwrap();
    let mut x = vec![0.0f32; 2 * 3 * 8];
    let rotate_err = |x: &mut [f32], dims: &[usize], layout, positions| {
        cache
            .rotate_in_place(
                TensorViewMut::new(x, dims).unwrap(),
                layout,
                positions,
                Direction::Forward,
            )
            .unwrap_err()
    };
    // Past the cache: offset 8 with seq_len 3 needs position 10.
    let err = rotate_err(
        &mut x,
        &[2, 3, 1, 8],
        QkLayout::BatchSeqHeads,
        TokenPositions::Offset(8),
    );
    assert_eq!(
        err,
        PositionError::PositionOutOfRange {
            position: 10,
            batch: 0,
            index: 2,
            max_positions: 10
        }
    );
    let err = rotate_err(
        &mut x,
        &[2, 3, 1, 8],
        QkLayout::BatchSeqHeads,
        TokenPositions::Offset(usize::MAX),
    );
    assert!(
        matches!(err, PositionError::PositionOutOfRange { .. }),
        "{err}"
    );
    // Explicit ids: wrong shape, and an id past the cache.
    let ids = Tensor::from_vec(vec![0u32, 1, 2], &[1, 3]).unwrap();
    let err = rotate_err(
        &mut x,
        &[2, 3, 1, 8],
        QkLayout::BatchSeqHeads,
        TokenPositions::Ids(ids.view()),
    );
    assert!(
        matches!(err, PositionError::PositionIdsShape { .. }),
        "{err}"
    );
    let ids = Tensor::from_vec(vec![0u32, 1, 2, 3, 99, 5], &[2, 3]).unwrap();
    let err = rotate_err(
        &mut x,
        &[2, 3, 1, 8],
        QkLayout::BatchSeqHeads,
        TokenPositions::Ids(ids.view()),
    );
    assert_eq!(
        err.to_string(),
        "position 99 at batch 1, index 1 is outside the RoPE cache of max_positions 10"
    );
    // Wrong head_dim and wrong rank.
    let err = rotate_err(
        &mut x,
        &[2, 3, 2, 4],
        QkLayout::BatchSeqHeads,
        TokenPositions::Offset(0),
    );
    assert!(
        matches!(err, PositionError::QkShape { head_dim: 8, .. }),
        "{err}"
    );
    let err = rotate_err(
        &mut x,
        &[6, 8],
        QkLayout::BatchHeadsSeq,
        TokenPositions::Offset(0),
    );
    assert!(matches!(err, PositionError::QkShape { .. }), "{err}");
    assert!(x.iter().all(|&v| v == 0.0), "nothing written on error");

    // Invalid configs.
    for (bad, what) in [
        (
            RopeConfig::new(8, 1e4, RopeLayout::HalfSplit).with_rotary_dim(7),
            "odd rotary_dim",
        ),
        (
            RopeConfig::new(8, 1e4, RopeLayout::HalfSplit).with_rotary_dim(10),
            "rotary_dim > head_dim",
        ),
        (
            RopeConfig::new(8, 1e4, RopeLayout::HalfSplit).with_rotary_dim(0),
            "zero rotary_dim",
        ),
        (
            RopeConfig::new(0, 1e4, RopeLayout::HalfSplit),
            "zero head_dim",
        ),
        (RopeConfig::new(8, 0.5, RopeLayout::HalfSplit), "theta < 1"),
        (
            RopeConfig::new(8, f64::NAN, RopeLayout::HalfSplit),
            "NaN theta",
        ),
        (
            RopeConfig::new(8, 1e4, RopeLayout::HalfSplit)
                .with_scaling(RopeScaling::Linear { factor: -1.0 }),
            "negative factor",
        ),
        (
            RopeConfig::new(8, 1e4, RopeLayout::HalfSplit)
                .with_rotary_dim(2)
                .with_scaling(RopeScaling::DynamicNtk {
                    factor: 2.0,
                    max_position_embeddings: 16,
                }),
            "dynamic NTK with rotary_dim 2",
        ),
    ] {
        assert!(RopeCache::<f64>::new(&bad, 4).is_err(), "{what} accepted");
    }
    assert!(
        RopeCache::<f64>::new(&config, usize::MAX).is_err(),
        "huge cache must be an error"
    );
    // Weight conversion with the wrong number of rows.
    let w = Tensor::from_vec(vec![0.0f32; 12], &[6, 2]).unwrap();
    let err = convert_qk_layout(
        w.view(),
        "k_proj weight",
        2,
        4,
        4,
        RopeLayout::Interleaved,
        RopeLayout::HalfSplit,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "k_proj weight of shape (6, 2) does not have n_heads 2 × head_dim 4 rows"
    );
}

/// Angles are computed in f64 even for an f32 cache (and a half-precision cache does not
/// exist: `CacheFloat` is sealed to f32 and f64), so at large positions an f32 cache is
/// off only by the final rounding of cos/sin, not by an f32 angle.
#[test]
fn f32_cache_is_accurate_at_large_positions() {
    let config = RopeConfig::new(128, 500000.0, RopeLayout::HalfSplit);
    let position = 1_000_000usize;
    let big = RopeCache::<f32>::new(&config, position + 1).unwrap();
    let exact = RopeCache::<f64>::new(&config, position + 1).unwrap();
    let got = big.cos_row(position).unwrap();
    let want = exact.cos_row(position).unwrap();
    for (g, w) in got.iter().zip(want) {
        // One f32 rounding of a value in [-1, 1]: ≤ 2^-24. A cache whose angles were
        // computed in f32 would be off by up to ~2e-2 here.
        assert!((f64::from(*g) - w).abs() <= 2f64.powi(-24), "{g} vs {w}");
    }
}

/// The backward pass against central finite differences of `loss(x) = Σ G ⊙ rope(x)`,
/// with an attention factor (YaRN), where the backward (transpose) and the inverse differ.
#[test]
fn backward_matches_finite_differences() {
    use tokenloom_positions::YarnScaling;
    let config = RopeConfig::new(8, 10000.0, RopeLayout::Interleaved)
        .with_scaling(RopeScaling::Yarn(YarnScaling::new(4.0, 16)));
    let cache = RopeCache::<f64>::new(&config, 64).unwrap();
    let dims = [1, 3, 2, 8];
    let n: usize = dims.iter().product();
    let x: Vec<f64> = (0..n).map(|i| ((i * 37) % 11) as f64 / 5.0 - 1.0).collect();
    let g: Vec<f64> = (0..n).map(|i| ((i * 53) % 7) as f64 / 3.0 - 1.0).collect();
    let loss = |x: &[f64]| -> f64 {
        apply(&cache, x, dims, TokenPositions::Offset(40))
            .iter()
            .zip(&g)
            .map(|(a, b)| a * b)
            .sum()
    };
    let mut grad = g.clone();
    cache
        .rotate_in_place(
            TensorViewMut::new(&mut grad, &dims).unwrap(),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(40),
            Direction::Backward,
        )
        .unwrap();
    let eps = 1e-6;
    for i in 0..n {
        let (mut plus, mut minus) = (x.clone(), x.clone());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps);
        assert!(
            (grad[i] - fd).abs() < 1e-8,
            "element {i}: backward {} vs finite difference {fd}",
            grad[i]
        );
    }
    // The inverse is not the backward when the attention factor is not 1.
    let mut inverse = g.clone();
    cache
        .rotate_in_place(
            TensorViewMut::new(&mut inverse, &dims).unwrap(),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(40),
            Direction::Inverse,
        )
        .unwrap();
    assert!(inverse.iter().zip(&grad).any(|(a, b)| (a - b).abs() > 1e-3));
}
