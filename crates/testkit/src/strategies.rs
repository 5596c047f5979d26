//! proptest strategies for the inputs of embedding and RoPE kernels.

use proptest::prelude::*;
use tokenloom_embedding::{Embedding, Init};
use tokenloom_positions::{
    Llama3Scaling, LongRopeScaling, RopeConfig, RopeLayout, RopeScaling, YarnScaling,
};
use tokenloom_tensor::{Element, Tensor};

/// Token ids of `len` entries below `vocab_size`: the edge ids 0 and `vocab_size − 1`,
/// arbitrary ids, and runs of one repeated id.
pub fn ids(vocab_size: usize, len: usize) -> impl Strategy<Value = Vec<u32>> {
    let max_id = u32::try_from(vocab_size.max(1) - 1).unwrap_or(u32::MAX);
    let id = prop_oneof![Just(0u32), Just(max_id), 0..=max_id];
    let runs = prop::collection::vec((id, 1usize..8), 1..=len.max(1));
    runs.prop_map(move |runs| {
        let mut out: Vec<u32> = runs
            .into_iter()
            .flat_map(|(id, n)| std::iter::repeat_n(id, n))
            .collect();
        out.resize(len, 0);
        out
    })
}

/// A `(batch, seq_len)` shape with `batch` in `1..=max_batch` and `seq_len` in
/// `1..=max_seq_len`.
pub fn batch_shape(max_batch: usize, max_seq_len: usize) -> impl Strategy<Value = (usize, usize)> {
    (1..=max_batch.max(1), 1..=max_seq_len.max(1))
}

/// A seeded `(vocab_size, n_embd)` table of element type `T` (N(0, 1)).
pub fn table<T: Element>(
    max_vocab_size: usize,
    max_n_embd: usize,
) -> impl Strategy<Value = Embedding<T>> {
    (
        1..=max_vocab_size.max(1),
        1..=max_n_embd.max(1),
        any::<u64>(),
    )
        .prop_map(|(vocab_size, n_embd, seed)| {
            Embedding::seeded(vocab_size, n_embd, Init::default(), seed).expect("valid sizes")
        })
}

/// A lookup case: an f32 weight and ids of shape `(batch, seq_len)` within its vocabulary.
#[derive(Clone, Debug)]
pub struct LookupCase {
    /// The `(vocab_size, n_embd)` weight.
    pub weight: Tensor<f32>,
    /// The ids `(batch, seq_len)`.
    pub ids: Tensor<u32>,
}

/// Lookup cases: vocabularies up to 64 rows, widths up to 16, batches up to 3 × 12.
pub fn lookup_case() -> impl Strategy<Value = LookupCase> {
    (table::<f32>(64, 16), batch_shape(3, 12)).prop_flat_map(|(table, (batch, seq_len))| {
        let vocab_size = table.vocab_size();
        let weight = table.into_weight();
        ids(vocab_size, batch * seq_len).prop_map(move |ids| LookupCase {
            weight: weight.clone(),
            ids: Tensor::from_vec(ids, &[batch, seq_len]).expect("ids fill the shape"),
        })
    })
}

/// A backward case: sizes, ids and an f64 `grad_output` of shape ids + `(n_embd,)`.
#[derive(Clone, Debug)]
pub struct BackwardCase {
    /// Rows of the table.
    pub vocab_size: usize,
    /// Width of the table.
    pub n_embd: usize,
    /// The ids `(batch, seq_len)`.
    pub ids: Tensor<u32>,
    /// The upstream gradient `(batch, seq_len, n_embd)`.
    pub grad_output: Tensor<f64>,
}

/// Backward cases with many repeated ids.
pub fn backward_case() -> impl Strategy<Value = BackwardCase> {
    (1usize..40, 1usize..8, batch_shape(3, 10)).prop_flat_map(
        |(vocab_size, n_embd, (batch, seq_len))| {
            let n = batch * seq_len;
            (
                ids(vocab_size, n),
                prop::collection::vec(-4.0f64..4.0, n * n_embd),
            )
                .prop_map(move |(ids, grad)| BackwardCase {
                    vocab_size,
                    n_embd,
                    ids: Tensor::from_vec(ids, &[batch, seq_len]).expect("ids fill the shape"),
                    grad_output: Tensor::from_vec(grad, &[batch, seq_len, n_embd])
                        .expect("gradient fills the shape"),
                })
        },
    )
}

/// Either pair layout.
pub fn rope_layout() -> impl Strategy<Value = RopeLayout> {
    prop_oneof![Just(RopeLayout::Interleaved), Just(RopeLayout::HalfSplit)]
}

/// The HuggingFace `rope_type` names of the scalings [`rope_scaling_of`] generates.
pub const ROPE_TYPES: [&str; 7] = [
    "default",
    "linear",
    "dynamic",
    "yarn",
    "llama3",
    "longrope",
    "proportional",
];

/// Every scaling variant with valid parameters for `rotary_dim`.
pub fn rope_scaling(rotary_dim: usize) -> impl Strategy<Value = RopeScaling> {
    proptest::strategy::Union::new(
        ROPE_TYPES
            .iter()
            .filter_map(|rope_type| rope_scaling_of(rope_type, rotary_dim)),
    )
}

