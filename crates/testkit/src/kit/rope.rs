//! The RoPE kernel check: given cos/sin tables, both q/k layouts, both pair layouts,
//! offsets and batched position ids, partial rotary, forward and backward.

use tokenloom_positions::{
    Llama3Scaling, QkLayout, RopeCache, RopeConfig, RopeLayout, RopeScaling,
};
use tokenloom_tensor::{DType, Element, Tensor};

use super::adapter::{Capabilities, Positions, PositionsKind, RopeAdapter, RopeCall};
use super::cases::{RopeRaw, rope_raw, show, show_tensor, tensor_of};
use super::runner::Check;
use super::tolerance::{Errors, Expected, compare};
use super::{Kit, with_dtype};
use crate::reference::{ReferenceCase, embedded};

const THETAS: [f64; 3] = [10_000.0, 100.0, 500_000.0];

/// One materialized kernel call.
struct Call<T> {
    x: Tensor<T>,
    cos: Tensor<T>,
    sin: Tensor<T>,
    qk_layout: QkLayout,
    pair_layout: RopeLayout,
    positions: PositionsOwned,
    rotary_dim: usize,
}

enum PositionsOwned {
    Offset(usize),
    Ids(Tensor<u32>),
}

impl<T: Element> Call<T> {
    fn rope_call(&self) -> RopeCall<'_> {
        RopeCall {
            pair_layout: self.pair_layout,
            qk_layout: self.qk_layout,
            positions: match &self.positions {
                PositionsOwned::Offset(o) => Positions::Offset(*o),
                PositionsOwned::Ids(ids) => Positions::Ids(ids),
            },
            rotary_dim: self.rotary_dim,
        }
    }

    /// The exact rotation of `x` (widened) by the given (widened) tables; `sign = −1`
    /// rotates back (the backward).
    fn expected(&self, sign: f64) -> Expected {
        let dims = self.x.dims().to_vec();
        let (batch, n_heads, seq_len, head_dim) = match self.qk_layout {
            QkLayout::BatchSeqHeads => (dims[0], dims[2], dims[1], dims[3]),
            QkLayout::BatchHeadsSeq => (dims[0], dims[1], dims[2], dims[3]),
        };
        let half = self.rotary_dim / 2;
        let x: Vec<f64> = self.x.as_slice().iter().map(|v| v.as_f64()).collect();
        let cos: Vec<f64> = self.cos.as_slice().iter().map(|v| v.as_f64()).collect();
        let sin: Vec<f64> = self.sin.as_slice().iter().map(|v| v.as_f64()).collect();
        let mut values = x.clone();
        let mut magnitude: Vec<f64> = x.iter().map(|v| v.abs()).collect();
        let mut terms = vec![1usize; x.len()];
        for b in 0..batch {
            for s in 0..seq_len {
                let p = match &self.positions {
                    PositionsOwned::Offset(o) => o + s,
                    PositionsOwned::Ids(ids) => ids.as_slice()[b * seq_len + s] as usize,
                };
                for h in 0..n_heads {
                    let head = match self.qk_layout {
                        QkLayout::BatchSeqHeads => ((b * seq_len + s) * n_heads + h) * head_dim,
                        QkLayout::BatchHeadsSeq => ((b * n_heads + h) * seq_len + s) * head_dim,
                    };
                    for k in 0..half {
                        let (i, j) = match self.pair_layout {
                            RopeLayout::Interleaved => (head + 2 * k, head + 2 * k + 1),
                            _ => (head + k, head + k + half),
                        };
                        let (c, sn) = (cos[p * half + k], sign * sin[p * half + k]);
                        values[i] = x[i] * c - x[j] * sn;
                        values[j] = x[j] * c + x[i] * sn;
                        magnitude[i] = (x[i] * c).abs() + (x[j] * sn).abs();
                        magnitude[j] = (x[j] * c).abs() + (x[i] * sn).abs();
                        terms[i] = 2;
                        terms[j] = 2;
                    }
                }
            }
        }
        let axes = match self.qk_layout {
            QkLayout::BatchSeqHeads => vec!["batch", "seq_len", "n_heads", "head_dim"],
            QkLayout::BatchHeadsSeq => vec!["batch", "n_heads", "seq_len", "head_dim"],
        };
        Expected {
            dims,
            axes,
            values,
            magnitude,
            terms,
        }
    }

    fn describe(&self) -> String {
        let mut out = format!(
            "  {:?} pairs, x {}, rotary_dim {}\n",
            self.pair_layout,
            self.qk_layout.name(),
            self.rotary_dim
        );
        show_tensor(&mut out, "x", &self.x);
        show_tensor(&mut out, "cos", &self.cos);
        show_tensor(&mut out, "sin", &self.sin);
        match &self.positions {
            PositionsOwned::Offset(o) => out.push_str(&format!("  positions: offset {o}\n")),
            PositionsOwned::Ids(ids) => show(&mut out, "position ids", ids.dims(), ids.as_slice()),
        }
        out
    }
}

