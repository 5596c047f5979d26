//! GGUF metadata → [`ModelSpec`], with llama.cpp's key names and rules (`llama-model.cpp`
//! `load_hparams`, `llama_model_rope_type`; the per-architecture graphs in
//! `src/models/`).

use tokenloom_io::{GgufFile, GgufValue};
use tokenloom_positions::{RopeConfig, RopeScaling, YarnScaling};

use super::arch::{Architecture, ModelFamily};
use super::gguf_rope::{GgufRopeType, gguf_rope_entry};
use super::{
    AbsolutePositions, AttentionTemperature, EmbeddingScale, LayerAttention, LayerPositions,
    ModelSpec, OutputHead, SpecSource,
};
use crate::error::DecoderInputError;
use crate::model_config::{GgufModelConfig, missing_key};

/// The tensor of llama.cpp's precomputed RoPE frequency factors.
pub(crate) const ROPE_FREQS: &str = "rope_freqs.weight";

/// Typed reads of `{arch}.*` keys: absent is `None`, a value of another type is
/// [`DecoderInputError::BadValue`] naming key, expected and found type.
struct Keys<'a> {
    config: GgufModelConfig<'a>,
}

impl Keys<'_> {
    fn bad(&self, suffix: &str, value: &GgufValue, expected: &'static str) -> DecoderInputError {
        DecoderInputError::BadValue {
            path: self.config.path().to_path_buf(),
            key: self.config.key(suffix),
            value: format!(
                "{} ({})",
                super::json::truncate(&format!("{value:?}")),
                value.type_name()
            ),
            expected,
        }
    }

    fn uint(&self, suffix: &str) -> Result<Option<usize>, DecoderInputError> {
        self.config.uint(suffix)
    }

    fn required(&self, suffix: &str) -> Result<usize, DecoderInputError> {
        self.config.required(suffix)
    }

    fn float(&self, suffix: &str) -> Result<Option<f64>, DecoderInputError> {
        match self.config.get(suffix) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(suffix, v, "a number")),
        }
    }

    fn string(&self, suffix: &str) -> Result<Option<&str>, DecoderInputError> {
        match self.config.get(suffix) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.bad(suffix, v, "a string")),
        }
    }

    fn unsupported(&self, suffix: &str, value: String, reason: &'static str) -> DecoderInputError {
        DecoderInputError::UnsupportedSetting {
            path: self.config.path().to_path_buf(),
            key: self.config.key(suffix),
            value,
            reason,
        }
    }
}

pub(super) fn from_gguf(file: &GgufFile) -> Result<ModelSpec, DecoderInputError> {
    let config = GgufModelConfig::read(file)?;
    let path = config.path();
    let name = config.architecture;
    let (table_name, rope_type) =
        gguf_rope_entry(name).ok_or_else(|| DecoderInputError::UnknownArchitecture {
            path: path.to_path_buf(),
            architecture: name.to_owned(),
        })?;
    let arch = Architecture::from_gguf(name).unwrap_or(Architecture::GgufGeneric(table_name));
    let keys = Keys { config };

    let n_embd = keys.required("embedding_length")?;
    let n_layers = keys.uint("block_count")?;
    let n_layers =
        super::limits::check_layer_count(n_layers, path, keys.config.key("block_count"))?;
    let max_positions = keys.required("context_length")?;
    let pad_id = match file.get("tokenizer.ggml.padding_token_id") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|p| usize::try_from(p).ok())
                .ok_or_else(|| DecoderInputError::BadValue {
                    path: path.to_path_buf(),
                    key: "tokenizer.ggml.padding_token_id".to_owned(),
                    value: format!("{v:?}"),
                    expected: "an unsigned integer",
                })?,
        ),
    };
    let head = if file.info("output.weight").is_ok() {
        OutputHead::Untied
    } else {
        OutputHead::Tied
    };
    let mut spec = ModelSpec::base(
        arch,
        SpecSource::Gguf(path.to_path_buf()),
        n_embd,
        max_positions,
        pad_id,
        head,
    );
    spec.n_layers = n_layers;
    let layer_count = n_layers.unwrap_or(1);
    match arch.family() {
        ModelFamily::BertEncoder | ModelFamily::Gpt2Decoder => {
            let n_heads = keys.uint("attention.head_count")?.unwrap_or(1);
            spec.n_heads = n_heads;
            spec.n_kv_heads = n_heads;
            spec.head_dim = n_embd / n_heads.max(1);
            spec.absolute_positions = Some(AbsolutePositions::Learned {
                rows: max_positions,
                offset: 0,
            });
            if arch == Architecture::Bert {
                spec.head = OutputHead::None;
                spec.token_types = Some(keys.uint("attention.token_type_count")?.unwrap_or(2));
                // llama.cpp's bert graph: `build_norm(inpL, tok_norm, tok_norm_b, LLM_NORM)`.
                spec.embedding_norm = Some(super::EmbeddingNorm {
                    eps: keys.float("attention.layer_norm_epsilon")?.unwrap_or(1e-12),
                    bias: true,
                });
            }
            spec.layers = vec![LayerPositions::nope(LayerAttention::FullAttention); layer_count];
        }
        ModelFamily::RopeDecoder => rope_decoder(file, &keys, &mut spec, rope_type, layer_count)?,
    }
    transforms(&keys, &mut spec)?;
    spec.validated()
}

