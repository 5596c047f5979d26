//! Just enough optimizers to train the table: SGD with momentum and AdamW, for dense and
//! row-sparse gradients.

use tokenloom_tensor::{Element, Shape, TensorLike, TensorLikeMut, TensorView};

use crate::error::EmbeddingError;
use crate::grad::SparseGrad;
use crate::head::{EmbeddingAndHead, EmbeddingAndHeadGrads};
use crate::lookup::table_dims;
use crate::options::EmbeddingOptions;
use crate::table::Embedding;

/// An optimizer over one flat parameter vector, updated row by row.
///
/// State is kept per parameter element (in `f32`, allocated on the first step) and
/// indexed by the element's offset, so the same optimizer serves dense steps (every row)
/// and lazy sparse steps (only the rows a batch touched).
pub trait Optimizer {
    /// Starts a step over a parameter vector of `n_params` elements.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::OptimizerStateMismatch`] when the state was created for a
    /// different number of parameters.
    fn begin_step(&mut self, n_params: usize) -> Result<(), EmbeddingError>;

    /// Updates the parameters `weight`, which start at element `offset`, with their
    /// gradient `grad`.
    fn update<T: Element>(&mut self, offset: usize, weight: &mut [T], grad: &[T]);
}

/// Allocates state of `n_params` zeros on the first step, and checks the size after.
fn ensure_state(state: &mut Vec<f32>, n_params: usize) -> Result<(), EmbeddingError> {
    if state.is_empty() {
        state.resize(n_params, 0.0);
        Ok(())
    } else if state.len() == n_params {
        Ok(())
    } else {
        Err(EmbeddingError::OptimizerStateMismatch {
            state_len: state.len(),
            n_params,
        })
    }
}

/// Stochastic gradient descent with momentum and L2 weight decay, as `torch.optim.SGD`
/// (dampening 0, not Nesterov): `g ← g + weight_decay·p`, `b ← momentum·b + g`,
/// `p ← p − lr·b`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
    /// The momentum factor (0 for plain SGD).
    pub momentum: f64,
    /// The L2 penalty.
    pub weight_decay: f64,
    velocity: Vec<f32>,
}

impl Sgd {
    /// Plain SGD with learning rate `lr`.
    #[must_use]
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            momentum: 0.0,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }

    /// Sets the momentum.
    #[must_use]
    pub fn with_momentum(mut self, momentum: f64) -> Self {
        self.momentum = momentum;
        self
    }
}

impl Optimizer for Sgd {
    fn begin_step(&mut self, n_params: usize) -> Result<(), EmbeddingError> {
        if self.momentum != 0.0 {
            ensure_state(&mut self.velocity, n_params)?;
        }
        Ok(())
    }

    fn update<T: Element>(&mut self, offset: usize, weight: &mut [T], grad: &[T]) {
        for (i, (p, g)) in weight.iter_mut().zip(grad).enumerate() {
            let (pv, mut gv) = (p.as_f64(), g.as_f64());
            gv += self.weight_decay * pv;
            if self.momentum != 0.0 {
                let b = &mut self.velocity[offset + i];
                let next = self.momentum * f64::from(*b) + gv;
                // state is stored in f32
                {
                    *b = next as f32;
                }
                gv = next;
            }
            *p = T::from_f64_lossy(pv - self.lr * gv);
        }
    }
}

/// AdamW (Loshchilov & Hutter), as `torch.optim.AdamW`: decoupled weight decay
/// `p ← p − lr·weight_decay·p`, then the bias-corrected Adam step.
///
/// In a sparse step only the touched rows are updated, moments and weight decay included
/// (lazy Adam, as `torch.optim.SparseAdam`); the bias correction uses the global step
/// count.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// The learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    step: u64,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl AdamW {
    /// AdamW with PyTorch's defaults (betas 0.9 / 0.999, eps 1e-8, weight decay 0.01).
    #[must_use]
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// Sets the weight decay.
    #[must_use]
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }

    /// The number of steps taken.
    #[must_use]
    pub fn steps(&self) -> u64 {
        self.step
    }
}

impl Optimizer for AdamW {
    fn begin_step(&mut self, n_params: usize) -> Result<(), EmbeddingError> {
        ensure_state(&mut self.m, n_params)?;
        ensure_state(&mut self.v, n_params)?;
        self.step += 1;
        Ok(())
    }