/// cos/sin `(max_positions, half)` of `config` in `f64`, rounded to `T`.
fn tables<T: Element>(
    config: &RopeConfig,
    max_positions: usize,
) -> Result<(Tensor<T>, Tensor<T>), String> {
    let cache = RopeCache::<f64>::new(config, max_positions).map_err(|e| e.to_string())?;
    let half = config.rotary_dim / 2;
    let dims = [max_positions, half];
    Ok((
        tensor_of(cache.cos().as_slice(), &dims),
        tensor_of(cache.sin().as_slice(), &dims),
    ))
}

/// The declared combination a raw case picks.
fn materialize<T: Element>(raw: &RopeRaw, caps: &Capabilities) -> Result<Call<T>, String> {
    let pick = |i: usize, n: usize| raw.choice[i] % n.max(1);
    let qk_layout = caps.qk_layouts[pick(0, caps.qk_layouts.len())];
    let pair_layout = caps.pair_layouts[pick(1, caps.pair_layouts.len())];
    let kind = caps.positions[pick(2, caps.positions.len())];
    let half = raw.half_rotary(caps.partial_rotary);
    let config = RopeConfig::new(2 * half, THETAS[pick(3, THETAS.len())], pair_layout);
    let (cos, sin) = tables::<T>(&config, raw.max_positions())?;
    let d = raw.head_dim();
    let dims = match qk_layout {
        QkLayout::BatchSeqHeads => [raw.batch, raw.seq_len, raw.n_heads, d],
        QkLayout::BatchHeadsSeq => [raw.batch, raw.n_heads, raw.seq_len, d],
    };
    Ok(Call {
        x: raw.x(&dims),
        cos,
        sin,
        qk_layout,
        pair_layout,
        positions: match kind {
            PositionsKind::Offset => PositionsOwned::Offset(raw.offset),
            PositionsKind::Ids => PositionsOwned::Ids(raw.ids()),
        },
        rotary_dim: 2 * half,
    })
}

/// A reference-vector case (`f64`) as a kernel call, if its layouts are declared.
fn golden_call(case: &ReferenceCase, input: &str, caps: &Capabilities) -> Option<Call<f64>> {
    let c = case.get("config");
    let (shape, x) = case.tensor(input);
    let hf = c.get("rope_parameters").is_some();
    let (qk_layout, pair_layout, kind) = if hf {
        (
            QkLayout::BatchHeadsSeq,
            RopeLayout::HalfSplit,
            PositionsKind::Ids,
        )
    } else {
        (
            QkLayout::BatchSeqHeads,
            RopeLayout::Interleaved,
            PositionsKind::Offset,
        )
    };
    if !caps.qk_layouts.contains(&qk_layout)
        || !caps.pair_layouts.contains(&pair_layout)
        || !caps.positions.contains(&kind)
    {
        return None;
    }
    let head_dim = usize::try_from(c["head_dim"].as_u64()?).ok()?;
    let (theta, partial) = if hf {
        let p = &c["rope_parameters"];
        (
            p["rope_theta"].as_f64()?,
            p["partial_rotary_factor"].as_f64().unwrap_or(1.0),
        )
    } else {
        (c["theta"].as_f64()?, 1.0)
    };
    if partial < 1.0 && !caps.partial_rotary {
        return None;
    }
    let mut config =
        RopeConfig::new(head_dim, theta, pair_layout).with_partial_rotary_factor(partial);
    if c["use_scaled"].as_bool() == Some(true) {
        config = config.with_scaling(RopeScaling::Llama3(Llama3Scaling::llama_3_1()));
    }
    let (positions, max_positions) = if hf {
        let (ids_shape, ids) = case.ids("inputs/position_ids");
        let max = ids.iter().max().map_or(1, |&p| p as usize + 1);
        (
            PositionsOwned::Ids(Tensor::from_vec(ids, &ids_shape).ok()?),
            max,
        )
    } else {
        let start = usize::try_from(c["start_pos"].as_u64()?).ok()?;
        (PositionsOwned::Offset(start), start + shape[1])
    };
    let (cos, sin) = tables::<f64>(&config, max_positions).ok()?;
    Some(Call {
        x: Tensor::from_vec(x, &shape).ok()?,
        cos,
        sin,
        qk_layout,
        pair_layout,
        positions,
        rotary_dim: config.rotary_dim,
    })
}