fn rope_decoder(
    file: &GgufFile,
    keys: &Keys<'_>,
    spec: &mut ModelSpec,
    rope_type: GgufRopeType,
    layer_count: usize,
) -> Result<(), DecoderInputError> {
    let path = keys.config.path();
    let arch = spec.architecture;
    let layout = rope_type
        .layout()
        .ok_or_else(|| DecoderInputError::UnsupportedRope {
            path: path.to_path_buf(),
            architecture: arch.name().to_owned(),
            rope_type: rope_type.llama_cpp_name(),
            reason: match rope_type {
                GgufRopeType::MultimodalRope => {
                    "multimodal (sectioned) RoPE is not supported by tokenloom"
                }
                _ => "the architecture has no rotary position embedding",
            },
        })?;
    let n_embd = spec.n_embd;
    let n_heads = keys.required("attention.head_count")?;
    if n_heads == 0 || !n_embd.is_multiple_of(n_heads) {
        return Err(DecoderInputError::HeadsDoNotDivide {
            path: path.to_path_buf(),
            n_heads,
            n_embd,
        });
    }
    let n_kv_heads = keys.uint("attention.head_count_kv")?.unwrap_or(n_heads);
    let head_dim = keys
        .uint("attention.key_length")?
        .unwrap_or(n_embd / n_heads);
    let theta = keys.float("rope.freq_base")?.unwrap_or(10000.0);
    let rotary_dim = keys.uint("rope.dimension_count")?.unwrap_or(head_dim);
    if rotary_dim > head_dim {
        return Err(DecoderInputError::BadValue {
            path: path.to_path_buf(),
            key: keys.config.key("rope.dimension_count"),
            value: rotary_dim.to_string(),
            expected: "at most the head size (attention.key_length)",
        });
    }
    spec.n_heads = n_heads;
    spec.n_kv_heads = n_kv_heads;
    spec.head_dim = head_dim;
    let factor = |keys: &Keys<'_>| -> Result<f64, DecoderInputError> {
        keys.float("rope.scaling.factor")?
            .ok_or_else(|| missing_key(keys.config.path(), keys.config.key("rope.scaling.factor")))
    };
    let scaling = match keys.string("rope.scaling.type")? {
        None | Some("none") => match keys.float("rope.scale_linear")? {
            Some(factor) if factor != 1.0 => RopeScaling::Linear { factor },
            _ => RopeScaling::None,
        },
        Some("linear") => RopeScaling::Linear {
            factor: factor(keys)?,
        },
        Some("yarn") => {
            if arch == Architecture::DeepseekV2 {
                return Err(keys.unsupported(
                    "rope.scaling.type",
                    "yarn".to_owned(),
                    "DeepSeek's YaRN attention factor (rope.scaling.yarn_log_multiplier) is not implemented for GGUF files",
                ));
            }
            RopeScaling::Yarn(YarnScaling::new(
                factor(keys)?,
                keys.uint("rope.scaling.original_context_length")?
                    .unwrap_or(spec.max_positions),
            ))
        }
        Some(other) => {
            return Err(keys.unsupported(
                "rope.scaling.type",
                other.to_owned(),
                "none, linear and yarn are",
            ));
        }
    };
    // llama.cpp's precomputed per-pair factors (LLaMA 3.1's `llama3` scaling, evaluated
    // by the converter): every frequency divided by its factor, as `ggml_rope_ext` does.
    let scaling = if file.info(ROPE_FREQS).is_ok() {
        if scaling != RopeScaling::None {
            return Err(DecoderInputError::ConflictingSettings {
                path: path.to_path_buf(),
                first: ROPE_FREQS.to_owned(),
                second: format!("{} ({scaling})", keys.config.key("rope.scaling.type")),
            });
        }
        let factors = file.load::<f64>(ROPE_FREQS)?;
        if factors.dims().len() != 1 {
            return Err(DecoderInputError::TensorShape {
                path: path.to_path_buf(),
                tensor: ROPE_FREQS.to_owned(),
                got: factors.dims().to_vec(),
                expected: format!("(rotary_dim / 2,) = ({},)", rotary_dim / 2),
            });
        }
        RopeScaling::FreqFactors {
            factors: factors.as_slice().to_vec(),
        }
    } else {
        scaling
    };
    // Phi-3's LongRoPE factors as tensors (llama.cpp picks them by context length, with
    // its own attention factor key): not implemented, so refused rather than ignored.
    for tensor in ["rope_factors_long.weight", "rope_factors_short.weight"] {
        if file.info(tensor).is_ok() {
            return Err(DecoderInputError::UnsupportedSetting {
                path: path.to_path_buf(),
                key: tensor.to_owned(),
                value: "present".to_owned(),
                reason: "LongRoPE factors in GGUF files are not implemented; load the HuggingFace directory instead",
            });
        }
    }
    // MLA (DeepSeek): llama.cpp rotates the separate rope part of q and k, n_rot wide.
    let rope_head = if arch == Architecture::DeepseekV2 {
        rotary_dim
    } else {
        head_dim
    };
    let rope = RopeConfig::new(rope_head, theta, layout)
        .with_rotary_dim(rotary_dim)
        .with_scaling(scaling);
    rope.validate()?;

    let sliding_window = keys.uint("attention.sliding_window")?;
    let swa_base = keys.float("rope.freq_base_swa")?;
    spec.layers = match arch {
        // Gemma 3: llama.cpp's `rope_freq_base_train_swa = 10000`, `set_swa_pattern(6)`.
        Architecture::Gemma3 if sliding_window.is_some_and(|w| w > 0) => {
            let local = RopeConfig::new(head_dim, swa_base.unwrap_or(10000.0), layout)
                .with_rotary_dim(rotary_dim);
            local.validate()?;
            let n = keys.required("block_count")?;
            super::hf_layers::by_layer_type(
                &super::hf_layers::pattern_types(n, |il| il % 6 < 5),
                &local,
                &rope,
            )
        }
        // llama.cpp's `n_no_rope_layer_step = 4` (hard-coded for both; Llama 4 rotates
        // every layer when `attention.sliding_window` is 0).
        Architecture::SmolLm3 | Architecture::Llama4 => {
            let all_rope = arch == Architecture::Llama4 && sliding_window == Some(0);
            let temperature = (arch == Architecture::Llama4).then_some(AttentionTemperature {
                floor_scale: 8192.0,
                attn_scale: 0.1,
            });
            let n = keys.required("block_count")?;
            (0..n)
                .map(|il| {
                    if all_rope || (il + 1) % 4 != 0 {
                        LayerPositions::rotary(LayerAttention::FullAttention, rope.clone())
                    } else {
                        let mut layer = LayerPositions::nope(LayerAttention::FullAttention);
                        layer.q_scale = temperature;
                        layer
                    }
                })
                .collect()
        }
        _ if swa_base.is_some() => {
            return Err(keys.unsupported(
                "rope.freq_base_swa",
                swa_base.map_or_else(String::new, |v| v.to_string()),
                "tokenloom does not know which layers of this architecture slide",
            ));
        }
        _ => vec![LayerPositions::rotary(LayerAttention::FullAttention, rope); layer_count],
    };
    if spec.n_layers.is_none() {
        spec.n_layers = (spec.layers.len() > 1).then_some(spec.layers.len());
    }
    Ok(())
}

