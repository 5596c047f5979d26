//! [`VocabParallelEmbedding`]: each rank owns a contiguous shard of the table's rows.

use tokenloom_embedding::{EmbeddingError, EmbeddingOptions, Optimizer, check_ids, functional};
use tokenloom_tensor::{
    Accumulate, Element, Tensor, TensorLike, TensorView, TokenId, for_each_chunk_mut, try_filled,
};

use crate::agree::{Fingerprint, agree, dtype_code};
use crate::comm::Communicator;
use crate::error::DistributedError;
use crate::shard::VocabShard;

/// A `(vocab_size, n_embd)` token-embedding table split by rows over the ranks of a
/// [`Communicator`] (Megatron-LM's `VocabParallelEmbedding`): this rank holds rows
/// `shard.range()` as a `(shard.len(), n_embd)` tensor, their gradient and (through
/// [`step`](Self::step)) their optimizer state.
///
/// - Forward: every rank looks up the ids it owns and leaves the others zero, then one
///   all-reduce (bitwise OR) gives every rank the full `(batch, seq_len, n_embd)` output,
///   bit-identical to the single-process lookup.
/// - Backward: every rank accumulates the gradient rows of its shard from the replicated
///   output gradient, without communication; bit-identical to the single-process
///   gradient's rows (the same `f64` sums in position order).
///
/// Ids, and the output gradient, must be the same on every rank (they are after the data
/// loader's broadcast and the previous layer's all-reduce); each call checks this with a
/// fingerprint in the same small collective that makes every rank agree on errors.
///
/// # Examples
///
/// ```
/// use tokenloom_distributed::{ThreadGroup, VocabParallelEmbedding};
/// use tokenloom_embedding::EmbeddingOptions;
///
/// // A (5, 2) table over 2 ranks: rank 0 owns rows 0..3, rank 1 rows 3..5.
/// let table: Vec<f32> = (0..10).map(|x| x as f32).collect();
/// let outputs = ThreadGroup::run(2, |comm| {
///     let emb = VocabParallelEmbedding::from_full(&comm, (&table[..], [5, 2]), EmbeddingOptions::default())?;
///     emb.forward(&comm, &[4u32, 0])
/// })
/// .unwrap();
/// for out in outputs {
///     assert_eq!(out?.as_slice(), &[8.0, 9.0, 0.0, 1.0]);
/// }
/// # Ok::<(), tokenloom_distributed::DistributedError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct VocabParallelEmbedding<T: Element> {
    shard: VocabShard,
    n_embd: usize,
    weight: Tensor<T>,
    grad: Tensor<T>,
    options: EmbeddingOptions,
}

impl<T: Element> VocabParallelEmbedding<T> {
    /// This rank's part of a table of `vocab_size` rows: `local_weight` holds rows
    /// `VocabShard::new(vocab_size, comm.rank(), comm.size())`, shape `(rows, n_embd)`.
    /// `options.padding_idx` is a global row id; `max_norm` is not supported across ranks.
    ///
    /// One collective checks that every rank agrees on `vocab_size`, `n_embd`, the dtype
    /// and the options.
    ///
    /// # Errors
    ///
    /// [`DistributedError::BadShard`], [`DistributedError::ShardShape`] for a local
    /// weight of the wrong shape, [`DistributedError::Unsupported`] for `max_norm`,
    /// [`EmbeddingError::PaddingIdxOutOfRange`] (in [`DistributedError::Embedding`]) for
    /// a padding row outside the vocabulary, [`DistributedError::ConfigMismatch`] when ranks disagree, and
    /// [`DistributedError::PeerFailed`] when another rank failed.
    pub fn new<C: Communicator + ?Sized>(
        comm: &C,
        vocab_size: usize,
        local_weight: Tensor<T>,
        options: EmbeddingOptions,
    ) -> Result<Self, DistributedError> {
        let n_embd = local_weight.dims().last().copied().unwrap_or(0);
        let local = Self::build(comm, vocab_size, local_weight, options);
        let config = [
            ("vocab_size", vocab_size as u64),
            ("n_embd", n_embd as u64),
            ("dtype", dtype_code::<T>()),
            (
                "padding_idx",
                options.padding_idx.map_or(0, |p| p as u64 + 1),
            ),
            ("scale_grad_by_freq", u64::from(options.scale_grad_by_freq)),
            ("n_ranks", comm.size() as u64),
        ];
        agree(comm, "construction", &config, &[], local)
    }

    fn build<C: Communicator + ?Sized>(
        comm: &C,
        vocab_size: usize,
        weight: Tensor<T>,
        options: EmbeddingOptions,
    ) -> Result<Self, DistributedError> {
        let shard = VocabShard::new(vocab_size, comm.rank(), comm.size())?;
        let n_embd = weight.dims().last().copied().unwrap_or(0);
        if weight.dims() != [shard.len(), n_embd] || n_embd == 0 {
            return Err(DistributedError::ShardShape {
                what: "local_weight",
                rows: shard.len(),
                n_embd,
                start: shard.start(),
                end: shard.end(),
                got: weight.dims().to_vec(),
            });
        }
        if options.max_norm.is_some() {
            return Err(DistributedError::Unsupported {
                what: "max_norm (renormalise the table before sharding it)",
            });
        }
        options.validate(vocab_size)?;
        let grad = Tensor::from_vec(
            try_filled(weight.as_slice().len(), T::zero(), "grad")?,
            weight.dims(),
        )?;
        Ok(Self {
            shard,
            n_embd,
            weight,
            grad,
            options,
        })
    }

