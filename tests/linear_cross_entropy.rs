//! The fused linear cross-entropy against PyTorch's unfused path
//! (`tests/reference/generated/linear_cross_entropy.py`): every option alone and
//! combined, every chunk size, `u32`/`i32`/`i64` targets, f64 to 1e-12 and f32 to 1e-5
//! (relative to the largest reference value), and the same bits with one thread or many.

use serde_json::Value;
use tokenloom::embedding::EmbeddingError;
use tokenloom::embedding::functional::{
    CrossEntropyOptions, LinearCrossEntropy, LinearCrossEntropyGrads, LogitScale, Reduction,
    linear_cross_entropy,
};
use tokenloom::tensor::{Accumulate, Element, Par, TokenId, with_par};

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn options(case: &Value, chunk_tokens: Option<usize>) -> CrossEntropyOptions {
    let mut o = CrossEntropyOptions::default();
    o.ignore_index = Some(case["ignore_index"].as_i64().unwrap());
    o.label_smoothing = case["label_smoothing"].as_f64().unwrap();
    o.z_loss = case["z_loss"].as_f64().unwrap();
    o.logit_scale = match (case["multiply"].as_f64(), case["divide"].as_f64()) {
        (Some(m), None) => LogitScale::Multiply(m),
        (None, Some(d)) => LogitScale::Divide(d),
        (None, None) => LogitScale::None,
        _ => unreachable!("one scale per case"),
    };
    o.softcap = case["softcap"].as_f64();
    o.reduction = match case["reduction"].as_str().unwrap() {
        "mean" => Reduction::Mean,
        "sum" => Reduction::Sum,
        "none" => Reduction::None,
        other => panic!("reduction {other}"),
    };
    o.chunk_tokens = chunk_tokens;
    o.return_lse = true;
    o.return_argmax = true;
    o
}

struct Run<T> {
    out: LinearCrossEntropy,
    grad_hidden: Vec<T>,
    grad_head: Vec<T>,
}

fn run<T: Element, I: TokenId>(
    case: &Value,
    targets: &[I],
    chunk_tokens: Option<usize>,
    par: Par,
) -> Result<Run<T>, EmbeddingError> {
    let (n, e, v) = (
        case["n_tokens"].as_u64().unwrap() as usize,
        case["n_embd"].as_u64().unwrap() as usize,
        case["vocab_size"].as_u64().unwrap() as usize,
    );
    let cast = |xs: Vec<f64>| xs.into_iter().map(T::from_f64_lossy).collect::<Vec<T>>();
    let hidden = cast(f64s(&case["hidden"]));
    let head = cast(f64s(&case["head"]));
    let weights = case["weights"].as_array().map(|_| f64s(&case["weights"]));
    let (mut grad_hidden, mut grad_head) = (vec![T::zero(); n * e], vec![T::zero(); v * e]);
    let grads = LinearCrossEntropyGrads::new()
        .with_hidden((&mut grad_hidden[..], [n, e]))?
        .with_head((&mut grad_head[..], [v, e]))?
        .grad_scale(case["grad_scale"].as_f64().unwrap());
    let out = with_par(par, || {
        linear_cross_entropy(
            (&hidden[..], [n, e]),
            (&head[..], [v, e]),
            (targets, [n]),
            weights.as_deref(),
            &options(case, chunk_tokens),
            Some(grads),
        )
    })?;
    Ok(Run {
        out,
        grad_hidden,
        grad_head,
    })
}

/// `max |a − b| / max |b|`.
fn rel<T: Element>(got: &[T], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .map(|(g, w)| (g.as_f64() - w).abs())
        .fold(0.0, f64::max)
        / scale
}