/// The embedding and logit transforms, from llama.cpp's graphs: Gemma's `sqrtf(n_embd)`,
/// Granite's `embedding_scale` and `1 / logit_scale`, Command-R's `logit_scale`, Gemma 2
/// and 3's `final_logit_softcapping`. The same keys on an architecture whose graph does
/// not read them are refused rather than ignored.
fn transforms(keys: &Keys<'_>, spec: &mut ModelSpec) -> Result<(), DecoderInputError> {
    let arch = spec.architecture;
    if arch.scales_embeddings_by_sqrt_n_embd() {
        spec.embedding_scale = Some(EmbeddingScale::SqrtNEmbd);
    }
    let embedding_scale = keys.float("embedding_scale")?;
    let logit_scale = keys.float("logit_scale")?;
    let softcap = keys.float("final_logit_softcapping")?;
    match arch {
        Architecture::Granite => {
            spec.embedding_scale = embedding_scale
                .filter(|&m| m != 1.0)
                .map(EmbeddingScale::Multiplier);
            spec.logits.divisor = logit_scale.filter(|&d| d != 1.0);
        }
        Architecture::Cohere => spec.logits.multiplier = logit_scale,
        _ => {
            for (suffix, value) in [
                ("embedding_scale", embedding_scale),
                ("logit_scale", logit_scale),
            ] {
                if let Some(v) = value {
                    return Err(keys.unsupported(
                        suffix,
                        v.to_string(),
                        "llama.cpp's graph of this architecture does not read it; tokenloom will not guess how it applies",
                    ));
                }
            }
        }
    }
    match arch {
        Architecture::Gemma2 | Architecture::Gemma3 => spec.logits.softcap = softcap,
        _ => {
            if let Some(v) = softcap {
                return Err(keys.unsupported(
                    "final_logit_softcapping",
                    v.to_string(),
                    "llama.cpp's graph of this architecture does not read it; tokenloom will not guess how it applies",
                ));
            }
        }
    }
    Ok(())
}
