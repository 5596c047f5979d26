//! Strict parsing of one RoPE section of a HuggingFace `config.json`: the v5
//! `rope_parameters` object (or one of its per-layer-type entries), or the v4
//! `rope_scaling` object merged with the top-level `rope_theta` and
//! `partial_rotary_factor`.
//!
//! Strict means: an unknown `rope_type`, a missing required field, a field inside the
//! section that would be silently ignored, and contradictory spellings are all errors
//! that name the field. Everything else a config file says about a model (its sizes, head
//! counts, which layers rotate) is read by the model spec of `tokenloom-decoder-input`,
//! which calls [`parse_rope_section`] for each section.

use serde_json::{Map, Value};

use crate::error::{ConfigValueProblem, PositionError};
use crate::rope::{
    Llama3Scaling, LongRopeScaling, RopeConfig, RopeLayout, RopeScaling, YarnScaling,
};

/// What a RoPE section is read against: where it sits in the file (for messages) and the
/// model-level numbers its parameters default to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeSection<'a> {
    /// The section's path in the file: `rope_parameters`, `rope_scaling` (v4: then
    /// `rope_theta` and `partial_rotary_factor` are top-level keys) or
    /// `rope_parameters.sliding_attention`.
    pub path: &'a str,
    /// The width of the rotated heads (`head_dim`, or DeepSeek's `qk_rope_head_dim`).
    pub head_dim: usize,
    /// The model's `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// A top-level `original_max_position_embeddings` (Phi-3), which yarn, llama3 and
    /// longrope read when the section does not say.
    pub original_max_position_embeddings: Option<usize>,
}

type Object = Map<String, Value>;

fn missing(field: &str) -> PositionError {
    PositionError::ConfigMissingField {
        field: field.to_owned(),
    }
}

fn bad(field: &str, problem: ConfigValueProblem) -> PositionError {
    PositionError::ConfigBadValue {
        field: field.to_owned(),
        problem,
    }
}

fn wrong_type(field: &str, expected: &'static str, found: &Value) -> PositionError {
    bad(
        field,
        ConfigValueProblem::WrongType {
            expected,
            found: found.to_string(),
        },
    )
}

/// A field that is present and not `null`.
fn field<'a>(obj: &'a Object, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn get_f64(obj: &Object, key: &str, path: &str) -> Result<Option<f64>, PositionError> {
    field(obj, key)
        .map(|v| v.as_f64().ok_or_else(|| wrong_type(path, "a number", v)))
        .transpose()
}

fn get_usize(obj: &Object, key: &str, path: &str) -> Result<Option<usize>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .ok_or_else(|| wrong_type(path, "a non-negative integer", v))
        })
        .transpose()
}

fn get_bool(obj: &Object, key: &str, path: &str) -> Result<Option<bool>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_bool()
                .ok_or_else(|| wrong_type(path, "true or false", v))
        })
        .transpose()
}

fn get_f64_list(obj: &Object, key: &str, path: &str) -> Result<Option<Vec<f64>>, PositionError> {
    field(obj, key)
        .map(|v| {
            v.as_array()
                .and_then(|a| a.iter().map(Value::as_f64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| wrong_type(path, "a list of numbers", v))
        })
        .transpose()
}

/// Builds a half-split [`RopeConfig`] from a HuggingFace rope section (already merged
/// with the top-level `rope_theta` and `partial_rotary_factor` in the v4 spelling).
///
/// Rope types: `default`, `linear`, `dynamic`, `yarn`, `llama3`, `longrope` (and its old
/// name `su`). As in transformers, yarn, llama3 and longrope default
/// `original_max_position_embeddings` to the top-level value or else
/// `max_position_embeddings`; a `null` yarn/longrope `factor` means
/// `max_position_embeddings / original_max_position_embeddings`. `rope_theta` defaults to
/// 10000. The layout is half-split (HuggingFace's `rotate_half`); a model spec that knows
/// better sets it afterwards.
///
/// # Errors
///
/// [`PositionError::ConfigMissingField`], [`PositionError::ConfigUnknownField`] for a
/// parameter that would be ignored, [`PositionError::ConfigUnknownRopeType`],
/// [`PositionError::ConfigBadValue`] for wrongly typed, contradictory or impossible
/// values, and the validation errors of [`RopeConfig::validate`].
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{RopeScaling, RopeSection, parse_rope_section};
///
/// let section: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
///     r#"{"rope_type": "linear", "factor": 2.0, "rope_theta": 500000.0}"#,
/// ).unwrap();
/// let context = RopeSection {
///     path: "rope_parameters",
///     head_dim: 64,
///     max_position_embeddings: 4096,
///     original_max_position_embeddings: None,
/// };
/// let rope = parse_rope_section(&section, &context)?;
/// assert_eq!((rope.head_dim, rope.theta), (64, 500000.0));
/// assert_eq!(rope.scaling, RopeScaling::Linear { factor: 2.0 });
///
/// let mut unknown = section.clone();
/// unknown.insert("beta_fast".into(), 32.into());
/// let err = parse_rope_section(&unknown, &context).unwrap_err();
/// assert_eq!(err.to_string(), "config field `rope_parameters.beta_fast` is not understood and would be silently ignored");
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn parse_rope_section(
    params: &Map<String, Value>,
    context: &RopeSection<'_>,
) -> Result<RopeConfig, PositionError> {
    let RopeSection {
        path: section,
        head_dim,
        max_position_embeddings,
        original_max_position_embeddings: top_original,
    } = *context;
    // In the v4 spelling, `rope_theta` and `partial_rotary_factor` live at the top level.
    let path = |key: &str| match (section, key) {
        ("rope_scaling", "rope_theta" | "partial_rotary_factor") => key.to_owned(),
        _ => format!("{section}.{key}"),
    };
    let rope_type = match (field(params, "rope_type"), field(params, "type")) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(
                &path("type"),
                ConfigValueProblem::Contradicts {
                    value: b.to_string(),
                    other_field: path("rope_type"),
                    other_value: a.to_string(),
                },
            ));
        }
        (Some(t), _) | (None, Some(t)) => t
            .as_str()
            .ok_or_else(|| wrong_type(&path("rope_type"), "a string", t))?
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
            ConfigValueProblem::OutOfRange {
                value: partial,
                range: "(0, 1]",
            },
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
                ConfigValueProblem::Contradicts {
                    value: a.to_string(),
                    other_field: "original_max_position_embeddings".to_owned(),
                    other_value: b.to_string(),
                },
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
        // The share of rotated pairs belongs to this scaling; the rotation spans the head.
        "proportional" => (
            RopeScaling::Proportional {
                factor: num("factor")?.unwrap_or(1.0),
                partial_rotary_factor: partial,
            },
            &["factor"],
        ),
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
    let rotary_share = match scaling {
        RopeScaling::Proportional { .. } => 1.0,
        _ => partial,
    };
    let config = RopeConfig::new(head_dim, theta, RopeLayout::HalfSplit)
        .with_partial_rotary_factor(rotary_share)
        .with_scaling(scaling);
    config.validate()?;
    Ok(config)
}
