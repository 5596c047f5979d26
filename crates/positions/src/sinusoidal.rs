//! Sinusoidal absolute encodings: Vaswani et al. (2017) §3.5, and the Marian and
//! fairseq/M2M100 variants models are ported from.

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
    Sinusoidal::new(SinusoidalVariant::Vaswani, base).table(max_positions, n_embd)
}

/// Which sinusoidal table: the frequencies and where the sines and cosines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SinusoidalVariant {
    /// Vaswani et al. §3.5 (and HuggingFace's DistilBERT): `PE[p, 2i] = sin(p·ω_i)`,
    /// `PE[p, 2i+1] = cos(p·ω_i)`, `ω_i = base^(−2i/n_embd)`; an odd `n_embd` has one
    /// more sine column.
    Vaswani,
    /// Marian / tensor2tensor (transformers' `MarianSinusoidalPositionalEmbedding`): the
    /// same frequencies, sines in the first `ceil(n_embd/2)` columns and cosines after.
    Marian,
    /// fairseq / M2M100 (transformers' `M2M100SinusoidalPositionalEmbedding`):
    /// `ω_i = exp(−i·ln(base)/(half − 1))` for `half = n_embd/2`, `[sin | cos]`, a zero
    /// last column when `n_embd` is odd. Its users zero the padding row and count real
    /// positions from `padding_idx + 1` (see [`Sinusoidal::with_zero_row`]).
    Fairseq,
}

/// A sinusoidal absolute-position table: which variant, its base, and optionally a row
/// set to zero (fairseq's padding row). Added to the token embeddings; RoPE is not.
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{Sinusoidal, SinusoidalVariant};
///
/// // M2M100's table: 1026 rows (1024 positions + the offset of 2), padding row 1 zero.
/// let m2m100 = Sinusoidal::new(SinusoidalVariant::Fairseq, 10000.0).with_zero_row(1);
/// let table = m2m100.table::<f32>(1026, 16)?;
/// assert!(table.row(1)?.iter().all(|&x| x == 0.0));
/// assert_eq!(table.row(2)?[0], 2f32.sin()); // the first real position, frequency 1
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sinusoidal {
    /// The variant.
    pub variant: SinusoidalVariant,
    /// The frequency base (10000 in every published model).
    pub base: f64,
    /// A row written as zeros (fairseq's `padding_idx`).
    pub zero_row: Option<usize>,
}

impl Sinusoidal {
    /// A table of `variant` with frequency base `base`.
    #[must_use]
    pub fn new(variant: SinusoidalVariant, base: f64) -> Self {
        Self {
            variant,
            base,
            zero_row: None,
        }
    }

    /// Writes row `row` (a table row index, not a position) as zeros, as fairseq does for
    /// its padding index.
    #[must_use]
    pub fn with_zero_row(mut self, row: usize) -> Self {
        self.zero_row = Some(row);
        self
    }

    /// The table of rows `[0, rows)`, `(rows, n_embd)`; angles in `f64`, rounded once.
    ///
    /// # Errors
    ///
    /// As [`write_into`](Sinusoidal::write_into), [`PositionError::ZeroSize`] for zero
    /// rows, and allocation errors.
    pub fn table<T: Element>(
        &self,
        rows: usize,
        n_embd: usize,
    ) -> Result<Tensor<T>, PositionError> {
        if rows == 0 {
            return Err(PositionError::ZeroSize {
                name: "max_positions",
            });
        }
        let mut table = Tensor::from_vec(
            try_filled(
                rows.checked_mul(n_embd)
                    .ok_or(tokenloom_tensor::TensorError::ShapeOverflow {
                        dims: vec![rows, n_embd],
                    })?,
                T::zero(),
                "sinusoidal_table",
            )?,
            &[rows, n_embd],
        )?;
        self.write_into(&mut table, 0)?;
        Ok(table)
    }