fn check_file<T: Element>(json: &str, tol: f64) {
    let doc: Value = serde_json::from_str(json).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 15);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let ids: Vec<i64> = case["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let n = ids.len();
        let reference = run::<T, i64>(case, &ids, None, Par::Rayon).unwrap();
        for chunk in [Some(1), Some(2), Some(3), Some(n), Some(n + 5), None] {
            for par in [Par::Seq, Par::Rayon] {
                let r = run::<T, i64>(case, &ids, chunk, par).unwrap();
                let what = format!("{name}, chunk {chunk:?}, {par:?}");
                let loss = case["loss"].as_f64().unwrap();
                assert!(
                    (r.out.loss - loss).abs() <= tol * loss.abs().max(1.0),
                    "{what}: loss {} vs {loss}",
                    r.out.loss
                );
                assert!(
                    rel(&r.grad_hidden, &f64s(&case["grad_hidden"])) <= tol,
                    "{what}: grad_hidden"
                );
                assert!(
                    rel(&r.grad_head, &f64s(&case["grad_head"])) <= tol,
                    "{what}: grad_head"
                );
                assert!(
                    rel(r.out.lse.as_ref().unwrap(), &f64s(&case["lse"])) <= tol,
                    "{what}: lse"
                );
                let argmax: Vec<u32> = case["argmax"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_u64().unwrap() as u32)
                    .collect();
                assert_eq!(r.out.argmax.as_ref().unwrap(), &argmax, "{what}: argmax");
                if let Some(losses) = &r.out.losses {
                    assert!(rel(losses, &f64s(&case["losses"])) <= tol, "{what}: losses");
                } else {
                    assert_ne!(case["reduction"], "none", "{what}");
                }
                // The chunk size changes nothing but the chunking; threads change no bit.
                if chunk.is_none() {
                    assert_eq!(r.out.loss.to_bits(), reference.out.loss.to_bits(), "{what}");
                    assert!(
                        r.grad_head == reference.grad_head,
                        "{what}: bits of grad_head"
                    );
                    assert!(r.grad_hidden == reference.grad_hidden, "{what}: bits");
                }
            }
        }
        // Other id types read the same targets.
        let as_i32: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
        let r32 = run::<T, i32>(case, &as_i32, None, Par::Rayon).unwrap();
        assert_eq!(
            r32.out.loss.to_bits(),
            reference.out.loss.to_bits(),
            "{name} i32"
        );
        if ids.iter().all(|&t| t >= 0) {
            let as_u32: Vec<u32> = ids.iter().map(|&t| t as u32).collect();
            let r = run::<T, u32>(case, &as_u32, None, Par::Rayon).unwrap();
            assert_eq!(
                r.out.loss.to_bits(),
                reference.out.loss.to_bits(),
                "{name} u32"
            );
        }
    }
}

#[test]
fn matches_pytorch_in_f64() {
    check_file::<f64>(include_str!("reference/generated/lce_f64.json"), 1e-12);
}

#[test]
fn matches_pytorch_in_f32() {
    check_file::<f32>(include_str!("reference/generated/lce_f32.json"), 1e-5);
}

/// `f16`/`bf16` inputs: the loss and the gradients of the f64 computation on the same
/// (rounded) values, to f32 accuracy for the loss and the log-sum-exp (products and
/// logits are never rounded to `T`) and to one rounding of `T` for the gradients.
fn check_widened<T: Element>(eps: f64) {
    let doc: Value =
        serde_json::from_str(include_str!("reference/generated/lce_f64.json")).unwrap();
    for case in doc["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let ids: Vec<i64> = case["targets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_i64().unwrap())
            .collect();
        let mut rounded = case.clone();
        for key in ["hidden", "head"] {
            let values = f64s(&case[key]);
            rounded[key] = values
                .into_iter()
                .map(|x| T::from_f64_lossy(x).as_f64())
                .collect();
        }
        let want = run::<f64, i64>(&rounded, &ids, None, Par::Rayon).unwrap();
        let reference = run::<T, i64>(case, &ids, None, Par::Seq).unwrap();
        for chunk in [Some(1), Some(3), None] {
            for par in [Par::Seq, Par::Rayon] {
                let what = format!("{name} {:?}, chunk {chunk:?}, {par:?}", T::DTYPE);
                let got = run::<T, i64>(case, &ids, chunk, par).unwrap();
                let loss = want.out.loss;
                assert!(
                    (got.out.loss - loss).abs() <= 2e-6 * loss.abs().max(1.0),
                    "{what}: loss {} vs {loss}",
                    got.out.loss
                );
                let lse = got.out.lse.as_ref().unwrap();
                assert!(rel(lse, want.out.lse.as_ref().unwrap()) <= 2e-6, "{what}");
                assert_eq!(got.out.argmax, want.out.argmax, "{what}: argmax");
                assert!(rel(&got.grad_hidden, &want.grad_hidden) <= eps, "{what}");
                assert!(rel(&got.grad_head, &want.grad_head) <= eps, "{what}");
                if chunk.is_none() {
                    assert_eq!(got.out.loss.to_bits(), reference.out.loss.to_bits());
                    assert!(got.grad_head == reference.grad_head, "{what}: bits");
                    assert!(got.grad_hidden == reference.grad_hidden, "{what}: bits");
                }
            }
        }
    }
}

