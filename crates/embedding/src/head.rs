//! The output projection `logits = h @ Wᵀ`, untied or tied to the embedding, with a
//! guard against the logit blow-up that tying an N(0, 1) table causes.

use tokenloom_tensor::{
    Accumulate, Element, Operand, Shape, Tensor, TensorView, TensorViewMut, matmul_into, try_filled,
};

use crate::error::EmbeddingError;
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
        #[allow(clippy::cast_precision_loss)]
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
pub struct Gradients<T> {
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
        if !(logit_scale.is_finite() && logit_scale > 0.0) {
            return Err(EmbeddingError::InvalidOption {
                name: "logit_scale",
                value: logit_scale,
                requirement: "must be positive and finite",
            });
        }
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
        #[allow(clippy::cast_precision_loss)]
        let weight_std =
            (w.iter().map(|x| x.as_f64().powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        #[allow(clippy::cast_precision_loss)]
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
    pub fn lookup<'a>(
        &self,
        ids: impl Into<TensorView<'a, u32>>,
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
    pub fn logits(&self, hidden: TensorView<'_, T>) -> Result<Tensor<T>, EmbeddingError> {
        let (rows, out_shape) = self.check_hidden(hidden)?;
        let n_embd = self.embedding.n_embd();
        let vocab_size = self.embedding.vocab_size();
        let mut logits = Tensor::from_vec(
            try_filled(
                rows.checked_mul(vocab_size).ok_or(
                    tokenloom_tensor::TensorError::ShapeOverflow {
                        dims: vec![rows, vocab_size],
                    },
                )?,
                T::zero(),
                "EmbeddingAndHead::logits",
            )?,
            &[rows, vocab_size],
        )?;
        let h = TensorView::new(hidden.as_slice(), &[rows, n_embd])?;
        matmul_into(
            h,
            Operand::AsIs,
            self.head_weight().view(),
            Operand::Transposed,
            logits.view_mut(),
            Accumulate::Replace,
        )?;
        self.scale_in_place(logits.as_mut_slice());
        Ok(logits.reshape(out_shape.dims())?)
    }

    /// Zeroed gradient buffers for this model: one for the embedding, and one for an
    /// untied head.
    ///
    /// # Errors
    ///
    /// Tensor errors when the buffers cannot be allocated.
    pub fn zero_grads(&self) -> Result<Gradients<T>, EmbeddingError> {
        let zeros = || -> Result<Tensor<T>, EmbeddingError> {
            Ok(Tensor::zeros(self.embedding.weight().dims())?)
        };
        Ok(Gradients {
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
    pub fn backward_lookup<'a>(
        &self,
        ids: impl Into<TensorView<'a, u32>>,
        grad_output: TensorView<'_, T>,
        grads: &mut Gradients<T>,
    ) -> Result<(), EmbeddingError> {
        self.embedding.backward_dense_into(
            ids,
            grad_output,
            grads.embedding.view_mut(),
            Accumulate::Add,
        )
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
    pub fn backward_logits(
        &self,
        hidden: TensorView<'_, T>,
        grad_logits: TensorView<'_, T>,
        grads: &mut Gradients<T>,
    ) -> Result<Tensor<T>, EmbeddingError> {
        let (rows, _) = self.check_hidden(hidden)?;
        let n_embd = self.embedding.n_embd();
        let vocab_size = self.embedding.vocab_size();
        let mut expected_dims = hidden.dims().to_vec();
        *expected_dims.last_mut().expect("checked rank ≥ 1") = vocab_size;
        let expected = Shape::new(&expected_dims)?;
        if grad_logits.shape() != expected {
            return Err(EmbeddingError::GradShape {
                what: "grad_logits",
                expected,
                got: grad_logits.shape(),
            });
        }
        let table_shape = self.embedding.weight().shape();
        let check_buffer = |what: &'static str, got: Shape| -> Result<(), EmbeddingError> {
            if got == table_shape {
                Ok(())
            } else {
                Err(EmbeddingError::GradShape {
                    what,
                    expected: table_shape,
                    got,
                })
            }
        };
        check_buffer("grads.embedding", grads.embedding.shape())?;
        let weight_grad = match (&self.head, &mut grads.head) {
            (HeadWeight::Tied, None) => &mut grads.embedding,
            (HeadWeight::Untied(_), Some(g)) => {
                check_buffer("grads.head", g.shape())?;
                g
            }
            (HeadWeight::Tied, Some(_)) | (HeadWeight::Untied(_), None) => {
                return Err(EmbeddingError::GradientsMismatch {
                    tied: self.is_tied(),
                });
            }
        };
        let h = TensorView::new(hidden.as_slice(), &[rows, n_embd])?;
        let g = TensorView::new(grad_logits.as_slice(), &[rows, vocab_size])?;

        // Scale G once (a copy), so both products below carry the logit scale.
        let scaled: Vec<T>;
        let g = if self.logit_scale == 1.0 {
            g
        } else {
            scaled = g
                .as_slice()
                .iter()
                .map(|&x| T::from_f64_lossy(x.as_f64() * self.logit_scale))
                .collect();
            TensorView::new(&scaled, &[rows, vocab_size])?
        };
        // dW += Gᵀ h: (vocab_size, rows) @ (rows, n_embd).
        let weight_grad_view: TensorViewMut<'_, T> = weight_grad.view_mut();
        matmul_into(
            g,
            Operand::Transposed,
            h,
            Operand::AsIs,
            weight_grad_view,
            Accumulate::Add,
        )?;
        // dh = G W: (rows, vocab_size) @ (vocab_size, n_embd).
        let mut grad_hidden = Tensor::from_shape_vec(
            try_filled(
                rows * n_embd,
                T::zero(),
                "EmbeddingAndHead::backward_logits",
            )?,
            hidden.shape(),
        )?;
        let grad_hidden_2d = TensorViewMut::new(grad_hidden.as_mut_slice(), &[rows, n_embd])?;
        matmul_into(
            g,
            Operand::AsIs,
            self.head_weight().view(),
            Operand::AsIs,
            grad_hidden_2d,
            Accumulate::Replace,
        )?;
        Ok(grad_hidden)
    }

    /// `(rows, hidden.shape with vocab_size innermost)` for valid hidden states.
    fn check_hidden(&self, hidden: TensorView<'_, T>) -> Result<(usize, Shape), EmbeddingError> {
        let n_embd = self.embedding.n_embd();
        let dims = hidden.dims();
        if dims.last() != Some(&n_embd) {
            let mut want = dims.to_vec();
            match want.last_mut() {
                Some(last) => *last = n_embd,
                None => want.push(n_embd),
            }
            return Err(EmbeddingError::GradShape {
                what: "hidden states",
                expected: Shape::new(&want)?,
                got: hidden.shape(),
            });
        }
        let rows = hidden.shape().n_rows();
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().expect("rank ≥ 1") = self.embedding.vocab_size();
        Ok((rows, Shape::new(&out_dims)?))
    }

    fn scale_in_place(&self, xs: &mut [T]) {
        if self.logit_scale != 1.0 {
            for x in xs {
                *x = T::from_f64_lossy(x.as_f64() * self.logit_scale);
            }
        }
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
