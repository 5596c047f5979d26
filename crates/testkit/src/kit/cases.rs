//! The kit's generated cases. Flat strategies: every shape is a small integer drawn first
//! and every value comes from a fixed-length pool that only the used prefix of is read,
//! so shrinking reduces shapes by bisection and values towards zero independently, and
//! a minimal case is a handful of values.

use std::fmt::Write as _;

use proptest::prelude::*;
use tokenloom_tensor::{Element, Tensor};

/// The largest tensors the kit generates.
const MAX_LOOKUP_IDS: usize = 15;
const MAX_LOOKUP_VALUES: usize = 32;
const MAX_BACKWARD_IDS: usize = 15;
const MAX_BACKWARD_VALUES: usize = 45;
const MAX_ROPE_IDS: usize = 12;
const MAX_ROPE_VALUES: usize = 192;

/// Values in `[-2, 2)`, shrinking towards 0.
fn values(len: usize) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(-2.0f64..2.0, len)
}

/// Raw id draws: mostly `raw % vocab_size`, the top draws give the edge id `vocab_size − 1`.
fn raw_ids(len: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..64, len)
}

fn id_of(raw: u32, vocab_size: usize) -> u32 {
    let vocab_size = u32::try_from(vocab_size).unwrap_or(u32::MAX).max(1);
    if raw >= 56 {
        vocab_size - 1
    } else {
        raw % vocab_size
    }
}

/// `values` rounded to `T`, as a tensor of `dims`.
pub(crate) fn tensor_of<T: Element>(values: &[f64], dims: &[usize]) -> Tensor<T> {
    let n: usize = dims.iter().product();
    let data: Vec<T> = values[..n].iter().map(|&v| T::from_f64_lossy(v)).collect();
    Tensor::from_vec(data, dims).expect("the kit's shapes fit its pools")
}

/// `name (2, 3) = [1, 2, …]`: a tensor as the report shows it.
pub(crate) fn show<T: Copy + Into<f64>>(out: &mut String, name: &str, dims: &[usize], xs: &[T]) {
    let values: Vec<String> = xs.iter().map(|&x| format!("{}", x.into())).collect();
    let _ = writeln!(
        out,
        "  {name} {} = [{}]",
        super::tolerance::dims_text(dims),
        values.join(", ")
    );
}

/// `show` for an element tensor (values widened to `f64`).
pub(crate) fn show_tensor<T: Element>(out: &mut String, name: &str, t: &Tensor<T>) {
    let xs: Vec<f64> = t.as_slice().iter().map(|x| x.as_f64()).collect();
    show(out, name, t.dims(), &xs);
}

/// A lookup case; `invalid` puts the id `vocab_size + excess` at one token.
#[derive(Clone, Debug)]
pub(crate) struct LookupRaw {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub batch: usize,
    pub seq_len: usize,
    ids: Vec<u32>,
    weight: Vec<f64>,
    invalid: (usize, u32),
}

impl LookupRaw {
    pub fn weight<T: Element>(&self) -> Tensor<T> {
        tensor_of(&self.weight, &[self.vocab_size, self.n_embd])
    }

    /// The ids, with the out-of-range one when `invalid`.
    pub fn ids(&self, invalid: bool) -> Tensor<u32> {
        let n = self.batch * self.seq_len;
        let mut ids: Vec<u32> = self.ids[..n]
            .iter()
            .map(|&r| id_of(r, self.vocab_size))
            .collect();
        if invalid {
            let (at, excess) = self.invalid;
            ids[at % n] = u32::try_from(self.vocab_size).unwrap_or(u32::MAX) + excess;
        }
        Tensor::from_vec(ids, &[self.batch, self.seq_len]).expect("ids fill the shape")
    }
}

pub(crate) fn lookup_raw() -> impl Strategy<Value = LookupRaw> {
    (
        (1usize..=8, 1usize..=4, 1usize..=3, 1usize..=5),
        raw_ids(MAX_LOOKUP_IDS),
        values(MAX_LOOKUP_VALUES),
        (0usize..MAX_LOOKUP_IDS, 0u32..4),
    )
        .prop_map(
            |((vocab_size, n_embd, batch, seq_len), ids, weight, invalid)| LookupRaw {
                vocab_size,
                n_embd,
                batch,
                seq_len,
                ids,
                weight,
                invalid,
            },
        )
}

