//! RoPE frequency scaling: HuggingFace's `rope_type`s as one enum with one frequency
//! function, computed in `f64`.
//!
//! The formulas are those of transformers' `modeling_rope_utils` (v5), evaluated in `f64`
//! instead of `f32`.

use serde::{Deserialize, Serialize};

use crate::error::PositionError;

/// How RoPE frequencies are scaled for contexts longer than the pretraining length.
///
/// Every variant reproduces the HuggingFace `rope_type` of the same name. Parameters that
/// depend on the context (dynamic NTK, LongRoPE) read the sequence length as an explicit
/// argument, never hidden state: see [`RopeScaling::inv_freq`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// Serialized externally tagged (`{"variant": {...}}`), which both JSON and bincode
/// support.
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RopeScaling {
    /// No scaling (`rope_type = "default"`).
    #[serde(rename = "default")]
    None,
    /// Position interpolation (`"linear"`): every frequency divided by `factor`.
    Linear {
        /// The interpolation factor (> 0).
        factor: f64,
    },
    /// Dynamic NTK (`"dynamic"`): for a sequence of `seq_len > max_position_embeddings`
    /// tokens the base becomes
    /// `theta · (factor·seq_len/max_position_embeddings − (factor − 1))^(d/(d−2))`;
    /// at or below `max_position_embeddings` it is the default RoPE.
    #[serde(rename = "dynamic")]
    DynamicNtk {
        /// The scaling factor (≥ 1).
        factor: f64,
        /// The model's `max_position_embeddings`.
        max_position_embeddings: usize,
    },
    /// YaRN (`"yarn"`, Peng et al. 2023).
    Yarn(YarnScaling),
    /// LLaMA 3.1 (`"llama3"`): low frequencies divided by `factor`, high frequencies kept,
    /// a smooth blend between.
    Llama3(Llama3Scaling),
    /// LongRoPE (`"longrope"`, Phi-3): per-pair rescale factors, long or short by
    /// sequence length.
    #[serde(rename = "longrope")]
    LongRope(LongRopeScaling),
    /// Precomputed per-pair factors, as llama.cpp stores them in a GGUF file's
    /// `rope_freqs.weight` (LLaMA 3.1's `llama3` scaling, evaluated at conversion):
    /// `inv_freq[i] = theta^(−2i/rotary_dim) / factors[i]`. Not a HuggingFace
    /// `rope_type`; `to_hf_parameters` spells it `"freq_factors"`.
    #[serde(rename = "freq_factors")]
    FreqFactors {
        /// One factor per rotated pair (`rotary_dim / 2`), each positive.
        factors: Vec<f64>,
    },
    /// Proportional RoPE (`"proportional"`, Gemma 4's full-attention layers): the first
    /// `⌊partial_rotary_factor · rotary_dim / 2⌋` pairs turn at the default frequencies of
    /// the whole head, `theta^(−2i/rotary_dim)`, the other pairs not at all (frequency 0),
    /// every frequency divided by `factor`. Unlike the other scalings, the rotation spans
    /// the whole head (`rotary_dim = head_dim`): `partial_rotary_factor` belongs to the
    /// scaling, which is what changes the frequencies of the rotated pairs.
    Proportional {
        /// Divides every frequency (positive; transformers' default 1).
        factor: f64,
        /// The share of the head's pairs that rotate, in `[0, 1]`.
        partial_rotary_factor: f64,
    },
}

