//! The kit passes tokenloom's own kernels in every dtype, catches five planted bugs with
//! small shrunk cases, reports skipped capabilities, and its f32 tolerance separates
//! rounding from a real error.

use tokenloom_testkit::kit::reexports::{DType, Element, QkLayout, RopeLayout, Tensor};
use tokenloom_testkit::kit::tokenloom_adapter::Tokenloom;
use tokenloom_testkit::kit::{
    AdapterError, BackwardAdapter, BackwardOptions, Capabilities, Kit, LookupAdapter, Positions,
    PositionsKind, Report, RopeAdapter, RopeCall,
};

const SEED: u64 = 20_261_205;

fn seeded_kit() -> Kit {
    Kit::new().with_seed(SEED).with_cases(64)
}

/// The largest number of values any tensor of the report's minimal cases shows.
fn largest_tensor(report: &Report) -> usize {
    report
        .failures()
        .filter_map(|c| c.failure.as_ref())
        .flat_map(|f| {
            f.minimal_case
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter_map(|line| {
            let (_, values) = line.split_once(" = [")?;
            Some(values.trim_end_matches(']').split(", ").count())
        })
        .max()
        .unwrap_or(0)
}

fn assert_caught(report: &Report, check: &str) {
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert!(
        failed.iter().any(|name| name.starts_with(check)),
        "expected `{check}` to fail:\n{report}"
    );
    let largest = largest_tensor(report);
    assert!(
        (1..=16).contains(&largest),
        "shrunk case has a tensor of {largest} values:\n{report}"
    );
    let text = report.to_string();
    assert!(text.contains(&format!("seed {SEED}")), "{text}");
}

#[test]
fn tokenloom_passes_every_check_in_every_dtype() {
    let mut kit = seeded_kit();
    kit.check_lookup(&Tokenloom)
        .check_embedding_backward(&Tokenloom)
        .check_rope(&Tokenloom)
        .check_rope_frequencies(&Tokenloom)
        .check_logits(&Tokenloom)
        .check_sinusoidal(&Tokenloom);
    let report = kit.finish();
    report.assert_passed();
    // lookup + refusal, backward, rope + backward, logits + backward, 3 sinusoidal
    // variants: 4 dtypes each; 7 scalings.
    assert_eq!(report.checks.len(), 4 * (2 + 1 + 2 + 2 + 3) + 7, "{report}");
    assert!(report.skipped.is_empty(), "{report}");
    assert!(report.summary().ends_with(" 0 failed"), "{report}");
    let json = report.to_json();
    assert_eq!(json["seed"], SEED);
    assert_eq!(
        json["checks"].as_array().map(Vec::len),
        Some(report.checks.len())
    );
}

/// tokenloom's kernels with one thing changed.
struct Planted {
    bug: Bug,
}

#[derive(Clone, Copy, PartialEq)]
enum Bug {
    WrongPairLayout,
    DecodePositionOffByOne,
    BackwardIgnoresRepeats,
    ClampedIds,
    RowsShareRowZeroPositions,
    F32ErrorOf1e3,
}

fn all_rope() -> Capabilities {
    Capabilities::new(&[DType::F32, DType::F64])
        .with_qk_layouts(&[QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq])
        .with_pair_layouts(&[RopeLayout::Interleaved, RopeLayout::HalfSplit])
        .with_positions(&[PositionsKind::Offset, PositionsKind::Ids])
}

impl LookupAdapter for Planted {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(&[DType::F32])
    }
    fn lookup<T: Element>(
        &self,
        weight: &Tensor<T>,
        ids: &Tensor<u32>,
    ) -> Result<Tensor<T>, AdapterError> {
        let last = u32::try_from(weight.dims()[0] - 1).unwrap();
        let clamped: Vec<u32> = ids.as_slice().iter().map(|&i| i.min(last)).collect();
        Tokenloom.lookup(weight, &Tensor::from_vec(clamped, ids.dims()).unwrap())
    }
}

impl BackwardAdapter for Planted {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(&[DType::F64])
    }
    fn backward<T: Element>(
        &self,
        vocab_size: usize,
        ids: &Tensor<u32>,
        grad_output: &Tensor<T>,
        _: &BackwardOptions,
    ) -> Result<Tensor<T>, AdapterError> {
        // Assignment instead of accumulation: the last occurrence wins.
        let n_embd = grad_output.dims()[2];
        let mut grad = vec![T::from_f64_lossy(0.0); vocab_size * n_embd];
        for (t, &id) in ids.as_slice().iter().enumerate() {
            let row = &grad_output.as_slice()[t * n_embd..][..n_embd];
            grad[id as usize * n_embd..][..n_embd].copy_from_slice(row);
        }
        Tensor::from_vec(grad, &[vocab_size, n_embd]).map_err(AdapterError::new)
    }
}

