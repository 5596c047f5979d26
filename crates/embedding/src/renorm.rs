//! `max_norm`: PyTorch's in-place renormalisation, as an explicit step.

use tokenloom_tensor::{Element, TensorView};

use crate::error::EmbeddingError;
use crate::lookup::check_ids;
use crate::options::MaxNorm;
use crate::table::Embedding;

/// Scales `row` in place if its norm exceeds the limit; returns whether it did.
pub(crate) fn renorm_row<T: Element>(row: &mut [T], max_norm: &MaxNorm) -> bool {
    let norm = max_norm.norm_type.norm(row.iter().map(|x| x.as_f64()));
    match max_norm.scale_for(norm) {
        Some(scale) => {
            for x in row.iter_mut() {
                *x = T::from_f64_lossy(x.as_f64() * scale);
            }
            true
        }
        None => false,
    }
}

impl<T: Element> Embedding<T> {
    /// PyTorch's `max_norm` side effect, made explicit: every row referenced by `ids`
    /// whose norm exceeds `max_norm` is scaled in the weight by `max_norm / (norm + 1e-7)`,
    /// once per distinct id. Returns the renormalised rows, sorted. Does nothing (and
    /// returns no rows) when no `max_norm` is set.
    ///
    /// [`forward`](Embedding::forward) never modifies the table: with `max_norm` set it
    /// returns the rows as they would be after this step, so its output equals
    /// PyTorch's. Call this before or after the forward, at a point of your choosing, to
    /// keep the weight in sync with PyTorch; a gradient computed before it stays valid,
    /// because PyTorch's backward also treats the renormalised weight as a constant.
    ///
    /// # Errors
    ///
    /// The id errors of [`check_ids`], and [`EmbeddingError::Frozen`] when the table is
    /// frozen and a `max_norm` is set.
    pub fn renorm_in_place<'a>(
        &mut self,
        ids: impl Into<TensorView<'a, u32>>,
    ) -> Result<Vec<u32>, EmbeddingError> {
        let ids = ids.into();
        check_ids(ids, self.vocab_size(), self.n_embd())?;
        let Some(max_norm) = self.options().max_norm else {
            return Ok(Vec::new());
        };
        self.check_trainable("renorm_in_place")?;
        let mut distinct: Vec<u32> = ids.as_slice().to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let n_embd = self.n_embd();
        let weight = self.weight_data_unchecked();
        Ok(distinct
            .into_iter()
            .filter(|&id| {
                renorm_row(
                    &mut weight[id as usize * n_embd..(id as usize + 1) * n_embd],
                    &max_norm,
                )
            })
            .collect())
    }
}
