//! Reading real model config files into the model spec, and rejecting malformed ones with
//! errors that name the field.

use std::path::Path;

use tokenloom::decoder_input::{DecoderInputError, LayerAttention, ModelSpec};
use tokenloom::positions::{
    Llama3Scaling, PositionError, RopeCache, RopeConfig, RopeLayout, RopeScaling,
};

/// The main RoPE and head counts of a spec, in the shape these tests read them.
#[derive(Debug, PartialEq)]
struct Settings {
    rope: RopeConfig,
    n_heads: usize,
    n_kv_heads: usize,
    max_position_embeddings: usize,
    spec: ModelSpec,
}

fn settings(spec: ModelSpec) -> Settings {
    Settings {
        rope: spec.main_rope().expect("a RoPE model").clone(),
        n_heads: spec.n_heads,
        n_kv_heads: spec.n_kv_heads,
        max_position_embeddings: spec.max_positions,
        spec,
    }
}

fn parse_hf_config(json: &str) -> Result<Settings, DecoderInputError> {
    ModelSpec::from_hf_json(json, "config.json".as_ref()).map(settings)
}

fn parse_meta_params(json: &str) -> Result<Settings, DecoderInputError> {
    ModelSpec::from_meta_json(json, "params.json".as_ref()).map(settings)
}

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
    assert_eq!(s.max_position_embeddings, 4096);

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

fn hf_err(json: &str) -> DecoderInputError {
    parse_hf_config(json).expect_err(json)
}

fn position_err(json: &str) -> PositionError {
    match hf_err(json) {
        DecoderInputError::Position(e) => e,
        other => panic!("{json}: expected a RoPE parser error, got {other:?}"),
    }
}

