//! The conformance kit: checks a user's embedding or RoPE implementation against
//! tokenloom's (on generated cases, with shrinking to a minimal failing case) and against
//! the PyTorch / HuggingFace / Meta reference vectors.

use std::fmt;

use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use tokenloom_embedding::Embedding;
use tokenloom_positions::{
    Llama3Scaling, QkLayout, RopeCache, RopeConfig, RopeLayout, RopeScaling, TokenPositions,
};
use tokenloom_tensor::Tensor;

use crate::reference::{ReferenceCase, embedded, first_mismatch, swap_dims_1_2};
use crate::strategies::{
    BackwardCase, LookupCase, RopeCase, backward_case, lookup_case, rope_case,
};

/// A conformance failure: which check, why, and the minimal failing input.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    /// The check that failed, e.g. `lookup`.
    pub check: &'static str,
    /// What went wrong, with the first differing index and values.
    pub reason: String,
    /// The minimal failing case (shrunk by proptest), or the reference case's name.
    pub minimal_case: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conformance check `{}` failed: {}\nminimal failing case:\n{}",
            self.check, self.reason, self.minimal_case
        )
    }
}

impl std::error::Error for Failure {}

/// How many generated cases each check runs: `$PROPTEST_CASES` if set, else 64.
#[must_use]
pub fn cases() -> u32 {
    crate::cases_or(64)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Compares two buffers, as a proptest case result naming the first mismatch.
fn compare(what: &str, got: &[f64], want: &[f64], tol: f64) -> Result<(), TestCaseError> {
    match first_mismatch(got, want, tol) {
        None => Ok(()),
        Some((i, g, w)) if got.len() == want.len() => Err(TestCaseError::fail(format!(
            "{what}: element {i} is {g:e}, expected {w:e} (tolerance {tol:e})"
        ))),
        Some(_) => Err(TestCaseError::fail(format!(
            "{what}: {} elements, expected {}",
            got.len(),
            want.len()
        ))),
    }
}

fn run_property<S: proptest::strategy::Strategy>(
    check: &'static str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), Failure>
where
    S::Value: fmt::Debug,
{
    match runner().run(&strategy, test) {
        Ok(()) => Ok(()),
        Err(TestError::Fail(reason, value)) => Err(Failure {
            check,
            reason: reason.to_string(),
            minimal_case: format!("{value:?}"),
        }),
        Err(TestError::Abort(reason)) => Err(Failure {
            check,
            reason: format!("aborted: {reason}"),
            minimal_case: "(none)".to_owned(),
        }),
    }
}

fn reference_failure(check: &'static str, case: &ReferenceCase, reason: String) -> Failure {
    Failure {
        check,
        reason,
        minimal_case: format!(
            "reference case `{}`: {}",
            case.name, case.json["description"]
        ),
    }
}

fn f64s(xs: &[f32]) -> Vec<f64> {
    xs.iter().map(|&x| f64::from(x)).collect()
}

/// Checks a lookup `(weight (vocab_size, n_embd), ids (batch, seq_len)) → (batch, seq_len,
/// n_embd)` against `torch.nn.functional.embedding`'s reference outputs and against
/// tokenloom on generated cases (edge ids, repeats, odd shapes): every output row must be
/// the weight row of its id, bit for bit.
///
/// # Errors
///
/// A [`Failure`] with the minimal failing case.
///
/// # Examples
///
/// ```
/// use tokenloom_testkit::conformance::check_lookup;
///
/// // An implementation that reads one row too far fails with a readable report.
/// let off_by_one = |weight: &tokenloom_tensor::Tensor<f32>, ids: &tokenloom_tensor::Tensor<u32>| {
///     let n_embd = weight.dims()[1];
///     let vocab_size = weight.dims()[0] as u32;
///     let mut out = Vec::new();
///     for &id in ids.as_slice() {
///         let row = ((id + 1) % vocab_size) as usize;
///         out.extend_from_slice(&weight.as_slice()[row * n_embd..(row + 1) * n_embd]);
///     }
///     let mut dims = ids.dims().to_vec();
///     dims.push(n_embd);
///     tokenloom_tensor::Tensor::from_vec(out, &dims).unwrap()
/// };
/// let failure = check_lookup(off_by_one).unwrap_err();
/// assert!(failure.to_string().contains("conformance check `lookup` failed"));
/// ```
pub fn check_lookup(
    lookup: impl Fn(&Tensor<f32>, &Tensor<u32>) -> Tensor<f32>,
) -> Result<(), Failure> {
    for name in ["emb_fwd_basic_f64", "emb_fwd_odd_batch_repeated_f64"] {
        let case = embedded(name);
        let (w_shape, weight) = case.tensor("inputs/weight");
        let (ids_shape, ids) = case.ids("inputs/ids");
        let (out_shape, want) = case.tensor("expected/output");
        // the kit checks an f32 kernel
        let weight = Tensor::from_vec(weight.iter().map(|&x| x as f32).collect(), &w_shape)
            .expect("reference shape");
        let out = lookup(
            &weight,
            &Tensor::from_vec(ids, &ids_shape).expect("reference shape"),
        );
        if out.dims() != out_shape.as_slice() {
            return Err(reference_failure(
                "lookup",
                &case,
                format!("output shape {} , expected {out_shape:?}", out.shape()),
            ));
        }
        let want: Vec<f64> = want.iter().map(|&x| f64::from(x as f32)).collect();
        if let Some((i, g, w)) = first_mismatch(&f64s(out.as_slice()), &want, 0.0) {
            return Err(reference_failure(
                "lookup",
                &case,
                format!("element {i} is {g:e}, PyTorch gives {w:e}"),
            ));
        }
    }
    run_property("lookup", lookup_case(), |case: LookupCase| {
        let table = Embedding::from_weight(case.weight.clone())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = table
            .forward(&case.ids)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = lookup(&case.weight, &case.ids);
        if got.dims() != want.dims() {
            return Err(TestCaseError::fail(format!(
                "output shape {}, expected {}",
                got.shape(),
                want.shape()
            )));
        }
        compare(
            "lookup output",
            &f64s(got.as_slice()),
            &f64s(want.as_slice()),
            0.0,
        )
    })
}

/// Checks a dense embedding backward `(vocab_size, n_embd, ids, grad_output) →
/// grad_weight (vocab_size, n_embd)` against PyTorch's reference gradients and tokenloom's
/// scatter-add on generated cases with many repeated ids (tolerance `1e-12` per element).
///
/// # Errors
///
/// A [`Failure`] with the minimal failing case.
pub fn check_embedding_backward(
    backward: impl Fn(usize, usize, &Tensor<u32>, &Tensor<f64>) -> Tensor<f64>,
) -> Result<(), Failure> {
    for name in ["emb_backward_dense_f64", "emb_fwd_odd_batch_repeated_f64"] {
        let case = embedded(name);
        let (w_shape, _) = case.tensor("inputs/weight");
        let (ids_shape, ids) = case.ids("inputs/ids");
        let (g_shape, grad) = case.tensor("inputs/grad_output");
        let (_, want) = case.tensor("expected/grad_weight");
        let got = backward(
            w_shape[0],
            w_shape[1],
            &Tensor::from_vec(ids, &ids_shape).expect("reference shape"),
            &Tensor::from_vec(grad, &g_shape).expect("reference shape"),
        );
        if let Some((i, g, w)) = first_mismatch(got.as_slice(), &want, 1e-12) {
            return Err(reference_failure(
                "embedding backward",
                &case,
                format!("element {i} is {g:e}, PyTorch gives {w:e}"),
            ));
        }
    }
    run_property(
        "embedding backward",
        backward_case(),
        |case: BackwardCase| {
            let table = Embedding::<f64>::from_weight(
                Tensor::zeros(&[case.vocab_size, case.n_embd])
                    .map_err(|e| TestCaseError::fail(e.to_string()))?,
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want = table
                .backward_dense(&case.ids, case.grad_output.view())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got = backward(case.vocab_size, case.n_embd, &case.ids, &case.grad_output);
            if got.dims() != want.dims() {
                return Err(TestCaseError::fail(format!(
                    "gradient shape {}, expected {}",
                    got.shape(),
                    want.shape()
                )));
            }
            compare("weight gradient", got.as_slice(), want.as_slice(), 1e-12)
        },
    )
}

/// Checks a RoPE implementation `(config, x (batch, seq_len, n_heads, head_dim), position
/// ids (batch, seq_len)) → rotated x` in f64 against HuggingFace (half-split) and Meta
/// (interleaved) reference vectors, and against tokenloom on generated cases covering
/// both layouts, partial rotary and every scaling variant (relative tolerance `1e-9`).
/// For the context-dependent scalings (dynamic NTK, LongRoPE) the frequencies are those
/// for `seq_len = max(position ids) + 1`, as HuggingFace computes them for a batch.
///
/// # Errors
///
/// A [`Failure`] with the minimal failing case.
pub fn check_rope(
    rope: impl Fn(&RopeConfig, &Tensor<f64>, &Tensor<u32>) -> Tensor<f64>,
) -> Result<(), Failure> {
    for name in [
        "rope_hf_default_f64",
        "rope_hf_offset_batch3_f64",
        "rope_hf_partial_0p5_f64",
    ] {
        let case = embedded(name);
        let c = case.get("config");
        let head_dim = usize::try_from(c["head_dim"].as_u64().expect("head_dim")).expect("fits");
        let partial = c["rope_parameters"]["partial_rotary_factor"]
            .as_f64()
            .unwrap_or(1.0);
        let config = RopeConfig::new(
            head_dim,
            c["rope_parameters"]["rope_theta"].as_f64().expect("theta"),
            RopeLayout::HalfSplit,
        )
        .with_partial_rotary_factor(partial);
        let (ids_shape, ids) = case.ids("inputs/position_ids");
        let ids = Tensor::from_vec(ids, &ids_shape).expect("reference shape");
        for (input, expected) in [
            ("inputs/q", "expected/q_embed"),
            ("inputs/k", "expected/k_embed"),
        ] {
            let (shape, x) = case.tensor(input);
            let dims: [usize; 4] = shape.as_slice().try_into().expect("rank 4");
            let x_bshd = Tensor::from_vec(
                swap_dims_1_2(&x, dims),
                &[dims[0], dims[2], dims[1], dims[3]],
            )
            .expect("shape");
            let got = rope(&config, &x_bshd, &ids);
            let got = swap_dims_1_2(got.as_slice(), [dims[0], dims[2], dims[1], dims[3]]);
            let (_, want) = case.tensor(expected);
            if let Some((i, g, w)) = first_mismatch(&got, &want, case.f64("tolerance/abs")) {
                return Err(reference_failure(
                    "rope",
                    &case,
                    format!("{expected} element {i} is {g:e}, HuggingFace gives {w:e}"),
                ));
            }
        }
    }
    for name in ["rope_meta_default_f64", "rope_meta_offset_batch3_f64"] {
        let case = embedded(name);
        let c = case.get("config");
        let head_dim = usize::try_from(c["head_dim"].as_u64().expect("head_dim")).expect("fits");
        let mut config = RopeConfig::new(
            head_dim,
            c["theta"].as_f64().expect("theta"),
            RopeLayout::Interleaved,
        );
        if c["use_scaled"].as_bool() == Some(true) {
            config = config.with_scaling(RopeScaling::Llama3(Llama3Scaling::llama_3_1()));
        }
        let start = u32::try_from(c["start_pos"].as_u64().expect("start_pos")).expect("fits");
        for (input, expected) in [
            ("inputs/xq", "expected/xq_out"),
            ("inputs/xk", "expected/xk_out"),
        ] {
            let (shape, x) = case.tensor(input);
            let ids: Vec<u32> = (0..shape[0])
                .flat_map(|_| (0..shape[1]).map(|s| start + u32::try_from(s).expect("fits")))
                .collect();
            let ids = Tensor::from_vec(ids, &shape[..2]).expect("shape");
            let got = rope(&config, &Tensor::from_vec(x, &shape).expect("shape"), &ids);
            let (_, want) = case.tensor(expected);
            if let Some((i, g, w)) =
                first_mismatch(got.as_slice(), &want, case.f64("tolerance/abs"))
            {
                return Err(reference_failure(
                    "rope",
                    &case,
                    format!("{expected} element {i} is {g:e}, Meta's model.py gives {w:e}"),
                ));
            }
        }
    }
    run_property("rope", rope_case(), |case: RopeCase| {
        // Context-dependent scalings use seq_len = max(position ids) + 1, as HuggingFace.
        let seq_len = case
            .positions
            .as_slice()
            .iter()
            .max()
            .map_or(1, |&p| p as usize + 1);
        let cache = RopeCache::<f64>::new(&case.config, seq_len)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = cache
            .apply(
                case.x.view(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Ids(case.positions.view()),
            )
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let got = rope(&case.config, &case.x, &case.positions);
        if got.dims() != want.dims() {
            return Err(TestCaseError::fail(format!(
                "output shape {}, expected {}",
                got.shape(),
                want.shape()
            )));
        }
        let scale = want.as_slice().iter().fold(1.0f64, |m, x| m.max(x.abs()));
        compare("rotated x", got.as_slice(), want.as_slice(), 1e-9 * scale)
    })
}
