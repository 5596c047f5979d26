//! The RoPE frequency check, per declared scaling, apart from the kernel.

use proptest::prelude::*;
use tokenloom_positions::{RopeConfig, RopeLayout};
use tokenloom_tensor::DType;

use super::Kit;
use super::adapter::FrequencyAdapter;
use super::runner::Check;
use super::tolerance::{Errors, Tolerance};
use crate::strategies::{ROPE_TYPES, rope_scaling_of};

/// The relative error of a frequency is measured in units of the dtype's epsilon times
/// this: `theta^(−2i/d)` computed in a dtype rounds the exponent first, which `ln(theta)`
/// (up to ~14) amplifies.
const FREQUENCY_TERMS: usize = 32;

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
                    let mut errors = Errors::default();
                    let pairs = got
                        .inv_freq
                        .iter()
                        .zip(&want)
                        .map(|(g, w)| ("inv_freq", *g, *w))
                        .chain([("attention_factor", got.attention_factor, config.attention_factor())]);
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
                },
            );
            self.report.checks.push(check.report);
        }
        self
    }
}