    /// This rank's rows of a full `(vocab_size, n_embd)` table every rank holds (tests,
    /// or a table small enough to initialise everywhere before sharding).
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new), and [`EmbeddingError::WeightShape`] for a table that is not
    /// rank 2.
    pub fn from_full<'t, C: Communicator + ?Sized>(
        comm: &C,
        table: impl TensorLike<'t, T>,
        options: EmbeddingOptions,
    ) -> Result<Self, DistributedError> {
        let local = table
            .try_view()
            .map_err(DistributedError::from)
            .and_then(|table| slice_rows(comm, table));
        match local {
            Ok((vocab_size, rows)) => Self::new(comm, vocab_size, rows, options),
            // Keep the collective count equal on every rank: agree on the failure.
            Err(e) => agree(comm, "construction", &[], &[], Err(e)),
        }
    }

    /// The rows this rank owns.
    #[must_use]
    pub fn shard(&self) -> VocabShard {
        self.shard
    }

    /// The embedding width.
    #[must_use]
    pub fn n_embd(&self) -> usize {
        self.n_embd
    }

    /// The options (padding row as a global id).
    #[must_use]
    pub fn options(&self) -> &EmbeddingOptions {
        &self.options
    }

    /// The local rows, `(shard.len(), n_embd)`.
    #[must_use]
    pub fn weight(&self) -> &Tensor<T> {
        &self.weight
    }

    /// The local rows, mutable (an optimizer of the caller's own).
    #[must_use]
    pub fn weight_mut(&mut self) -> &mut Tensor<T> {
        &mut self.weight
    }

    /// The local gradient rows, `(shard.len(), n_embd)`.
    #[must_use]
    pub fn grad(&self) -> &Tensor<T> {
        &self.grad
    }

    /// The local gradient rows, mutable (a tied head adds its contribution here).
    #[must_use]
    pub fn grad_mut(&mut self) -> &mut Tensor<T> {
        &mut self.grad
    }

    /// The local rows and their gradient at once (a tied head reads one, adds to the other).
    pub(crate) fn weight_and_grad_mut(&mut self) -> (&Tensor<T>, &mut Tensor<T>) {
        (&self.weight, &mut self.grad)
    }

    /// Sets the local gradient to zero.
    pub fn zero_grad(&mut self) {
        self.grad.as_mut_slice().fill(T::zero());
    }

    /// The padding row as a local row, if this shard owns it.
    fn local_padding_idx(&self) -> Option<usize> {
        self.options
            .padding_idx
            .and_then(|p| self.shard.local_row(p))
    }

    /// The lookup: ids of shape `(seq_len,)` or `(batch, seq_len)`, the same on every
    /// rank, give the full `ids.shape + (n_embd,)` output on every rank.
    ///
    /// # Errors
    ///
    /// The id errors of [`check_ids`] (identical on every rank, naming batch and
    /// position), [`DistributedError::NotReplicated`] when the ranks pass different ids,
    /// and [`DistributedError::Comm`].
    pub fn forward<'i, C: Communicator + ?Sized, I: TokenId>(
        &self,
        comm: &C,
        ids: impl TensorLike<'i, I>,
    ) -> Result<Tensor<T>, DistributedError> {
        // Check the ids and allocate the output before the one agreement, so an id error
        // and an allocation failure are agreed on in the same collective.
        let checked = ids
            .try_view()
            .map_err(DistributedError::from)
            .and_then(|ids| {
                let shape = check_ids(ids, self.shard.vocab_size(), self.n_embd)?;
                let out = Tensor::from_shape_vec(
                    try_filled(shape.elem_count(), T::zero(), "vocab-parallel lookup")?,
                    shape,
                )?;
                Ok((ids, out))
            });
        let fingerprint = checked.as_ref().map_or(0, |(ids, _)| {
            Fingerprint::new()
                .dims(ids.dims())
                .ids(ids.as_slice())
                .finish()
        });
        let (ids, mut out) = agree(comm, "forward", &[], &[("token ids", fingerprint)], checked)?;
        self.lookup_local(ids, out.as_mut_slice());
        all_reduce_owned(comm, out.as_mut_slice())?;
        Ok(out)
    }

    /// Copies the rows this shard owns into `out` (all zeros), leaving the others zero.
    fn lookup_local<I: TokenId>(&self, ids: TensorView<'_, I>, out: &mut [T]) {
        let (ids, rows, n_embd) = (ids.as_slice(), self.weight.as_slice(), self.n_embd);
        for_each_chunk_mut(out, n_embd, |t, dst| {
            if let Some(local) = self.shard.local_row(ids[t].checked_index()) {
                dst.copy_from_slice(&rows[local * n_embd..(local + 1) * n_embd]);
            }
        });
    }

    /// The backward of [`forward`](Self::forward): adds (or, with
    /// [`Accumulate::Replace`], writes) the gradient of this rank's rows from the
    /// replicated `grad_output` of shape `ids.shape + (n_embd,)`. No communication
    /// besides the agreement check. `padding_idx` and `scale_grad_by_freq` act as in the
    /// single-process layer.
    ///
    /// The tokens this rank owns are first gathered into a compact list (their ids and a
    /// copy of their gradient rows, in position order), so across all ranks one copy of
    /// `grad_output` is made.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward), and [`EmbeddingError::GradShape`] for a wrongly
    /// shaped `grad_output`.
    pub fn backward<'i, 'g, C: Communicator + ?Sized, I: TokenId>(
        &mut self,
        comm: &C,
        ids: impl TensorLike<'i, I>,
        grad_output: impl TensorLike<'g, T>,
        accumulate: Accumulate,
    ) -> Result<(), DistributedError> {
        let checked = (|| {
            let ids = ids.try_view()?;
            let grad_output = grad_output.try_view()?;
            let expected = check_ids(ids, self.shard.vocab_size(), self.n_embd)?;
            if grad_output.shape() != expected {
                return Err(EmbeddingError::GradShape {
                    what: "grad_output",
                    expected,
                    got: grad_output.shape(),
                }
                .into());
            }
            Ok::<_, DistributedError>((ids, grad_output))
        })();
        let (ids_fp, grad_fp) = checked.as_ref().map_or((0, 0), |(ids, g)| {
            (
                Fingerprint::new()
                    .dims(ids.dims())
                    .ids(ids.as_slice())
                    .finish(),
                Fingerprint::new().values(g.as_slice()).finish(),
            )
        });
        let (ids, grad_output) = agree(
            comm,
            "backward",
            &[],
            &[("token ids", ids_fp), ("output gradients", grad_fp)],
            checked,
        )?;
        let n_embd = self.n_embd;
        let mut local_ids = Vec::new();
        let mut local_rows = Vec::new();
        for (t, id) in ids.as_slice().iter().enumerate() {
            if let Some(local) = self.shard.local_row(id.checked_index()) {
                local_ids.push(local as i64);
                local_rows.extend_from_slice(&grad_output.as_slice()[t * n_embd..(t + 1) * n_embd]);
            }
        }
        if local_ids.is_empty() {
            if accumulate == Accumulate::Replace {
                self.zero_grad();
            }
            return Ok(());
        }
        let options = EmbeddingOptions {
            padding_idx: self.local_padding_idx(),
            max_norm: None,
            scale_grad_by_freq: self.options.scale_grad_by_freq,
            grad_sum: self.options.grad_sum,
        };
        let count = local_ids.len();
        functional::backward_dense(
            (&local_ids[..], [count]),
            (&local_rows[..], [count, n_embd]),
            &mut self.grad,
            &options,
            accumulate,
        )?;
        Ok(())
    }

    /// One optimizer step on the local rows with the local gradient: the optimizer's
    /// state (momentum, Adam moments) is created for, and lives with, this shard only. The
    /// padding row is never updated.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::OptimizerStateMismatch`] for an optimizer used on another shape.
    pub fn step<O: Optimizer>(&mut self, optimizer: &mut O) -> Result<(), DistributedError> {
        let padding = self.local_padding_idx();
        functional::step_dense(optimizer, &mut self.weight, &self.grad, padding)?;
        Ok(())
    }
}