#[test]
fn bf16_and_f16_compute_in_f32_and_round_once() {
    check_widened::<half::bf16>(2f64.powi(-8));
    check_widened::<half::f16>(2f64.powi(-11));
}

#[test]
fn f16_and_bf16_shards_are_refused_by_name() {
    use tokenloom::embedding::functional::{ShardStats, VocabCombine};
    struct One;
    impl VocabCombine for One {
        type Error = EmbeddingError;
        fn combine(&self, _: &mut [ShardStats]) -> Result<(), EmbeddingError> {
            Ok(())
        }
        fn sum(&self, _: &mut [f64]) -> Result<(), EmbeddingError> {
            Ok(())
        }
    }
    let x = [half::bf16::ONE; 4];
    let err = tokenloom::embedding::functional::linear_cross_entropy_sharded(
        &One,
        (&x[..], [2, 2]),
        (&x[..], [2, 2]),
        0,
        2,
        (&[0u32, 1][..], [2]),
        None,
        &CrossEntropyOptions::default(),
        None,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::UnsupportedDType {
                op: "linear_cross_entropy_sharded",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn accumulate_adds_to_the_callers_gradients() {
    let doc: Value =
        serde_json::from_str(include_str!("reference/generated/lce_f64.json")).unwrap();
    let case = &doc["cases"][0];
    let ids: Vec<i64> = case["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_i64().unwrap())
        .collect();
    let once = run::<f64, i64>(case, &ids, Some(3), Par::Rayon).unwrap();
    let (n, e, v) = (7, 5, 11);
    let hidden = f64s(&case["hidden"]);
    let head = f64s(&case["head"]);
    let (mut gh, mut gw) = (vec![1.0f64; n * e], vec![-2.0f64; v * e]);
    let grads = LinearCrossEntropyGrads::new()
        .with_hidden((&mut gh[..], [n, e]))
        .unwrap()
        .with_head((&mut gw[..], [v, e]))
        .unwrap()
        .accumulate(Accumulate::Add);
    linear_cross_entropy(
        (&hidden[..], [n, e]),
        (&head[..], [v, e]),
        (&ids[..], [n]),
        None,
        &options(case, Some(3)),
        Some(grads),
    )
    .unwrap();
    for (a, b) in gh.iter().zip(&once.grad_hidden) {
        assert!((a - (b + 1.0)).abs() < 1e-15);
    }
    for (a, b) in gw.iter().zip(&once.grad_head) {
        assert!((a - (b - 2.0)).abs() < 1e-15);
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let hidden = [0.5f32; 6];
    let head = [0.25f32; 8];
    let o = CrossEntropyOptions::default();
    let call = |targets: &[i64], weights: Option<&[f64]>, o: &CrossEntropyOptions| {
        linear_cross_entropy(
            (&hidden[..], [3, 2]),
            (&head[..], [4, 2]),
            (targets, [targets.len()]),
            weights,
            o,
            None,
        )
    };
    assert!(matches!(
        call(&[0, 4, 1], None, &o),
        Err(EmbeddingError::TargetOutOfRange {
            target: 4,
            row: 1,
            vocab_size: 4
        })
    ));
    assert!(matches!(
        call(&[0, -1, 1], None, &o),
        Err(EmbeddingError::TargetOutOfRange {
            target: -1,
            row: 1,
            ..
        })
    ));
    assert!(matches!(
        call(&[-100, -100, -100], None, &o),
        Err(EmbeddingError::NoTargets { n_tokens: 3 })
    ));
    assert!(matches!(
        call(&[0, 1], None, &o),
        Err(EmbeddingError::GradShape {
            what: "targets",
            ..
        })
    ));
    assert!(matches!(
        call(&[0, 1, 2], Some(&[1.0, f64::NAN, 1.0]), &o),
        Err(EmbeddingError::BadTokenWeight { row: 1, .. })
    ));
    assert!(matches!(
        call(&[0, 1, 2], Some(&[1.0]), &o),
        Err(EmbeddingError::GradShape {
            what: "token_weights",
            ..
        })
    ));
    for bad in [
        {
            let mut b = o.clone();
            b.label_smoothing = 1.5;
            b
        },
        {
            let mut b = o.clone();
            b.softcap = Some(0.0);
            b
        },
        {
            let mut b = o.clone();
            b.logit_scale = LogitScale::Divide(f64::INFINITY);
            b
        },
        {
            let mut b = o.clone();
            b.chunk_tokens = Some(0);
            b
        },
        {
            let mut b = o.clone();
            b.z_loss = -1.0;
            b
        },
    ] {
        assert!(
            matches!(
                call(&[0, 1, 2], None, &bad),
                Err(EmbeddingError::InvalidOption { .. })
            ),
            "{bad:?}"
        );
    }
    // A non-finite logit is reported with its token.
    let nan_hidden = [0.5f32, 0.5, f32::NAN, 0.5, 0.5, 0.5];
    let err = linear_cross_entropy(
        (&nan_hidden[..], [3, 2]),
        (&head[..], [4, 2]),
        (&[0i64, 1, 2][..], [3]),
        None,
        &o,
        None,
    )
    .unwrap_err();
    assert!(
        matches!(err, EmbeddingError::NonFiniteLoss { row: 1, .. }),
        "{err:?}"
    );
    // A gradient buffer of the wrong shape.
    let mut gw = [0.0f32; 6];
    let grads = LinearCrossEntropyGrads::new()
        .with_head((&mut gw[..], [3, 2]))
        .unwrap();
    let err = linear_cross_entropy(
        (&hidden[..], [3, 2]),
        (&head[..], [4, 2]),
        (&[0i64, 1, 2][..], [3]),
        None,
        &o,
        Some(grads),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            EmbeddingError::GradShape {
                what: "grad_head",
                ..
            }
        ),
        "{err:?}"
    );
}

/// A quantized head (GGUF Q8_0 blocks) gives the loss of its dequantized table, with
/// every option, without a dense copy of the table.
#[test]
fn a_quantized_head_gives_the_loss_of_its_dequantized_table() {
    use tokenloom::embedding::QuantizedEmbedding;
    use tokenloom::embedding::functional::linear_cross_entropy_quantized;
    use tokenloom::io::{GgmlType, QuantizedMatrix, quantize_q8_0};
    let (n, e, v) = (9, 64, 13);
    let values: Vec<f32> = (0..v * e)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.02)
        .collect();
    let head = QuantizedEmbedding::new(
        QuantizedMatrix::from_bytes(GgmlType::Q8_0, quantize_q8_0(&values), v, e).unwrap(),
    )
    .unwrap();
    let dense = head.to_dense::<f32>().unwrap();
    let hidden: Vec<f32> = (0..n * e)
        .map(|i| ((i * 13 % 29) as f32 - 14.0) * 0.05)
        .collect();
    let targets: Vec<i64> = vec![0, 5, -100, 12, 3, 3, 7, 11, 1];
    let mut o = CrossEntropyOptions::default();
    o.label_smoothing = 0.1;
    o.softcap = Some(4.0);
    o.chunk_tokens = Some(4);
    o.return_argmax = true;
    let q =
        linear_cross_entropy_quantized((&hidden[..], [n, e]), &head, (&targets[..], [n]), None, &o)
            .unwrap();
    let d = linear_cross_entropy(
        (&hidden[..], [n, e]),
        dense.weight().view(),
        (&targets[..], [n]),
        None,
        &o,
        None,
    )
    .unwrap();
    assert!(
        (q.loss - d.loss).abs() <= 1e-5 * d.loss.abs(),
        "{} vs {}",
        q.loss,
        d.loss
    );
    assert_eq!(q.argmax, d.argmax);
    assert_eq!(q.n_targets, 8);
    assert!((q.perplexity() - q.loss.exp()).abs() < 1e-12);
}
