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

/// Where an optimizer keeps its per-element state (`f32`): its own vector (allocated,
/// fallibly, on the first step) or a buffer the caller owns (`&mut [f32]`, one element
/// per parameter, zeros before the first step) — a framework's optimizer state, or
/// memory shared with another process. Sealed.
pub trait StateBuffer: state_sealed::Sealed {
    /// The state, sized for `n_params` parameters.
    ///
    /// # Errors
    ///
    /// [`EmbeddingError::OptimizerStateMismatch`] when the state has another size, and
    /// allocation errors.
    fn sized(&mut self, n_params: usize) -> Result<&mut [f32], EmbeddingError>;

    /// The state as it is (sized by the step's first call).
    fn state(&mut self) -> &mut [f32];
}

mod state_sealed {
    pub trait Sealed {}
    impl Sealed for Vec<f32> {}
    impl Sealed for &mut [f32] {}
}

fn mismatch(state_len: usize, n_params: usize) -> EmbeddingError {
    EmbeddingError::OptimizerStateMismatch {
        state_len,
        n_params,
    }
}

impl StateBuffer for Vec<f32> {
    fn sized(&mut self, n_params: usize) -> Result<&mut [f32], EmbeddingError> {
        if self.is_empty() {
            *self = tokenloom_tensor::try_filled(n_params, 0.0, "optimizer state")?;
        } else if self.len() != n_params {
            return Err(mismatch(self.len(), n_params));
        }
        Ok(self)
    }

    fn state(&mut self) -> &mut [f32] {
        self
    }
}

impl StateBuffer for &mut [f32] {
    fn sized(&mut self, n_params: usize) -> Result<&mut [f32], EmbeddingError> {
        if self.len() == n_params {
            Ok(self)
        } else {
            Err(mismatch(self.len(), n_params))
        }
    }

    fn state(&mut self) -> &mut [f32] {
        self
    }
}

/// Stochastic gradient descent with momentum and L2 weight decay, as `torch.optim.SGD`
/// (dampening 0, not Nesterov): `g ← g + weight_decay·p`, `b ← momentum·b + g`,
/// `p ← p − lr·b`.
///
/// The velocity lives in `S`: the optimizer's own vector ([`Sgd::new`]) or the caller's
/// buffer ([`Sgd::with_velocity`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd<S = Vec<f32>> {
    /// The learning rate.
    pub lr: f64,
    /// The momentum factor (0 for plain SGD).
    pub momentum: f64,
    /// The L2 penalty.
    pub weight_decay: f64,
    velocity: S,
}

impl<'s> Sgd<&'s mut [f32]> {
    /// SGD with momentum whose velocity is the caller's buffer (one `f32` per parameter,
    /// zeros before the first step): nothing is allocated.
    #[must_use]
    pub fn with_velocity(lr: f64, momentum: f64, velocity: &'s mut [f32]) -> Self {
        Self {
            lr,
            momentum,
            weight_decay: 0.0,
            velocity,
        }
    }
}

impl<S> Sgd<S> {
    /// Sets the L2 penalty.
    #[must_use]
    pub fn with_weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
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

impl<S: StateBuffer> Optimizer for Sgd<S> {
    fn begin_step(&mut self, n_params: usize) -> Result<(), EmbeddingError> {
        if self.momentum != 0.0 {
            self.velocity.sized(n_params)?;
        }
        Ok(())
    }