impl Kit {
    /// Checks a RoPE kernel on given tables in every declared dtype and layout:
    /// HuggingFace's and Meta's reference outputs (`f64`), generated cases against the
    /// exact rotation by the given tables, and the backward when declared.
    pub fn check_rope<A: RopeAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        if caps.qk_layouts.is_empty() || caps.pair_layouts.is_empty() || caps.positions.is_empty() {
            self.report.skipped.push(
                "rope: declare at least one q/k layout, pair layout and positions kind".to_owned(),
            );
            return self;
        }
        let mut missing: Vec<String> = Vec::new();
        for l in [QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq] {
            if !caps.qk_layouts.contains(&l) {
                missing.push(format!("x {}", l.name()));
            }
        }
        for l in [RopeLayout::Interleaved, RopeLayout::HalfSplit] {
            if !caps.pair_layouts.contains(&l) {
                missing.push(format!("{l:?} pairs"));
            }
        }
        for k in [PositionsKind::Offset, PositionsKind::Ids] {
            if !caps.positions.contains(&k) {
                missing.push(format!("positions by {k:?}"));
            }
        }
        if !caps.partial_rotary {
            missing.push("partial rotary".to_owned());
        }
        if !caps.backward {
            missing.push("backward (no gradient declared)".to_owned());
        }
        for m in missing {
            self.report.skipped.push(format!("rope {m}: not declared"));
        }
        for dtype in self.declared_dtypes("rope", &caps) {
            with_dtype!(dtype, T => self.rope_in::<T, A>(adapter, &caps));
        }
        self
    }

    fn rope_in<T: Element, A: RopeAdapter>(&mut self, adapter: &A, caps: &Capabilities) {
        let tolerance = caps.tolerance(T::DTYPE);
        let seed = self.report.seed;
        let directions: &[(&str, f64)] = if caps.backward {
            &[("rope", 1.0), ("rope backward", -1.0)]
        } else {
            &[("rope", 1.0)]
        };
        for &(name, sign) in directions {
            let run = |call: &Call<T>| -> Result<Errors, String> {
                let rope_call = call.rope_call();
                let got = if sign > 0.0 {
                    adapter.rope(&call.x, &call.cos, &call.sin, &rope_call)
                } else {
                    adapter.rope_backward(&call.x, &call.cos, &call.sin, &rope_call)
                }
                .map_err(|e| format!("adapter error: {e}"))?;
                compare("output", &got, &call.expected(sign), tolerance, false)
            };
            let mut check = Check::new(format!("{name} {}", T::DTYPE));
            check.generated(
                self,
                &rope_raw(),
                |raw| materialize::<T>(raw, caps).map_or_else(|e| e, |c| c.describe()),
                |raw| run(&materialize::<T>(raw, caps)?),
            );
            if T::DTYPE == DType::F64 && sign > 0.0 {
                for (file, inputs) in [
                    ("rope_hf_default_f64", ["inputs/q", "inputs/k"]),
                    ("rope_hf_offset_batch3_f64", ["inputs/q", "inputs/k"]),
                    ("rope_hf_partial_0p5_f64", ["inputs/q", "inputs/k"]),
                    ("rope_meta_default_f64", ["inputs/xq", "inputs/xk"]),
                    ("rope_meta_offset_batch3_f64", ["inputs/xq", "inputs/xk"]),
                ] {
                    let case = embedded(file);
                    for input in inputs {
                        let Some(call) = golden_call(&case, input, caps) else {
                            continue;
                        };
                        let output = input.replace("inputs/", "expected/")
                            + if file.contains("hf") {
                                "_embed"
                            } else {
                                "_out"
                            };
                        let (_, want) = case.tensor(&output);
                        check.fixed(seed, &format!("{file} {input}"), || {
                            let call = Call::<T> {
                                x: tensor_of(call.x.as_slice(), call.x.dims()),
                                cos: tensor_of(call.cos.as_slice(), call.cos.dims()),
                                sin: tensor_of(call.sin.as_slice(), call.sin.dims()),
                                qk_layout: call.qk_layout,
                                pair_layout: call.pair_layout,
                                positions: call.positions,
                                rotary_dim: call.rotary_dim,
                            };
                            let got = adapter
                                .rope(&call.x, &call.cos, &call.sin, &call.rope_call())
                                .map_err(|e| format!("adapter error: {e}"))?;
                            let exact = call.expected(1.0);
                            let mut errors = compare("output", &got, &exact, tolerance, false)?;
                            // Against the library's own numbers, not only the exact rotation.
                            let mut expected = exact;
                            expected.values.clone_from(&want);
                            let tol = super::Tolerance::new(case.f64("tolerance/abs"), 0.0);
                            errors.merge(compare(
                                "output vs reference",
                                &got,
                                &expected,
                                tol,
                                false,
                            )?);
                            Ok(errors)
                        });
                    }
                }
            }
            self.report.checks.push(check.report);
        }
    }
}
