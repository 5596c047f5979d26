//! Rotary position embeddings (RoPE, Su et al. 2021): configuration, scaling, the cos/sin
//! cache, the rotation of q/k tensors, and checkpoint layout conversion.

mod apply;
mod cache;
mod cache_apply;
mod config;
#[cfg(target_arch = "x86_64")]
mod f16c;
mod kernel;
mod permute;
mod scaling;

pub use apply::{Direction, QkLayout, RopeTables, TokenPositions};
pub use cache::{CacheFloat, RopeCache, cos_sin, reduce_angle};
pub use config::{RopeConfig, RopeLayout};
pub use permute::{convert_qk_layout, convert_qk_layout_into};
pub use scaling::{Llama3Scaling, LongRopeScaling, RopeScaling, YarnScaling};