/// The `(vocab_size, rows of this shard)` of a full table every rank holds.
fn slice_rows<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    table: TensorView<'_, T>,
) -> Result<(usize, Tensor<T>), DistributedError> {
    let &[vocab_size, n_embd] = table.dims() else {
        return Err(EmbeddingError::WeightShape {
            shape: table.shape(),
        }
        .into());
    };
    let shard = VocabShard::new(vocab_size, comm.rank(), comm.size())?;
    let rows = &table.as_slice()[shard.start() * n_embd..shard.end() * n_embd];
    Ok((
        vocab_size,
        Tensor::from_vec(rows.to_vec(), &[shard.len(), n_embd])?,
    ))
}

/// Combines per-rank outputs in which every element is non-zero on at most its owning
/// rank: a bitwise OR of the element bits, so the owner's bits arrive exactly.
pub(crate) fn all_reduce_owned<C: Communicator + ?Sized, T: Element>(
    comm: &C,
    values: &mut [T],
) -> Result<(), DistributedError> {
    let mut bytes = tokenloom_io::encode_le(values);
    comm.all_reduce_bitor(&mut bytes)?;
    let size = T::DTYPE.size_in_bytes();
    for (v, b) in values.iter_mut().zip(bytes.chunks_exact(size)) {
        let mut raw = [0u8; 8];
        raw[..size].copy_from_slice(b);
        *v = T::from_bits64(u64::from_le_bytes(raw));
    }
    Ok(())
}
