//! The RoPE frequency check, per declared scaling, apart from the kernel.

use proptest::prelude::*;
use tokenloom_positions::{RopeConfig, RopeLayout, RopeSection, parse_rope_section};
use tokenloom_tensor::DType;

use super::Kit;
use super::adapter::{Frequencies, FrequencyAdapter};
use super::runner::Check;
use super::tolerance::{Errors, Tolerance};
use crate::reference::{ReferenceCase, embedded};
use crate::strategies::{ROPE_TYPES, rope_scaling_of};

/// The relative error of a frequency is measured in units of the dtype's epsilon times
/// this: `theta^(−2i/d)` computed in a dtype rounds the exponent first, which `ln(theta)`
/// (up to ~14) amplifies.
const FREQUENCY_TERMS: usize = 32;

/// The transformers reference vectors, by `rope_type`: `inv_freq` and
/// `attention_scaling` as `ROPE_INIT_FUNCTIONS` computes them (in `f64`).
const GOLDEN: [(&str, &str); 5] = [
    ("default", "rope_hf_default_f64"),
    ("linear", "rope_hf_linear_f64"),
    ("dynamic", "rope_hf_dynamic_short_f64"),
    ("yarn", "rope_hf_yarn_f64"),
    ("llama3", "rope_hf_llama3_f64"),
];

fn compare_frequencies(
    got: &Frequencies,
    want: &[f64],
    want_attention_factor: f64,
    tolerance: Tolerance,
) -> Result<Errors, String> {
    if got.inv_freq.len() != want.len() {
        return Err(format!(
            "shape error: {} inverse frequencies, expected rotary_dim / 2 = {}",
            got.inv_freq.len(),
            want.len()
        ));
    }
    let mut errors = Errors::default();
    let pairs = got
        .inv_freq
        .iter()
        .zip(want)
        .map(|(g, w)| ("inv_freq", *g, *w))
        .chain([(
            "attention_factor",
            got.attention_factor,
            want_attention_factor,
        )]);
    for (i, (what, g, w)) in pairs.enumerate() {
        let diff = (g - w).abs();
        let bound = tolerance.bound(FREQUENCY_TERMS, w.abs());
        if diff.is_nan() || diff > bound {
            return Err(format!(
                "{what} (index {i}): got {g:e}, expected {w:e}, |difference| {diff:e} > tolerance {bound:e}"
            ));
        }
        errors.max_abs = errors.max_abs.max(diff);
        if w != 0.0 {
            errors.max_rel = errors.max_rel.max(diff / w.abs());
        }
    }
    Ok(errors)
}

/// A reference file's config and sequence length (`max(position_ids) + 1`).
fn golden_config(case: &ReferenceCase) -> Result<(RopeConfig, usize), String> {
    let c = case.get("config");
    let number = |key: &str| {
        c[key]
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or(format!("config.{key} is not a count"))
    };
    let section = c["rope_parameters"]
        .as_object()
        .ok_or("config.rope_parameters is not an object")?;
    let context = RopeSection {
        path: "rope_parameters",
        head_dim: number("head_dim")?,
        max_position_embeddings: number("max_position_embeddings")?,
        original_max_position_embeddings: None,
    };
    let config = parse_rope_section(section, &context).map_err(|e| e.to_string())?;
    let seq_len = case
        .ids("inputs/position_ids")
        .1
        .iter()
        .max()
        .map_or(1, |&p| p as usize + 1);
    Ok((config, seq_len))
}

impl Kit {
    /// Checks the inverse frequencies and attention factor of every declared scaling on
    /// generated configs and sequence lengths, against tokenloom's (which match
    /// transformers' `ROPE_INIT_FUNCTIONS`). The tolerance is that of the loosest declared
    /// dtype.
    pub fn check_rope_frequencies<A: FrequencyAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        let tolerance = [DType::BF16, DType::F16, DType::F32, DType::F64]
            .into_iter()
            .find(|d| caps.declares_dtype(*d))
            .map_or_else(|| Tolerance::for_dtype(DType::F64), |d| caps.tolerance(d));
        for rope_type in ROPE_TYPES {
            if !caps.scalings.iter().any(|s| s == rope_type) {
                self.report
                    .skipped
                    .push(format!("rope frequencies ({rope_type}): not declared"));
            }
        }
        for rope_type in caps.scalings.clone() {
            let mut check = Check::new(format!("rope frequencies ({rope_type})"));
            if rope_scaling_of(&rope_type, 2).is_none() {
                check.fixed(self.report.seed, &rope_type, || {
                    Err(format!(
                        "the kit has no generator for rope_type {rope_type:?}"
                    ))
                });
                self.report.checks.push(check.report);
                continue;
            }
            if let Some((_, file)) = GOLDEN.iter().find(|(t, _)| *t == rope_type) {
                check.fixed(self.report.seed, file, || {
                    let case = embedded(file);
                    let (config, seq_len) = golden_config(&case)?;
                    let got = adapter
                        .frequencies(&config, seq_len)
                        .map_err(|e| format!("adapter error: {e}"))?;
                    let (_, want) = case.tensor("expected/inv_freq");
                    let attention = case.f64("expected/attention_scaling");
                    compare_frequencies(&got, &want, attention, tolerance)
                });
            }
            let strategy = (1usize..=8)
                .prop_flat_map(move |half| {
                    (
                        Just(half),
                        rope_scaling_of(&rope_type, 2 * half).unwrap_or_else(|| {
                            Just(tokenloom_positions::RopeScaling::None).boxed()
                        }),
                        100.0f64..1e6,
                        1usize..8192,
                    )
                })
                .prop_map(|(half, scaling, theta, seq_len)| {
                    (
                        RopeConfig::new(2 * half, theta, RopeLayout::HalfSplit)
                            .with_scaling(scaling),
                        seq_len,
                    )
                });
            check.generated(
                self,
                &strategy,
                |(config, seq_len)| format!("  {config:?}\n  seq_len {seq_len}\n"),
                |(config, seq_len)| {
                    let want = config.inv_freq(*seq_len).map_err(|e| e.to_string())?;
                    let got = adapter
                        .frequencies(config, *seq_len)
                        .map_err(|e| format!("adapter error: {e}"))?;
                    if got.inv_freq.len() != want.len() {
                        return Err(format!(
                            "shape error: {} inverse frequencies, expected rotary_dim / 2 = {}",
                            got.inv_freq.len(),
                            want.len()
                        ));
                    }
                    compare_frequencies(&got, &want, config.attention_factor(), tolerance)
                },
            );
            self.report.checks.push(check.report);
        }
        self
    }
}