impl RopeScaling {
    /// HuggingFace's `rope_type` name: `default`, `linear`, `dynamic`, `yarn`, `llama3`,
    /// `longrope` or `proportional` (and `freq_factors` for llama.cpp's precomputed
    /// factors).
    #[must_use]
    pub fn rope_type(&self) -> &'static str {
        match self {
            RopeScaling::None => "default",
            RopeScaling::Linear { .. } => "linear",
            RopeScaling::DynamicNtk { .. } => "dynamic",
            RopeScaling::Yarn(_) => "yarn",
            RopeScaling::Llama3(_) => "llama3",
            RopeScaling::LongRope(_) => "longrope",
            RopeScaling::FreqFactors { .. } => "freq_factors",
            RopeScaling::Proportional { .. } => "proportional",
        }
    }

    /// The scaling as a HuggingFace `rope_parameters` object (without `rope_theta`):
    /// `{"rope_type": "llama3", "factor": 8.0, …}`, with the parameter names of
    /// `config.json`.
    #[must_use]
    pub fn to_hf_parameters(&self) -> serde_json::Value {
        let mut object = match serde_json::to_value(self) {
            // Externally tagged: {"llama3": {...}} or {"linear": {...}}; "default" alone.
            Ok(serde_json::Value::Object(tagged)) => tagged
                .into_iter()
                .next()
                .and_then(|(_, v)| v.as_object().cloned())
                .unwrap_or_default(),
            _ => serde_json::Map::new(),
        };
        object.retain(|_, v| !v.is_null());
        object.insert("rope_type".to_owned(), self.rope_type().into());
        serde_json::Value::Object(object)
    }
}

/// `llama3 (factor 8, low_freq_factor 1, high_freq_factor 4, original_max_position_embeddings 8192)`:
/// the `rope_type` and its parameters, as in `config.json`.
impl std::fmt::Display for RopeScaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.rope_type())?;
        let parameters = self.to_hf_parameters();
        let fields: Vec<String> = parameters
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "rope_type")
            .map(|(k, v)| match v {
                serde_json::Value::Array(items) => format!("{k} [{} values]", items.len()),
                v => format!("{k} {v}"),
            })
            .collect();
        if !fields.is_empty() {
            write!(f, " ({})", fields.join(", "))?;
        }
        Ok(())
    }
}

/// Parameters of [`RopeScaling::Yarn`], with HuggingFace's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct YarnScaling {
    /// The context extension factor (> 0).
    pub factor: f64,
    /// The pretraining context length.
    pub original_max_position_embeddings: usize,
    /// High-rotation bound of the ramp, in rotations (HF default 32).
    pub beta_fast: f64,
    /// Low-rotation bound of the ramp, in rotations (HF default 1).
    pub beta_slow: f64,
    /// DeepSeek's `mscale` (used with `mscale_all_dim`).
    pub mscale: Option<f64>,
    /// DeepSeek's `mscale_all_dim`.
    pub mscale_all_dim: Option<f64>,
    /// An explicit attention factor, overriding the computed one.
    pub attention_factor: Option<f64>,
    /// Whether the ramp bounds are floored/ceiled to integers (HF default true; gpt-oss
    /// uses false).
    pub truncate: bool,
}

impl YarnScaling {
    /// YaRN with `factor` over a pretraining length, and HF's defaults for the rest
    /// (beta_fast 32, beta_slow 1, no mscale, computed attention factor, truncate).
    #[must_use]
    pub fn new(factor: f64, original_max_position_embeddings: usize) -> Self {
        Self {
            factor,
            original_max_position_embeddings,
            beta_fast: 32.0,
            beta_slow: 1.0,
            mscale: None,
            mscale_all_dim: None,
            attention_factor: None,
            truncate: true,
        }
    }
}

/// Parameters of [`RopeScaling::Llama3`] (LLaMA 3.1: 8, 1, 4, 8192).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Llama3Scaling {
    /// The division applied to low frequencies.
    pub factor: f64,
    /// Wavelengths above `original / low_freq_factor` are divided by `factor`.
    pub low_freq_factor: f64,
    /// Wavelengths below `original / high_freq_factor` are kept.
    pub high_freq_factor: f64,
    /// The pretraining context length.
    pub original_max_position_embeddings: usize,
}

impl Llama3Scaling {
    /// The values of LLaMA 3.1, hard-coded in Meta's reference `apply_scaling`.
    #[must_use]
    pub fn llama_3_1() -> Self {
        Self {
            factor: 8.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192,
        }
    }
}

