//! Parsing the position settings of real model config files, and rejecting malformed ones
//! with errors that name the field.

use std::path::Path;

use tokenloom::positions::{
    Llama3Scaling, PositionError, RopeCache, RopeLayout, RopeScaling, parse_hf_config,
    parse_meta_params,
};

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/configs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn llama_2() {
    let s = parse_hf_config(&read("llama-2-7b.config.json")).unwrap();
    assert_eq!(
        (s.rope.head_dim, s.rope.rotary_dim, s.n_heads, s.n_kv_heads),
        (128, 128, 32, 32)
    );
    assert_eq!(s.rope.theta, 10000.0); // absent: the LLaMA default
    assert_eq!(s.rope.scaling, RopeScaling::None);
    assert_eq!(s.rope.layout, RopeLayout::HalfSplit);
    assert_eq!(s.max_position_embeddings, Some(4096));

    let meta = parse_meta_params(&read("llama-2-7b.params.json")).unwrap();
    assert_eq!(meta.rope.layout, RopeLayout::Interleaved);
    assert_eq!((meta.rope.head_dim, meta.rope.theta), (128, 10000.0));
    // The same model: identical frequencies from either file.
    assert_eq!(
        meta.rope.inv_freq(4096).unwrap(),
        s.rope.inv_freq(4096).unwrap()
    );
}

#[test]
fn llama_3_1_llama3_scaling() {
    let s = parse_hf_config(&read("llama-3.1-8b.config.json")).unwrap();
    assert_eq!((s.rope.head_dim, s.n_kv_heads), (128, 8));
    assert_eq!(s.rope.theta, 500000.0);
    assert_eq!(
        s.rope.scaling,
        RopeScaling::Llama3(Llama3Scaling::llama_3_1())
    );
    let meta = parse_meta_params(&read("llama-3.1-8b.params.json")).unwrap();
    assert_eq!(meta.rope.scaling, s.rope.scaling);
    let inv_freq = s.rope.inv_freq(131072).unwrap();
    // High frequencies kept, low frequencies divided by 8.
    assert_eq!(inv_freq[0], 1.0);
    let unscaled = 500000f64.powf(-126.0 / 128.0);
    assert!((inv_freq[63] - unscaled / 8.0).abs() < 1e-20);
}

#[test]
fn qwen_yarn() {
    let s = parse_hf_config(&read("qwen2.5-7b-instruct-yarn.config.json")).unwrap();
    assert_eq!((s.rope.head_dim, s.n_heads, s.n_kv_heads), (128, 28, 4));
    let RopeScaling::Yarn(y) = &s.rope.scaling else {
        panic!("expected yarn, got {:?}", s.rope.scaling)
    };
    assert_eq!((y.factor, y.original_max_position_embeddings), (4.0, 32768));
    assert_eq!((y.beta_fast, y.beta_slow, y.truncate), (32.0, 1.0, true));
    assert!((s.rope.attention_factor() - (0.1 * 4f64.ln() + 1.0)).abs() < 1e-15);
    // The attention factor is applied to cos and sin.
    let cache = RopeCache::<f64>::new(&s.rope, 1).unwrap();
    assert_eq!(cache.cos_row(0).unwrap()[0], s.rope.attention_factor());
}

#[test]
fn phi_2_partial_rotary() {
    let s = parse_hf_config(&read("phi-2.config.json")).unwrap();
    assert_eq!((s.rope.head_dim, s.rope.rotary_dim), (80, 32));
    assert_eq!(s.rope.inv_freq(2048).unwrap().len(), 16);
}

