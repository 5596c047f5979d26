//! Strict parsing of the position settings in model config files: HuggingFace
//! `config.json` (transformers v4 and v5 spellings) and Meta `params.json`.
//!
//! Strict means: an unknown `rope_type`, a missing required field, a field inside the
//! rope settings that this crate would silently ignore, and contradictory spellings are
//! all errors that name the field. Top-level fields unrelated to positions (`vocab_size`,
//! `intermediate_size`, ...) are not this parser's business and are skipped in
//! `config.json`; `params.json` is small and fully known, so any unknown key there is an
//! error.

use serde_json::{Map, Value};

use crate::error::PositionError;
use crate::rope::{
    Llama3Scaling, LongRopeScaling, RopeConfig, RopeLayout, RopeScaling, YarnScaling,
};

/// The attention settings of a model that its RoPE needs, as read from its config file:
/// the RoPE configuration, the query and key/value head counts, the context length and
/// the sliding-window layers with their own RoPE.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttentionConfig {
    /// The RoPE configuration (layout: half-split for HuggingFace, interleaved for Meta).
    pub rope: RopeConfig,
    /// The number of query heads.
    pub n_heads: usize,
    /// The number of key/value heads (grouped-query attention); `n_heads` when absent.
    pub n_kv_heads: usize,
    /// The model's context length (`max_position_embeddings`, or Meta's `max_seq_len`
    /// when given).
    pub max_position_embeddings: Option<usize>,
    /// Sliding-window (local) attention layers that rotate with their own RoPE settings
    /// (Gemma 3: base 10000 on local layers, `rope` on the global ones); `None` when every
    /// layer uses `rope`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalAttention>,
}

impl AttentionConfig {
    /// The RoPE settings of decoder layer `layer` (0-based): the local settings for a
    /// sliding-window layer, `rope` for every other layer (including layers past the end
    /// of [`LocalAttention::layer_types`]).
    #[must_use]
    pub fn rope_for_layer(&self, layer: usize) -> &RopeConfig {
        match &self.local {
            Some(local) if local.is_local(layer) => &local.rope,
            _ => &self.rope,
        }
    }
}

/// Which attention a decoder layer uses, in HuggingFace's `layer_types` spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerAttention {
    /// Attention over the whole context (`full_attention`), rotated with the model's main
    /// RoPE settings.
    FullAttention,
    /// Attention over a sliding window (`sliding_attention`), rotated with the local RoPE
    /// settings.
    SlidingAttention,
}

/// Local (sliding-window) attention layers with RoPE settings of their own.
///
/// Gemma 3 rotates its sliding-window layers with base 10000 and its global layers with
/// `rope_theta` (1e6); every 6th layer is global. Sources: transformers'
/// `Gemma3RotaryEmbedding` with `rope_local_base_freq` and `layer_types`, and llama.cpp's
/// Gemma 3 hyper-parameters (`rope_freq_base_train_swa = 10000`, `set_swa_pattern(6)`:
/// layer `il` is local when `il % 6 < 5`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LocalAttention {
    /// The RoPE settings of the sliding-window layers.
    pub rope: RopeConfig,
    /// The window, in tokens.
    pub sliding_window: usize,
    /// The attention of each decoder layer, first layer first.
    pub layer_types: Vec<LayerAttention>,
}

impl LocalAttention {
    /// Layer types from llama.cpp's rule `set_swa_pattern(pattern)`: of every `pattern`
    /// layers the last is global, the others slide (`il % pattern < pattern - 1`). A
    /// pattern of 0 makes every layer local, as in llama.cpp.
    #[must_use]
    pub fn pattern(n_layers: usize, pattern: usize) -> Vec<LayerAttention> {
        (0..n_layers)
            .map(|il| {
                if pattern == 0 || il % pattern < pattern - 1 {
                    LayerAttention::SlidingAttention
                } else {
                    LayerAttention::FullAttention
                }
            })
            .collect()
    }