/// Parameters of [`RopeScaling::LongRope`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LongRopeScaling {
    /// Per-pair factors for sequences up to `original_max_position_embeddings`.
    pub short_factor: Vec<f64>,
    /// Per-pair factors for longer sequences.
    pub long_factor: Vec<f64>,
    /// The pretraining context length.
    pub original_max_position_embeddings: usize,
    /// The extension factor used for the attention factor, usually
    /// `max_position_embeddings / original_max_position_embeddings`.
    pub factor: f64,
    /// An explicit attention factor, overriding the computed one.
    pub attention_factor: Option<f64>,
}

fn positive(name: &'static str, value: f64) -> Result<(), PositionError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(PositionError::InvalidParameter {
            name,
            value,
            requirement: "must be positive and finite",
        })
    }
}

/// A context-extension factor: below 1 it would compress, not extend, the context, which
/// no published model does (transformers logs a warning for it; tokenloom refuses it).
fn at_least_one(name: &'static str, value: f64) -> Result<(), PositionError> {
    if value.is_finite() && value >= 1.0 {
        Ok(())
    } else {
        Err(PositionError::InvalidParameter {
            name,
            value,
            requirement: "must be at least 1 (a factor below 1 shrinks the context instead of extending it)",
        })
    }
}

fn nonzero(name: &'static str, value: usize) -> Result<(), PositionError> {
    if value == 0 {
        Err(PositionError::ZeroSize { name })
    } else {
        Ok(())
    }
}

// sizes and positions are far below 2^53
fn f(x: usize) -> f64 {
    x as f64
}

/// YaRN's attention scale `0.1·mscale·ln(scale) + 1` (1 for `scale ≤ 1`).
fn yarn_get_mscale(scale: f64, mscale: f64) -> f64 {
    if scale <= 1.0 {
        1.0
    } else {
        0.1 * mscale * scale.ln() + 1.0
    }
}

impl RopeScaling {
    /// Checks the parameters against a rotary dimension.
    ///
    /// # Errors
    ///
    /// [`PositionError::InvalidParameter`], [`PositionError::ZeroSize`] or
    /// [`PositionError::FactorCount`] naming the parameter.
    pub fn validate(&self, rotary_dim: usize) -> Result<(), PositionError> {
        match self {
            RopeScaling::None => {}
            RopeScaling::Linear { factor } => at_least_one("factor", *factor)?,
            RopeScaling::DynamicNtk {
                factor,
                max_position_embeddings,
            } => {
                at_least_one("factor", *factor)?;
                nonzero("max_position_embeddings", *max_position_embeddings)?;
                if rotary_dim <= 2 {
                    // The base exponent d/(d−2) is undefined for d = 2.
                    return Err(PositionError::InvalidParameter {
                        name: "rotary_dim",
                        value: f(rotary_dim),
                        requirement: "dynamic NTK scaling needs rotary_dim > 2",
                    });
                }
            }
            RopeScaling::Yarn(y) => {
                at_least_one("factor", y.factor)?;
                nonzero(
                    "original_max_position_embeddings",
                    y.original_max_position_embeddings,
                )?;
                positive("beta_fast", y.beta_fast)?;
                positive("beta_slow", y.beta_slow)?;
                for (name, value) in [
                    ("mscale", y.mscale),
                    ("mscale_all_dim", y.mscale_all_dim),
                    ("attention_factor", y.attention_factor),
                ] {
                    if let Some(v) = value {
                        positive(name, v)?;
                    }
                }
            }
            RopeScaling::Llama3(l) => {
                at_least_one("factor", l.factor)?;
                positive("low_freq_factor", l.low_freq_factor)?;
                positive("high_freq_factor", l.high_freq_factor)?;
                nonzero(
                    "original_max_position_embeddings",
                    l.original_max_position_embeddings,
                )?;
                if l.high_freq_factor <= l.low_freq_factor {
                    return Err(PositionError::InvalidParameter {
                        name: "high_freq_factor",
                        value: l.high_freq_factor,
                        requirement: "must be greater than low_freq_factor",
                    });
                }
            }
            RopeScaling::LongRope(l) => {
                positive("factor", l.factor)?;
                nonzero(
                    "original_max_position_embeddings",
                    l.original_max_position_embeddings,
                )?;
                if let Some(v) = l.attention_factor {
                    positive("attention_factor", v)?;
                }
                for (name, list) in [
                    ("short_factor", &l.short_factor),
                    ("long_factor", &l.long_factor),
                ] {
                    if list.len() != rotary_dim / 2 {
                        return Err(PositionError::FactorCount {
                            name,
                            expected: rotary_dim / 2,
                            got: list.len(),
                        });
                    }
                    for &v in list {
                        positive(name, v)?;
                    }
                }
            }
            RopeScaling::FreqFactors { factors } => {
                if factors.len() != rotary_dim / 2 {
                    return Err(PositionError::FactorCount {
                        name: "factors",
                        expected: rotary_dim / 2,
                        got: factors.len(),
                    });
                }
                for &v in factors {
                    positive("factors", v)?;
                }
            }
            RopeScaling::Proportional {
                factor,
                partial_rotary_factor,
            } => {
                positive("factor", *factor)?;
                if !(0.0..=1.0).contains(partial_rotary_factor) {
                    return Err(PositionError::InvalidParameter {
                        name: "partial_rotary_factor",
                        value: *partial_rotary_factor,
                        requirement: "must be between 0 and 1",
                    });
                }
            }
        }
        // A factor computed from the parameters (LongRoPE's √(1 + ln f / ln original) with
        // an original context of 1, say) must be a number too.
        let attention_factor = self.attention_factor();
        if !(attention_factor.is_finite() && attention_factor > 0.0) {
            return Err(PositionError::InvalidParameter {
                name: "attention_factor",
                value: attention_factor,
                requirement: "the attention factor computed from the scaling's parameters must be positive and finite",
            });
        }
        Ok(())
    }