    // state is stored in f32
    fn update<T: Element>(&mut self, offset: usize, weight: &mut [T], grad: &[T]) {
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        for (i, (p, g)) in weight.iter_mut().zip(grad).enumerate() {
            let (mut pv, gv) = (p.as_f64(), g.as_f64());
            pv -= self.lr * self.weight_decay * pv;
            let m = self.beta1 * f64::from(self.m[offset + i]) + (1.0 - self.beta1) * gv;
            let v = self.beta2 * f64::from(self.v[offset + i]) + (1.0 - self.beta2) * gv * gv;
            self.m[offset + i] = m as f32;
            self.v[offset + i] = v as f32;
            pv -= self.lr * (m / bias1) / ((v / bias2).sqrt() + self.eps);
            *p = T::from_f64_lossy(pv);
        }
    }
}

/// Applies a dense `(vocab_size, n_embd)` gradient to a weight, row by row, skipping the
/// padding row.
fn step_rows<T: Element, O: Optimizer>(
    opt: &mut O,
    offset: usize,
    weight: &mut [T],
    grad: &[T],
    n_embd: usize,
    padding_idx: Option<usize>,
) {
    for (row, (w, g)) in weight
        .chunks_exact_mut(n_embd)
        .zip(grad.chunks_exact(n_embd))
        .enumerate()
    {
        if padding_idx != Some(row) {
            opt.update(offset + row * n_embd, w, g);
        }
    }
}

fn check_grad_shape<T>(
    what: &'static str,
    grad: TensorView<'_, T>,
    expected: Shape,
) -> Result<(), EmbeddingError> {
    if grad.shape() == expected {
        Ok(())
    } else {
        Err(EmbeddingError::GradShape {
            what,
            expected,
            got: grad.shape(),
        })
    }
}

/// One optimizer step on a caller's `(vocab_size, n_embd)` parameter with its dense
/// gradient, row by row; the `padding_idx` row is never updated. The optimizer's state
/// lives in `opt` and is indexed by element, so a framework keeps its parameters and
/// tokenloom keeps only the moments.
///
/// # Errors
///
/// [`EmbeddingError::WeightShape`] for a weight that is not rank 2,
/// [`EmbeddingError::GradShape`] for a gradient of another shape,
/// [`EmbeddingError::PaddingIdxOutOfRange`], the optimizer's state errors, and tensor
/// errors for sources that are not contiguous row-major buffers. On error nothing is
/// written.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{Sgd, functional};
///
/// let mut weight = vec![1.0f32; 4]; // (vocab_size = 2, n_embd = 2), owned by the caller
/// let grad = [0.5f32, 0.5, 1.0, 1.0];
/// functional::step_dense(&mut Sgd::new(0.1), (&mut weight[..], [2, 2]), (&grad[..], [2, 2]), None)?;
/// assert_eq!(weight, [0.95, 0.95, 0.9, 0.9]);
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn step_dense<'w, 'g, T: Element, O: Optimizer>(
    opt: &mut O,
    weight: impl TensorLikeMut<'w, T>,
    grad: impl TensorLike<'g, T>,
    padding_idx: Option<usize>,
) -> Result<(), EmbeddingError> {
    let mut weight = weight.try_view_mut()?;
    let grad = grad.try_view()?;
    let (vocab_size, n_embd) = table_dims(weight.as_view())?;
    check_padding(padding_idx, vocab_size)?;
    check_grad_shape("grad_weight", grad, weight.shape())?;
    opt.begin_step(weight.as_slice().len())?;
    step_rows(
        opt,
        0,
        weight.as_mut_slice(),
        grad.as_slice(),
        n_embd,
        padding_idx,
    );
    Ok(())
}