const BASE: &str = r#""model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "max_position_embeddings": 128"#;

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
    ];
    for (json, want) in cases {
        assert_eq!(position_err(&json), want, "{json}");
    }
    for (json, key) in [
        (
            r#"{"model_type": "llama", "hidden_size": 64, "max_position_embeddings": 128}"#,
            "num_attention_heads or n_head",
        ),
        (
            r#"{"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4}"#,
            "max_position_embeddings or n_positions",
        ),
    ] {
        match hf_err(json) {
            DecoderInputError::MissingKey { key: k, .. } => assert_eq!(k, key, "{json}"),
            other => panic!("{json}: expected MissingKey {key}, got {other:?}"),
        }
    }

    // Errors whose exact text matters less than their kind and field.
    let bad_value = |json: String, field: &str| match position_err(&json) {
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
    assert!(matches!(
        hf_err(&with(
            r#""rope_parameters": {"rope_type": "default", "rope_theta": 1e4}, "rope_scaling": {"type": "linear", "factor": 2}"#,
        )),
        DecoderInputError::ConflictingSettings { .. }
    ));
    // transformers' rule: the rope section's own value wins over the top-level one.
    let both = parse_hf_config(&with(
        r#""rope_theta": 5e5, "rope_parameters": {"rope_type": "default", "rope_theta": 1e4}"#,
    ))
    .unwrap();
    assert_eq!(both.rope.theta, 1e4);
    assert!(matches!(
        hf_err(
            r#"{"model_type": "llama", "hidden_size": 63, "num_attention_heads": 4, "max_position_embeddings": 8}"#
        ),
        DecoderInputError::HeadsDoNotDivide {
            n_heads: 4,
            n_embd: 63,
            ..
        }
    ));
    match hf_err(&with(r#""num_key_value_heads": 3"#)) {
        DecoderInputError::BadValue { key, .. } => assert_eq!(key, "n_kv_heads"),
        other => panic!("expected BadValue, got {other:?}"),
    }
    // A key the spec does not know is named, never ignored.
    match hf_err(&with(r#""logits_softcap": 30.0"#)) {
        DecoderInputError::UnknownConfigKey {
            key, architecture, ..
        } => {
            assert_eq!((key.as_str(), architecture), ("logits_softcap", "llama"));
        }
        other => panic!("expected UnknownConfigKey, got {other:?}"),
    }
    // A transform of another architecture is not silently dropped on this one.
    assert!(matches!(
        hf_err(&with(r#""final_logit_softcapping": 30.0"#)),
        DecoderInputError::UnknownConfigKey { .. }
    ));

    assert!(matches!(
        hf_err("{not json"),
        DecoderInputError::ConfigJson { line: 1, .. }
    ));
    assert!(matches!(
        hf_err("[1, 2]"),
        DecoderInputError::ConfigJson { .. }
    ));
    // Parses, but the values cannot make a RoPE: validation errors.
    assert!(matches!(
        position_err(&with(r#""rope_scaling": {"type": "linear", "factor": -2}"#)),
        PositionError::InvalidParameter { name: "factor", .. }
    ));
    assert!(matches!(
        position_err(&with(r#""rope_theta": 0.5"#)),
        PositionError::InvalidParameter { name: "theta", .. }
    ));
}

#[test]
fn malformed_meta_params_name_the_problem() {
    let err =
        parse_meta_params(r#"{"dim": 4096, "n_heads": 32, "rope_scaling_factor": 8}"#).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::UnknownConfigKey { key, .. } if key == "rope_scaling_factor"),
        "{err}"
    );
    let err = parse_meta_params(r#"{"n_heads": 32}"#).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::MissingKey { key, .. } if key == "dim"),
        "{err}"
    );
    let err =
        parse_meta_params(r#"{"dim": 4096, "n_heads": 32, "use_scaled_rope": "yes"}"#).unwrap_err();
    assert!(matches!(err, DecoderInputError::BadValue { .. }), "{err}");
    let err = parse_meta_params(r#"{"dim": 100, "n_heads": 32}"#).unwrap_err();
    assert!(
        matches!(err, DecoderInputError::HeadsDoNotDivide { .. }),
        "{err}"
    );
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
    let layer = |il: usize| s.spec.layer(il).unwrap();
    assert_eq!(layer(0).attention, LayerAttention::SlidingAttention);
    assert_eq!(layer(0).rope.as_ref().unwrap().theta, 10000.0);
    assert_eq!(layer(17).rope.as_ref().unwrap().theta, 1e6);
    let global: Vec<usize> = (0..18)
        .filter(|&il| layer(il).attention == LayerAttention::FullAttention)
        .collect();
    assert_eq!(global, vec![5, 11, 17]);
    // The older spelling: a pattern instead of layer_types gives the same layers.
    let mut json: serde_json::Value =
        serde_json::from_str(&read("gemma-3-270m.config.json")).unwrap();
    json.as_object_mut().unwrap().remove("layer_types");
    json["sliding_window_pattern"] = 6.into();
    let old = parse_hf_config(&json.to_string()).unwrap();
    assert_eq!(old.spec.layers, s.spec.layers);
    // Without either, Gemma3TextConfig's default pattern (6) applies, as in transformers.
    json.as_object_mut()
        .unwrap()
        .remove("sliding_window_pattern");
    assert_eq!(
        parse_hf_config(&json.to_string()).unwrap().spec.layers,
        s.spec.layers
    );
    // transformers 5's spelling: nested rope_parameters per layer type.
    let mut v5: serde_json::Value =
        serde_json::from_str(&read("gemma-3-270m.config.json")).unwrap();
    let v5o = v5.as_object_mut().unwrap();
    for key in ["rope_local_base_freq", "rope_scaling", "rope_theta"] {
        v5o.remove(key);
    }
    v5o.insert(
        "rope_parameters".into(),
        serde_json::json!({
            "full_attention": {"rope_type": "default", "rope_theta": 1e6},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}
        }),
    );
    assert_eq!(
        parse_hf_config(&v5.to_string()).unwrap().spec.layers,
        s.spec.layers
    );
}

/// Gemma 3's multimodal wrapper (`gemma3` with `text_config`): transformers'
/// Gemma3ForConditionalGeneration does not apply `final_logit_softcapping`, its
/// Gemma3ForCausalLM does — a value set there is refused, not guessed.
#[test]
fn gemma_3_wrapper_softcapping_is_refused() {
    let json = serde_json::json!({
        "model_type": "gemma3",
        "text_config": {"model_type": "gemma3_text", "vocab_size": 8, "hidden_size": 8,
            "num_attention_heads": 2, "num_hidden_layers": 1, "head_dim": 4,
            "max_position_embeddings": 16, "final_logit_softcapping": 30.0},
        "vision_config": {}
    });
    let err = parse_hf_config(&json.to_string()).unwrap_err();
    assert!(
        matches!(&err, DecoderInputError::UnsupportedSetting { key, .. } if key == "text_config.final_logit_softcapping"),
        "{err:?}"
    );
    // Null (as the released checkpoints have it): loads.
    let mut ok = json.clone();
    ok["text_config"]["final_logit_softcapping"] = serde_json::Value::Null;
    assert_eq!(
        parse_hf_config(&ok.to_string())
            .unwrap()
            .spec
            .logits
            .softcap,
        None
    );
}

/// Released configs in transformers 4's spelling: Qwen2-VL flat (vision keys beside the
/// text model's, `rope_scaling` of type `mrope`), Llama 4 with an integer
/// `attn_temperature_tuning` (truthy, as transformers reads it).
#[test]
fn released_multimodal_configs_in_the_v4_spelling() {
    let qwen = serde_json::json!({
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl",
        "vocab_size": 16, "hidden_size": 16, "num_attention_heads": 2,
        "num_key_value_heads": 1, "num_hidden_layers": 2, "max_position_embeddings": 64,
        "rope_theta": 1000000.0, "rope_scaling": {"type": "mrope", "mrope_section": [1, 1, 2]},
        "vision_config": {"depth": 1}, "image_token_id": 5, "video_token_id": 6,
        "vision_start_token_id": 7, "vision_end_token_id": 8, "vision_token_id": 9,
        "sliding_window": 64, "use_sliding_window": false, "max_window_layers": 2
    });
    let spec = parse_hf_config(&qwen.to_string()).unwrap().spec;
    assert_eq!(spec.layer(0).unwrap().mrope_section, Some(vec![1, 1, 2]));
    assert_eq!(spec.main_rope().unwrap().theta, 1e6);

    let llama4 = serde_json::json!({
        "model_type": "llama4_text", "vocab_size": 16, "hidden_size": 16,
        "num_attention_heads": 2, "num_hidden_layers": 4, "max_position_embeddings": 64,
        "attn_temperature_tuning": 4, "floor_scale": 8192, "attn_scale": 0.1,
        "no_rope_layers": [1, 1, 1, 0]
    });
    let spec = parse_hf_config(&llama4.to_string()).unwrap().spec;
    assert!(spec.layer(3).unwrap().rope.is_none());
    assert!(spec.layer(3).unwrap().q_scale.is_some());
}
