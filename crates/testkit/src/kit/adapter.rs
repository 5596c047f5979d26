//! What an implementation under test provides (one trait per operation) and declares
//! ([`Capabilities`]): the kit generates only what is declared and reports the rest as
//! skipped.

use std::fmt;

use tokenloom_positions::{QkLayout, RopeConfig, RopeLayout, SinusoidalVariant};
use tokenloom_tensor::{DType, Element, Tensor};

use super::tolerance::Tolerance;

/// The implementation under test refused or failed a call. The kit reports it as the
/// case's failure, with the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterError {
    message: String,
}

impl AdapterError {
    /// An error with the implementation's own message (`candle::Error`, a CUDA status…).
    pub fn new(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message.
    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for AdapterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AdapterError {}

/// How token positions reach a RoPE kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PositionsKind {
    /// One offset for every row (`start_pos`, a KV-cache length): positions
    /// `offset .. offset + seq_len`.
    Offset,
    /// Position ids `(batch, seq_len)`, a row each (left padding, packed sequences).
    Ids,
}

/// The positions of one RoPE call.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Positions<'a> {
    /// Every row holds positions `offset .. offset + seq_len`.
    Offset(usize),
    /// Position ids `(batch, seq_len)`, each below the tables' `max_positions`.
    Ids(&'a Tensor<u32>),
}

/// Everything a RoPE kernel call needs besides the tensors.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RopeCall<'a> {
    /// How the pairs of a head are laid out.
    pub pair_layout: RopeLayout,
    /// How `x` is laid out: `(batch, seq_len, n_heads, head_dim)` or
    /// `(batch, n_heads, seq_len, head_dim)`.
    pub qk_layout: QkLayout,
    /// The token positions.
    pub positions: Positions<'a>,
    /// The rotated width of each head (`2 · cos.dims()[1]`); elements past it pass
    /// through unchanged.
    pub rotary_dim: usize,
}

/// The options of an embedding backward call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackwardOptions {
    /// The row whose gradient stays zero.
    pub padding_idx: Option<u32>,
    /// Divide each row's gradient by the number of times its id occurs in the call.
    pub scale_grad_by_freq: bool,
}

/// The RoPE frequencies an implementation computes for a config.
#[derive(Clone, Debug, PartialEq)]
pub struct Frequencies {
    /// The `rotary_dim / 2` inverse frequencies.
    pub inv_freq: Vec<f64>,
    /// The factor cos and sin are multiplied by (YaRN, LongRoPE; 1 elsewhere).
    pub attention_factor: f64,
}

/// What an implementation supports. Start from [`Capabilities::new`] (the dtypes only,
/// every option off) and declare the rest; the kit generates cases for exactly what is
/// declared and lists what it skipped in the report.
///
/// # Examples
///
/// ```
/// use tokenloom_testkit::kit::{Capabilities, PositionsKind};
/// use tokenloom_testkit::kit::reexports::{DType, QkLayout, RopeLayout};
///
/// let caps = Capabilities::new(&[DType::F32, DType::BF16])
///     .with_qk_layouts(&[QkLayout::BatchHeadsSeq])
///     .with_pair_layouts(&[RopeLayout::HalfSplit, RopeLayout::Interleaved])
///     .with_positions(&[PositionsKind::Offset, PositionsKind::Ids]);
/// assert!(caps.declares_dtype(DType::F32));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Capabilities {
    pub(crate) dtypes: Vec<DType>,
    pub(crate) qk_layouts: Vec<QkLayout>,
    pub(crate) pair_layouts: Vec<RopeLayout>,
    pub(crate) positions: Vec<PositionsKind>,
    pub(crate) partial_rotary: bool,
    pub(crate) backward: bool,
    pub(crate) padding_idx: bool,
    pub(crate) scale_grad_by_freq: bool,
    pub(crate) rejects_invalid_ids: bool,
    pub(crate) scalings: Vec<String>,
    pub(crate) sinusoidal: Vec<SinusoidalVariant>,
    pub(crate) padding_sides: Vec<PaddingSide>,
    pub(crate) tolerances: Vec<(DType, Tolerance)>,
}

impl Capabilities {
    /// The element types the implementation computes in; nothing else declared (one
    /// layout of each kind is still needed for RoPE — see the `with_*` methods). Invalid
    /// ids are expected to be refused (see
    /// [`without_id_checks`](Capabilities::without_id_checks)).
    #[must_use]
    pub fn new(dtypes: &[DType]) -> Self {
        Self {
            dtypes: dtypes.to_vec(),
            qk_layouts: Vec::new(),
            pair_layouts: Vec::new(),
            positions: Vec::new(),
            partial_rotary: false,
            backward: false,
            padding_idx: false,
            scale_grad_by_freq: false,
            rejects_invalid_ids: true,
            scalings: Vec::new(),
            sinusoidal: Vec::new(),
            padding_sides: Vec::new(),
            tolerances: Vec::new(),
        }
    }

