//! Position encodings for tokenloom: RoPE (the LLaMA default) and absolute sinusoidal
//! tables.
//!
//! ```
//! use tokenloom_positions::{
//!     Direction, QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions,
//! };
//! use tokenloom_tensor::Tensor;
//!
//! // head_dim 16, base 10000, pairs half-split (as HuggingFace checkpoints).
//! let rope = RopeConfig::new(16, 10000.0, RopeLayout::HalfSplit);
//!
//! // cos/sin for positions 0..128, computed in f64 and stored as f32.
//! let cache = RopeCache::<f32>::new(&rope, 128)?;
//!
//! // Rotate q of shape (batch, n_heads, seq_len, head_dim) in place, positions 5..8.
//! let mut q = Tensor::<f32>::zeros(&[1, 4, 3, 16])?;
//! q.as_mut_slice().fill(1.0);
//! let at_5 = TokenPositions::Offset(5);
//! cache.rotate_in_place(q.view_mut(), QkLayout::BatchHeadsSeq, at_5, Direction::Forward)?;
//! # Ok::<(), tokenloom_positions::PositionError>(())
//! ```
//!
//! Two families live here, and they enter the model at different places:
//!
//! - **RoPE** ([`RopeConfig`], [`RopeCache`]) is *not* added to the embeddings: it rotates
//!   query/key pairs inside attention, so `q_m · k_n` depends on `m − n`. Both pair
//!   layouts ([`RopeLayout::Interleaved`] as Meta/GGUF, [`RopeLayout::HalfSplit`] as
//!   HuggingFace), partial rotary, every HuggingFace scaling variant ([`RopeScaling`]),
//!   both q/k tensor layouts ([`QkLayout`]), offsets and explicit position ids, forward,
//!   inverse and backward ([`Direction`]), and checkpoint conversion between layouts ([`convert_qk_layout`]).
//!   Angles are computed in `f64`, reduced modulo 2π, and stored as `f32` or `f64`; never
//!   in half precision.
//! - **Absolute** encodings ([`sinusoidal_table`]; learned tables are composed in
//!   `tokenloom-decoder-input`) are *added* to the token embeddings before the first
//!   decoder block.
//!
//! One RoPE section of a HuggingFace `config.json` (`rope_parameters`, or v4's
//! `rope_scaling`) is parsed strictly by [`parse_rope_section`]; the rest of a model's
//! config (sizes, head counts, which layers rotate) is the model spec's business
//! (`tokenloom_decoder_input::ModelSpec`).
//!
//! This crate depends only on `tokenloom-tensor`; it never depends on the embedding crate.

// Unsafe code is denied except where it is allowed, each with a `// SAFETY:` comment:
// the two calls of the AVX2 builds of the rotation loop (rope/kernel.rs, made with an
// `Avx2F16c` proof that only CPU detection creates: tokenloom_tensor::isa) and the F16C loads and
// stores (rope/f16c.rs).
#![deny(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod rope;
mod rope_section;
mod sinusoidal;

pub use error::{ConfigValueProblem, PositionError};
pub use rope::{
    CacheFloat, Direction, Llama3Scaling, LongRopeScaling, QkLayout, RopeCache, RopeConfig,
    RopeLayout, RopeScaling, RopeTables, TokenPositions, YarnScaling, convert_qk_layout,
    convert_qk_layout_into, cos_sin, reduce_angle,
};
pub use rope_section::{RopeSection, parse_rope_section};
pub use sinusoidal::{Sinusoidal, SinusoidalVariant, sinusoidal_into, sinusoidal_table};
