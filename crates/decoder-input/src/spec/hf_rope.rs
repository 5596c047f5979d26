//! The RoPE sections of a HuggingFace `config.json` for the model spec: which spelling
//! (v5 `rope_parameters`, flat or per layer type; v4 `rope_scaling` with top-level
//! `rope_theta`, `partial_rotary_factor` and their older names), merged as transformers'
//! `standardize_rope_params` does, then parsed by `tokenloom_positions::parse_rope_section`.

use serde_json::{Map, Value};
use tokenloom_positions::{RopeConfig, RopeSection, parse_rope_section};

use super::arch::Architecture;
use super::hf::Reader;
use crate::error::DecoderInputError;

type Object = Map<String, Value>;

/// The rope sections of a config: one for every layer, or (Gemma 3, ModernBERT) one per
/// layer type.
pub(super) struct RopeSections {
    pub(super) main: RopeConfig,
    pub(super) sliding: Option<RopeConfig>,
    pub(super) mrope_section: Option<Vec<usize>>,
}

/// Keys inside a rope section that the spec (not the RoPE parser) reads.
const SPEC_SECTION_KEYS: &[&str] = &["mrope_section", "mrope_interleaved"];

pub(super) fn rope_sections(
    r: &Reader<'_>,
    arch: Architecture,
    rope_width: usize,
    max_positions: usize,
) -> Result<RopeSections, DecoderInputError> {
    let path = r.cfg.path;
    let original = r.usize("original_max_position_embeddings")?;
    let top_theta = r.get("rope_theta").or(match arch {
        Architecture::GptNeoX => r.get("rotary_emb_base"),
        Architecture::ModernBert => r.get("global_rope_theta"),
        _ => None,
    });
    let top_partial = partial_rotary(r, arch, rope_width)?;
    let v5 = r.get("rope_parameters");
    let v4 = r.get("rope_scaling");
    let context = |section: &'static str| RopeSection {
        path: section,
        head_dim: rope_width,
        max_position_embeddings: max_positions,
        original_max_position_embeddings: original,
    };
    // The section objects with the top-level theta and partial factor merged in where
    // the section does not state them (transformers' `setdefault`: the section wins);
    // absent everywhere, the architecture's default theta.
    let merge = |section: &Object| -> Object {
        let mut p = section.clone();
        for (key, top) in [
            ("rope_theta", top_theta.cloned()),
            ("partial_rotary_factor", top_partial.clone()),
        ] {
            if let Some(top) = top
                && p.get(key).is_none_or(Value::is_null)
            {
                p.insert(key.to_owned(), top);
            }
        }
        if p.get("rope_theta").is_none_or(Value::is_null) {
            p.insert("rope_theta".to_owned(), arch.hf_default_theta().into());
        }
        p
    };
    let mut mrope_section = None;
    let mut take_spec_keys = |p: &mut Object, path_name: &str| -> Result<(), DecoderInputError> {
        for key in SPEC_SECTION_KEYS {
            if let Some(v) = p.remove(*key) {
                if arch != Architecture::Qwen2Vl {
                    return Err(DecoderInputError::UnknownConfigKey {
                        path: path.to_path_buf(),
                        key: format!("{}{path_name}.{key}", r.cfg.prefix),
                        architecture: arch.name(),
                    });
                }
                if *key == "mrope_section" {
                    let list = v
                        .as_array()
                        .and_then(|a| {
                            a.iter()
                                .map(|x| x.as_u64().and_then(|x| usize::try_from(x).ok()))
                                .collect::<Option<Vec<_>>>()
                        })
                        .ok_or_else(|| r.cfg.bad(key, &v, "a list of non-negative integers"))?;
                    mrope_section = Some(list);
                } else if v.as_bool() == Some(true) {
                    return Err(DecoderInputError::UnsupportedSetting {
                        path: path.to_path_buf(),
                        key: format!("{}{path_name}.{key}", r.cfg.prefix),
                        value: v.to_string(),
                        reason: "interleaved M-RoPE sections (Qwen3-VL) are not implemented",
                    });
                }
            }
        }
        // v4's `{"type": "mrope"}` is the default rope with sections (transformers
        // rewrites it so).
        let ty = p
            .get("rope_type")
            .or_else(|| p.get("type"))
            .and_then(Value::as_str);
        if ty == Some("mrope") && arch == Architecture::Qwen2Vl {
            p.remove("type");
            p.insert("rope_type".to_owned(), "default".into());
        }
        Ok(())
    };
    let section = |p: &Object, name: &'static str| -> Result<RopeConfig, DecoderInputError> {
        Ok(parse_rope_section(p, &context(name))?)
    };
    match (v5, v4) {
        (Some(_), Some(_)) => Err(DecoderInputError::ConflictingSettings {
            path: path.to_path_buf(),
            first: r.cfg.key_path("rope_parameters"),
            second: format!("{} (use one spelling)", r.cfg.key_path("rope_scaling")),
        }),
        (Some(value), None) => {
            let object = value
                .as_object()
                .ok_or_else(|| r.cfg.bad("rope_parameters", value, "an object"))?;
            let nested: Vec<&str> = ["full_attention", "sliding_attention", "chunked_attention"]
                .into_iter()
                .filter(|k| object.get(*k).is_some_and(Value::is_object))
                .collect();
            if nested.is_empty() {
                let mut p = merge(object);
                take_spec_keys(&mut p, "rope_parameters")?;
                let main = section(&p, "rope_parameters")?;
                return Ok(RopeSections {
                    main,
                    sliding: None,
                    mrope_section,
                });
            }
            if let Some(extra) = object.keys().find(|k| !nested.contains(&k.as_str())) {
                return Err(DecoderInputError::UnknownConfigKey {
                    path: path.to_path_buf(),
                    key: format!("{}rope_parameters.{extra}", r.cfg.prefix),
                    architecture: arch.name(),
                });
            }
            let get = |key: &'static str,
                       name: &'static str|
             -> Result<Option<RopeConfig>, DecoderInputError> {
                match object.get(key).and_then(Value::as_object) {
                    Some(o) => section(&merge(o), name).map(Some),
                    None => Ok(None),
                }
            };
            let full = get("full_attention", "rope_parameters.full_attention")?;
            let sliding = get("sliding_attention", "rope_parameters.sliding_attention")?;
            let main = full
                .clone()
                .or_else(|| sliding.clone())
                .ok_or_else(|| r.cfg.missing("rope_parameters.full_attention"))?;
            Ok(RopeSections {
                main,
                sliding,
                mrope_section: None,
            })
        }
        (None, v4) => {
            let scaling = match v4 {
                Some(Value::Object(s)) => s.clone(),
                Some(other) => return Err(r.cfg.bad("rope_scaling", other, "an object or null")),
                None => Object::new(),
            };
            if scaling.contains_key("rope_theta") {
                return Err(DecoderInputError::UnknownConfigKey {
                    path: path.to_path_buf(),
                    key: format!("{}rope_scaling.rope_theta", r.cfg.prefix),
                    architecture: arch.name(),
                });
            }
            let mut p = merge(&scaling);
            take_spec_keys(&mut p, "rope_scaling")?;
            let main = section(&p, "rope_scaling")?;
            // Gemma 3 (v4): the sliding layers' base, default rope type.
            let sliding = match (arch, r.f64("rope_local_base_freq")?) {
                (Architecture::Gemma3, base) => Some(
                    RopeConfig::new(rope_width, base.unwrap_or(10_000.0), main.layout)
                        .with_rotary_dim(main.rotary_dim),
                ),
                (_, Some(_)) => {
                    return Err(DecoderInputError::UnknownConfigKey {
                        path: path.to_path_buf(),
                        key: r.cfg.key_path("rope_local_base_freq"),
                        architecture: arch.name(),
                    });
                }
                (_, None) => None,
            };
            Ok(RopeSections {
                main,
                sliding,
                mrope_section,
            })
        }
    }
}