    /// Whether decoder layer `layer` slides (false past the end of `layer_types`).
    #[must_use]
    pub fn is_local(&self, layer: usize) -> bool {
        self.layer_types.get(layer) == Some(&LayerAttention::SlidingAttention)
    }

    /// The indices of the global (full-attention) layers.
    #[must_use]
    pub fn global_layers(&self) -> Vec<usize> {
        (0..self.layer_types.len())
            .filter(|&il| !self.is_local(il))
            .collect()
    }
}

type Object = Map<String, Value>;

fn missing(field: &str) -> PositionError {
    PositionError::ConfigMissingField {
        field: field.to_owned(),
    }
}

fn bad(field: &str, reason: impl Into<String>) -> PositionError {
    PositionError::ConfigBadValue {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A field that is present and not `null`.
fn field<'a>(obj: &'a Object, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_f64(obj: &Object, key: &str, path: &str) -> Result<Option<f64>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_f64()
                .ok_or_else(|| bad(path, format!("expected a number, found {v}")))
        })
        .transpose()
}

fn get_usize(obj: &Object, key: &str, path: &str) -> Result<Option<usize>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| bad(path, format!("expected a non-negative integer, found {v}")))
        })
        .transpose()
}

fn get_bool(obj: &Object, key: &str, path: &str) -> Result<Option<bool>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| bad(path, format!("expected true or false, found {v}")))
        })
        .transpose()
}

fn get_f64_list(obj: &Object, key: &str, path: &str) -> Result<Option<Vec<f64>>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad(path, "expected a list of numbers"))
        })
        .transpose()
}

fn parse_object(json: &str) -> Result<Object, PositionError> {
    match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(other) => Err(PositionError::ConfigSyntax {
            message: format!("expected a JSON object at the top level, found {other}"),
        }),
        Err(e) => Err(PositionError::ConfigSyntax {
            message: e.to_string(),
        }),
    }
}

