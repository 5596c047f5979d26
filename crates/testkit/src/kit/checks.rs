//! The lookup and embedding-backward checks.

use tokenloom_embedding::{EmbeddingOptions, functional};
use tokenloom_tensor::{Accumulate, DType, Element, Tensor};

use super::adapter::{BackwardAdapter, BackwardOptions, Capabilities, LookupAdapter};
use super::cases::{
    BackwardRaw, LookupRaw, backward_raw, lookup_raw, show, show_tensor, tensor_of,
};
use super::runner::Check;
use super::tolerance::{Errors, Expected, compare, coordinate};
use super::{Kit, with_dtype};
use crate::reference::embedded;

const LOOKUP_AXES: [&str; 3] = ["batch", "seq_len", "n_embd"];
const GRAD_AXES: [&str; 2] = ["vocab_size", "n_embd"];

/// The rows of `weight` selected by `ids`, exactly (a copy).
fn lookup_expected<T: Element>(weight: &Tensor<T>, ids: &Tensor<u32>) -> Expected {
    let n_embd = weight.dims()[1];
    let mut values = Vec::with_capacity(ids.as_slice().len() * n_embd);
    for &id in ids.as_slice() {
        let row = &weight.as_slice()[id as usize * n_embd..][..n_embd];
        values.extend(row.iter().map(|x| x.as_f64()));
    }
    let n = values.len();
    let mut dims = ids.dims().to_vec();
    dims.push(n_embd);
    Expected {
        dims,
        axes: LOOKUP_AXES.to_vec(),
        magnitude: values.iter().map(|v| v.abs()).collect(),
        values,
        terms: vec![1; n],
    }
}

fn describe_lookup<T: Element>(raw: &LookupRaw, invalid: bool) -> String {
    let mut out = String::new();
    show_tensor(&mut out, "weight", &raw.weight::<T>());
    let ids = raw.ids(invalid);
    show(&mut out, "ids", ids.dims(), ids.as_slice());
    out
}

/// The gradient tokenloom computes in `f64` for `grad_output` (widened), and the same
/// for `|grad_output|` (the magnitude of every sum).
fn backward_expected<T: Element>(
    vocab_size: usize,
    ids: &Tensor<u32>,
    grad_output: &Tensor<T>,
    options: &BackwardOptions,
) -> Result<Expected, String> {
    let n_embd = grad_output.dims()[2];
    let opts = EmbeddingOptions {
        padding_idx: options.padding_idx.map(|p| p as usize),
        scale_grad_by_freq: options.scale_grad_by_freq,
        ..EmbeddingOptions::default()
    };
    let wide: Vec<f64> = grad_output.as_slice().iter().map(|x| x.as_f64()).collect();
    let abs: Vec<f64> = wide.iter().map(|x| x.abs()).collect();
    let mut sums = Vec::new();
    for g in [wide, abs] {
        let mut grad_weight = vec![0.0f64; vocab_size * n_embd];
        functional::backward_dense(
            ids,
            (&g[..], grad_output.dims()),
            (&mut grad_weight[..], [vocab_size, n_embd]),
            &opts,
            Accumulate::Replace,
        )
        .map_err(|e| format!("tokenloom's reference backward failed: {e}"))?;
        sums.push(grad_weight);
    }
    let mut counts = vec![0usize; vocab_size];
    for &id in ids.as_slice() {
        counts[id as usize] += 1;
    }
    let magnitude = sums.pop().unwrap_or_default();
    Ok(Expected {
        dims: vec![vocab_size, n_embd],
        axes: GRAD_AXES.to_vec(),
        values: sums.pop().unwrap_or_default(),
        magnitude,
        terms: counts
            .iter()
            .flat_map(|&c| std::iter::repeat_n(c, n_embd))
            .collect(),
    })
}

