//! Tests of `scaling`.

use super::*;

/// transformers' `_compute_proportional_rope_parameters`: `int(p · head_dim // 2)`
/// pairs at `theta^(−2i/head_dim) / factor`, the rest 0 (values from transformers
/// 5.24 in float64: head_dim 16, theta 10⁴, factor 2, p 0.25 and 0.3).
#[test]
fn proportional_rotates_a_share_of_the_pairs_at_the_heads_frequencies() {
    let scaling = |p: f64| RopeScaling::Proportional {
        factor: 2.0,
        partial_rotary_factor: p,
    };
    let want = [0.5, 0.158_113_883_008_418_98, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    for p in [0.25, 0.3] {
        scaling(p).validate(16).unwrap();
        let got = scaling(p).inv_freq(10_000.0, 16, 1);
        assert_eq!(got.len(), 8);
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= 1e-16, "p {p}: {got:?}");
        }
    }
    assert!(
        scaling(0.0)
            .inv_freq(10_000.0, 16, 1)
            .iter()
            .all(|&x| x == 0.0)
    );
    assert_eq!(
        scaling(1.0).inv_freq(10_000.0, 16, 1)[7],
        10_000f64.powf(-14.0 / 16.0) / 2.0
    );
    assert!(scaling(1.5).validate(16).is_err());
    assert!(
        RopeScaling::Proportional {
            factor: 0.0,
            partial_rotary_factor: 0.5
        }
        .validate(16)
        .is_err()
    );
    assert_eq!(scaling(0.25).rope_type(), "proportional");
    assert_eq!(
        scaling(0.25).to_hf_parameters(),
        serde_json::json!({"rope_type": "proportional", "factor": 2.0, "partial_rotary_factor": 0.25})
    );
}

#[test]
fn linear_factor_one_equals_default() {
    let a = RopeScaling::None.inv_freq(10000.0, 64, 100);
    let b = RopeScaling::Linear { factor: 1.0 }.inv_freq(10000.0, 64, 100);
    assert_eq!(a, b);
}

#[test]
fn dynamic_is_default_up_to_max_position_embeddings() {
    let dynamic = RopeScaling::DynamicNtk {
        factor: 2.0,
        max_position_embeddings: 16,
    };
    assert_eq!(
        dynamic.inv_freq(1e4, 16, 16),
        RopeScaling::None.inv_freq(1e4, 16, 16)
    );
    // Longer sequences lower every frequency but the first.
    let long = dynamic.inv_freq(1e4, 16, 64);
    let base = RopeScaling::None.inv_freq(1e4, 16, 64);
    assert_eq!(long[0], base[0]);
    assert!(long[1..].iter().zip(&base[1..]).all(|(l, b)| l < b));
}

#[test]
fn yarn_attention_factor_variants() {
    let mut y = YarnScaling::new(4.0, 2048);
    assert!(
        (RopeScaling::Yarn(y.clone()).attention_factor() - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-15
    );
    y.mscale = Some(1.0);
    y.mscale_all_dim = Some(1.0);
    assert_eq!(RopeScaling::Yarn(y.clone()).attention_factor(), 1.0);
    y.attention_factor = Some(0.5);
    assert_eq!(RopeScaling::Yarn(y).attention_factor(), 0.5);
}

#[test]
fn validation_names_the_parameter() {
    let err = RopeScaling::Linear { factor: 0.0 }.validate(8).unwrap_err();
    assert!(matches!(
        err,
        PositionError::InvalidParameter { name: "factor", .. }
    ));
    for scaling in [
        RopeScaling::Linear { factor: 0.5 },
        RopeScaling::Llama3(Llama3Scaling {
            factor: 0.9,
            ..Llama3Scaling::llama_3_1()
        }),
    ] {
        let err = scaling.validate(8).unwrap_err();
        assert!(
            err.to_string().contains("must be at least 1"),
            "{scaling:?}: {err}"
        );
    }
    let long = RopeScaling::LongRope(LongRopeScaling {
        short_factor: vec![1.0; 3],
        long_factor: vec![1.0; 4],
        original_max_position_embeddings: 4096,
        factor: 32.0,
        attention_factor: None,
    });
    assert_eq!(
        long.validate(8).unwrap_err(),
        PositionError::FactorCount {
            name: "short_factor",
            expected: 4,
            got: 3
        }
    );
}
