//! The positions of every layer of a HuggingFace rotary decoder: the layer types, which
//! layers rotate (NoPE layers, per-type RoPE), MLA's rotated width, and each
//! architecture's own rules, read from `config.json` for the model spec.

use serde_json::Value;
use tokenloom_positions::{RopeConfig, RopeLayout};

use super::arch::Architecture;
use super::hf_rope::rope_sections;
use super::{
    AttentionTemperature, EmbeddingNorm, EmbeddingScale, LayerAttention, LayerPositions, ModelSpec,
};
use crate::error::DecoderInputError;

use super::hf::Reader;

/// The layer-type names of `layer_types`.
fn layer_types(r: &Reader<'_>) -> Result<Option<Vec<LayerAttention>>, DecoderInputError> {
    let Some(value) = r.get("layer_types") else {
        return Ok(None);
    };
    let list = value
        .as_array()
        .filter(|list| !list.is_empty())
        .ok_or_else(|| {
            r.cfg
                .bad("layer_types", value, "a list of one entry per layer")
        })?;
    list.iter()
        .map(|t| match t.as_str() {
            Some("full_attention") => Ok(LayerAttention::FullAttention),
            Some("sliding_attention") => Ok(LayerAttention::SlidingAttention),
            Some("chunked_attention") => Ok(LayerAttention::ChunkedAttention),
            _ => Err(r.cfg.bad(
                "layer_types",
                t,
                "full_attention, sliding_attention or chunked_attention",
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

pub(super) fn rope_decoder(
    r: &Reader<'_>,
    spec: &mut ModelSpec,
    n_layers: Option<usize>,
) -> Result<(), DecoderInputError> {
    let arch = spec.architecture;
    let path = r.cfg.path;
    let rope_width = match arch {
        Architecture::DeepseekV2 | Architecture::DeepseekV3 => {
            let rope = r.required_first_usize(&["qk_rope_head_dim"])?;
            let nope = r.usize("qk_nope_head_dim")?.unwrap_or(0);
            spec.head_dim = rope + nope;
            rope
        }
        _ => spec.head_dim,
    };
    let sections = rope_sections(r, arch, rope_width, spec.max_positions)?;
    let mut main = sections.main;
    let mut deinterleave = false;
    main.layout = arch.hf_layout();
    if arch == Architecture::DeepseekV3 && r.bool("rope_interleave")?.unwrap_or(true) {
        main.layout = RopeLayout::Interleaved;
        deinterleave = true;
    }
    if arch == Architecture::GptJ {
        main.layout = RopeLayout::Interleaved;
    }
    let types = layer_types(r)?;
    let n = match (n_layers, &types) {
        (Some(n), Some(t)) if t.len() != n => {
            return Err(DecoderInputError::BadValue {
                path: path.to_path_buf(),
                key: r.cfg.key_path("layer_types"),
                value: format!("{} entries", t.len()),
                expected: "one entry per layer (num_hidden_layers)",
            });
        }
        (Some(n), _) => n,
        (None, Some(t)) => t.len(),
        (None, None) => 0,
    };
    let attention = |il: usize| -> LayerAttention {
        types
            .as_ref()
            .map_or(LayerAttention::FullAttention, |t| t[il])
    };
    let rotary = |il: usize, rope: &RopeConfig| {
        let mut layer = LayerPositions::rotary(attention(il), rope.clone());
        layer.deinterleave_output = deinterleave;
        layer.mrope_section.clone_from(&sections.mrope_section);
        layer
    };
    let uniform = |rope: &RopeConfig| -> Vec<LayerPositions> {
        if n == 0 {
            vec![rotary(0, rope)]
        } else {
            (0..n).map(|il| rotary(il, rope)).collect()
        }
    };
    spec.layers = match arch {
        Architecture::ModernBert => {
            // v5: nested rope_parameters and layer_types; v4: global_rope_theta,
            // local_rope_theta and global_attn_every_n_layers (default 3).
            let local = match &sections.sliding {
                Some(local) => local.clone(),
                None => RopeConfig::new(
                    rope_width,
                    r.f64("local_rope_theta")?.unwrap_or(10_000.0),
                    main.layout,
                ),
            };
            let types = match &types {
                Some(t) => t.clone(),
                None => {
                    let every = r.usize("global_attn_every_n_layers")?.unwrap_or(3).max(1);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    pattern_types(n, |il| il % every != 0)
                }
            };
            by_layer_type(&types, &local, &main)
        }
        Architecture::Gemma3 => {
            r.mark(&["sliding_window_pattern", "_sliding_window_pattern"]);
            let sliding = sections.sliding.clone().unwrap_or_else(|| {
                RopeConfig::new(rope_width, 10_000.0, main.layout).with_rotary_dim(main.rotary_dim)
            });
            let types = match &types {
                Some(t) => t.clone(),
                None => {
                    let pattern = r
                        .first_usize(&["sliding_window_pattern", "_sliding_window_pattern"])?
                        .unwrap_or(6);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    pattern_types(n, |il| pattern == 0 || (il + 1) % pattern != 0)
                }
            };
            by_layer_type(&types, &sliding, &main)
        }
        Architecture::SmolLm3 | Architecture::Llama4 => {
            let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
            let uses_rope = no_rope_layers(r, n)?;
            // Python truthiness, as transformers tests it: the released Llama 4 configs
            // store an integer (4) here.
            let tuning = match r.get("attn_temperature_tuning") {
                None => true,
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
                Some(other) => {
                    return Err(r
                        .cfg
                        .bad("attn_temperature_tuning", other, "a bool or a number"));
                }
            };
            let temperature = if arch == Architecture::Llama4 && tuning {
                Some(AttentionTemperature {
                    floor_scale: r.f64("floor_scale")?.unwrap_or(8192.0),
                    attn_scale: r.f64("attn_scale")?.unwrap_or(0.1),
                })
            } else {
                r.mark(&["attn_temperature_tuning", "floor_scale", "attn_scale"]);
                None
            };
            (0..n)
                .map(|il| {
                    if uses_rope[il] {
                        rotary(il, &main)
                    } else {
                        let mut layer = LayerPositions::nope(attention(il));
                        layer.q_scale = temperature;
                        layer
                    }
                })
                .collect()
        }
        Architecture::Exaone4 => {
            // modeling_exaone4: `if self.sliding_window is None or self.is_sliding`.
            let sliding_window = r.usize("sliding_window")?;
            r.mark(&["sliding_window_pattern"]);
            match (sliding_window, &types) {
                (None, _) => uniform(&main),
                (Some(_), Some(t)) => t
                    .iter()
                    .enumerate()
                    .map(|(il, &kind)| {
                        if kind == LayerAttention::SlidingAttention {
                            rotary(il, &main)
                        } else {
                            LayerPositions::nope(kind)
                        }
                    })
                    .collect(),
                (Some(_), None) => {
                    let pattern = r.cfg.usize("sliding_window_pattern")?.unwrap_or(4);
                    let n = n_layers.ok_or_else(|| r.cfg.missing("num_hidden_layers"))?;
                    (0..n)
                        .map(|il| {
                            if pattern != 0 && (il + 1) % pattern != 0 {
                                rotary(il, &main).with_attention(LayerAttention::SlidingAttention)
                            } else {
                                LayerPositions::nope(LayerAttention::FullAttention)
                            }
                        })
                        .collect()
                }
            }
        }
        _ => uniform(&main),
    };
    if n > 0 {
        spec.n_layers = Some(spec.layers.len());
    }

    // The transforms of the input and output sides.
    if arch.scales_embeddings_by_sqrt_n_embd() {
        spec.embedding_scale = Some(EmbeddingScale::SqrtNEmbd);
    }
    match arch {
        Architecture::Granite => {
            spec.embedding_scale = r
                .f64("embedding_multiplier")?
                .filter(|&m| m != 1.0)
                .map(EmbeddingScale::Multiplier);
            spec.logits.divisor = r.f64("logits_scaling")?.filter(|&d| d != 1.0);
        }
        Architecture::Cohere => {
            spec.logits.multiplier = Some(r.f64("logit_scale")?.unwrap_or(0.0625));
        }
        Architecture::Gemma2 => {
            // Gemma2Config's default is 30; an explicit null turns it off.
            spec.logits.softcap = match r.cfg.object.get("final_logit_softcapping") {
                None => Some(30.0),
                Some(_) => r.f64("final_logit_softcapping")?,
            };
        }
        Architecture::Gemma3 => {
            spec.logits.softcap = r.f64("final_logit_softcapping")?;
            // transformers' Gemma3ForCausalLM applies it, Gemma3ForConditionalGeneration
            // (the multimodal wrapper, whose text model sits in text_config) does not.
            if let (Some(cap), true) = (spec.logits.softcap, r.cfg.prefix == "text_config.") {
                return Err(DecoderInputError::UnsupportedSetting {
                    path: path.to_path_buf(),
                    key: r.cfg.key_path("final_logit_softcapping"),
                    value: cap.to_string(),
                    reason: "transformers' Gemma3ForCausalLM applies it and Gemma3ForConditionalGeneration does not; tokenloom does not guess which model is meant",
                });
            }
        }
        Architecture::ModernBert => {
            spec.embedding_norm = Some(EmbeddingNorm {
                eps: r.f64("norm_eps")?.unwrap_or(1e-5),
                bias: r.bool("norm_bias")?.unwrap_or(false),
            });
            if !r.bool("decoder_bias")?.unwrap_or(true) {
                spec.tensors.head_bias.clear();
            }
        }
        Architecture::Falcon if r.bool("alibi")?.unwrap_or(false) => {
            return Err(DecoderInputError::UnsupportedSetting {
                path: path.to_path_buf(),
                key: r.cfg.key_path("alibi"),
                value: "true".to_owned(),
                reason: "Falcon with ALiBi has no rotary positions; tokenloom builds Falcon with RoPE",
            });
        }
        _ => {}
    }
    Ok(())
}

/// `n` layer types: sliding where `sliding(layer)`, full elsewhere.
pub(super) fn pattern_types(n: usize, sliding: impl Fn(usize) -> bool) -> Vec<LayerAttention> {
    (0..n)
        .map(|il| {
            if sliding(il) {
                LayerAttention::SlidingAttention
            } else {
                LayerAttention::FullAttention
            }
        })
        .collect()
}

/// Every layer rotating with `sliding` or `full` by its type (Gemma 3, ModernBERT).
pub(super) fn by_layer_type(
    types: &[LayerAttention],
    sliding: &RopeConfig,
    full: &RopeConfig,
) -> Vec<LayerPositions> {
    types
        .iter()
        .map(|&t| {
            let rope = if t == LayerAttention::SlidingAttention {
                sliding
            } else {
                full
            };
            LayerPositions::rotary(t, rope.clone())
        })
        .collect()
}

impl LayerPositions {
    fn with_attention(mut self, attention: LayerAttention) -> Self {
        self.attention = attention;
        self
    }
}

/// SmolLM3's and Llama 4's `no_rope_layers`: 1 where the layer rotates, 0 where it does
/// not; absent, every `no_rope_layer_interval`-th layer (default 4) is NoPE.
fn no_rope_layers(r: &Reader<'_>, n: usize) -> Result<Vec<bool>, DecoderInputError> {
    let interval = r.usize("no_rope_layer_interval")?.unwrap_or(4);
    match r.get("no_rope_layers") {
        Some(value) => {
            let list = value
                .as_array()
                .ok_or_else(|| r.cfg.bad("no_rope_layers", value, "a list of 0 and 1"))?;
            if list.len() != n {
                return Err(DecoderInputError::BadValue {
                    path: r.cfg.path.to_path_buf(),
                    key: r.cfg.key_path("no_rope_layers"),
                    value: format!("{} entries", list.len()),
                    expected: "one entry per layer (num_hidden_layers)",
                });
            }
            list.iter()
                .map(|v| match v.as_u64() {
                    Some(0) => Ok(false),
                    Some(1) => Ok(true),
                    _ => Err(r.cfg.bad("no_rope_layers", v, "a list of 0 and 1")),
                })
                .collect()
        }
        None if interval == 0 => {
            Err(r
                .cfg
                .bad("no_rope_layer_interval", &Value::from(0), "at least 1"))
        }
        None => Ok((0..n).map(|il| (il + 1) % interval != 0).collect()),
    }
}
