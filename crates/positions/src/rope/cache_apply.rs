//! The [`RopeCache`] methods that rotate q/k tensors: [`RopeTables`]' rotations on the
//! cache's own tables, after checking that the heads are the cache's `head_dim` wide.

use tokenloom_tensor::{Element, Shape, Tensor, TensorLike, TensorLikeMut, try_filled};

#[cfg(doc)]
use super::apply::RopeTables;
use super::apply::{Direction, QkLayout, TokenPositions};
use super::cache::{CacheFloat, RopeCache};
use crate::error::PositionError;

impl<C: CacheFloat> RopeCache<C> {
    /// A q/k tensor must have this cache's `head_dim` innermost.
    fn check_head_dim(&self, shape: Shape, layout: QkLayout) -> Result<(), PositionError> {
        let head_dim = self.config().head_dim;
        if shape.rank() == 4 && shape.dims()[3] == head_dim {
            Ok(())
        } else {
            Err(PositionError::QkShape {
                shape,
                layout: layout.name(),
                head_dim,
            })
        }
    }

    /// [`RopeTables::rotate_in_place`] on [`tables`](RopeCache::tables), after checking
    /// that `x`'s heads are this cache's `head_dim` wide.
    ///
    /// # Shapes
    ///
    /// `x`: `(batch, seq_len, n_heads, head_dim)` or `(batch, n_heads, seq_len, head_dim)`
    /// as declared by `layout`; position ids: `(batch, seq_len)`.
    ///
    /// # Errors
    ///
    /// [`PositionError::QkShape`] for a tensor that is not rank 4 with the configured
    /// `head_dim`, and the errors of [`RopeTables::rotate_in_place`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokenloom_positions::{Direction, TokenPositions, QkLayout, RopeCache, RopeConfig, RopeLayout};
    /// use tokenloom_tensor::Tensor;
    ///
    /// let cache = RopeCache::<f32>::new(&RopeConfig::new(4, 10000.0, RopeLayout::Interleaved), 8)?;
    /// // One token, one head, q = (1, 0, 1, 0) at position 2.
    /// let mut q = Tensor::from_vec(vec![1.0f32, 0.0, 1.0, 0.0], &[1, 1, 1, 4])?;
    /// let at_2 = TokenPositions::Offset(2);
    /// cache.rotate_in_place(&mut q, QkLayout::BatchSeqHeads, at_2, Direction::Forward)?;
    /// assert_eq!(q.as_slice()[0], 2f32.cos()); // the first pair turns by 2 radians
    /// assert_eq!(q.as_slice()[1], 2f32.sin());
    /// cache.rotate_in_place(&mut q, QkLayout::BatchSeqHeads, at_2, Direction::Inverse)?;
    /// assert!((q.as_slice()[0] - 1.0).abs() < 1e-6);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rotate_in_place<'x, T: Element>(
        &self,
        x: impl TensorLikeMut<'x, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        let x = x.try_view_mut()?;
        self.check_head_dim(x.shape(), layout)?;
        self.tables()
            .rotate_in_place(x, layout, positions, direction)
    }

    /// [`RopeTables::rotate_into`] on [`tables`](RopeCache::tables), after checking
    /// that `x`'s heads are this cache's `head_dim` wide.
    ///
    /// # Errors
    ///
    /// As [`rotate_in_place`](RopeCache::rotate_in_place), and
    /// [`PositionError::OutputShape`] when `out`'s shape is not `x`'s.
    pub fn rotate_into<'x, 'o, T: Element>(
        &self,
        x: impl TensorLike<'x, T>,
        out: impl TensorLikeMut<'o, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
        direction: Direction,
    ) -> Result<(), PositionError> {
        let x = x.try_view()?;
        self.check_head_dim(x.shape(), layout)?;
        self.tables()
            .rotate_into(x, out, layout, positions, direction)
    }

    /// RoPE forward into a fresh tensor: the owned convenience over
    /// [`rotate_into`](RopeCache::rotate_into) with [`Direction::Forward`].
    ///
    /// # Errors
    ///
    /// As [`rotate_into`](RopeCache::rotate_into), and allocation errors.
    pub fn apply<'x, T: Element>(
        &self,
        x: impl TensorLike<'x, T>,
        layout: QkLayout,
        positions: TokenPositions<'_>,
    ) -> Result<Tensor<T>, PositionError> {
        let x = x.try_view()?;
        let mut out = Tensor::from_shape_vec(
            try_filled(x.shape().elem_count(), T::zero(), "RopeCache::apply")?,
            x.shape(),
        )?;
        self.rotate_into(x, &mut out, layout, positions, Direction::Forward)?;
        Ok(out)
    }
}
