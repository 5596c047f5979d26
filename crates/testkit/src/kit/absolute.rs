//! The sinusoidal-table check, and the padded-batch check (ids, attention mask and
//! position ids as transformers builds them).

use std::fmt::Write as _;

use proptest::prelude::*;
use tokenloom_positions::{Sinusoidal, SinusoidalVariant};
use tokenloom_tensor::{DType, Element};

use super::adapter::{BatchAdapter, Capabilities, PaddedBatch, PaddingSide, SinusoidalAdapter};
use super::cases::show;
use super::runner::Check;
use super::tolerance::{Errors, Expected, compare, coordinate, dims_text};
use super::{Kit, with_dtype};
use crate::reference::embedded;

/// The error of `sin(p·ω)` computed in a dtype grows with the rounded angle `p·ω`, and
/// `ω = base^(−2i/n_embd)` computed in the dtype carries up to `ln(base)` ≈ 9 ulps: the
/// allowed error is this many ulps of `|p·ω| + 1`.
const SINUSOIDAL_TERMS: usize = 16;

const BASES: [f64; 2] = [10_000.0, 100.0];

/// The exact table (tokenloom's, in `f64`) with each element's magnitude `|p·ω| + 1`.
fn sinusoidal_expected(
    variant: SinusoidalVariant,
    base: f64,
    max_positions: usize,
    n_embd: usize,
) -> Result<Expected, String> {
    let table = Sinusoidal::new(variant, base)
        .table::<f64>(max_positions, n_embd)
        .map_err(|e| format!("tokenloom's reference table failed: {e}"))?;
    let values = table.as_slice().to_vec();
    // |p·ω| ≤ p: the largest angle of the row bounds every element's.
    let magnitude = (0..max_positions)
        .flat_map(|p| std::iter::repeat_n(p as f64 + 1.0, n_embd))
        .collect();
    Ok(Expected {
        dims: vec![max_positions, n_embd],
        axes: vec!["position", "n_embd"],
        values,
        magnitude,
        terms: vec![SINUSOIDAL_TERMS; max_positions * n_embd],
    })
}

impl Kit {
    /// Checks sinusoidal tables of every declared variant and dtype: the Vaswani
    /// reference vector (`f64`) and generated sizes and bases against tokenloom's `f64`
    /// table.
    pub fn check_sinusoidal<A: SinusoidalAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        for variant in [
            SinusoidalVariant::Vaswani,
            SinusoidalVariant::Marian,
            SinusoidalVariant::Fairseq,
        ] {
            if !caps.sinusoidal.contains(&variant) {
                self.report
                    .skipped
                    .push(format!("sinusoidal {variant:?}: not declared"));
            }
        }
        for dtype in self.declared_dtypes("sinusoidal", &caps) {
            with_dtype!(dtype, T => self.sinusoidal_in::<T, A>(adapter, &caps));
        }
        self
    }

    fn sinusoidal_in<T: Element, A: SinusoidalAdapter>(
        &mut self,
        adapter: &A,
        caps: &Capabilities,
    ) {
        let tolerance = caps.tolerance(T::DTYPE);
        for &variant in &caps.sinusoidal {
            let mut check = Check::new(format!("sinusoidal {variant:?} {}", T::DTYPE));
            let run = |base: f64, max_positions: usize, n_embd: usize| -> Result<Errors, String> {
                let got = adapter
                    .table::<T>(variant, base, max_positions, n_embd)
                    .map_err(|e| format!("adapter error: {e}"))?;
                let want = sinusoidal_expected(variant, base, max_positions, n_embd)?;
                compare("table", &got, &want, tolerance, false)
            };
            check.generated(
                self,
                &(0usize..BASES.len(), 1usize..=64, 4usize..=12),
                |(b, p, n)| format!("  base {}, max_positions {p}, n_embd {n}\n", BASES[*b]),
                |(b, p, n)| run(BASES[*b], *p, *n),
            );
            if variant == SinusoidalVariant::Vaswani && T::DTYPE == DType::F64 {
                check.fixed(self.report.seed, "sin_vaswani_d16_f64", || {
                    let case = embedded("sin_vaswani_d16_f64");
                    let c = case.get("config");
                    let n_embd = c["d_model"].as_u64().ok_or("d_model")? as usize;
                    let rows = c["positions"].as_array().ok_or("positions")?.len();
                    let base = c["base"].as_f64().ok_or("base")?;
                    let got = adapter
                        .table::<T>(variant, base, rows, n_embd)
                        .map_err(|e| format!("adapter error: {e}"))?;
                    let mut want = sinusoidal_expected(variant, base, rows, n_embd)?;
                    want.values = case.tensor("expected/pe").1;
                    compare("table vs reference", &got, &want, tolerance, false)
                });
            }
            self.report.checks.push(check.report);
        }
    }

    /// Checks padding of ragged sequences on every declared side: ids, attention mask
    /// and position ids exactly as transformers computes them (`cumsum(mask) − 1`, then
    /// 1 at the padding).
    pub fn check_batch<A: BatchAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        for side in [PaddingSide::Left, PaddingSide::Right] {
            if !caps.padding_sides.contains(&side) {
                self.report
                    .skipped
                    .push(format!("batch padded {side:?}: not declared"));
                continue;
            }
            let mut check = Check::new(format!("batch padded {side:?}"));
            let strategy = (
                prop::collection::vec(1usize..=5, 1..=3),
                prop::collection::vec(0u32..50, 15),
                0u32..3,
            );
            check.generated(
                self,
                &strategy,
                |(lens, ids, pad)| {
                    let mut out = format!("  pad_id {pad}, side {side:?}\n");
                    for (i, seq) in sequences(lens, ids).iter().enumerate() {
                        show(&mut out, &format!("sequence {i}"), &[seq.len()], seq);
                    }
                    out
                },
                |(lens, ids, pad)| {
                    let seqs = sequences(lens, ids);
                    let got = adapter
                        .pad(&seqs, *pad, side)
                        .map_err(|e| format!("adapter error: {e}"))?;
                    compare_batch(&got, &expected_batch(&seqs, *pad, side), seqs.len())
                },
            );
            self.report.checks.push(check.report);
        }
        self
    }
}

