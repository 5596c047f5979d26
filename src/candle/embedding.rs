//! The embedding lookup as a candle op: forward by `functional::lookup`, backward by
//! `functional::backward_dense` (padding_idx, scale_grad_by_freq, the exact sum).

use candle_core::{CpuStorage, CustomOp2, Layout, Module, Shape, Tensor};
use tokenloom_embedding::{EmbeddingError, EmbeddingOptions, functional};
use tokenloom_tensor::adapters::candle::{cpu_view, cpu_view_mut};
use tokenloom_tensor::{Accumulate, try_filled};

use super::{Float, for_float, for_ids, wrap};

/// The rows of a `(vocab_size, n_embd)` candle table selected by candle ids, as a candle
/// op with a backward: ids of shape `S` (`u32`, `i64` or `i32`) give `S + (n_embd,)`, and
/// the table's gradient is tokenloom's dense backward under `options` (`padding_idx`'s
/// row gets none, `scale_grad_by_freq` divides by each id's count, repeats are summed as
/// `options.grad_sum` says). The ids get no gradient.
///
/// Like `torch.nn.functional.embedding`, the forward ignores `padding_idx` (the row is
/// read as it is).
///
/// # Errors
///
/// A candle error wrapping [`EmbeddingError::TokenOutOfRange`] (naming the id and its
/// place), [`EmbeddingError::InvalidOption`] for a `max_norm` (it renormalises the table
/// in place, which candle's autograd cannot see: call
/// [`functional::renorm`](tokenloom_embedding::functional::renorm) on the lent table
/// first), [`EmbeddingError::PaddingIdxOutOfRange`], and dtype, device and shape errors.
pub fn embedding(
    table: &Tensor,
    ids: &Tensor,
    options: &EmbeddingOptions,
) -> candle_core::Result<Tensor> {
    check_options(table, options)?;
    table
        .contiguous()?
        .apply_op2(&ids.contiguous()?, Lookup { options: *options })
}

/// The table's shape and the options, checked as the op uses them.
fn check_options(table: &Tensor, options: &EmbeddingOptions) -> candle_core::Result<()> {
    if let Some(max_norm) = &options.max_norm {
        return Err(wrap(EmbeddingError::InvalidOption {
            name: "max_norm",
            value: max_norm.max_norm,
            requirement: "the candle op does not renormalise in place; call functional::renorm on the lent table before the lookup",
        }));
    }
    let (vocab_size, _) = table.dims2()?;
    options.validate(vocab_size).map_err(wrap)
}

/// The forward op (table, ids) → rows.
struct Lookup {
    options: EmbeddingOptions,
}

fn lookup_rows<T: Float>(
    table: &CpuStorage,
    table_layout: &Layout,
    ids: &CpuStorage,
    ids_layout: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let table = cpu_view::<T>(table, table_layout).map_err(wrap)?;
    let rows = for_ids!(ids, "ids", I => {
        let ids = cpu_view::<I>(ids, ids_layout).map_err(wrap)?;
        functional::lookup(table, ids, None).map_err(wrap)?
    });
    let (shape, data) = rows.into_parts();
    Ok((T::to_cpu_storage_owned(data), Shape::from(shape.dims())))
}

impl CustomOp2 for Lookup {
    fn name(&self) -> &'static str {
        "tokenloom-embedding"
    }

    fn cpu_fwd(
        &self,
        table: &CpuStorage,
        table_layout: &Layout,
        ids: &CpuStorage,
        ids_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        for_float!(table, "table", T => lookup_rows::<T>(table, table_layout, ids, ids_layout))
    }

    fn bwd(
        &self,
        table: &Tensor,
        ids: &Tensor,
        _rows: &Tensor,
        grad_rows: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let (vocab_size, _) = table.dims2()?;
        let grad = grad_rows.contiguous()?.apply_op2_no_bwd(
            ids,
            &LookupBackward {
                vocab_size,
                options: self.options,
            },
        )?;
        Ok((Some(grad), None))
    }
}

/// The backward op (grad_rows, ids) → the table's dense gradient.
struct LookupBackward {
    vocab_size: usize,
    options: EmbeddingOptions,
}