    fn update<T: Element>(&mut self, offset: usize, weight: &mut [T], grad: &[T]) {
        let velocity = self.velocity.state();
        for (i, (p, g)) in weight.iter_mut().zip(grad).enumerate() {
            let (pv, mut gv) = (p.as_f64(), g.as_f64());
            gv += self.weight_decay * pv;
            if self.momentum != 0.0 {
                let b = &mut velocity[offset + i];
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
///
/// The moments live in `S`: the optimizer's own vectors ([`AdamW::new`]) or the
/// caller's buffers ([`AdamW::with_state`]).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<S = Vec<f32>> {
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
    m: S,
    v: S,
}

impl<'s> AdamW<&'s mut [f32]> {
    /// AdamW (PyTorch's defaults, as [`AdamW::new`]) whose moments are the caller's
    /// buffers `m` and `v` (one `f32` per parameter, zeros before the first step) after
    /// `steps` steps: nothing is allocated, and the state outlives the optimizer value
    /// (read the step count back with [`steps`](AdamW::steps)).
    #[must_use]
    pub fn with_state(lr: f64, m: &'s mut [f32], v: &'s mut [f32], steps: u64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            step: steps,
            m,
            v,
        }
    }
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
}

impl<S> AdamW<S> {
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

impl<S: StateBuffer> Optimizer for AdamW<S> {
    fn begin_step(&mut self, n_params: usize) -> Result<(), EmbeddingError> {
        self.m.sized(n_params)?;
        self.v.sized(n_params)?;
        self.step += 1;
        Ok(())
    }

    // state is stored in f32
    fn update<T: Element>(&mut self, offset: usize, weight: &mut [T], grad: &[T]) {
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let bias1 = 1.0 - self.beta1.powi(t);
        let bias2 = 1.0 - self.beta2.powi(t);
        let (m_state, v_state) = (self.m.state(), self.v.state());
        for (i, (p, g)) in weight.iter_mut().zip(grad).enumerate() {
            let (mut pv, gv) = (p.as_f64(), g.as_f64());
            pv -= self.lr * self.weight_decay * pv;
            let m = self.beta1 * f64::from(m_state[offset + i]) + (1.0 - self.beta1) * gv;
            let v = self.beta2 * f64::from(v_state[offset + i]) + (1.0 - self.beta2) * gv * gv;
            m_state[offset + i] = m as f32;
            v_state[offset + i] = v as f32;
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
    let weight = weight.try_view_mut()?;
    let (vocab_size, n_embd) = table_dims(weight.as_view())?;
    if (grad.vocab_size(), grad.n_embd()) != (vocab_size, n_embd) {
        return Err(EmbeddingError::SparseGradMismatch {
            vocab_size: grad.vocab_size(),
            n_embd: grad.n_embd(),
            table_vocab_size: vocab_size,
            table_n_embd: n_embd,
        });
    }
    step_sparse_rows(opt, weight, grad.rows(), grad.values(), padding_idx)
}

/// [`step_sparse`] with the row-sparse gradient in the caller's buffers, as
/// [`backward_sparse_into`](crate::functional::backward_sparse_into) leaves it: `rows`
/// (the touched row ids, distinct) and `values` `(rows.len(), n_embd)`.
///
/// # Errors
///
/// As [`step_sparse`], [`EmbeddingError::GradShape`] for `values` of another shape, and
/// [`EmbeddingError::SparseGradMismatch`] for a row id outside the table. On error
/// nothing is written.
///
/// # Examples
///
/// ```
/// use tokenloom_embedding::{AdamW, functional};
///
/// // The caller owns the parameter, the sparse gradient and AdamW's moments.
/// let mut weight = vec![1.0f32; 8]; // (vocab_size 4, n_embd 2)
/// let (mut m, mut v) = (vec![0.0f32; 8], vec![0.0f32; 8]);
/// let mut adamw = AdamW::with_state(0.1, &mut m, &mut v, 0).with_weight_decay(0.0);
/// functional::step_sparse_rows(&mut adamw, (&mut weight[..], [4, 2]), &[2], (&[0.5f32, -0.5][..], [1, 2]), None)?;
/// assert_eq!(adamw.steps(), 1);
/// assert!((weight[4] - 0.9).abs() < 1e-6 && (weight[5] - 1.1).abs() < 1e-6);
/// assert_eq!(m[4], 0.05); // the first moment, in the caller's buffer
/// # Ok::<(), tokenloom_embedding::EmbeddingError>(())
/// ```
pub fn step_sparse_rows<'w, 'g, T: Element, O: Optimizer>(
    opt: &mut O,
    weight: impl TensorLikeMut<'w, T>,
    rows: &[u32],
    values: impl TensorLike<'g, T>,
    padding_idx: Option<usize>,
) -> Result<(), EmbeddingError> {
    let mut weight = weight.try_view_mut()?;
    let values = values.try_view()?;
    let (vocab_size, n_embd) = table_dims(weight.as_view())?;
    check_padding(padding_idx, vocab_size)?;
    check_grad_shape("values", values, Shape::new(&[rows.len(), n_embd])?)?;
    if let Some(&row) = rows.iter().find(|&&row| row as usize >= vocab_size) {
        return Err(EmbeddingError::SparseGradMismatch {
            vocab_size: row as usize + 1,
            n_embd,
            table_vocab_size: vocab_size,
            table_n_embd: n_embd,
        });
    }
    opt.begin_step(weight.as_slice().len())?;
    let weight = weight.as_mut_slice();
    for (&id, g) in rows.iter().zip(values.as_slice().chunks_exact(n_embd)) {
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