/// The sequences of a case: lengths from `lens`, ids from the pool.
fn sequences(lens: &[usize], pool: &[u32]) -> Vec<Vec<u32>> {
    let mut at = 0;
    lens.iter()
        .map(|&len| {
            let seq = pool[at..at + len].to_vec();
            at += len;
            seq
        })
        .collect()
}

/// transformers' padding: `(ids, mask, position_ids)`, row-major `(batch, max_len)`.
fn expected_batch(seqs: &[Vec<u32>], pad_id: u32, side: PaddingSide) -> [Vec<u32>; 3] {
    let max_len = seqs.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut mask, mut positions) = (Vec::new(), Vec::new(), Vec::new());
    for seq in seqs {
        let pad = max_len - seq.len();
        let row_mask: Vec<u32> = match side {
            PaddingSide::Left => std::iter::repeat_n(0, pad)
                .chain(std::iter::repeat_n(1, seq.len()))
                .collect(),
            PaddingSide::Right => std::iter::repeat_n(1, seq.len())
                .chain(std::iter::repeat_n(0, pad))
                .collect(),
        };
        let mut real = seq.iter();
        let mut cumsum = 0u32;
        for &m in &row_mask {
            cumsum += m;
            ids.push(if m == 1 {
                real.next().copied().unwrap_or(pad_id)
            } else {
                pad_id
            });
            positions.push(if m == 1 { cumsum - 1 } else { 1 });
        }
        mask.extend(row_mask);
    }
    [ids, mask, positions]
}

fn compare_batch(got: &PaddedBatch, want: &[Vec<u32>; 3], batch: usize) -> Result<Errors, String> {
    let want_dims = [batch, want[0].len() / batch.max(1)];
    for (name, tensor, expected) in [
        ("ids", &got.ids, &want[0]),
        ("attention_mask", &got.attention_mask, &want[1]),
        ("position_ids", &got.position_ids, &want[2]),
    ] {
        let dims = tensor.dims();
        if dims != want_dims {
            return Err(format!(
                "shape error: {name} has shape {}, expected {} = (batch, seq_len)",
                dims_text(dims),
                dims_text(&want_dims)
            ));
        }
        if let Some(i) = tensor
            .as_slice()
            .iter()
            .zip(expected)
            .position(|(g, w)| g != w)
        {
            let mut msg = String::new();
            let _ = write!(
                msg,
                "{name} at {}: got {}, expected {}",
                coordinate(i, dims, &["batch", "seq_len"]),
                tensor.as_slice()[i],
                expected[i]
            );
            return Err(msg);
        }
    }
    Ok(Errors::default())
}
