//! What the head applies after the projection `hidden · Wᵀ`: a bias (Phi, GPT-J), then
//! the [`LogitTransform`] (multiplier, divisor, softcapping), each step rounded to `T` as
//! PyTorch's f32 (or f64) arithmetic does; and the backward of both.

use tokenloom_tensor::Element;

use crate::spec::LogitTransform;

/// `logits[r, v] += bias[v]` for every row.
pub(crate) fn add_bias<T: Element>(logits: &mut [T], bias: &[T]) {
    for row in logits.chunks_exact_mut(bias.len()) {
        for (x, &b) in row.iter_mut().zip(bias) {
            *x = T::from_f64_lossy(x.as_f64() + b.as_f64());
        }
    }
}

/// `grad_bias[v] += Σ_r grad_logits[r, v]`, summed in f64.
pub(crate) fn bias_grad<T: Element>(grad_logits: &[T], grad_bias: &mut [T]) {
    let width = grad_bias.len();
    let mut sums: Vec<f64> = grad_bias.iter().map(|g| g.as_f64()).collect();
    for row in grad_logits.chunks_exact(width) {
        for (s, &g) in sums.iter_mut().zip(row) {
            *s += g.as_f64();
        }
    }
    for (g, s) in grad_bias.iter_mut().zip(sums) {
        *g = T::from_f64_lossy(s);
    }
}

/// The scalars in the precision PyTorch computes them: f32 for f32 and half tensors
/// (a Python float times an f32 tensor is an f32 product), f64 for f64.
fn scalar<T: Element>(x: f64) -> f64 {
    if T::DTYPE == tokenloom_tensor::DType::F64 {
        x
    } else {
        // the rounding PyTorch applies to a Python scalar for an f32 op
        #[allow(clippy::cast_possible_truncation)]
        let x32 = x as f32;
        f64::from(x32)
    }
}

/// Rounds to `T` after each step, as the modeling code's separate tensor ops do.
fn step<T: Element>(x: f64) -> f64 {
    T::from_f64_lossy(x).as_f64()
}

/// Applies `transform` in place: × multiplier, ÷ divisor, then `cap · tanh(x / cap)`.
pub(crate) fn apply<T: Element>(logits: &mut [T], transform: &LogitTransform) {
    if transform.is_identity() {
        return;
    }
    let multiplier = transform.multiplier.map(scalar::<T>);
    let divisor = transform.divisor.map(scalar::<T>);
    let cap = transform.softcap.map(scalar::<T>);
    for x in logits.iter_mut() {
        let mut v = x.as_f64();
        if let Some(m) = multiplier {
            v = step::<T>(v * m);
        }
        if let Some(d) = divisor {
            v = step::<T>(v / d);
        }
        if let Some(c) = cap {
            v = step::<T>(step::<T>(step::<T>(v / c).tanh()) * c);
        }
        *x = T::from_f64_lossy(v);
    }
}

/// The gradient of the projection's output from the gradient of the transformed logits:
/// `grad · multiplier / divisor · (1 − tanh²(z / cap))`, with `z` the logits after
/// multiplier and divisor, recomputed from `raw` (the projection's output) when there is
/// softcapping.
pub(crate) fn backward<T: Element>(grad: &mut [T], raw: Option<&[T]>, transform: &LogitTransform) {
    if transform.is_identity() {
        return;
    }
    let multiplier = transform.multiplier.map_or(1.0, scalar::<T>);
    let divisor = transform.divisor.map_or(1.0, scalar::<T>);
    let linear = multiplier / divisor;
    match (transform.softcap.map(scalar::<T>), raw) {
        (Some(cap), Some(raw)) => {
            for (g, &r) in grad.iter_mut().zip(raw) {
                let z = r.as_f64() * linear;
                let t = (z / cap).tanh();
                *g = T::from_f64_lossy(g.as_f64() * linear * (1.0 - t * t));
            }
        }
        _ => {
            for g in grad.iter_mut() {
                *g = T::from_f64_lossy(g.as_f64() * linear);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softcap_bounds_and_backward_matches_a_finite_difference() {
        let t = LogitTransform {
            multiplier: Some(0.5),
            divisor: Some(2.0),
            softcap: Some(3.0),
        };
        let raw = [-100.0f64, -1.0, 0.0, 0.7, 40.0];
        let mut out = raw;
        apply(&mut out, &t);
        assert!(out.iter().all(|x| x.abs() <= 3.0));
        let mut grad = [1.0f64; 5];
        backward(&mut grad, Some(&raw), &t);
        for (i, &r) in raw.iter().enumerate() {
            let h = 1e-6;
            let (mut a, mut b) = ([r + h], [r - h]);
            apply(&mut a, &t);
            apply(&mut b, &t);
            let fd = (a[0] - b[0]) / (2.0 * h);
            assert!((fd - grad[i]).abs() < 1e-6, "{i}: {fd} vs {}", grad[i]);
        }
    }

    #[test]
    fn bias_is_added_to_every_row_and_its_gradient_sums_rows() {
        let mut logits = [1.0f32, 2.0, 3.0, 4.0];
        add_bias(&mut logits, &[10.0, 20.0]);
        assert_eq!(logits, [11.0, 22.0, 13.0, 24.0]);
        let mut g = [1.0f32, 0.0];
        bias_grad(&[1.0, 2.0, 3.0, 4.0], &mut g);
        assert_eq!(g, [5.0, 6.0]);
    }
}
