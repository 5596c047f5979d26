//! `max_norm`: PyTorch's in-place renormalisation, as an explicit step.

use tokenloom_tensor::{Element, TensorLike, TokenId};

use crate::error::EmbeddingError;
use crate::lookup::{check_ids, renorm};
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
    /// once per distinct id ([`renorm`](crate::functional::renorm) on the table). Returns
    /// the renormalised rows, sorted. Does nothing (and returns no rows) when no
    /// `max_norm` is set.
    ///
    /// [`forward`](Embedding::forward) never modifies the table: with `max_norm` set it
    /// returns the rows as they would be after this step, so its output equals
    /// PyTorch's. Call this before or after the forward, at a point of your choosing, to
    /// keep the weight in sync with PyTorch; a gradient computed before it stays valid,
    /// because PyTorch's backward also treats the renormalised weight as a constant.
    ///
    /// # Errors
    ///
    /// The id errors of [`check_ids`](crate::check_ids), and [`EmbeddingError::Frozen`]
    /// when the table is frozen and a `max_norm` is set.
    pub fn renorm_in_place<'a, I: TokenId>(
        &mut self,
        ids: impl TensorLike<'a, I>,
    ) -> Result<Vec<usize>, EmbeddingError> {
        let ids = ids.try_view()?;
        check_ids(ids, self.vocab_size(), self.n_embd())?;
        let Some(max_norm) = self.options().max_norm else {
            return Ok(Vec::new());
        };
        self.check_trainable("renorm_in_place")?;
        let shape = self.weight().shape();
        renorm((self.weight_data_unchecked(), shape), ids, &max_norm)
    }
}