/// One lazy optimizer step on a caller's `(vocab_size, n_embd)` parameter with a
/// row-sparse gradient: only the touched rows (and their optimizer state) change; the
/// `padding_idx` row is never updated.
///
/// # Errors
///
/// As [`step_dense`], and [`EmbeddingError::SparseGradMismatch`] for a gradient of
/// another table's size.
pub fn step_sparse<'w, T: Element, O: Optimizer>(
    opt: &mut O,
    weight: impl TensorLikeMut<'w, T>,
    grad: &SparseGrad<T>,
    padding_idx: Option<usize>,
) -> Result<(), EmbeddingError> {
    let mut weight = weight.try_view_mut()?;
    let (vocab_size, n_embd) = table_dims(weight.as_view())?;
    check_padding(padding_idx, vocab_size)?;
    if (grad.vocab_size(), grad.n_embd()) != (vocab_size, n_embd) {
        return Err(EmbeddingError::SparseGradMismatch {
            vocab_size: grad.vocab_size(),
            n_embd: grad.n_embd(),
            table_vocab_size: vocab_size,
            table_n_embd: n_embd,
        });
    }
    opt.begin_step(weight.as_slice().len())?;
    let weight = weight.as_mut_slice();
    for (id, g) in grad.iter() {
        let row = id as usize;
        if padding_idx != Some(row) {
            opt.update(
                row * n_embd,
                &mut weight[row * n_embd..(row + 1) * n_embd],
                g,
            );
        }
    }
    Ok(())
}

fn check_padding(padding_idx: Option<usize>, vocab_size: usize) -> Result<(), EmbeddingError> {
    EmbeddingOptions {
        padding_idx,
        ..EmbeddingOptions::default()
    }
    .validate(vocab_size)
}

impl<T: Element> Embedding<T> {
    /// One optimizer step with a dense gradient ([`step_dense`] on the table). The
    /// padding row is never updated.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::Frozen`] for a frozen table, [`EmbeddingError::GradShape`] for a
    /// gradient that is not `(vocab_size, n_embd)`, and the optimizer's state errors.
    pub fn step_dense<'g, O: Optimizer>(
        &mut self,
        opt: &mut O,
        grad: impl TensorLike<'g, T>,
    ) -> Result<(), EmbeddingError> {
        self.check_trainable("step_dense")?;
        let (shape, padding_idx) = (self.weight().shape(), self.options().padding_idx);
        step_dense(
            opt,
            (self.weight_data_unchecked(), shape),
            grad,
            padding_idx,
        )
    }

    /// One lazy optimizer step with a row-sparse gradient ([`step_sparse`] on the table):
    /// only the touched rows (and their optimizer state) change. The padding row is never
    /// updated.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::Frozen`], [`EmbeddingError::SparseGradMismatch`] for a gradient
    /// of another table's size, and the optimizer's state errors.
    pub fn step_sparse<O: Optimizer>(
        &mut self,
        opt: &mut O,
        grad: &SparseGrad<T>,
    ) -> Result<(), EmbeddingError> {
        self.check_trainable("step_sparse")?;
        let (shape, padding_idx) = (self.weight().shape(), self.options().padding_idx);
        step_sparse(
            opt,
            (self.weight_data_unchecked(), shape),
            grad,
            padding_idx,
        )
    }
}

impl<T: Element> EmbeddingAndHead<T> {
    /// One optimizer step over all parameters: the embedding (elements
    /// `[0, vocab_size·n_embd)` of the optimizer's state) and, when untied, the head
    /// (the next `vocab_size·n_embd`). Tied: one parameter, one gradient, one state.
    ///
    /// # Errors
    ///
    /// As [`Embedding::step_dense`], and [`EmbeddingError::GradientsMismatch`] for
    /// gradients made for the other arrangement.
    pub fn step<O: Optimizer>(
        &mut self,
        opt: &mut O,
        grads: &EmbeddingAndHeadGrads<T>,
    ) -> Result<(), EmbeddingError> {
        let tied = self.is_tied();
        let (embedding, head) = self.parts_mut();
        embedding.check_trainable("step")?;
        let shape = embedding.weight().shape();
        check_grad_shape("grads.embedding", grads.embedding.view(), shape)?;
        let len = shape.elem_count();
        let (n_embd, padding_idx) = (embedding.n_embd(), embedding.options().padding_idx);
        let head = match (head, &grads.head) {
            (None, None) => None,
            (Some(head), Some(head_grad)) => {
                check_grad_shape("grads.head", head_grad.view(), shape)?;
                Some((head, head_grad))
            }
            _ => return Err(EmbeddingError::GradientsMismatch { tied }),
        };
        opt.begin_step(if head.is_some() { 2 * len } else { len })?;
        step_rows(
            opt,
            0,
            embedding.weight_data_unchecked(),
            grads.embedding.as_slice(),
            n_embd,
            padding_idx,
        );
        if let Some((head, head_grad)) = head {
            step_rows(
                opt,
                len,
                head.as_mut_slice(),
                head_grad.as_slice(),
                n_embd,
                None,
            );
        }
        Ok(())
    }
}