    /// The q/k layouts a RoPE kernel accepts.
    #[must_use]
    pub fn with_qk_layouts(mut self, layouts: &[QkLayout]) -> Self {
        self.qk_layouts = layouts.to_vec();
        self
    }

    /// The pair layouts a RoPE kernel rotates.
    #[must_use]
    pub fn with_pair_layouts(mut self, layouts: &[RopeLayout]) -> Self {
        self.pair_layouts = layouts.to_vec();
        self
    }

    /// How a RoPE kernel takes positions.
    #[must_use]
    pub fn with_positions(mut self, kinds: &[PositionsKind]) -> Self {
        self.positions = kinds.to_vec();
        self
    }

    /// The RoPE kernel rotates only the first `rotary_dim < head_dim` elements.
    #[must_use]
    pub fn with_partial_rotary(mut self) -> Self {
        self.partial_rotary = true;
        self
    }

    /// The sinusoidal tables a [`SinusoidalAdapter`] builds.
    #[must_use]
    pub fn with_sinusoidal(mut self, variants: &[SinusoidalVariant]) -> Self {
        self.sinusoidal = variants.to_vec();
        self
    }

    /// The sides a [`BatchAdapter`] pads on.
    #[must_use]
    pub fn with_padding_sides(mut self, sides: &[PaddingSide]) -> Self {
        self.padding_sides = sides.to_vec();
        self
    }

    /// The RoPE adapter provides [`RopeAdapter::rope_backward`], the logits adapter
    /// [`LogitsAdapter::logits_backward`].
    #[must_use]
    pub fn with_backward(mut self) -> Self {
        self.backward = true;
        self
    }

    /// The embedding backward honours `padding_idx`.
    #[must_use]
    pub fn with_padding_idx(mut self) -> Self {
        self.padding_idx = true;
        self
    }

    /// The embedding backward honours `scale_grad_by_freq`.
    #[must_use]
    pub fn with_scale_grad_by_freq(mut self) -> Self {
        self.scale_grad_by_freq = true;
        self
    }

    /// The lookup does not refuse ids `≥ vocab_size` (the kit then skips that check and
    /// says so).
    #[must_use]
    pub fn without_id_checks(mut self) -> Self {
        self.rejects_invalid_ids = false;
        self
    }

    /// The scalings (HuggingFace `rope_type` names: `default`, `linear`, `dynamic`,
    /// `yarn`, `llama3`, `longrope`, `proportional`) a frequency adapter computes.
    #[must_use]
    pub fn with_scalings(mut self, rope_types: &[&str]) -> Self {
        self.scalings = rope_types.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Replaces the default tolerance of `dtype` (see [`Tolerance::for_dtype`]).
    #[must_use]
    pub fn with_tolerance(mut self, dtype: DType, tolerance: Tolerance) -> Self {
        self.tolerances.retain(|(d, _)| *d != dtype);
        self.tolerances.push((dtype, tolerance));
        self
    }

    /// Whether `dtype` is declared.
    #[must_use]
    pub fn declares_dtype(&self, dtype: DType) -> bool {
        self.dtypes.contains(&dtype)
    }

    /// The tolerance the kit compares `dtype` results with.
    #[must_use]
    pub fn tolerance(&self, dtype: DType) -> Tolerance {
        self.tolerances
            .iter()
            .find(|(d, _)| *d == dtype)
            .map_or_else(|| Tolerance::for_dtype(dtype), |(_, t)| *t)
    }
}

/// An embedding lookup: `(weight (vocab_size, n_embd), ids (batch, seq_len)) →
/// (batch, seq_len, n_embd)`.
pub trait LookupAdapter {
    /// What the lookup supports (dtypes, whether invalid ids are refused).
    fn capabilities(&self) -> Capabilities;

    /// Row `ids[b, s]` of `weight` for every token.
    ///
    /// # Errors
    ///
    /// The implementation's own error, e.g. for an id `≥ vocab_size`.
    fn lookup<T: Element>(
        &self,
        weight: &Tensor<T>,
        ids: &Tensor<u32>,
    ) -> Result<Tensor<T>, AdapterError>;
}

/// A dense embedding backward: `(vocab_size, ids (batch, seq_len), grad_output (batch,
/// seq_len, n_embd)) → grad_weight (vocab_size, n_embd)`.
pub trait BackwardAdapter {
    /// What the backward supports (dtypes, `padding_idx`, `scale_grad_by_freq`).
    fn capabilities(&self) -> Capabilities;