impl RopeAdapter for Planted {
    fn capabilities(&self) -> Capabilities {
        all_rope()
    }
    fn rope<T: Element>(
        &self,
        x: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        let mut call = *call;
        let seq_len = match call.qk_layout {
            QkLayout::BatchSeqHeads => x.dims()[1],
            QkLayout::BatchHeadsSeq => x.dims()[2],
        };
        let changed_ids;
        match (self.bug, call.positions) {
            (Bug::WrongPairLayout, _) => {
                call.pair_layout = match call.pair_layout {
                    RopeLayout::Interleaved => RopeLayout::HalfSplit,
                    _ => RopeLayout::Interleaved,
                };
            }
            (Bug::DecodePositionOffByOne, Positions::Offset(o)) if seq_len == 1 => {
                call.positions = Positions::Offset(o + 1);
            }
            (Bug::DecodePositionOffByOne, Positions::Ids(ids)) if seq_len == 1 => {
                changed_ids =
                    Tensor::from_vec(ids.as_slice().iter().map(|p| p + 1).collect(), ids.dims())
                        .unwrap();
                call.positions = Positions::Ids(&changed_ids);
            }
            (Bug::RowsShareRowZeroPositions, Positions::Ids(ids)) => {
                let row0 = &ids.as_slice()[..seq_len];
                let shared = row0
                    .iter()
                    .copied()
                    .cycle()
                    .take(ids.as_slice().len())
                    .collect();
                changed_ids = Tensor::from_vec(shared, ids.dims()).unwrap();
                call.positions = Positions::Ids(&changed_ids);
            }
            _ => {}
        }
        let out = Tokenloom.rope(x, cos, sin, &call)?;
        if self.bug != Bug::F32ErrorOf1e3 {
            return Ok(out);
        }
        let off = out
            .as_slice()
            .iter()
            .map(|v| T::from_f64_lossy(v.as_f64() + 1e-3))
            .collect();
        Tensor::from_vec(off, out.dims()).map_err(AdapterError::new)
    }
}

#[test]
fn clamped_ids_are_caught() {
    let mut kit = seeded_kit();
    kit.check_lookup(&Planted {
        bug: Bug::ClampedIds,
    });
    let report = kit.finish();
    assert_caught(&report, "lookup f32 refuses bad ids");
    // the lookups of valid ids still pass
    assert!(
        report
            .checks
            .iter()
            .any(|c| c.name == "lookup f32" && c.failure.is_none())
    );
}

#[test]
fn a_backward_that_ignores_repeats_is_caught() {
    let mut kit = seeded_kit();
    kit.check_embedding_backward(&Planted {
        bug: Bug::BackwardIgnoresRepeats,
    });
    let report = kit.finish();
    assert_caught(&report, "embedding backward f64");
    // a coordinate in the gradient's own layout
    let failure = report.checks[0].failure.as_ref().unwrap();
    assert!(
        failure.reason.contains("weight gradient at (vocab_size "),
        "{report}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.contains("padding_idx: not declared"))
    );
}

#[test]
fn each_planted_rope_bug_is_caught_with_a_small_case() {
    for (bug, check) in [
        (Bug::WrongPairLayout, "rope f32"),
        (Bug::DecodePositionOffByOne, "rope f32"),
        (Bug::RowsShareRowZeroPositions, "rope f32"),
    ] {
        let mut kit = seeded_kit();
        kit.check_rope(&Planted { bug });
        let report = kit.finish();
        assert_caught(&report, check);
        let text = report.to_string();
        // an off-by-one position may read past the tables: the kernel's own error
        assert!(
            text.contains("> tolerance")
                || (bug == Bug::DecodePositionOffByOne && text.contains("adapter error")),
            "{text}"
        );
        assert!(
            text.contains("rope backward (no gradient declared): not declared"),
            "{text}"
        );
    }
}

#[test]
fn f32_rounding_passes_and_an_error_of_1e3_fails() {
    let mut kit = seeded_kit();
    kit.check_rope(&Tokenloom);
    assert!(kit.report().passed());
    let f32_check = kit
        .report()
        .checks
        .iter()
        .find(|c| c.name == "rope f32")
        .unwrap();
    assert!(
        f32_check.max_abs > 0.0 && f32_check.max_abs < 1e-6,
        "{}",
        kit.report()
    );

    let mut kit = seeded_kit();
    kit.check_rope(&Planted {
        bug: Bug::F32ErrorOf1e3,
    });
    let report = kit.finish();
    assert_caught(&report, "rope f32");
}