    /// Rows `first_row ..` of the table written into a caller's `(rows, n_embd)` buffer,
    /// computed exactly as [`table`](Sinusoidal::table) computes them.
    ///
    /// # Errors
    ///
    /// [`PositionError::OutputShape`] for a buffer that is not rank 2,
    /// [`PositionError::ZeroSize`] for a zero `n_embd`, [`PositionError::InvalidParameter`]
    /// for a `base` that is not finite and above 1 or a fairseq table narrower than 4, and
    /// tensor errors for a buffer that is not contiguous and row-major.
    pub fn write_into<'o, T: Element>(
        &self,
        out: impl TensorLikeMut<'o, T>,
        first_row: usize,
    ) -> Result<(), PositionError> {
        let mut out = out.try_view_mut()?;
        let shape = out.shape();
        let Ok((rows, n_embd)) = shape.dims2("sinusoidal") else {
            return Err(PositionError::OutputShape {
                what: "sinusoidal table",
                expected: Shape::new(&[shape.dims().first().copied().unwrap_or(0), 0])?,
                got: shape,
            });
        };
        if n_embd == 0 {
            return Err(PositionError::ZeroSize { name: "n_embd" });
        }
        let base = self.base;
        if !(base.is_finite() && base > 1.0) {
            return Err(PositionError::InvalidParameter {
                name: "base",
                value: base,
                requirement: "must be finite and greater than 1",
            });
        }
        // The last row's position must exist: no wrap-around past usize::MAX.
        if rows > 0 && first_row.checked_add(rows - 1).is_none() {
            return Err(PositionError::PositionOutOfRange {
                position: first_row,
                batch: 0,
                index: rows - 1,
                max_positions: usize::MAX,
            });
        }
        if rows == 0 {
            // Nothing to write (and an n_embd that no buffer backs is never allocated for).
            return Ok(());
        }
        // positions and widths are far below 2^53
        let (frequencies, sines): (Vec<f64>, usize) = match self.variant {
            SinusoidalVariant::Vaswani | SinusoidalVariant::Marian => (
                (0..n_embd.div_ceil(2))
                    .map(|i| base.powf(-((2 * i) as f64) / n_embd as f64))
                    .collect(),
                n_embd.div_ceil(2),
            ),
            SinusoidalVariant::Fairseq => {
                let half = n_embd / 2;
                if half < 2 {
                    return Err(PositionError::InvalidParameter {
                        name: "n_embd",
                        value: n_embd as f64,
                        requirement: "a fairseq table needs n_embd >= 4 (its frequencies divide by n_embd/2 - 1)",
                    });
                }
                let step = base.ln() / (half - 1) as f64;
                (
                    (0..half).map(|i| (-(i as f64) * step).exp()).collect(),
                    half,
                )
            }
        };
        for (r, row) in out.rows_mut().enumerate() {
            let row_index = first_row + r;
            if self.zero_row == Some(row_index) {
                row.fill(T::zero());
                continue;
            }
            let p = row_index as f64;
            for (j, value) in row.iter_mut().enumerate() {
                let (i, sine) = match self.variant {
                    SinusoidalVariant::Vaswani => (j / 2, j % 2 == 0),
                    SinusoidalVariant::Marian | SinusoidalVariant::Fairseq => {
                        if j < sines {
                            (j, true)
                        } else {
                            (j - sines, false)
                        }
                    }
                };
                *value = match frequencies.get(i) {
                    Some(&f) if sine => T::from_f64_lossy((p * f).sin()),
                    Some(&f) => T::from_f64_lossy((p * f).cos()),
                    None => T::zero(), // fairseq's odd last column
                };
            }
        }
        Ok(())
    }
}

/// The rows `first_position ..` of [`sinusoidal_table`] (Vaswani) written into a caller's
/// `(rows, n_embd)` buffer: [`Sinusoidal::write_into`] of the Vaswani variant.
///
/// # Errors
///
/// As [`Sinusoidal::write_into`].
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
    Sinusoidal::new(SinusoidalVariant::Vaswani, base).write_into(out, first_position)
}
