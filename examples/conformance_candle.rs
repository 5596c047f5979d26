//! The conformance kit run on candle: candle-nn's `Embedding`, its backward (candle's
//! autograd) and its fused RoPE kernels (`rope`, `rope_i`, `rope_thd`), with the
//! capabilities candle has, in every dtype candle computes in on the CPU.
//!
//! ```sh
//! cargo run --release --features candle-nn --example conformance_candle
//! ```
//!
//! It prints the kit's report. candle's fused RoPE kernels have no backward (candle
//! issue #3568): the adapter asks candle's autograd for the gradient of `x`, gets none,
//! and the kit reports `rope backward` as failed. Any other failure makes the example
//! exit with an error.

use candle_core::{DType as CandleDType, Device, Tensor as CandleTensor, Var};
use candle_nn::Module;
use candle_nn::rotary_emb::{rope, rope_i, rope_thd};
use tokenloom_testkit::kit::reexports::{DType, Element, QkLayout, RopeLayout, Tensor};
use tokenloom_testkit::kit::{
    AdapterError, BackwardAdapter, BackwardOptions, Capabilities, Kit, LookupAdapter, Positions,
    PositionsKind, RopeAdapter, RopeCall,
};

/// The adapter: tokenloom tensors in, candle tensors computed, tokenloom tensors out.
struct Candle;

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

fn candle_dtype<T: Element>() -> CandleDType {
    match T::DTYPE {
        DType::F64 => CandleDType::F64,
        DType::F16 => CandleDType::F16,
        DType::BF16 => CandleDType::BF16,
        _ => CandleDType::F32,
    }
}

/// A tokenloom tensor as a candle CPU tensor of the same dtype (exact: through `f64`).
fn to_candle<T: Element>(t: &Tensor<T>) -> Result<CandleTensor, AdapterError> {
    let wide: Vec<f64> = t.as_slice().iter().map(|x| x.as_f64()).collect();
    CandleTensor::from_vec(wide, t.dims(), &Device::Cpu)
        .and_then(|c| c.to_dtype(candle_dtype::<T>()))
        .map_err(AdapterError::new)
}

/// A candle tensor back (exact: every candle dtype here widens to `f64`).
fn from_candle<T: Element>(c: &CandleTensor) -> Result<Tensor<T>, AdapterError> {
    let wide = c
        .to_dtype(CandleDType::F64)
        .and_then(|c| c.flatten_all())
        .and_then(|c| c.to_vec1::<f64>())
        .map_err(AdapterError::new)?;
    let data = wide.into_iter().map(T::from_f64_lossy).collect();
    Tensor::from_vec(data, c.dims()).map_err(AdapterError::new)
}

fn ids_to_candle(ids: &Tensor<u32>) -> Result<CandleTensor, AdapterError> {
    CandleTensor::from_vec(ids.as_slice().to_vec(), ids.dims(), &Device::Cpu)
        .map_err(AdapterError::new)
}

impl LookupAdapter for Candle {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(&DTYPES)
    }

    fn lookup<T: Element>(
        &self,
        weight: &Tensor<T>,
        ids: &Tensor<u32>,
    ) -> Result<Tensor<T>, AdapterError> {
        let embedding = candle_nn::Embedding::new(to_candle(weight)?, weight.dims()[1]);
        let out = embedding
            .forward(&ids_to_candle(ids)?)
            .map_err(AdapterError::new)?;
        from_candle(&out)
    }
}

impl BackwardAdapter for Candle {
    fn capabilities(&self) -> Capabilities {
        // candle-nn's Embedding has neither padding_idx nor scale_grad_by_freq.
        Capabilities::new(&DTYPES)
    }

    fn backward<T: Element>(
        &self,
        vocab_size: usize,
        ids: &Tensor<u32>,
        grad_output: &Tensor<T>,
        _options: &BackwardOptions,
    ) -> Result<Tensor<T>, AdapterError> {
        let n_embd = grad_output.dims()[2];
        let weight = Var::zeros((vocab_size, n_embd), candle_dtype::<T>(), &Device::Cpu)
            .map_err(AdapterError::new)?;
        let embedding = candle_nn::Embedding::new(weight.as_tensor().clone(), n_embd);
        // d(sum(out · g))/d(weight) is the embedding backward of g.
        let g = to_candle(grad_output)?;
        let grads = embedding
            .forward(&ids_to_candle(ids)?)
            .and_then(|out| out.mul(&g))
            .and_then(|l| l.sum_all())
            .and_then(|l| l.backward())
            .map_err(AdapterError::new)?;
        let grad = grads
            .get(weight.as_tensor())
            .ok_or_else(|| AdapterError::new("candle computed no gradient for the table"))?;
        from_candle(grad)
    }
}

