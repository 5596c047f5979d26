//! The output projection check: `logits = hidden · weightᵀ` and its two gradients.

use proptest::prelude::*;
use tokenloom_tensor::{DType, Element, Tensor};

use super::adapter::{Capabilities, LogitsAdapter};
use super::cases::{show_tensor, tensor_of};
use super::runner::Check;
use super::tolerance::{Errors, Expected, compare};
use super::{Kit, with_dtype};
use crate::reference::embedded;

/// A logits case: `(n_tokens, n_embd)` hidden states, a `(vocab_size, n_embd)` table
/// and a `(n_tokens, vocab_size)` upstream gradient.
#[derive(Clone, Debug)]
pub(crate) struct HeadRaw {
    n_tokens: usize,
    n_embd: usize,
    vocab_size: usize,
    hidden: Vec<f64>,
    weight: Vec<f64>,
    grad: Vec<f64>,
}

fn head_raw() -> impl Strategy<Value = HeadRaw> {
    let values = |n| prop::collection::vec(-2.0f64..2.0, n);
    (
        (1usize..=4, 1usize..=6, 1usize..=6),
        values(24),
        values(36),
        values(24),
    )
        .prop_map(
            |((n_tokens, n_embd, vocab_size), hidden, weight, grad)| HeadRaw {
                n_tokens,
                n_embd,
                vocab_size,
                hidden,
                weight,
                grad,
            },
        )
}

/// The three tensors of a call, rounded to `T`.
struct HeadCall<T> {
    hidden: Tensor<T>,
    weight: Tensor<T>,
    grad_logits: Tensor<T>,
}

impl HeadRaw {
    fn call<T: Element>(&self) -> HeadCall<T> {
        HeadCall {
            hidden: tensor_of(&self.hidden, &[self.n_tokens, self.n_embd]),
            weight: tensor_of(&self.weight, &[self.vocab_size, self.n_embd]),
            grad_logits: tensor_of(&self.grad, &[self.n_tokens, self.vocab_size]),
        }
    }
}

fn wide<T: Element>(t: &Tensor<T>) -> Vec<f64> {
    t.as_slice().iter().map(|v| v.as_f64()).collect()
}

/// `out[r, c] = Σ_t term(r, c, t)`, exactly, with the magnitude `Σ_t |term|`.
fn sums(
    dims: [usize; 2],
    axes: [&'static str; 2],
    terms: usize,
    term: impl Fn(usize, usize, usize) -> f64,
) -> Expected {
    let mut e = Expected {
        dims: dims.to_vec(),
        axes: axes.to_vec(),
        ..Expected::default()
    };
    for r in 0..dims[0] {
        for c in 0..dims[1] {
            let (mut sum, mut magnitude) = (0.0, 0.0);
            for t in 0..terms {
                let x = term(r, c, t);
                sum += x;
                magnitude += x.abs();
            }
            e.values.push(sum);
            e.magnitude.push(magnitude);
            e.terms.push(terms);
        }
    }
    e
}

impl<T: Element> HeadCall<T> {
    fn sizes(&self) -> (usize, usize, usize) {
        (
            self.hidden.dims()[0],
            self.hidden.dims()[1],
            self.weight.dims()[0],
        )
    }

    fn logits(&self) -> Expected {
        let (n, d, v) = self.sizes();
        let (h, w) = (wide(&self.hidden), wide(&self.weight));
        sums([n, v], ["n_tokens", "vocab_size"], d, |r, c, k| {
            h[r * d + k] * w[c * d + k]
        })
    }

    fn grad_hidden(&self) -> Expected {
        let (n, d, v) = self.sizes();
        let (g, w) = (wide(&self.grad_logits), wide(&self.weight));
        sums([n, d], ["n_tokens", "n_embd"], v, |r, c, j| {
            g[r * v + j] * w[j * d + c]
        })
    }

    fn grad_weight(&self) -> Expected {
        let (n, d, v) = self.sizes();
        let (g, h) = (wide(&self.grad_logits), wide(&self.hidden));
        sums([v, d], ["vocab_size", "n_embd"], n, |r, c, t| {
            g[t * v + r] * h[t * d + c]
        })
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        show_tensor(&mut out, "hidden", &self.hidden);
        show_tensor(&mut out, "weight", &self.weight);
        show_tensor(&mut out, "grad_logits", &self.grad_logits);
        out
    }
}

/// One case of a logits check.
type CaseTest<'a, T> = dyn Fn(&HeadCall<T>) -> Result<Errors, String> + 'a;

impl Kit {
    /// Checks the output projection in every declared dtype: transformers' tied-logits
    /// vectors (`f64`) and generated cases, with the backward when declared. The tolerance
    /// grows with the reduction length (`n_embd` for a logit).
    pub fn check_logits<A: LogitsAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        if !caps.backward {
            self.report
                .skipped
                .push("logits backward: not declared".to_owned());
        }
        for dtype in self.declared_dtypes("logits", &caps) {
            with_dtype!(dtype, T => self.logits_in::<T, A>(adapter, &caps));
        }
        self
    }

    fn logits_in<T: Element, A: LogitsAdapter>(&mut self, adapter: &A, caps: &Capabilities) {
        let tolerance = caps.tolerance(T::DTYPE);
        let forward = |call: &HeadCall<T>| -> Result<Errors, String> {
            let got = adapter
                .logits(&call.hidden, &call.weight)
                .map_err(|e| format!("adapter error: {e}"))?;
            compare("logits", &got, &call.logits(), tolerance, false)
        };
        let backward = |call: &HeadCall<T>| -> Result<Errors, String> {
            let (grad_hidden, grad_weight) = adapter
                .logits_backward(&call.hidden, &call.weight, &call.grad_logits)
                .map_err(|e| format!("adapter error: {e}"))?;
            let mut errors = compare(
                "grad_hidden",
                &grad_hidden,
                &call.grad_hidden(),
                tolerance,
                false,
            )?;
            errors.merge(compare(
                "grad_weight",
                &grad_weight,
                &call.grad_weight(),
                tolerance,
                false,
            )?);
            Ok(errors)
        };
        let runs: [(&str, &CaseTest<'_, T>); 2] =
            [("logits", &forward), ("logits backward", &backward)];
        for (name, run) in runs.into_iter().take(if caps.backward { 2 } else { 1 }) {
            let mut check = Check::new(format!("{name} {}", T::DTYPE));
            check.generated(
                self,
                &head_raw(),
                |raw| raw.call::<T>().describe(),
                |raw| run(&raw.call::<T>()),
            );
            if T::DTYPE == DType::F64 {
                check.fixed(self.report.seed, "tied_logits_f64", || {
                    let case = embedded("tied_logits_f64");
                    let (e_dims, e) = case.tensor("inputs/E");
                    let (h_dims, h) = case.tensor("inputs/h");
                    let (_, g) = case.tensor("inputs/grad_logits");
                    let n = h_dims[..h_dims.len() - 1].iter().product::<usize>();
                    let call = HeadCall::<T> {
                        hidden: tensor_of(&h, &[n, e_dims[1]]),
                        weight: tensor_of(&e, &e_dims),
                        grad_logits: tensor_of(&g, &[n, e_dims[0]]),
                    };
                    // transformers' numbers must also be what the exact sums give
                    let (_, want) = case.tensor("expected/logits");
                    let exact = call.logits();
                    let drift = exact
                        .values
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    if drift > case.f64("tolerance/abs") {
                        return Err(format!(
                            "the reference file disagrees with the exact logits by {drift:e}"
                        ));
                    }
                    run(&call)
                });
            }
            self.report.checks.push(check.report);
        }
    }
}