#[test]
fn a_wrong_shape_is_reported_as_a_shape_error() {
    struct Flat;
    impl LookupAdapter for Flat {
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(&[DType::F32]).without_id_checks()
        }
        fn lookup<T: Element>(
            &self,
            weight: &Tensor<T>,
            ids: &Tensor<u32>,
        ) -> Result<Tensor<T>, AdapterError> {
            let out = Tokenloom.lookup(weight, ids)?;
            let n = out.as_slice().len();
            Tensor::from_vec(out.as_slice().to_vec(), &[n]).map_err(AdapterError::new)
        }
    }
    let mut kit = seeded_kit();
    kit.check_lookup(&Flat);
    let report = kit.finish();
    let failure = report.checks[0].failure.as_ref().unwrap();
    assert!(
        failure.reason.starts_with(
            "shape error: output has shape (1), expected (1, 1, 1) = (batch, seq_len, n_embd)"
        ),
        "{report}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s.contains("declared unchecked"))
    );
}

#[test]
fn a_panicking_adapter_is_a_failure_not_a_panic() {
    struct Panics;
    impl LookupAdapter for Panics {
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(&[DType::F32])
        }
        fn lookup<T: Element>(
            &self,
            _: &Tensor<T>,
            _: &Tensor<u32>,
        ) -> Result<Tensor<T>, AdapterError> {
            panic!("kernel exploded")
        }
    }
    let mut kit = seeded_kit();
    kit.check_lookup(&Panics);
    let report = kit.finish();
    assert!(!report.passed());
    assert!(
        report.to_string().contains("panicked: kernel exploded"),
        "{report}"
    );
}

#[test]
fn a_regression_file_records_and_replays_the_failing_seed() {
    let path =
        std::env::temp_dir().join(format!("tokenloom-kit-regressions-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut kit = seeded_kit().with_regressions(&path);
    kit.check_rope(&Planted {
        bug: Bug::RowsShareRowZeroPositions,
    });
    assert!(!kit.report().passed());
    let recorded = std::fs::read_to_string(&path).unwrap();
    assert!(
        recorded.contains(&format!("rope f32\t{SEED}")),
        "{recorded}"
    );
    // Another seed replays the recorded one first and fails on it.
    let mut kit = Kit::new()
        .with_seed(1)
        .with_cases(1)
        .with_regressions(&path);
    kit.check_rope(&Planted {
        bug: Bug::RowsShareRowZeroPositions,
    });
    let report = kit.finish();
    let failure = report
        .checks
        .iter()
        .find_map(|c| c.failure.as_ref())
        .unwrap();
    assert_eq!(failure.seed, SEED, "{report}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn frequencies_that_ignore_the_linear_factor_fail_on_transformers_numbers() {
    use tokenloom_testkit::kit::reexports::{RopeConfig, RopeScaling};
    use tokenloom_testkit::kit::{Frequencies, FrequencyAdapter};
    struct NoLinear;
    impl FrequencyAdapter for NoLinear {
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(&[DType::F32]).with_scalings(&["default", "linear"])
        }
        fn frequencies(
            &self,
            config: &RopeConfig,
            seq_len: usize,
        ) -> Result<Frequencies, AdapterError> {
            let plain = config.clone().with_scaling(RopeScaling::None);
            Ok(Frequencies {
                inv_freq: plain.inv_freq(seq_len).map_err(AdapterError::new)?,
                attention_factor: 1.0,
            })
        }
    }
    let mut kit = seeded_kit();
    kit.check_rope_frequencies(&NoLinear);
    let report = kit.finish();
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, ["rope frequencies (linear)"], "{report}");
    let failure = report.checks[1].failure.as_ref().unwrap();
    assert!(
        failure.minimal_case.contains("rope_hf_linear_f64"),
        "{report}"
    );
    assert!(
        report
            .skipped
            .iter()
            .any(|s| s == "rope frequencies (yarn): not declared")
    );
}

#[test]
fn an_unwritable_regression_file_is_reported() {
    let dir = std::env::temp_dir().join(format!("tokenloom-kit-dir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // a directory where the file should be
    let mut kit = seeded_kit().with_regressions(&dir);
    kit.check_rope(&Planted {
        bug: Bug::WrongPairLayout,
    });
    let report = kit.finish();
    let failure = report
        .failures()
        .next()
        .and_then(|c| c.failure.clone())
        .unwrap();
    assert!(
        failure.reason.contains("could not be recorded in"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
