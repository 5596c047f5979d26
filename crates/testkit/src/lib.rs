//! A property-test suite others can run: proptest strategies for embedding and RoPE
//! inputs, reference-vector helpers, and a conformance kit that checks *your*
//! implementation (GPU, SIMD, quantized, …) against tokenloom's invariants and against
//! PyTorch / HuggingFace / Meta reference numbers.
//!
//! ```
//! use tokenloom_positions::{TokenPositions, QkLayout, RopeCache};
//! use tokenloom_testkit::conformance::check_rope;
//!
//! // "My" RoPE kernel — here tokenloom's own, as a framework author would wrap theirs.
//! let my_rope = |config: &tokenloom_positions::RopeConfig,
//!                x: &tokenloom_tensor::Tensor<f64>,
//!                positions: &tokenloom_tensor::Tensor<u32>| {
//!     let max = positions.as_slice().iter().max().map_or(1, |&p| p as usize + 1);
//!     let cache = RopeCache::<f64>::new(config, max).unwrap();
//!     cache.apply(x.view(), QkLayout::BatchSeqHeads, TokenPositions::Ids(positions.view())).unwrap()
//! };
//! check_rope(my_rope).expect("conforms");
//! ```
//!
//! - The [`strategies`] module: shapes, id tensors (edge ids 0 and `vocab_size − 1`, repeats, runs),
//!   tables of each dtype, RoPE configs (both layouts, partial rotary, every scaling),
//!   positions and offsets.
//! - The [`conformance`] module: [`conformance::check_lookup`],
//!   [`conformance::check_embedding_backward`], [`conformance::check_rope`]. Each
//!   returns a [`conformance::Failure`] whose report shows the minimal failing case.
//! - The [`reference`](mod@reference) module: parsing the reference-vector files and comparing with tolerances.
//!
//! The number of generated cases follows `PROPTEST_CASES` (default 64).

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

/// The number of proptest cases for a property: `$PROPTEST_CASES` when set (deeper local
/// runs), otherwise `default` (sized so that CI stays fast).
#[must_use]
pub fn cases_or(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub mod conformance;
pub mod kit;
pub mod reference;
pub mod strategies;
