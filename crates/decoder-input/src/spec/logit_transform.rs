//! What the spec says happens to the logits after the output projection.

use std::path::Path;

use crate::error::DecoderInputError;

/// What is applied to the logits after the output projection, in this order:
/// multiplier, divisor, softcapping.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct LogitTransform {
    /// Cohere's `logit_scale`: logits × multiplier.
    pub multiplier: Option<f64>,
    /// Granite's `logits_scaling`: logits ÷ divisor.
    pub divisor: Option<f64>,
    /// Gemma 2/3's `final_logit_softcapping`: `cap · tanh(logits / cap)`.
    pub softcap: Option<f64>,
}

impl LogitTransform {
    /// Whether it changes nothing.
    #[must_use]
    pub fn is_identity(&self) -> bool {
        self.multiplier.is_none() && self.divisor.is_none() && self.softcap.is_none()
    }

    /// Checks every value is positive and finite.
    pub(crate) fn validate(&self, path: &Path) -> Result<(), DecoderInputError> {
        for (key, value) in [
            ("logit multiplier", self.multiplier),
            ("logit divisor", self.divisor),
            ("logit softcapping", self.softcap),
        ] {
            if let Some(v) = value
                && !(v.is_finite() && v > 0.0)
            {
                return Err(DecoderInputError::BadValue {
                    path: path.to_path_buf(),
                    key: key.to_owned(),
                    value: v.to_string(),
                    expected: "positive and finite",
                });
            }
        }
        Ok(())
    }

    /// `a; b; c` for messages (`none` for the identity).
    #[must_use]
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(m) = self.multiplier {
            parts.push(format!("× {m}"));
        }
        if let Some(d) = self.divisor {
            parts.push(format!("÷ {d}"));
        }
        if let Some(c) = self.softcap {
            parts.push(format!("softcap {c}"));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }
}