/// Parses the position settings of a HuggingFace `config.json` (LLaMA-family).
///
/// Read fields: `num_attention_heads` (required), `num_key_value_heads`, `head_dim` or
/// `hidden_size / num_attention_heads`, `max_position_embeddings` (required),
/// `partial_rotary_factor`, and the rope settings in either spelling:
///
/// - v4: `rope_theta` (default 10000) and `rope_scaling` (`null`, or an object with
///   `rope_type` or the older `type`, plus the type's parameters);
/// - v5: `rope_parameters` (`rope_type`, `rope_theta`, the type's parameters, optionally
///   `partial_rotary_factor`).
///
/// Rope types: `default`, `linear`, `dynamic`, `yarn`, `llama3`, `longrope` (and its old
/// name `su`). As in transformers, yarn, llama3 and longrope default
/// `original_max_position_embeddings` to the top-level value or else
/// `max_position_embeddings`; a `null` yarn/longrope `factor` means
/// `max_position_embeddings / original_max_position_embeddings`.
///
/// # Errors
///
/// [`PositionError::ConfigSyntax`] for invalid JSON or a wrongly typed field,
/// [`PositionError::ConfigMissingField`], [`PositionError::ConfigUnknownField`] for a rope
/// parameter that would be ignored, [`PositionError::ConfigUnknownRopeType`],
/// [`PositionError::ConfigBadValue`] for contradictions and impossible values, and the
/// validation errors of [`RopeConfig::validate`].
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{RopeLayout, RopeScaling, parse_hf_config};
///
/// let settings = parse_hf_config(r#"{
///     "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
///     "max_position_embeddings": 131072, "rope_theta": 500000.0,
///     "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
///                      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
/// }"#)?;
/// assert_eq!(settings.rope.head_dim, 128);
/// assert_eq!(settings.rope.layout, RopeLayout::HalfSplit);
/// assert!(matches!(settings.rope.scaling, RopeScaling::Llama3(_)));
///
/// let err = parse_hf_config(r#"{"hidden_size": 64, "num_attention_heads": 4,
///     "max_position_embeddings": 64, "rope_scaling": {"type": "linear", "factor": 2, "beta_fast": 32}}"#)
///     .unwrap_err();
/// assert_eq!(err.to_string(), "config field `rope_scaling.beta_fast` is not understood and would be silently ignored");
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn parse_hf_config(json: &str) -> Result<AttentionConfig, PositionError> {
    let root = parse_object(json)?;
    let n_heads = get_usize(&root, "num_attention_heads", "num_attention_heads")?
        .ok_or_else(|| missing("num_attention_heads"))?;
    if n_heads == 0 {
        return Err(bad("num_attention_heads", "must be at least 1"));
    }
    let n_kv_heads =
        get_usize(&root, "num_key_value_heads", "num_key_value_heads")?.unwrap_or(n_heads);
    if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
        return Err(bad(
            "num_key_value_heads",
            format!("{n_kv_heads} must be at least 1 and divide num_attention_heads {n_heads}"),
        ));
    }
    let head_dim = match get_usize(&root, "head_dim", "head_dim")? {
        Some(head_dim) => head_dim,
        None => {
            let hidden = get_usize(&root, "hidden_size", "hidden_size")?
                .ok_or_else(|| missing("head_dim (or hidden_size)"))?;
            if hidden % n_heads != 0 {
                return Err(bad(
                    "hidden_size",
                    format!("{hidden} is not divisible by num_attention_heads {n_heads}"),
                ));
            }
            hidden / n_heads
        }
    };
    let max_position_embeddings =
        get_usize(&root, "max_position_embeddings", "max_position_embeddings")?
            .ok_or_else(|| missing("max_position_embeddings"))?;
    if max_position_embeddings == 0 {
        return Err(bad("max_position_embeddings", "must be at least 1"));
    }
    let top_original = get_usize(
        &root,
        "original_max_position_embeddings",
        "original_max_position_embeddings",
    )?;

    // Which spelling: v5 `rope_parameters`, or v4 `rope_theta` + `rope_scaling`.
    let (params, section) = match field(&root, "rope_parameters") {
        Some(Value::Object(p)) => {
            if field(&root, "rope_scaling").is_some() {
                return Err(bad(
                    "rope_scaling",
                    "given alongside rope_parameters; use one spelling",
                ));
            }
            let mut p = p.clone();
            for key in ["rope_theta", "partial_rotary_factor"] {
                if let (Some(top), Some(inner)) = (field(&root, key), field(&p, key))
                    && top != inner
                {
                    return Err(bad(
                        &format!("rope_parameters.{key}"),
                        format!("{inner} contradicts the top-level {key} {top}"),
                    ));
                }
                if let (Some(top), None) = (field(&root, key), field(&p, key)) {
                    p.insert(key.to_owned(), top.clone());
                }
            }
            (p, "rope_parameters")
        }
        Some(other) => {
            return Err(bad(
                "rope_parameters",
                format!("expected an object, found {other}"),
            ));
        }
        None => {
            let mut p = match field(&root, "rope_scaling") {
                Some(Value::Object(s)) => s.clone(),
                Some(other) => {
                    return Err(bad(
                        "rope_scaling",
                        format!("expected an object or null, found {other}"),
                    ));
                }
                None => Object::new(),
            };
            if p.contains_key("rope_theta") {
                return Err(PositionError::ConfigUnknownField {
                    field: "rope_scaling.rope_theta".to_owned(),
                });
            }
            for key in ["rope_theta", "partial_rotary_factor"] {
                if let Some(top) = field(&root, key) {
                    p.insert(key.to_owned(), top.clone());
                }
            }
            (p, "rope_scaling")
        }
    };
    let rope = rope_from_parameters(
        &params,
        section,
        head_dim,
        max_position_embeddings,
        top_original,
    )?;
    let local = hf_local_attention(&root, head_dim, rope.rotary_dim)?;
    Ok(AttentionConfig {
        rope,
        n_heads,
        n_kv_heads,
        max_position_embeddings: Some(max_position_embeddings),
        local,
    })
}