#[test]
fn phi_3_style_longrope() {
    let s = parse_hf_config(&read("phi-3-style-longrope.config.json")).unwrap();
    let RopeScaling::LongRope(l) = &s.rope.scaling else {
        panic!("expected longrope")
    };
    assert_eq!(l.original_max_position_embeddings, 4096); // from the top level
    assert_eq!(l.factor, 32.0); // 131072 / 4096
    let want = (1.0 + 32f64.ln() / 4096f64.ln()).sqrt();
    assert!((s.rope.attention_factor() - want).abs() < 1e-15);
    // Short factors up to the original length, long factors past it.
    let short = s.rope.inv_freq(4096).unwrap();
    let long = s.rope.inv_freq(4097).unwrap();
    assert_eq!(short[1], 1.0 / (1.01 * 10000f64.powf(2.0 / 96.0)));
    assert_eq!(long[1], 1.0 / (2.5 * 10000f64.powf(2.0 / 96.0)));
}

#[test]
fn transformers_v5_rope_parameters() {
    let s = parse_hf_config(&read("smollm2-135m.v5.config.json")).unwrap();
    assert_eq!((s.rope.head_dim, s.n_heads, s.n_kv_heads), (64, 9, 3));
    assert_eq!(s.rope.theta, 100000.0);
    assert_eq!(s.rope.scaling, RopeScaling::None);
}

fn hf_err(json: &str) -> PositionError {
    parse_hf_config(json).expect_err(json)
}

const BASE: &str = r#""hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 128"#;

