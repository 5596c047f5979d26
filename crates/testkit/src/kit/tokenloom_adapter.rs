//! tokenloom's own kernels as kit adapters: the kit's self-check, the `tokenloom-conformance`
//! binary's subject, and a worked example of every adapter trait.

use tokenloom_embedding::{EmbeddingOptions, functional};
use tokenloom_positions::{
    Direction, QkLayout, RopeConfig, RopeLayout, RopeTables, Sinusoidal, SinusoidalVariant,
    TokenPositions,
};
use tokenloom_tensor::{Accumulate, DType, Element, Tensor};

use super::adapter::{
    AdapterError, BackwardAdapter, BackwardOptions, Capabilities, Frequencies, FrequencyAdapter,
    LogitsAdapter, LookupAdapter, Positions, PositionsKind, RopeAdapter, RopeCall,
    SinusoidalAdapter,
};
use crate::strategies::ROPE_TYPES;

/// tokenloom's lookup, backward, RoPE kernel on borrowed tables, frequencies, logits and
/// sinusoidal tables, with every capability declared. (The padded batch lives in
/// `tokenloom-decoder-input`, which this crate does not depend on: the workspace's
/// `tests/conformance.rs` checks `TokenBatch::pad` with [`Kit::check_batch`](super::Kit::check_batch).)
#[derive(Clone, Copy, Debug, Default)]
pub struct Tokenloom;

fn everything() -> Capabilities {
    Capabilities::new(&[DType::F32, DType::F64, DType::F16, DType::BF16])
        .with_qk_layouts(&[QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq])
        .with_pair_layouts(&[RopeLayout::Interleaved, RopeLayout::HalfSplit])
        .with_positions(&[PositionsKind::Offset, PositionsKind::Ids])
        .with_partial_rotary()
        .with_backward()
        .with_padding_idx()
        .with_scale_grad_by_freq()
        .with_scalings(&ROPE_TYPES)
        .with_sinusoidal(&[
            SinusoidalVariant::Vaswani,
            SinusoidalVariant::Marian,
            SinusoidalVariant::Fairseq,
        ])
}

impl LookupAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn lookup<T: Element>(
        &self,
        weight: &Tensor<T>,
        ids: &Tensor<u32>,
    ) -> Result<Tensor<T>, AdapterError> {
        functional::lookup(weight, ids, None).map_err(AdapterError::new)
    }
}

impl BackwardAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn backward<T: Element>(
        &self,
        vocab_size: usize,
        ids: &Tensor<u32>,
        grad_output: &Tensor<T>,
        options: &BackwardOptions,
    ) -> Result<Tensor<T>, AdapterError> {
        let n_embd = grad_output.dims().last().copied().unwrap_or(0);
        let mut grad_weight = Tensor::zeros(&[vocab_size, n_embd]).map_err(AdapterError::new)?;
        let options = EmbeddingOptions {
            padding_idx: options.padding_idx.map(|p| p as usize),
            scale_grad_by_freq: options.scale_grad_by_freq,
            ..EmbeddingOptions::default()
        };
        functional::backward_dense(
            ids,
            grad_output,
            &mut grad_weight,
            &options,
            Accumulate::Replace,
        )
        .map_err(AdapterError::new)?;
        Ok(grad_weight)
    }
}

/// Rotates with tokenloom's `RopeTables` (half tables widened to `f32`, exactly).
fn rotate<T: Element>(
    x: &Tensor<T>,
    cos: &Tensor<T>,
    sin: &Tensor<T>,
    call: &RopeCall<'_>,
    direction: Direction,
) -> Result<Tensor<T>, AdapterError> {
    let wide = |t: &Tensor<T>| {
        t.as_slice()
            .iter()
            .map(|v| v.as_f64())
            .collect::<Vec<f64>>()
    };
    let (cos, sin, dims) = (wide(cos), wide(sin), [cos.dims()[0], cos.dims()[1]]);
    let tables = RopeTables::new((&cos[..], dims), (&sin[..], dims), call.pair_layout)
        .map_err(AdapterError::new)?;
    let positions = match call.positions {
        Positions::Offset(offset) => TokenPositions::Offset(offset),
        Positions::Ids(ids) => TokenPositions::Ids(ids.view()),
    };
    let mut out = Tensor::zeros(x.dims()).map_err(AdapterError::new)?;
    tables
        .rotate_into(x, &mut out, call.qk_layout, positions, direction)
        .map_err(AdapterError::new)?;
    Ok(out)
}

impl RopeAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn rope<T: Element>(
        &self,
        x: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        rotate(x, cos, sin, call, Direction::Forward)
    }

    fn rope_backward<T: Element>(
        &self,
        grad_output: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        rotate(grad_output, cos, sin, call, Direction::Backward)
    }
}

impl FrequencyAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn frequencies(
        &self,
        config: &RopeConfig,
        seq_len: usize,
    ) -> Result<Frequencies, AdapterError> {
        Ok(Frequencies {
            inv_freq: config.inv_freq(seq_len).map_err(AdapterError::new)?,
            attention_factor: config.attention_factor(),
        })
    }
}

impl LogitsAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn logits<T: Element>(
        &self,
        hidden: &Tensor<T>,
        weight: &Tensor<T>,
    ) -> Result<Tensor<T>, AdapterError> {
        functional::logits(hidden, weight, 1.0).map_err(AdapterError::new)
    }

    fn logits_backward<T: Element>(
        &self,
        hidden: &Tensor<T>,
        weight: &Tensor<T>,
        grad_logits: &Tensor<T>,
    ) -> Result<(Tensor<T>, Tensor<T>), AdapterError> {
        let mut grad_hidden = Tensor::zeros(hidden.dims()).map_err(AdapterError::new)?;
        let mut grad_weight = Tensor::zeros(weight.dims()).map_err(AdapterError::new)?;
        functional::logits_backward(
            hidden,
            weight,
            grad_logits,
            1.0,
            &mut grad_weight,
            &mut grad_hidden,
        )
        .map_err(AdapterError::new)?;
        Ok((grad_hidden, grad_weight))
    }
}

impl SinusoidalAdapter for Tokenloom {
    fn capabilities(&self) -> Capabilities {
        everything()
    }

    fn table<T: Element>(
        &self,
        variant: SinusoidalVariant,
        base: f64,
        max_positions: usize,
        n_embd: usize,
    ) -> Result<Tensor<T>, AdapterError> {
        Sinusoidal::new(variant, base)
            .table(max_positions, n_embd)
            .map_err(AdapterError::new)
    }
}