/// Gemma 3's local RoPE: `rope_local_base_freq` with `sliding_window` and either
/// `layer_types` or `sliding_window_pattern` (+ `num_hidden_layers`). The local layers
/// use the default rope type (transformers' `rotary_emb_local`), whatever the global
/// scaling.
fn hf_local_attention(
    root: &Object,
    head_dim: usize,
    rotary_dim: usize,
) -> Result<Option<LocalAttention>, PositionError> {
    let Some(base) = get_f64(root, "rope_local_base_freq", "rope_local_base_freq")? else {
        return Ok(None);
    };
    let sliding_window = get_usize(root, "sliding_window", "sliding_window")?
        .ok_or_else(|| missing("sliding_window (with rope_local_base_freq)"))?;
    let layer_types = match field(root, "layer_types") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| match t.as_str() {
                Some("full_attention") => Ok(LayerAttention::FullAttention),
                Some("sliding_attention") => Ok(LayerAttention::SlidingAttention),
                _ => Err(bad(
                    "layer_types",
                    format!("{t} is neither \"full_attention\" nor \"sliding_attention\""),
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(other) => {
            return Err(bad(
                "layer_types",
                format!("expected a list, found {other}"),
            ));
        }
        None => {
            let pattern = get_usize(root, "sliding_window_pattern", "sliding_window_pattern")?
                .ok_or_else(|| {
                    missing("layer_types or sliding_window_pattern (with rope_local_base_freq)")
                })?;
            let n_layers = get_usize(root, "num_hidden_layers", "num_hidden_layers")?
                .ok_or_else(|| missing("num_hidden_layers (with sliding_window_pattern)"))?;
            LocalAttention::pattern(n_layers, pattern)
        }
    };
    let rope = RopeConfig::new(head_dim, base, RopeLayout::HalfSplit).with_rotary_dim(rotary_dim);
    rope.validate()?;
    Ok(Some(LocalAttention {
        rope,
        sliding_window,
        layer_types,
    }))
}

/// Builds a half-split [`RopeConfig`] from a HuggingFace rope-parameters object (already
/// merged with the top-level `rope_theta` and `partial_rotary_factor`).
fn rope_from_parameters(
    params: &Object,
    section: &str,
    head_dim: usize,
    max_position_embeddings: usize,
    top_original: Option<usize>,
) -> Result<RopeConfig, PositionError> {
    // In the v4 spelling, `rope_theta` and `partial_rotary_factor` live at the top level.
    let path = |key: &str| match (section, key) {
        ("rope_scaling", "rope_theta" | "partial_rotary_factor") => key.to_owned(),
        _ => format!("{section}.{key}"),
    };
    let rope_type = match (field(params, "rope_type"), field(params, "type")) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(&path("type"), format!("{b} contradicts rope_type {a}")));
        }
        (Some(t), _) | (None, Some(t)) => t
            .as_str()
            .ok_or_else(|| bad(&path("rope_type"), format!("expected a string, found {t}")))?
            .to_owned(),
        (None, None)
            if params
                .keys()
                .any(|k| k != "rope_theta" && k != "partial_rotary_factor") =>
        {
            return Err(missing(&path("rope_type")));
        }
        (None, None) => "default".to_owned(),
    };
    let theta = get_f64(params, "rope_theta", &path("rope_theta"))?.unwrap_or(10000.0);
    let partial = get_f64(
        params,
        "partial_rotary_factor",
        &path("partial_rotary_factor"),
    )?
    .unwrap_or(1.0);
    if !(partial > 0.0 && partial <= 1.0) {
        return Err(bad(
            &path("partial_rotary_factor"),
            format!("{partial} is not in (0, 1]"),
        ));
    }
    let num = |key: &str| get_f64(params, key, &path(key));
    let required = |key: &str| num(key)?.ok_or_else(|| missing(&path(key)));
    let original = || -> Result<usize, PositionError> {
        let inner = get_usize(
            params,
            "original_max_position_embeddings",
            &path("original_max_position_embeddings"),
        )?;
        match (inner, top_original) {
            (Some(a), Some(b)) if a != b => Err(bad(
                &path("original_max_position_embeddings"),
                format!("{a} contradicts the top-level original_max_position_embeddings {b}"),
            )),
            (Some(a), _) | (None, Some(a)) => Ok(a),
            (None, None) => Ok(max_position_embeddings),
        }
    };
    let ratio = |original: usize| max_position_embeddings as f64 / original as f64;
    // `factor` must be present; `null` means "derive it from the context lengths".
    let factor_or_ratio = |original: usize| -> Result<f64, PositionError> {
        match params.get("factor") {
            None => Err(missing(&path("factor"))),
            Some(Value::Null) => Ok(ratio(original)),
            Some(_) => required("factor"),
        }
    };

    let (scaling, allowed): (RopeScaling, &[&str]) = match rope_type.as_str() {
        "default" => (RopeScaling::None, &[]),
        "linear" => (
            RopeScaling::Linear {
                factor: required("factor")?,
            },
            &["factor"],
        ),
        "dynamic" => (
            RopeScaling::DynamicNtk {
                factor: required("factor")?,
                max_position_embeddings,
            },
            &["factor"],
        ),
        "yarn" => {
            let original = original()?;
            let mut y = YarnScaling::new(factor_or_ratio(original)?, original);
            // HF: `beta_fast or 32` — null and 0 both mean the default.
            if let Some(v) = num("beta_fast")?.filter(|&v| v != 0.0) {
                y.beta_fast = v;
            }
            if let Some(v) = num("beta_slow")?.filter(|&v| v != 0.0) {
                y.beta_slow = v;
            }
            y.mscale = num("mscale")?;
            y.mscale_all_dim = num("mscale_all_dim")?;
            y.attention_factor = num("attention_factor")?;
            if let Some(t) = get_bool(params, "truncate", &path("truncate"))? {
                y.truncate = t;
            }
            (
                RopeScaling::Yarn(y),
                &[
                    "factor",
                    "original_max_position_embeddings",
                    "beta_fast",
                    "beta_slow",
                    "mscale",
                    "mscale_all_dim",
                    "attention_factor",
                    "truncate",
                ],
            )
        }
        "llama3" => (
            RopeScaling::Llama3(Llama3Scaling {
                factor: required("factor")?,
                low_freq_factor: required("low_freq_factor")?,
                high_freq_factor: required("high_freq_factor")?,
                original_max_position_embeddings: original()?,
            }),
            &[
                "factor",
                "low_freq_factor",
                "high_freq_factor",
                "original_max_position_embeddings",
            ],
        ),
        "longrope" | "su" => {
            let original = original()?;
            let factor = match params.get("factor") {
                None | Some(Value::Null) => ratio(original),
                Some(_) => required("factor")?,
            };
            (
                RopeScaling::LongRope(LongRopeScaling {
                    short_factor: get_f64_list(params, "short_factor", &path("short_factor"))?
                        .ok_or_else(|| missing(&path("short_factor")))?,
                    long_factor: get_f64_list(params, "long_factor", &path("long_factor"))?
                        .ok_or_else(|| missing(&path("long_factor")))?,
                    original_max_position_embeddings: original,
                    factor,
                    attention_factor: num("attention_factor")?,
                }),
                &[
                    "factor",
                    "short_factor",
                    "long_factor",
                    "original_max_position_embeddings",
                    "attention_factor",
                ],
            )
        }
        other => {
            return Err(PositionError::ConfigUnknownRopeType {
                rope_type: other.to_owned(),
            });
        }
    };
    let always = ["rope_type", "type", "rope_theta", "partial_rotary_factor"];
    if let Some(key) = params
        .keys()
        .find(|k| !always.contains(&k.as_str()) && !allowed.contains(&k.as_str()))
    {
        return Err(PositionError::ConfigUnknownField { field: path(key) });
    }
    let config = RopeConfig::new(head_dim, theta, RopeLayout::HalfSplit)
        .with_partial_rotary_factor(partial)
        .with_scaling(scaling);
    config.validate()?;
    Ok(config)
}

