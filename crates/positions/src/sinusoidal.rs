//! The sinusoidal absolute encoding of Vaswani et al. (2017), §3.5.

use tokenloom_tensor::{Element, Tensor, try_filled};

use crate::error::PositionError;

/// The Vaswani sinusoidal table `(max_positions, n_embd)`:
/// `PE[p, 2i] = sin(p / base^(2i/n_embd))` and `PE[p, 2i+1] = cos(p / base^(2i/n_embd))`
/// (sin at even columns, cos at odd columns; an odd `n_embd` has one more sin column),
/// with `base = 10000` in the paper.
///
/// Angles are computed in `f64` and rounded once to `T`, as HuggingFace's DistilBERT
/// table does. This encoding is *added* to the token embeddings; RoPE is not (it rotates
/// q/k inside attention).
///
/// # Shapes
///
/// output: `(max_positions, n_embd)`
///
/// # Errors
///
/// [`PositionError::ZeroSize`] for a zero `max_positions` or `n_embd`,
/// [`PositionError::InvalidParameter`] for a `base` that is not finite and above 1, and
/// tensor errors when the table does not fit in memory.
///
/// # Examples
///
/// ```
/// use tokenloom_positions::sinusoidal_table;
///
/// let pe = sinusoidal_table::<f64>(4, 6, 10000.0)?;
/// assert_eq!(pe.dims(), &[4, 6]);
/// assert_eq!(pe.row(0)?, &[0.0, 1.0, 0.0, 1.0, 0.0, 1.0]); // position 0
/// assert_eq!(pe.row(1)?[0], 1f64.sin());
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn sinusoidal_table<T: Element>(
    max_positions: usize,
    n_embd: usize,
    base: f64,
) -> Result<Tensor<T>, PositionError> {
    if max_positions == 0 {
        return Err(PositionError::ZeroSize {
            name: "max_positions",
        });
    }
    if n_embd == 0 {
        return Err(PositionError::ZeroSize { name: "n_embd" });
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(PositionError::InvalidParameter {
            name: "base",
            value: base,
            requirement: "must be finite and greater than 1",
        });
    }
    let mut table = Tensor::from_vec(
        try_filled(
            max_positions.checked_mul(n_embd).ok_or(
                tokenloom_tensor::TensorError::ShapeOverflow {
                    dims: vec![max_positions, n_embd],
                },
            )?,
            T::zero(),
            "sinusoidal_table",
        )?,
        &[max_positions, n_embd],
    )?;
    #[allow(clippy::cast_precision_loss)] // positions and widths are far below 2^53
    let inv_freq: Vec<f64> = (0..n_embd.div_ceil(2))
        .map(|i| base.powf(-((2 * i) as f64) / n_embd as f64))
        .collect();
    for (p, row) in table.view_mut().rows_mut().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let p = p as f64;
        for (j, value) in row.iter_mut().enumerate() {
            let angle = p * inv_freq[j / 2];
            *value = T::from_f64_lossy(if j % 2 == 0 { angle.sin() } else { angle.cos() });
        }
    }
    Ok(table)
}
