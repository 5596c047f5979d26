//! Position schemes: how positions enter the decoder.

use serde::{Deserialize, Serialize};
use tokenloom_embedding::{Embedding, Init};
use tokenloom_positions::{CacheFloat, RopeCache, RopeConfig};
use tokenloom_tensor::{Element, Tensor};

/// How positions enter a decoder, as configuration.
///
/// **RoPE is not added to the embeddings**: it rotates the query/key pairs inside each
/// attention layer, so the decoder input is the embedding alone and attention receives
/// the cos/sin for the batch's position ids. Only the absolute schemes (sinusoidal,
/// learned) are *added* to the embeddings before the first decoder block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// Serialized externally tagged (`{"variant": {...}}`), which both JSON and bincode
/// support.
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PositionSchemeConfig {
    /// Rotary embeddings (the LLaMA default), applied to q/k inside attention.
    Rope {
        /// The RoPE settings.
        rope: RopeConfig,
    },
    /// Vaswani's fixed sinusoidal table, added to the embeddings.
    Sinusoidal {
        /// The frequency base (10000 in the paper).
        base: f64,
    },
    /// A learned table over positions `(max_positions, n_embd)` (GPT-2, BERT), added to
    /// the embeddings.
    Learned {
        /// How the table is initialised.
        init: Init,
    },
    /// No position information in the input (e.g. NoPE).
    None,
}

impl PositionSchemeConfig {
    /// A short name for messages: `rope`, `sinusoidal`, `learned` or `none`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PositionSchemeConfig::Rope { .. } => "rope",
            PositionSchemeConfig::Sinusoidal { .. } => "sinusoidal",
            PositionSchemeConfig::Learned { .. } => "learned",
            PositionSchemeConfig::None => "none",
        }
    }
}

/// A built position scheme: the RoPE cache, or the table added to the embeddings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PositionEncoding<T, C> {
    /// RoPE: cos/sin for `[0, max_positions)`; nothing is added to the embeddings.
    Rope(RopeCache<C>),
    /// A fixed sinusoidal table `(max_positions, n_embd)`, added to the embeddings.
    Sinusoidal(Tensor<T>),
    /// A learned table over positions `(max_positions, n_embd)`, added to the embeddings.
    Learned(Embedding<T>),
    /// Nothing.
    None,
}

impl<T: Element, C: CacheFloat> PositionEncoding<T, C> {
    /// A short name for messages.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            PositionEncoding::Rope(_) => "rope",
            PositionEncoding::Sinusoidal(_) => "sinusoidal",
            PositionEncoding::Learned(_) => "learned",
            PositionEncoding::None => "none",
        }
    }

    /// The table added to the embeddings, if the scheme is absolute.
    #[must_use]
    pub fn additive_table(&self) -> Option<&Tensor<T>> {
        match self {
            PositionEncoding::Sinusoidal(table) => Some(table),
            PositionEncoding::Learned(table) => Some(table.weight()),
            PositionEncoding::Rope(_) | PositionEncoding::None => None,
        }
    }
}