/// Keys of Meta's `params.json` that do not concern positions but are known, so they are
/// not reported as unknown.
const META_MODEL_KEYS: &[&str] = &[
    "dim",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "vocab_size",
    "multiple_of",
    "ffn_dim_multiplier",
    "norm_eps",
    "max_batch_size",
];

/// Parses the position settings of a Meta `params.json` (LLaMA 1/2/3 reference code).
///
/// Read fields: `dim` and `n_heads` (required; `head_dim = dim / n_heads`),
/// `n_kv_heads`, `rope_theta` (default 10000), `use_scaled_rope` (LLaMA 3.1's scaling with
/// Meta's hard-coded 8 / 1 / 4 / 8192), `max_seq_len`. The layout is
/// [`RopeLayout::Interleaved`], as in Meta's `model.py`. Any key not listed here or among
/// the known model keys is an error.
///
/// # Errors
///
/// As [`parse_hf_config`].
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{RopeLayout, RopeScaling, parse_meta_params};
///
/// let s = parse_meta_params(r#"{"dim": 4096, "n_layers": 32, "n_heads": 32, "n_kv_heads": 8,
///     "vocab_size": 128256, "ffn_dim_multiplier": 1.3, "multiple_of": 1024, "norm_eps": 1e-05,
///     "rope_theta": 500000.0, "use_scaled_rope": true}"#)?;
/// assert_eq!((s.rope.head_dim, s.n_kv_heads), (128, 8));
/// assert_eq!(s.rope.layout, RopeLayout::Interleaved);
/// assert!(matches!(s.rope.scaling, RopeScaling::Llama3(_)));
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn parse_meta_params(json: &str) -> Result<AttentionConfig, PositionError> {
    let root = parse_object(json)?;
    let rope_keys = ["rope_theta", "use_scaled_rope", "max_seq_len"];
    if let Some(key) = root
        .keys()
        .find(|k| !META_MODEL_KEYS.contains(&k.as_str()) && !rope_keys.contains(&k.as_str()))
    {
        return Err(PositionError::ConfigUnknownField { field: key.clone() });
    }
    let dim = get_usize(&root, "dim", "dim")?.ok_or_else(|| missing("dim"))?;
    let n_heads = get_usize(&root, "n_heads", "n_heads")?.ok_or_else(|| missing("n_heads"))?;
    if n_heads == 0 || dim % n_heads != 0 {
        return Err(bad(
            "n_heads",
            format!("{n_heads} must be at least 1 and divide dim {dim}"),
        ));
    }
    let n_kv_heads = get_usize(&root, "n_kv_heads", "n_kv_heads")?.unwrap_or(n_heads);
    if n_kv_heads == 0 || n_heads % n_kv_heads != 0 {
        return Err(bad(
            "n_kv_heads",
            format!("{n_kv_heads} must be at least 1 and divide n_heads {n_heads}"),
        ));
    }
    let theta = get_f64(&root, "rope_theta", "rope_theta")?.unwrap_or(10000.0);
    let scaling = if get_bool(&root, "use_scaled_rope", "use_scaled_rope")?.unwrap_or(false) {
        RopeScaling::Llama3(Llama3Scaling::llama_3_1())
    } else {
        RopeScaling::None
    };
    let rope = RopeConfig::new(dim / n_heads, theta, RopeLayout::Interleaved).with_scaling(scaling);
    rope.validate()?;
    Ok(AttentionConfig {
        rope,
        n_heads,
        n_kv_heads,
        max_position_embeddings: get_usize(&root, "max_seq_len", "max_seq_len")?,
        local: None,
    })
}