/// The scalings of one HuggingFace `rope_type` (see [`ROPE_TYPES`]) with valid parameters
/// for `rotary_dim`; `None` for a name this crate does not generate.
#[must_use]
pub fn rope_scaling_of(rope_type: &str, rotary_dim: usize) -> Option<BoxedStrategy<RopeScaling>> {
    let half = rotary_dim / 2;
    Some(match rope_type {
        "default" => Just(RopeScaling::None).boxed(),
        "linear" => (1.0f64..16.0)
            .prop_map(|factor| RopeScaling::Linear { factor })
            .boxed(),
        "dynamic" => (1.0f64..8.0, 1usize..64)
            .prop_map(move |(factor, max_position_embeddings)| {
                if rotary_dim > 2 {
                    RopeScaling::DynamicNtk {
                        factor,
                        max_position_embeddings,
                    }
                } else {
                    RopeScaling::None
                }
            })
            .boxed(),
        "yarn" => (1.0f64..40.0, 16usize..8192, any::<bool>())
            .prop_map(|(factor, original, truncate)| {
                let mut yarn = YarnScaling::new(factor, original);
                yarn.truncate = truncate;
                RopeScaling::Yarn(yarn)
            })
            .boxed(),
        "llama3" => (1.0f64..32.0, 16usize..8192)
            .prop_map(|(factor, original)| {
                RopeScaling::Llama3(Llama3Scaling {
                    factor,
                    low_freq_factor: 1.0,
                    high_freq_factor: 4.0,
                    original_max_position_embeddings: original,
                })
            })
            .boxed(),
        "longrope" => (
            prop::collection::vec(1.0f64..4.0, half),
            prop::collection::vec(1.0f64..64.0, half),
            16usize..4096,
        )
            .prop_map(|(short_factor, long_factor, original)| {
                RopeScaling::LongRope(LongRopeScaling {
                    short_factor,
                    long_factor,
                    original_max_position_embeddings: original,
                    factor: 8.0,
                    attention_factor: None,
                })
            })
            .boxed(),
        "proportional" => (0.5f64..4.0, 0.0f64..=1.0)
            .prop_map(
                |(factor, partial_rotary_factor)| RopeScaling::Proportional {
                    factor,
                    partial_rotary_factor,
                },
            )
            .boxed(),
        _ => return None,
    })
}

/// A valid RoPE config: even `head_dim` in `[2, 64]`, partial rotary, both layouts, every
/// scaling, theta in `[100, 10⁶]`.
pub fn rope_config() -> impl Strategy<Value = RopeConfig> {
    (1usize..=32, rope_layout(), 100.0f64..1e6)
        .prop_flat_map(|(half_head, layout, theta)| {
            (
                Just(2 * half_head),
                1..=half_head,
                Just(layout),
                Just(theta),
            )
        })
        .prop_flat_map(|(head_dim, half_rot, layout, theta)| {
            rope_scaling(2 * half_rot).prop_map(move |scaling| {
                RopeConfig::new(head_dim, theta, layout)
                    .with_rotary_dim(2 * half_rot)
                    .with_scaling(scaling)
            })
        })
}

/// A RoPE case: a config, `x` of shape `(batch, seq_len, n_heads, head_dim)` and explicit
/// position ids `(batch, seq_len)` below `max_positions` (any order, repeats allowed).
#[derive(Clone, Debug)]
pub struct RopeCase {
    /// The configuration.
    pub config: RopeConfig,
    /// The activations `(batch, seq_len, n_heads, head_dim)`.
    pub x: Tensor<f64>,
    /// The position ids `(batch, seq_len)`.
    pub positions: Tensor<u32>,
    /// The cache length the positions are below.
    pub max_positions: usize,
}

/// RoPE cases: up to 2 × 6 tokens of 3 heads at positions below 4096.
pub fn rope_case() -> impl Strategy<Value = RopeCase> {
    (rope_config(), batch_shape(2, 6), 1usize..4, 1usize..4096).prop_flat_map(
        |(config, (batch, seq_len), n_heads, max_positions)| {
            let n = batch * seq_len * n_heads * config.head_dim;
            let max_id = u32::try_from(max_positions - 1).unwrap_or(u32::MAX);
            (
                Just(config),
                prop::collection::vec(-3.0f64..3.0, n),
                prop::collection::vec(
                    prop_oneof![Just(0u32), Just(max_id), 0..=max_id],
                    batch * seq_len,
                ),
            )
                .prop_map(move |(config, x, positions)| RopeCase {
                    x: Tensor::from_vec(x, &[batch, seq_len, n_heads, config.head_dim])
                        .expect("x fills the shape"),
                    positions: Tensor::from_vec(positions, &[batch, seq_len])
                        .expect("positions fill the shape"),
                    config,
                    max_positions,
                })
        },
    )
}

/// A KV-cache offset and a sequence length that fit below `max_positions`.
pub fn offset_and_len(max_positions: usize) -> impl Strategy<Value = (usize, usize)> {
    (0..max_positions.max(1))
        .prop_flat_map(move |offset| (Just(offset), 1..=(max_positions - offset).max(1)))
}
