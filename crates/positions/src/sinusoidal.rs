//! The sinusoidal absolute encoding of Vaswani et al. (2017), §3.5.

use tokenloom_tensor::{Element, Shape, Tensor, TensorLikeMut, try_filled};

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
    sinusoidal_into(&mut table, base, 0)?;
    Ok(table)
}

/// The rows `first_position ..` of [`sinusoidal_table`] written into a caller's
/// `(rows, n_embd)` buffer, computed exactly as the table is (`f64` angles, one
/// rounding).
///
/// # Errors
///
/// [`PositionError::OutputShape`] for a buffer that is not rank 2,
/// [`PositionError::ZeroSize`] for a zero `n_embd`, [`PositionError::InvalidParameter`]
/// for a `base` that is not finite and above 1, and tensor errors for a buffer that is
/// not contiguous and row-major.
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{sinusoidal_into, sinusoidal_table};
///
/// let mut rows = vec![0.0f32; 2 * 6]; // the caller's buffer for positions 2 and 3
/// sinusoidal_into((&mut rows[..], [2, 6]), 10000.0, 2)?;
/// let table = sinusoidal_table::<f32>(4, 6, 10000.0)?;
/// assert_eq!(&rows[..], &table.as_slice()[12..]);
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn sinusoidal_into<'o, T: Element>(
    out: impl TensorLikeMut<'o, T>,
    base: f64,
    first_position: usize,
) -> Result<(), PositionError> {
    let mut out = out.try_view_mut()?;
    let shape = out.shape();
    let Ok((_, n_embd)) = shape.dims2("sinusoidal") else {
        return Err(PositionError::OutputShape {
            what: "sinusoidal table",
            expected: Shape::new(&[shape.dims().first().copied().unwrap_or(0), 0])?,
            got: shape,
        });
    };
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
    #[allow(clippy::cast_precision_loss)] // positions and widths are far below 2^53
    let inv_freq: Vec<f64> = (0..n_embd.div_ceil(2))
        .map(|i| base.powf(-((2 * i) as f64) / n_embd as f64))
        .collect();
    for (p, row) in out.rows_mut().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let p = (first_position + p) as f64;
        for (j, value) in row.iter_mut().enumerate() {
            let angle = p * inv_freq[j / 2];
            *value = T::from_f64_lossy(if j % 2 == 0 { angle.sin() } else { angle.cos() });
        }
    }
    Ok(())
}
