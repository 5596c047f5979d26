//! Converting q/k projection weights between RoPE pair layouts.

use tokenloom_tensor::{Tensor, TensorLike, TensorLikeMut, try_filled};

use super::config::RopeLayout;
use crate::error::PositionError;

/// Permutes the output rows of a q or k projection weight (or bias) from one pair layout
/// to the other, head by head, so that attention scores are unchanged when the matching
/// RoPE layout is used.
///
/// Within the first `rotary_dim` rows of each head, interleaved → half-split maps row
/// `2i + j` to row `j·rotary_dim/2 + i` (HuggingFace's `convert_llama_weights_to_hf`
/// `permute`); half-split → interleaved is the inverse. Rows past `rotary_dim` stay put.
/// For grouped-query attention, convert q with `n_heads` and k with `n_kv_heads`.
///
/// # Shapes
///
/// `weight`: `(n_heads · head_dim, n_embd)` (a PyTorch `Linear` weight) or
/// `(n_heads · head_dim,)` (a bias); the output has the same shape.
///
/// # Errors
///
/// [`PositionError::WeightRows`] when the rows do not split into `n_heads` heads of
/// `head_dim`, and [`PositionError::InvalidRotaryDim`] for an odd or too-large
/// `rotary_dim`.
///
/// # Examples
///
/// ```
/// use tokenloom_positions::{RopeLayout, convert_qk_layout};
/// use tokenloom_tensor::Tensor;
///
/// // One head of 4 rows: interleaved pairs (0,1), (2,3) become half-split (0,2), (1,3).
/// let w = Tensor::from_vec(vec![0.0f32, 1.0, 2.0, 3.0], &[4])?;
/// let hf = convert_qk_layout(w.view(), "q_proj", 1, 4, 4, RopeLayout::Interleaved, RopeLayout::HalfSplit)?;
/// assert_eq!(hf.as_slice(), &[0.0, 2.0, 1.0, 3.0]);
/// # Ok::<(), tokenloom_positions::PositionError>(())
/// ```
pub fn convert_qk_layout<'w, T: Copy + Default + 'static>(
    weight: impl TensorLike<'w, T>,
    name: &'static str,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    from: RopeLayout,
    to: RopeLayout,
) -> Result<Tensor<T>, PositionError> {
    let weight = weight.try_view()?;
    let mut out = Tensor::from_shape_vec(
        try_filled(
            weight.shape().elem_count(),
            T::default(),
            "convert_qk_layout",
        )?,
        weight.shape(),
    )?;
    convert_qk_layout_into(
        weight, &mut out, name, n_heads, head_dim, rotary_dim, from, to,
    )?;
    Ok(out)
}

/// [`convert_qk_layout`] between two borrowed buffers of the same shape: `src` as stored
/// in `from`'s layout, `dst` receiving `to`'s.
///
/// # Errors
///
/// As [`convert_qk_layout`], and [`PositionError::OutputShape`] when `dst`'s shape is not
/// `src`'s.
#[allow(clippy::too_many_arguments)] // the heads, their width and both layouts are all needed
pub fn convert_qk_layout_into<'s, 'd, T: Copy + 'static>(
    src: impl TensorLike<'s, T>,
    dst: impl TensorLikeMut<'d, T>,
    name: &'static str,
    n_heads: usize,
    head_dim: usize,
    rotary_dim: usize,
    from: RopeLayout,
    to: RopeLayout,
) -> Result<(), PositionError> {
    let (src, mut dst) = (src.try_view()?, dst.try_view_mut()?);
    let shape = src.shape();
    let rows = shape.dims().first().copied().unwrap_or(0);
    if shape.rank() == 0
        || shape.rank() > 2
        || n_heads.checked_mul(head_dim) != Some(rows)
        || rows == 0
    {
        return Err(PositionError::WeightRows {
            name,
            shape,
            n_heads,
            head_dim,
        });
    }
    if rotary_dim < 2 || !rotary_dim.is_multiple_of(2) || rotary_dim > head_dim {
        return Err(PositionError::InvalidRotaryDim {
            rotary_dim,
            head_dim,
        });
    }
    if dst.shape() != shape {
        return Err(PositionError::OutputShape {
            what: "dst",
            expected: shape,
            got: dst.shape(),
        });
    }
    let row_len = shape.elem_count() / rows;
    let src = src.as_slice();
    let out = dst.as_mut_slice();
    out.copy_from_slice(src);
    if from != to {
        let half = rotary_dim / 2;
        for head in 0..n_heads {
            for i in 0..half {
                for j in 0..2 {
                    let interleaved = head * head_dim + 2 * i + j;
                    let half_split = head * head_dim + j * half + i;
                    let (src_row, dst_row) = match to {
                        RopeLayout::HalfSplit => (interleaved, half_split),
                        RopeLayout::Interleaved => (half_split, interleaved),
                    };
                    out[dst_row * row_len..(dst_row + 1) * row_len]
                        .copy_from_slice(&src[src_row * row_len..(src_row + 1) * row_len]);
                }
            }
        }
    }
    Ok(())
}