impl Kit {
    /// Checks a lookup in every declared dtype: PyTorch's reference vectors, generated
    /// cases (edge ids, repeats), bit-exact; and, unless declared otherwise, that an id
    /// `≥ vocab_size` is refused.
    pub fn check_lookup<A: LookupAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        for dtype in self.declared_dtypes("lookup", &caps) {
            with_dtype!(dtype, T => self.lookup_in::<T, A>(adapter, &caps));
        }
        self
    }

    fn lookup_in<T: Element, A: LookupAdapter>(&mut self, adapter: &A, caps: &Capabilities) {
        let seed = self.report.seed;
        let mut check = Check::new(format!("lookup {}", T::DTYPE));
        let run = |weight: &Tensor<T>, ids: &Tensor<u32>| -> Result<Errors, String> {
            let got = adapter
                .lookup(weight, ids)
                .map_err(|e| format!("adapter error: {e}"))?;
            let want = lookup_expected(weight, ids);
            compare("output", &got, &want, caps.tolerance(T::DTYPE), true)
        };
        check.generated(
            self,
            &lookup_raw(),
            |raw| describe_lookup::<T>(raw, false),
            |raw| run(&raw.weight::<T>(), &raw.ids(false)),
        );
        // The reference vectors after the generated cases, which shrink to a small case.
        for name in ["emb_fwd_basic_f64", "emb_fwd_odd_batch_repeated_f64"] {
            check.fixed(seed, name, || {
                let case = embedded(name);
                let (w_dims, w) = case.tensor("inputs/weight");
                let (ids_dims, ids) = case.ids("inputs/ids");
                let weight = tensor_of::<T>(&w, &w_dims);
                let ids = Tensor::from_vec(ids, &ids_dims).map_err(|e| e.to_string())?;
                run(&weight, &ids)
            });
        }
        self.report.checks.push(check.report);
        if !caps.rejects_invalid_ids {
            self.report.skipped.push(format!(
                "lookup {} of ids ≥ vocab_size: declared unchecked",
                T::DTYPE
            ));
            return;
        }
        let mut check = Check::new(format!("lookup {} refuses bad ids", T::DTYPE));
        check.generated(
            self,
            &lookup_raw(),
            |raw| describe_lookup::<T>(raw, true),
            |raw| {
                let (weight, ids) = (raw.weight::<T>(), raw.ids(true));
                match adapter.lookup(&weight, &ids) {
                    Err(_) => Ok(Errors::default()),
                    Ok(_) => {
                        let at = ids.as_slice().iter().position(|&i| i as usize >= raw.vocab_size).unwrap_or(0);
                        Err(format!(
                            "id {} at {} is outside vocab_size {}, and the lookup returned a result instead of an error",
                            ids.as_slice()[at],
                            coordinate(at, ids.dims(), &LOOKUP_AXES[..2]),
                            raw.vocab_size
                        ))
                    }
                }
            },
        );
        self.report.checks.push(check.report);
    }

    /// Checks a dense embedding backward in every declared dtype: PyTorch's reference
    /// gradients (`f64`) and generated cases with many repeated ids, with `padding_idx`
    /// and `scale_grad_by_freq` when declared, against tokenloom's exact sums.
    pub fn check_embedding_backward<A: BackwardAdapter>(&mut self, adapter: &A) -> &mut Self {
        let caps = adapter.capabilities();
        for (declared, what) in [
            (caps.padding_idx, "padding_idx"),
            (caps.scale_grad_by_freq, "scale_grad_by_freq"),
        ] {
            if !declared {
                self.report
                    .skipped
                    .push(format!("embedding backward with {what}: not declared"));
            }
        }
        for dtype in self.declared_dtypes("embedding backward", &caps) {
            with_dtype!(dtype, T => self.backward_in::<T, A>(adapter, &caps));
        }
        self
    }

    fn backward_in<T: Element, A: BackwardAdapter>(&mut self, adapter: &A, caps: &Capabilities) {
        let seed = self.report.seed;
        let tolerance = caps.tolerance(T::DTYPE);
        let mut check = Check::new(format!("embedding backward {}", T::DTYPE));
        let options_of = |raw: &BackwardRaw| BackwardOptions {
            padding_idx: raw.padding.filter(|_| caps.padding_idx),
            scale_grad_by_freq: raw.scale_grad_by_freq && caps.scale_grad_by_freq,
        };
        check.generated(
            self,
            &backward_raw(),
            |raw| {
                let mut out = String::new();
                let ids = raw.ids();
                show(&mut out, "ids", ids.dims(), ids.as_slice());
                show_tensor(&mut out, "grad_output", &raw.grad_output::<T>());
                out.push_str(&format!(
                    "  vocab_size {}, {:?}\n",
                    raw.vocab_size,
                    options_of(raw)
                ));
                out
            },
            |raw| {
                let (ids, grad, options) = (raw.ids(), raw.grad_output::<T>(), options_of(raw));
                let got = adapter
                    .backward(raw.vocab_size, &ids, &grad, &options)
                    .map_err(|e| format!("adapter error: {e}"))?;
                let expected = backward_expected(raw.vocab_size, &ids, &grad, &options)?;
                compare("weight gradient", &got, &expected, tolerance, false)
            },
        );
        if T::DTYPE == DType::F64 {
            for name in ["emb_backward_dense_f64", "emb_fwd_odd_batch_repeated_f64"] {
                check.fixed(seed, name, || {
                    let case = embedded(name);
                    let (w_dims, _) = case.tensor("inputs/weight");
                    let (ids_dims, ids) = case.ids("inputs/ids");
                    let (g_dims, g) = case.tensor("inputs/grad_output");
                    let (_, want) = case.tensor("expected/grad_weight");
                    let ids = Tensor::from_vec(ids, &ids_dims).map_err(|e| e.to_string())?;
                    let grad = tensor_of::<T>(&g, &g_dims);
                    let options = BackwardOptions::default();
                    let got = adapter
                        .backward(w_dims[0], &ids, &grad, &options)
                        .map_err(|e| format!("adapter error: {e}"))?;
                    let mut expected = backward_expected(w_dims[0], &ids, &grad, &options)?;
                    expected.values = want;
                    compare("weight gradient", &got, &expected, tolerance, false)
                });
            }
        }
        self.report.checks.push(check.report);
    }
}
