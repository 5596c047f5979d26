//! Position encodings for tokenloom.
//!
//! ```
//! use tokenloom_positions::sinusoidal_table;
//!
//! // An absolute encoding: a (max_positions, n_embd) table added to the embeddings.
//! let pe = sinusoidal_table::<f32>(2048, 8, 10000.0)?;
//! assert_eq!(pe.shape().to_string(), "(2048, 8)");
//! # Ok::<(), tokenloom_positions::PositionError>(())
//! ```
//!
//! Two families live here, and they enter the model at different places:
//!
//! - **Absolute** encodings ([`sinusoidal_table`]; learned tables are composed in
//!   `tokenloom-decoder-input`) are *added* to the token embeddings before the first
//!   decoder block.
//! - **RoPE** (the LLaMA default) is *not* added to anything: it rotates query/key pairs
//!   inside attention. Its cache, layouts and scaling variants are being built in this
//!   crate (tracked as the positions issue).
//!
//! This crate depends only on `tokenloom-tensor`; it never depends on the embedding crate.

#![forbid(unsafe_code)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod model_config;
mod rope;
mod sinusoidal;

pub use error::PositionError;
pub use model_config::{ModelRopeSettings, parse_hf_config, parse_meta_params};
pub use rope::{
    CacheFloat, Llama3Scaling, LongRopeScaling, Positions, QkLayout, RopeCache, RopeConfig,
    RopeLayout, RopeScaling, YarnScaling, convert_qk_layout, reduce_angle,
};
pub use sinusoidal::sinusoidal_table;