#[test]
fn malformed_hf_configs_name_the_problem() {
    let with = |extra: &str| format!("{{{BASE}, {extra}}}");
    let cases: Vec<(String, PositionError)> = vec![
        (
            with(r#""rope_scaling": {"type": "mrope", "factor": 2}"#),
            PositionError::ConfigUnknownRopeType {
                rope_type: "mrope".into(),
            },
        ),
        (
            with(r#""rope_scaling": {"rope_type": "linear"}"#),
            PositionError::ConfigMissingField {
                field: "rope_scaling.factor".into(),
            },
        ),
        (
            with(r#""rope_scaling": {"rope_type": "llama3", "factor": 8, "high_freq_factor": 4}"#),
            PositionError::ConfigMissingField {
                field: "rope_scaling.low_freq_factor".into(),
            },
        ),
        (
            with(r#""rope_scaling": {"rope_type": "default", "factor": 2}"#),
            PositionError::ConfigUnknownField {
                field: "rope_scaling.factor".into(),
            },
        ),
        (
            with(r#""rope_scaling": {"rope_type": "yarn", "factor": 4, "beta_fastt": 32}"#),
            PositionError::ConfigUnknownField {
                field: "rope_scaling.beta_fastt".into(),
            },
        ),
        (
            with(r#""rope_scaling": {"factor": 2}"#),
            PositionError::ConfigMissingField {
                field: "rope_scaling.rope_type".into(),
            },
        ),
        (
            r#"{"hidden_size": 64, "max_position_embeddings": 128}"#.to_string(),
            PositionError::ConfigMissingField {
                field: "num_attention_heads".into(),
            },
        ),
        (
            r#"{"hidden_size": 64, "num_attention_heads": 4}"#.to_string(),
            PositionError::ConfigMissingField {
                field: "max_position_embeddings".into(),
            },
        ),
    ];
    for (json, want) in cases {
        assert_eq!(hf_err(&json), want, "{json}");
    }

    // Errors whose exact text matters less than their kind and field.
    let bad_value = |json: String, field: &str| match hf_err(&json) {
        PositionError::ConfigBadValue { field: f, .. } => assert_eq!(f, field, "{json}"),
        other => panic!("{json}: expected ConfigBadValue for {field}, got {other:?}"),
    };
    bad_value(
        with(r#""rope_scaling": {"type": "linear", "rope_type": "yarn", "factor": 2}"#),
        "rope_scaling.type",
    );
    bad_value(with(r#""rope_theta": "10000""#), "rope_theta");
    bad_value(
        with(r#""partial_rotary_factor": 0"#),
        "partial_rotary_factor",
    );
    bad_value(
        with(
            r#""rope_parameters": {"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 1.5}"#,
        ),
        "rope_parameters.partial_rotary_factor",
    );
    bad_value(
        with(
            r#""rope_parameters": {"rope_type": "default", "rope_theta": 1e4}, "rope_scaling": {"type": "linear", "factor": 2}"#,
        ),
        "rope_scaling",
    );
    bad_value(
        with(
            r#""rope_theta": 5e5, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}"#,
        ),
        "rope_parameters.rope_theta",
    );
    bad_value(
        r#"{"hidden_size": 63, "num_attention_heads": 4, "max_position_embeddings": 8}"#.into(),
        "hidden_size",
    );
    bad_value(with(r#""num_key_value_heads": 3"#), "num_key_value_heads");

    assert!(matches!(
        hf_err("{not json"),
        PositionError::ConfigSyntax { .. }
    ));
    assert!(matches!(
        hf_err("[1, 2]"),
        PositionError::ConfigSyntax { .. }
    ));
    // Parses, but the values cannot make a RoPE: validation errors.
    assert!(matches!(
        hf_err(&with(r#""rope_scaling": {"type": "linear", "factor": -2}"#)),
        PositionError::InvalidParameter { name: "factor", .. }
    ));
    assert!(matches!(
        hf_err(&with(r#""rope_theta": 0.5"#)),
        PositionError::InvalidParameter { name: "theta", .. }
    ));
}

#[test]
fn malformed_meta_params_name_the_problem() {
    let err =
        parse_meta_params(r#"{"dim": 4096, "n_heads": 32, "rope_scaling_factor": 8}"#).unwrap_err();
    assert_eq!(
        err,
        PositionError::ConfigUnknownField {
            field: "rope_scaling_factor".into()
        }
    );
    let err = parse_meta_params(r#"{"n_heads": 32}"#).unwrap_err();
    assert_eq!(
        err,
        PositionError::ConfigMissingField {
            field: "dim".into()
        }
    );
    let err =
        parse_meta_params(r#"{"dim": 4096, "n_heads": 32, "use_scaled_rope": "yes"}"#).unwrap_err();
    assert!(matches!(err, PositionError::ConfigBadValue { .. }), "{err}");
    let err = parse_meta_params(r#"{"dim": 100, "n_heads": 32}"#).unwrap_err();
    assert!(matches!(err, PositionError::ConfigBadValue { .. }), "{err}");
}

/// Gemma 3 (transformers' `Gemma3TextConfig`): the sliding-window layers rotate with
/// `rope_local_base_freq`, the full-attention ones with `rope_theta`.
#[test]
fn gemma_3_local_and_global_rope() {
    let s = parse_hf_config(&read("gemma-3-270m.config.json")).unwrap();
    assert_eq!(
        (s.rope.head_dim, s.rope.theta, s.n_heads, s.n_kv_heads),
        (256, 1e6, 4, 1)
    );
    let local = s.local.as_ref().expect("rope_local_base_freq");
    assert_eq!((local.rope.theta, local.sliding_window), (10000.0, 512));
    assert_eq!(local.global_layers(), vec![5, 11, 17]);
    assert_eq!(s.rope_for_layer(0).theta, 10000.0);
    assert_eq!(s.rope_for_layer(17).theta, 1e6);
    // The older spelling: a pattern instead of layer_types gives the same layers.
    let mut json: serde_json::Value =
        serde_json::from_str(&read("gemma-3-270m.config.json")).unwrap();
    json.as_object_mut().unwrap().remove("layer_types");
    json["sliding_window_pattern"] = 6.into();
    let old = parse_hf_config(&json.to_string()).unwrap();
    assert_eq!(old, s);
    // Without either, the local layers cannot be known: an error naming the fields.
    json.as_object_mut()
        .unwrap()
        .remove("sliding_window_pattern");
    assert!(matches!(
        parse_hf_config(&json.to_string()),
        Err(PositionError::ConfigMissingField { field }) if field.contains("layer_types")
    ));
}