/// The rows of the tables for the call's positions: `(seq_len, half)` for an offset,
/// `(batch, seq_len, half)` for position ids (candle's kernels take both).
fn tables_for(
    cos: &CandleTensor,
    sin: &CandleTensor,
    positions: Positions<'_>,
    seq_len: usize,
) -> candle_core::Result<(CandleTensor, CandleTensor)> {
    match positions {
        Positions::Offset(offset) => Ok((
            cos.narrow(0, offset, seq_len)?,
            sin.narrow(0, offset, seq_len)?,
        )),
        Positions::Ids(ids) => {
            let (batch, seq) = (ids.dims()[0], ids.dims()[1]);
            let flat = CandleTensor::from_vec(ids.as_slice().to_vec(), batch * seq, &Device::Cpu)?;
            let half = cos.dim(1)?;
            Ok((
                cos.index_select(&flat, 0)?.reshape((batch, seq, half))?,
                sin.index_select(&flat, 0)?.reshape((batch, seq, half))?,
            ))
        }
    }
}

/// candle's fused kernel for the call's layouts (`x` as a candle tensor).
fn candle_rope(
    x: &CandleTensor,
    cos: &CandleTensor,
    sin: &CandleTensor,
    call: &RopeCall<'_>,
) -> candle_core::Result<CandleTensor> {
    let seq_len = match call.qk_layout {
        QkLayout::BatchSeqHeads => x.dim(1)?,
        _ => x.dim(2)?,
    };
    let (cos, sin) = tables_for(cos, sin, call.positions, seq_len)?;
    match (call.qk_layout, call.pair_layout) {
        (QkLayout::BatchSeqHeads, RopeLayout::HalfSplit) => rope_thd(x, &cos, &sin),
        // candle has no interleaved kernel for (b, s, h, d): transpose around rope_i.
        (QkLayout::BatchSeqHeads, _) => rope_i(&x.transpose(1, 2)?.contiguous()?, &cos, &sin)?
            .transpose(1, 2)?
            .contiguous(),
        (_, RopeLayout::HalfSplit) => rope(x, &cos, &sin),
        _ => rope_i(x, &cos, &sin),
    }
}

impl RopeAdapter for Candle {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(&DTYPES)
            .with_qk_layouts(&[QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq])
            .with_pair_layouts(&[RopeLayout::HalfSplit, RopeLayout::Interleaved])
            .with_positions(&[PositionsKind::Offset, PositionsKind::Ids])
            // The kit asks for the backward: candle's autograd is what a model trains with.
            .with_backward()
    }

    fn rope<T: Element>(
        &self,
        x: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        let out = candle_rope(&to_candle(x)?, &to_candle(cos)?, &to_candle(sin)?, call)
            .map_err(AdapterError::new)?;
        from_candle(&out)
    }

    fn rope_backward<T: Element>(
        &self,
        grad_output: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        // d(sum(rope(x) · g))/dx through candle's autograd, at any x.
        let x = Var::from_tensor(&to_candle(grad_output)?).map_err(AdapterError::new)?;
        let g = to_candle(grad_output)?;
        let grads = candle_rope(x.as_tensor(), &to_candle(cos)?, &to_candle(sin)?, call)
            .and_then(|out| out.mul(&g))
            .and_then(|l| l.sum_all())
            .and_then(|l| l.backward())
            .map_err(AdapterError::new)?;
        let grad = grads.get(x.as_tensor()).ok_or_else(|| {
            AdapterError::new("candle's autograd computed no gradient for x (the fused rope kernels have no backward, candle #3568)")
        })?;
        from_candle(grad)
    }
}

/// candle's f32 RoPE with a true error of 1e-3 added to every output: the f32 tolerance
/// (a few ulps of each element's terms) must catch it.
struct OffBy1e3;

impl RopeAdapter for OffBy1e3 {
    fn capabilities(&self) -> Capabilities {
        Capabilities::new(&[DType::F32])
            .with_qk_layouts(&[QkLayout::BatchSeqHeads, QkLayout::BatchHeadsSeq])
            .with_pair_layouts(&[RopeLayout::HalfSplit, RopeLayout::Interleaved])
            .with_positions(&[PositionsKind::Offset, PositionsKind::Ids])
    }

    fn rope<T: Element>(
        &self,
        x: &Tensor<T>,
        cos: &Tensor<T>,
        sin: &Tensor<T>,
        call: &RopeCall<'_>,
    ) -> Result<Tensor<T>, AdapterError> {
        let out = Candle.rope(x, cos, sin, call)?;
        let off = out
            .as_slice()
            .iter()
            .map(|v| T::from_f64_lossy(v.as_f64() + 1e-3));
        Tensor::from_vec(off.collect(), out.dims()).map_err(AdapterError::new)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut off = Kit::new();
    off.check_rope(&OffBy1e3);
    let caught = off.report().failures().any(|c| c.name == "rope f32");
    if !caught {
        return Err(format!(
            "an error of 1e-3 in f32 RoPE was not caught:\n{}",
            off.report()
        )
        .into());
    }
    println!("an error of 1e-3 added to candle's f32 rope: caught by the f32 tolerance\n");

    let mut kit = Kit::new();
    kit.check_lookup(&Candle)
        .check_embedding_backward(&Candle)
        .check_rope(&Candle);
    let report = kit.finish();
    println!("{report}");
    let unexpected: Vec<&str> = report
        .failures()
        .map(|c| c.name.as_str())
        .filter(|name| !name.starts_with("rope backward"))
        .collect();
    if !unexpected.is_empty() {
        return Err(format!("unexpected failures: {unexpected:?}").into());
    }
    Ok(())
}