/// An embedding backward case.
#[derive(Clone, Debug)]
pub(crate) struct BackwardRaw {
    pub vocab_size: usize,
    pub n_embd: usize,
    pub batch: usize,
    pub seq_len: usize,
    ids: Vec<u32>,
    grad: Vec<f64>,
    pub padding: Option<u32>,
    pub scale_grad_by_freq: bool,
}

impl BackwardRaw {
    pub fn ids(&self) -> Tensor<u32> {
        let n = self.batch * self.seq_len;
        let ids = self.ids[..n]
            .iter()
            .map(|&r| id_of(r, self.vocab_size))
            .collect();
        Tensor::from_vec(ids, &[self.batch, self.seq_len]).expect("ids fill the shape")
    }

    pub fn grad_output<T: Element>(&self) -> Tensor<T> {
        tensor_of(&self.grad, &[self.batch, self.seq_len, self.n_embd])
    }
}

pub(crate) fn backward_raw() -> impl Strategy<Value = BackwardRaw> {
    (
        (1usize..=6, 1usize..=3, 1usize..=3, 1usize..=5),
        raw_ids(MAX_BACKWARD_IDS),
        values(MAX_BACKWARD_VALUES),
        (any::<bool>(), 0u32..64, any::<bool>()),
    )
        .prop_map(
            |((vocab_size, n_embd, batch, seq_len), ids, grad, (pad, pad_raw, sgbf))| BackwardRaw {
                vocab_size,
                n_embd,
                batch,
                seq_len,
                ids,
                grad,
                padding: pad.then(|| id_of(pad_raw, vocab_size)),
                scale_grad_by_freq: sgbf,
            },
        )
}

/// A RoPE kernel case. The layout and position-kind fields index the declared lists.
#[derive(Clone, Debug)]
pub(crate) struct RopeRaw {
    pub batch: usize,
    pub seq_len: usize,
    pub n_heads: usize,
    /// `head_dim / 2`.
    pub half_head: usize,
    rotary_raw: usize,
    extra_positions: usize,
    pub offset: usize,
    ids: Vec<u32>,
    pub choice: [usize; 4],
    x: Vec<f64>,
}

impl RopeRaw {
    pub fn head_dim(&self) -> usize {
        2 * self.half_head
    }

    /// `rotary_dim / 2`: all of the head unless partial rotary is declared.
    pub fn half_rotary(&self, partial: bool) -> usize {
        if partial {
            1 + self.rotary_raw % self.half_head
        } else {
            self.half_head
        }
    }

    /// Positions the tables cover (more than the sequence needs).
    pub fn max_positions(&self) -> usize {
        self.offset + self.seq_len + self.extra_positions
    }

    pub fn ids(&self) -> Tensor<u32> {
        let max = u32::try_from(self.max_positions()).unwrap_or(u32::MAX);
        let n = self.batch * self.seq_len;
        let ids = self.ids[..n].iter().map(|&r| r % max).collect();
        Tensor::from_vec(ids, &[self.batch, self.seq_len]).expect("ids fill the shape")
    }

    pub fn x<T: Element>(&self, dims: &[usize]) -> Tensor<T> {
        tensor_of(&self.x, dims)
    }
}

pub(crate) fn rope_raw() -> impl Strategy<Value = RopeRaw> {
    (
        (1usize..=3, 1usize..=4, 1usize..=2, 1usize..=4),
        (0usize..4, 0usize..=3, 0usize..=5),
        raw_ids(MAX_ROPE_IDS),
        (0usize..2, 0usize..2, 0usize..2, 0usize..3),
        values(MAX_ROPE_VALUES),
    )
        .prop_map(
            |(
                (batch, seq_len, n_heads, half_head),
                (rotary_raw, extra_positions, offset),
                ids,
                (c0, c1, c2, c3),
                x,
            )| RopeRaw {
                batch,
                seq_len,
                n_heads,
                half_head,
                rotary_raw,
                extra_positions,
                offset,
                ids,
                choice: [c0, c1, c2, c3],
                x,
            },
        )
}