    /// The factor that multiplies both cos and sin (so `q·k` scales by its square): 1
    /// except for YaRN and LongRoPE.
    #[must_use]
    pub fn attention_factor(&self) -> f64 {
        match self {
            RopeScaling::Yarn(y) => {
                y.attention_factor
                    .unwrap_or_else(|| match (y.mscale, y.mscale_all_dim) {
                        (Some(m), Some(m_all)) if m != 0.0 && m_all != 0.0 => {
                            yarn_get_mscale(y.factor, m) / yarn_get_mscale(y.factor, m_all)
                        }
                        _ => yarn_get_mscale(y.factor, 1.0),
                    })
            }
            RopeScaling::LongRope(l) => l.attention_factor.unwrap_or_else(|| {
                if l.factor <= 1.0 {
                    1.0
                } else {
                    (1.0 + l.factor.ln() / f(l.original_max_position_embeddings).ln()).sqrt()
                }
            }),
            _ => 1.0,
        }
    }

    /// The inverse frequencies `inv_freq[i]`, `i < rotary_dim / 2`, in `f64`.
    ///
    /// `seq_len` is the length of the longest sequence the frequencies will serve (HF uses
    /// `max(position_ids) + 1`). Only dynamic NTK and LongRoPE read it; passing it
    /// explicitly makes the result a pure function of its arguments.
    ///
    /// The parameters must have passed [`RopeScaling::validate`]. The vector is
    /// allocated with an allocation that cannot fail gracefully: for sizes read from a
    /// file or a caller, use [`RopeConfig::inv_freq`](crate::RopeConfig::inv_freq), which
    /// reserves it fallibly.
    #[must_use]
    pub fn inv_freq(&self, theta: f64, rotary_dim: usize, seq_len: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(rotary_dim / 2);
        self.inv_freq_into(theta, rotary_dim, seq_len, &mut out);
        out
    }

