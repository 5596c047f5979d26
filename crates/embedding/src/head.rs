//! The output projection as [`EmbeddingAndHead`], untied or tied to the embedding, with a
//! guard against the logit blow-up that tying an N(0, 1) table causes; the kernels on
//! borrowed memory are in `logits.rs`.

use tokenloom_tensor::{Accumulate, Element, Tensor, TensorLike, TokenId, try_filled};

use crate::error::EmbeddingError;
use crate::logits::{check_logit_scale, logits, logits_backward};
use crate::table::Embedding;

/// Where the output projection's `(vocab_size, n_embd)` matrix comes from.
#[derive(Clone, Debug, PartialEq)]
enum HeadWeight<T> {
    /// Its own matrix (the default).
    Untied(Tensor<T>),
    /// The embedding's weight, shared: one parameter, one gradient, one optimizer state.
    Tied,
}

/// How a tied head is set up, and how far its initial logits may stray from unit scale.
///
/// With hidden states of std `hidden_std` per entry (≈ 1 after the final RMSNorm of a
/// LLaMA-style decoder) and a weight whose entries have RMS `weight_std`, the initial
/// logits `scale · h · E[j]` have std `logit_scale · hidden_std · weight_std · √n_embd`.
/// PyTorch's default N(0, 1) init gives `√n_embd` (64 for n_embd = 4096): softmax is
/// saturated from the first step and training is unstable. [`EmbeddingAndHead::tied`]
/// refuses such a setup with [`EmbeddingError::LogitStdTooLarge`] unless the limit is
/// raised on purpose.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TieOptions {
    /// Multiplies the logits (and their gradients). `1/√n_embd` is the usual safe choice.
    pub logit_scale: f64,
    /// The assumed std of each entry of the hidden states fed to the head.
    pub hidden_std: f64,
    /// The largest accepted expected initial logit std.
    pub max_initial_logit_std: f64,
}

impl Default for TieOptions {
    /// Logit scale 1, hidden std 1, limit 4.
    fn default() -> Self {
        Self {
            logit_scale: 1.0,
            hidden_std: 1.0,
            max_initial_logit_std: 4.0,
        }
    }
}

impl TieOptions {
    /// Logit scale `1/√n_embd`, which keeps an N(0, 1) table's initial logits at unit std.
    #[must_use]
    pub fn scaled_for(n_embd: usize) -> Self {
        let sqrt_n_embd = (n_embd as f64).sqrt();
        Self {
            logit_scale: 1.0 / sqrt_n_embd,
            ..Self::default()
        }
    }
}

/// A report of the expected std of the initial logits, see [`TieOptions`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitStdReport {
    /// `logit_scale · hidden_std · weight_std · √n_embd`.
    pub expected_logit_std: f64,
    /// The RMS of the head weight's entries.
    pub weight_std: f64,
    /// The assumed hidden std.
    pub hidden_std: f64,
    /// √n_embd.
    pub sqrt_n_embd: f64,
    /// The logit scale.
    pub logit_scale: f64,
}

/// The gradients of an [`EmbeddingAndHead`]: one buffer per parameter. When tied, there
/// is a single parameter and `head` is `None`: both the lookup and the projection add
/// into `embedding`.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingAndHeadGrads<T> {
    /// Gradient of the embedding weight `(vocab_size, n_embd)`.
    pub embedding: Tensor<T>,
    /// Gradient of an untied head's weight `(vocab_size, n_embd)`.
    pub head: Option<Tensor<T>>,
}

/// The input embedding and the output projection of a language model, untied or tied.
///
/// # Shapes
///
/// - [`lookup`](EmbeddingAndHead::lookup): ids `(batch, seq_len)` → `(batch, seq_len, n_embd)`
/// - [`logits`](EmbeddingAndHead::logits): hidden `(…, n_embd)` → `(…, vocab_size)`
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{Embedding, EmbeddingAndHead, EmbeddingError, Init, TieOptions};
///
/// // Tying an N(0, 1) table of width 64: initial logits would have std ≈ 8. Refused.
/// let table = Embedding::<f32>::seeded(100, 64, Init::default(), 0)?;
/// let err = EmbeddingAndHead::tied(table.clone(), TieOptions::default()).unwrap_err();
/// assert!(matches!(err, EmbeddingError::LogitStdTooLarge { .. }));
///
/// // With the 1/√n_embd logit scale it is fine.
/// let model = EmbeddingAndHead::tied(table, TieOptions::scaled_for(64))?;
/// let x = model.lookup(&[1, 2, 3])?;
/// let logits = model.logits(x.view())?;
/// assert_eq!(logits.dims(), &[3, 100]);
/// # Ok::<(), EmbeddingError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingAndHead<T> {
    embedding: Embedding<T>,
    head: HeadWeight<T>,
    logit_scale: f64,
}