    /// The gradient of the table: the sum of the gradient rows of each id.
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn backward<T: Element>(
        &self,
        vocab_size: usize,
        ids: &Tensor<u32>,
        grad_output: &Tensor<T>,
        options: &BackwardOptions,
    ) -> Result<Tensor<T>, AdapterError>;
}

/// A RoPE kernel on given cos/sin tables, `(max_positions, rotary_dim / 2)` each, in the
/// element type of `x` (candle's `rope`/`rope_i`/`rope_thd`, llama.cpp's and
/// flash-attn's kernels take the same).
pub trait RopeAdapter {
    /// What the kernel supports (dtypes, layouts, positions, partial rotary, backward).
    fn capabilities(&self) -> Capabilities;

    /// `x` rotated by the angles of each token's position: for a pair `(a, b)` at
    /// position `p` and frequency `i`, `(a·cos[p, i] − b·sin[p, i], b·cos[p, i] +
    /// a·sin[p, i])`.
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn rope<T: Element>(
        &self,
        x: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError>;

    /// The gradient of `x` from the gradient of [`rope`](RopeAdapter::rope)'s output
    /// (the rotation by `−angle`). Checked when [`Capabilities::with_backward`] is
    /// declared; the default refuses.
    ///
    /// # Errors
    ///
    /// The implementation's own error; by default, that there is no backward.
    fn rope_backward<T: Element>(
        &self,
        grad_output: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        let _ = (grad_output, cos, sin, call);
        Err(AdapterError::new("this adapter has no RoPE backward"))
    }
}

/// The RoPE frequencies of a config, checked apart from the kernel.
pub trait FrequencyAdapter {
    /// What is supported: the scalings (by `rope_type`) and the dtype the frequencies are
    /// computed in (the loosest declared dtype sets the tolerance).
    fn capabilities(&self) -> Capabilities;

    /// The inverse frequencies and attention factor for a sequence of `seq_len` tokens
    /// (only dynamic NTK and LongRoPE depend on it).
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn frequencies(&self, config: &RopeConfig, seq_len: usize)
    -> Result<Frequencies, AdapterError>;
}

/// The tied (or untied) output projection: `logits = hidden · weightᵀ`.
pub trait LogitsAdapter {
    /// What is supported (dtypes, the backward).
    fn capabilities(&self) -> Capabilities;

    /// `(n_tokens, n_embd) · (vocab_size, n_embd)ᵀ → (n_tokens, vocab_size)`.
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn logits<T: Element>(
        &self,
        hidden: &Tensor<T>,
        weight: &Tensor<T>,
    ) -> Result<Tensor<T>, AdapterError>;

    /// The gradients `(grad_hidden (n_tokens, n_embd), grad_weight (vocab_size, n_embd))`
    /// from `grad_logits (n_tokens, vocab_size)`. Checked when
    /// [`Capabilities::with_backward`] is declared; the default refuses.
    ///
    /// # Errors
    ///
    /// The implementation's own error; by default, that there is no backward.
    fn logits_backward<T: Element>(
        &self,
        hidden: &Tensor<T>,
        weight: &Tensor<T>,
        grad_logits: &Tensor<T>,
    ) -> Result<(Tensor<T>, Tensor<T>), AdapterError> {
        let _ = (hidden, weight, grad_logits);
        Err(AdapterError::new("this adapter has no logits backward"))
    }
}

/// A sinusoidal absolute-position table.
pub trait SinusoidalAdapter {
    /// What is supported (dtypes, [`Capabilities::with_sinusoidal`] variants).
    fn capabilities(&self) -> Capabilities;

    /// The `(max_positions, n_embd)` table of `variant` with frequency base `base`.
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn table<T: Element>(
        &self,
        variant: SinusoidalVariant,
        base: f64,
        max_positions: usize,
        n_embd: usize,
    ) -> Result<Tensor<T>, AdapterError>;
}

/// Which side of a row the padding goes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PaddingSide {
    /// Padding first (generation).
    Left,
    /// Padding last (training).
    Right,
}

/// A padded batch: each `(batch, seq_len)`.
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedBatch {
    /// The ids, `pad_id` at the padding.
    pub ids: Tensor<u32>,
    /// 1 at real tokens, 0 at padding.
    pub attention_mask: Tensor<u32>,
    /// HuggingFace's `cumsum(mask) − 1`, and 1 at the padding.
    pub position_ids: Tensor<u32>,
}

/// The batch that enters the first decoder block: ragged sequences padded, with the mask
/// and position ids.
pub trait BatchAdapter {
    /// What is supported ([`Capabilities::with_padding_sides`]).
    fn capabilities(&self) -> Capabilities;

    /// `sequences` padded to the longest with `pad_id` on `side`.
    ///
    /// # Errors
    ///
    /// The implementation's own error.
    fn pad(
        &self,
        sequences: &[Vec<u32>],
        pad_id: u32,
        side: PaddingSide,
    ) -> Result<PaddedBatch, AdapterError>;
}