fn table_grad<T: Float>(
    grad_rows: &CpuStorage,
    grad_layout: &Layout,
    ids: &CpuStorage,
    ids_layout: &Layout,
    vocab_size: usize,
    options: &EmbeddingOptions,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let grad_rows = cpu_view::<T>(grad_rows, grad_layout).map_err(wrap)?;
    let n_embd = grad_layout.dims().last().copied().unwrap_or(0);
    let len = vocab_size.checked_mul(n_embd).ok_or_else(|| {
        candle_core::Error::Msg(format!(
            "a ({vocab_size}, {n_embd}) gradient overflows usize"
        ))
    })?;
    let mut grad =
        T::to_cpu_storage_owned(try_filled(len, T::zero(), "embedding gradient").map_err(wrap)?);
    let grad_layout_out = Layout::contiguous((vocab_size, n_embd));
    {
        let grad_weight = cpu_view_mut::<T>(&mut grad, &grad_layout_out).map_err(wrap)?;
        for_ids!(ids, "ids", I => {
            let ids = cpu_view::<I>(ids, ids_layout).map_err(wrap)?;
            functional::backward_dense(ids, grad_rows, grad_weight, options, Accumulate::Replace)
                .map_err(wrap)?;
        });
    }
    Ok((grad, Shape::from((vocab_size, n_embd))))
}

impl CustomOp2 for LookupBackward {
    fn name(&self) -> &'static str {
        "tokenloom-embedding-backward"
    }

    fn cpu_fwd(
        &self,
        grad_rows: &CpuStorage,
        grad_layout: &Layout,
        ids: &CpuStorage,
        ids_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        for_float!(grad_rows, "grad_rows", T => table_grad::<T>(
            grad_rows, grad_layout, ids, ids_layout, self.vocab_size, &self.options,
        ))
    }
}

/// A token-embedding module in candle-nn's style over a candle `(vocab_size, n_embd)`
/// table: [`Module::forward`] is [`embedding`] under its options, and
/// [`logits`](Embedding::logits) is the tied head.
#[derive(Clone, Debug)]
pub struct Embedding {
    table: Tensor,
    options: EmbeddingOptions,
}

impl Embedding {
    /// The module over `table` (a `candle_core::Var`'s tensor trains it).
    ///
    /// # Errors
    ///
    /// A candle error for a table that is not `(vocab_size, n_embd)`, and the wrapped
    /// [`EmbeddingError`] for options the table does not satisfy (a `padding_idx` past
    /// `vocab_size`, a `max_norm`).
    pub fn new(table: Tensor, options: EmbeddingOptions) -> candle_core::Result<Self> {
        check_options(&table, &options)?;
        Ok(Self { table, options })
    }

    /// A `(vocab_size, n_embd)` table named `weight` from a candle-nn `VarBuilder`
    /// (created with candle-nn's default embedding init, `N(0, 1)`, when the builder makes
    /// variables), as `candle_nn::embedding` builds its own.
    ///
    /// # Errors
    ///
    /// As [`new`](Embedding::new), and the builder's errors.
    #[cfg(feature = "candle-nn")]
    pub fn from_var_builder(
        vocab_size: usize,
        n_embd: usize,
        options: EmbeddingOptions,
        vb: candle_nn::VarBuilder<'_>,
    ) -> candle_core::Result<Self> {
        let init = candle_nn::Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Self::new(
            vb.get_with_hints((vocab_size, n_embd), "weight", init)?,
            options,
        )
    }

    /// The `(vocab_size, n_embd)` table.
    #[must_use]
    pub fn table(&self) -> &Tensor {
        &self.table
    }

    /// The options the lookup and its backward use.
    #[must_use]
    pub fn options(&self) -> &EmbeddingOptions {
        &self.options
    }

    /// The tied head: `hidden (…, n_embd) → logits (…, vocab_size)` over this table, its
    /// gradient meeting the lookup's in the table's (see [`logits`](super::logits)).
    ///
    /// # Errors
    ///
    /// As [`logits`](super::logits).
    pub fn logits(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        super::logits(hidden, &self.table, 1.0)
    }
}

impl Module for Embedding {
    fn forward(&self, ids: &Tensor) -> candle_core::Result<Tensor> {
        embedding(&self.table, ids, &self.options)
    }
}