impl<T: Element> EmbeddingAndHead<T> {
    /// An untied head with its own `(vocab_size, n_embd)` weight (the default
    /// arrangement).
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::WeightShape`] when the head weight is not the embedding's shape.
    pub fn untied(embedding: Embedding<T>, head_weight: Tensor<T>) -> Result<Self, EmbeddingError> {
        if head_weight.shape() != embedding.weight().shape() {
            return Err(EmbeddingError::WeightShape {
                shape: head_weight.shape(),
            });
        }
        Ok(Self {
            embedding,
            head: HeadWeight::Untied(head_weight),
            logit_scale: 1.0,
        })
    }

    /// A head tied to the embedding: `logits = logit_scale · h @ Eᵀ`.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::LogitStdTooLarge`] when the expected initial logit std
    /// (see [`TieOptions`]) exceeds `options.max_initial_logit_std`, and
    /// [`EmbeddingError::InvalidOption`] for a non-positive or non-finite scale, std or
    /// limit.
    pub fn tied(embedding: Embedding<T>, options: TieOptions) -> Result<Self, EmbeddingError> {
        for (name, value) in [
            ("logit_scale", options.logit_scale),
            ("hidden_std", options.hidden_std),
            ("max_initial_logit_std", options.max_initial_logit_std),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(EmbeddingError::InvalidOption {
                    name,
                    value,
                    requirement: "must be positive and finite",
                });
            }
        }
        let model = Self {
            embedding,
            head: HeadWeight::Tied,
            logit_scale: options.logit_scale,
        };
        let report = model.expected_initial_logit_std(options.hidden_std);
        if report.expected_logit_std > options.max_initial_logit_std {
            return Err(EmbeddingError::LogitStdTooLarge {
                expected_logit_std: report.expected_logit_std,
                limit: options.max_initial_logit_std,
                weight_std: report.weight_std,
                hidden_std: report.hidden_std,
                sqrt_n_embd: report.sqrt_n_embd,
                logit_scale: report.logit_scale,
            });
        }
        Ok(model)
    }

    /// A head tied to a *trained* embedding (a loaded checkpoint): `logits = logit_scale ·
    /// h @ Eᵀ`, without the initial-logit check of [`EmbeddingAndHead::tied`], which is
    /// about freshly initialised tables.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::InvalidOption`] for a non-positive or non-finite scale.
    pub fn tied_pretrained(
        embedding: Embedding<T>,
        logit_scale: f64,
    ) -> Result<Self, EmbeddingError> {
        check_logit_scale(logit_scale)?;
        Ok(Self {
            embedding,
            head: HeadWeight::Tied,
            logit_scale,
        })
    }

    /// The expected std of the logits for hidden states with entries of std `hidden_std`,
    /// from the head weight's current RMS.
    #[must_use]
    pub fn expected_initial_logit_std(&self, hidden_std: f64) -> LogitStdReport {
        let w = self.head_weight().as_slice();
        let weight_std =
            (w.iter().map(|x| x.as_f64().powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        let sqrt_n_embd = (self.embedding.n_embd() as f64).sqrt();
        LogitStdReport {
            expected_logit_std: self.logit_scale * hidden_std * weight_std * sqrt_n_embd,
            weight_std,
            hidden_std,
            sqrt_n_embd,
            logit_scale: self.logit_scale,
        }
    }

    /// Whether the head shares the embedding's weight.
    #[must_use]
    pub fn is_tied(&self) -> bool {
        matches!(self.head, HeadWeight::Tied)
    }

    /// The factor applied to the logits.
    #[must_use]
    pub fn logit_scale(&self) -> f64 {
        self.logit_scale
    }

    /// The input embedding.
    #[must_use]
    pub fn embedding(&self) -> &Embedding<T> {
        &self.embedding
    }

    /// The input embedding, mutably (e.g. to apply an optimizer step).
    pub fn embedding_mut(&mut self) -> &mut Embedding<T> {
        &mut self.embedding
    }

    /// The projection matrix `(vocab_size, n_embd)`: the embedding weight when tied.
    #[must_use]
    pub fn head_weight(&self) -> &Tensor<T> {
        match &self.head {
            HeadWeight::Untied(w) => w,
            HeadWeight::Tied => self.embedding.weight(),
        }
    }

    /// The untied head's weight, mutably; `None` when tied (update the embedding instead).
    pub fn untied_head_weight_mut(&mut self) -> Option<&mut [T]> {
        match &mut self.head {
            HeadWeight::Untied(w) => Some(w.as_mut_slice()),
            HeadWeight::Tied => None,
        }
    }

    /// The embedding lookup, see [`Embedding::forward`].
    ///
    /// # Errors
    ///
    /// As [`Embedding::forward`].
    pub fn lookup<'a, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        self.embedding.forward(ids)
    }

    /// `logits = logit_scale · hidden @ Wᵀ`, for hidden states of any leading shape.
    ///
    /// # Shapes
    ///
    /// hidden `(…, n_embd)` → logits `(…, vocab_size)`
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::GradShape`] when the innermost dimension is not `n_embd` or the
    /// hidden states are rank 0.
    pub fn logits<'h>(&self, hidden: impl TensorLike<'h, T>) -> Result<Tensor<T>, EmbeddingError> {
        logits(hidden, self.head_weight(), self.logit_scale)
    }

    /// Zeroed gradient buffers for this model: one for the embedding, and one for an
    /// untied head.
    ///
    /// # Errors
    ///
    /// Tensor errors when the buffers cannot be allocated.
    pub fn zero_grads(&self) -> Result<EmbeddingAndHeadGrads<T>, EmbeddingError> {
        let zeros = || -> Result<Tensor<T>, EmbeddingError> {
            Ok(Tensor::zeros(self.embedding.weight().dims())?)
        };
        Ok(EmbeddingAndHeadGrads {
            embedding: zeros()?,
            head: if self.is_tied() { None } else { Some(zeros()?) },
        })
    }

    /// Adds the lookup's weight gradient (see [`Embedding::backward_dense_into`]) into
    /// `grads.embedding`.
    ///
    /// # Errors
    ///
    /// As [`Embedding::backward_dense_into`].
    pub fn backward_lookup<'a, 'g, I: TokenId>(
        &self,
        ids: impl TensorLike<'a, I>,
        grad_output: impl TensorLike<'g, T>,
        grads: &mut EmbeddingAndHeadGrads<T>,
    ) -> Result<(), EmbeddingError> {
        self.embedding
            .backward_dense_into(ids, grad_output, &mut grads.embedding, Accumulate::Add)
    }

    /// Backward of [`logits`](EmbeddingAndHead::logits): adds
    /// `logit_scale · grad_logitsᵀ @ hidden` to the head's gradient (the embedding's when
    /// tied) and returns the gradient of the hidden states,
    /// `logit_scale · grad_logits @ W`.
    ///
    /// # Shapes
    ///
    /// hidden `(…, n_embd)`, grad_logits `(…, vocab_size)`; returns `(…, n_embd)`.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::GradShape`] for mismatched shapes, and
    /// [`EmbeddingError::GradientsMismatch`] for buffers made for the other arrangement
    /// (an untied model needs `grads.head`, a tied one must not have it).
    pub fn backward_logits<'h, 'g>(
        &self,
        hidden: impl TensorLike<'h, T>,
        grad_logits: impl TensorLike<'g, T>,
        grads: &mut EmbeddingAndHeadGrads<T>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let hidden = hidden.try_view()?;
        let table_shape = self.embedding.weight().shape();
        if grads.embedding.shape() != table_shape {
            return Err(EmbeddingError::GradShape {
                what: "grads.embedding",
                expected: table_shape,
                got: grads.embedding.shape(),
            });
        }
        let weight_grad = match (&self.head, &mut grads.head) {
            (HeadWeight::Tied, None) => &mut grads.embedding,
            (HeadWeight::Untied(_), Some(g)) => g,
            (HeadWeight::Tied, Some(_)) | (HeadWeight::Untied(_), None) => {
                return Err(EmbeddingError::GradientsMismatch {
                    tied: self.is_tied(),
                });
            }
        };
        let mut grad_hidden = Tensor::from_shape_vec(
            try_filled(
                hidden.shape().elem_count(),
                T::zero(),
                "EmbeddingAndHead::backward_logits",
            )?,
            hidden.shape(),
        )?;
        logits_backward(
            hidden,
            self.head_weight(),
            grad_logits,
            self.logit_scale,
            weight_grad,
            &mut grad_hidden,
        )
        .map_err(|e| match e {
            EmbeddingError::GradShape {
                what: "grad_weight",
                expected,
                got,
            } => EmbeddingError::GradShape {
                what: "grads.head",
                expected,
                got,
            },
            e => e,
        })?;
        Ok(grad_hidden)
    }

    /// Splits the model into its parts mutably, for optimizer steps.
    pub(crate) fn parts_mut(&mut self) -> (&mut Embedding<T>, Option<&mut Tensor<T>>) {
        let head = match &mut self.head {
            HeadWeight::Untied(w) => Some(w),
            HeadWeight::Tied => None,
        };
        (&mut self.embedding, head)
    }
}