    /// [`RopeScaling::inv_freq`] appended to `out` (which the caller has reserved, so no
    /// allocation happens here).
    pub(crate) fn inv_freq_into(
        &self,
        theta: f64,
        rotary_dim: usize,
        seq_len: usize,
        out: &mut Vec<f64>,
    ) {
        let d = f(rotary_dim);
        let half = rotary_dim / 2;
        let default_with_base =
            move |base: f64| (0..half).map(move |i| 1.0 / base.powf(f(2 * i) / d));
        match self {
            RopeScaling::None => out.extend(default_with_base(theta)),
            RopeScaling::Linear { factor } => {
                out.extend(default_with_base(theta).map(|x| x / factor));
            }
            RopeScaling::DynamicNtk {
                factor,
                max_position_embeddings,
            } => {
                let max_pos = f(*max_position_embeddings);
                let seq_len = f(seq_len).max(max_pos);
                let base =
                    theta * (factor * seq_len / max_pos - (factor - 1.0)).powf(d / (d - 2.0));
                out.extend(default_with_base(base));
            }
            RopeScaling::Yarn(y) => out.extend(yarn_inv_freq(y, theta, rotary_dim)),
            RopeScaling::Llama3(l) => out.extend(llama3_inv_freq(l, default_with_base(theta))),
            RopeScaling::LongRope(l) => {
                let ext = if seq_len > l.original_max_position_embeddings {
                    &l.long_factor
                } else {
                    &l.short_factor
                };
                out.extend((0..half).map(|i| 1.0 / (ext[i] * theta.powf(f(2 * i) / d))));
            }
            RopeScaling::FreqFactors { factors } => out.extend(
                default_with_base(theta)
                    .zip(factors)
                    .map(|(x, factor)| x / factor),
            ),
            RopeScaling::Proportional {
                factor,
                partial_rotary_factor,
            } => {
                // transformers: `int(partial_rotary_factor * head_dim // 2)` rotated pairs.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let rotated = ((partial_rotary_factor * d) / 2.0).floor() as usize;
                out.extend(
                    default_with_base(theta)
                        .enumerate()
                        .map(|(i, x)| if i < rotated { x / factor } else { 0.0 }),
                );
            }
        }
    }
}

fn yarn_inv_freq(y: &YarnScaling, theta: f64, rotary_dim: usize) -> impl Iterator<Item = f64> + '_ {
    let d = f(rotary_dim);
    let original = f(y.original_max_position_embeddings);
    // The pair index at which a wavelength completes `rotations` turns over the original
    // context.
    let correction_dim = |rotations: f64| {
        (d * (original / (rotations * 2.0 * std::f64::consts::PI)).ln()) / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (correction_dim(y.beta_fast), correction_dim(y.beta_slow));
    if y.truncate {
        low = low.floor();
        high = high.ceil();
    }
    // HF clamps with the full dimension (dim − 1), not the number of pairs.
    let low = low.max(0.0);
    let mut high = high.min(d - 1.0);
    if low == high {
        high += 0.001;
    }
    (0..rotary_dim / 2).map(move |i| {
        let pos_freq = theta.powf(f(2 * i) / d);
        let extrapolation = 1.0 / pos_freq;
        let interpolation = 1.0 / (y.factor * pos_freq);
        let ramp = ((f(i) - low) / (high - low)).clamp(0.0, 1.0);
        let extrapolation_weight = 1.0 - ramp;
        interpolation * (1.0 - extrapolation_weight) + extrapolation * extrapolation_weight
    })
}

fn llama3_inv_freq<'a>(
    l: &'a Llama3Scaling,
    inv_freq: impl Iterator<Item = f64> + 'a,
) -> impl Iterator<Item = f64> + 'a {
    let old_context = f(l.original_max_position_embeddings);
    let low_freq_wavelen = old_context / l.low_freq_factor;
    let high_freq_wavelen = old_context / l.high_freq_factor;
    inv_freq.map(move |freq| {
        let wavelen = 2.0 * std::f64::consts::PI / freq;
        if wavelen < high_freq_wavelen {
            freq
        } else if wavelen > low_freq_wavelen {
            freq / l.factor
        } else {
            let smooth = (old_context / wavelen - l.low_freq_factor)
                / (l.high_freq_factor - l.low_freq_factor);
            (1.0 - smooth) * freq / l.factor + smooth * freq
        }
    })
}

#[cfg(test)]
mod tests;