/// The top-level partial rotary factor, as a JSON number: `partial_rotary_factor`,
/// GPT-NeoX's `rotary_pct`, StableLM's `rope_pct`, GPT-J's `rotary_dim` (as a fraction
/// of the head), or the config class's default (Phi 0.5, GPT-NeoX and StableLM 0.25).
fn partial_rotary(
    r: &Reader<'_>,
    arch: Architecture,
    head_dim: usize,
) -> Result<Option<Value>, DecoderInputError> {
    let explicit = match arch {
        Architecture::GptNeoX => r.get("partial_rotary_factor").or(r.get("rotary_pct")),
        Architecture::StableLm => r.get("partial_rotary_factor").or(r.get("rope_pct")),
        Architecture::GptJ => {
            return match r.usize("rotary_dim")? {
                // rotary_dim / head_dim, exact in f64 for these sizes; the RoPE parser
                // floors head_dim · factor back to rotary_dim.
                #[allow(clippy::cast_precision_loss)]
                Some(d) if d <= head_dim && head_dim > 0 => {
                    Ok(Some(Value::from(d as f64 / head_dim as f64)))
                }
                Some(d) => Err(DecoderInputError::BadValue {
                    path: r.cfg.path.to_path_buf(),
                    key: r.cfg.key_path("rotary_dim"),
                    value: d.to_string(),
                    expected: "at most the head size n_embd / n_head",
                }),
                None => Ok(None),
            };
        }
        _ => r.get("partial_rotary_factor"),
    };
    if let Some(v) = explicit {
        if !v.is_number() {
            return Err(r.cfg.bad("partial_rotary_factor", v, "a number"));
        }
        return Ok(Some(v.clone()));
    }
    // Only when no section states it: the v5 section carries its own.
    let in_section = r
        .cfg
        .get("rope_parameters")
        .and_then(Value::as_object)
        .is_some_and(|p| p.contains_key("partial_rotary_factor"));
    Ok(match arch {
        _ if in_section => None,
        Architecture::Phi => Some(0.5.into()),
        Architecture::GptNeoX | Architecture::StableLm => Some(0.25.into()),
        _ => None,
    })
}
