//! The decoder input: reference numbers for absolute positions, batching laws, RoPE
//! through position ids, backward, config round trips and errors.

mod common;

use common::assert_close;
use proptest::prelude::*;
use tokenloom::decoder_input::{
    DecoderInput, DecoderInputConfig, DecoderInputError, PaddingSide, PositionEncoding,
    PositionSchemeConfig, TokenBatch, stream_batches,
};
use tokenloom::embedding::{Embedding, EmbeddingAndHead, Init};
use tokenloom::positions::{QkLayout, RopeConfig, RopeLayout, sinusoidal_table};
use tokenloom::tensor::{DType, Tensor, TensorView};

/// `E[ids] (· √d) + PE[0..seq_len]` equals the reference (Vaswani §3.4 / Annotated
/// Transformer).
#[test]
fn sinusoidal_input_matches_the_reference() {
    let case = common::case("sin_add_to_embeddings_f64");
    let tol = case.f64("tolerance/abs");
    let d = case.f64("config/d_model") as usize;
    let base = case.f64("config/base");
    let (w_shape, weight) = case.tensor("inputs/weight");
    let (ids_shape, ids) = case.ids("inputs/ids");
    for (scale, expected) in [
        (Some((d as f64).sqrt()), "expected/x_scaled_sqrt_d"),
        (None, "expected/x_unscaled"),
    ] {
        let table =
            Embedding::from_weight(Tensor::from_vec(weight.clone(), &w_shape).unwrap()).unwrap();
        let head = table.weight().clone();
        let model = EmbeddingAndHead::untied(table, head).unwrap();
        let positions = PositionEncoding::<f64, f64>::Sinusoidal(
            sinusoidal_table(ids_shape[1], d, base).unwrap(),
        );
        let input = DecoderInput::from_parts(model, positions, ids_shape[1], None, scale).unwrap();
        let batch = TokenBatch::new(Tensor::from_vec(ids.clone(), &ids_shape).unwrap()).unwrap();
        let out = input.forward(&batch).unwrap();
        let (_, want) = case.tensor(expected);
        assert_close(expected, out.hidden().as_slice(), &want, tol);
        assert!(out.rope().is_none());
    }
}

fn scheme_strategy() -> impl Strategy<Value = PositionSchemeConfig> {
    prop_oneof![
        Just(PositionSchemeConfig::Rope {
            rope: RopeConfig::new(4, 10000.0, RopeLayout::HalfSplit)
        }),
        Just(PositionSchemeConfig::Sinusoidal { base: 10000.0 }),
        Just(PositionSchemeConfig::Learned {
            init: Init::normal(0.5)
        }),
        Just(PositionSchemeConfig::None),
    ]
}

fn ragged() -> impl Strategy<Value = Vec<Vec<u32>>> {
    prop::collection::vec(prop::collection::vec(1u32..50, 1..7), 1..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    /// At real (unmasked) tokens, a padded batch gives the hidden states of each sequence
    /// processed alone, for either padding side and every position scheme.
    #[test]
    fn padding_does_not_change_real_tokens(seqs in ragged(), scheme in scheme_strategy(), left in any::<bool>(), scale in any::<bool>()) {
        let mut config = DecoderInputConfig::new(50, 8, 16).with_pad_id(0).with_position_scheme(scheme).with_dtype(DType::F64);
        if scale {
            config = config.with_embedding_scale(8f64.sqrt());
        }
        let input = DecoderInput::<f64, f64>::from_config(&config, 3).unwrap();
        let side = if left { PaddingSide::Left } else { PaddingSide::Right };
        let batch = input.pad_batch(&seqs, side).unwrap();
        let padded = input.forward(&batch).unwrap();
        let seq_len = batch.seq_len();
        for (b, seq) in seqs.iter().enumerate() {
            let alone_batch = TokenBatch::new(Tensor::from_vec(seq.clone(), &[1, seq.len()]).unwrap()).unwrap();
            let alone = input.forward(&alone_batch).unwrap();
            let offset = if left { seq_len - seq.len() } else { 0 };
            for s in 0..seq.len() {
                let row = (b * seq_len + offset + s) * 8;
                prop_assert_eq!(&padded.hidden().as_slice()[row..row + 8], alone.hidden().row(s).unwrap());
                prop_assert_eq!(batch.attention_mask().as_slice()[b * seq_len + offset + s], 1);
                prop_assert_eq!(batch.position_ids().as_slice()[b * seq_len + offset + s] as usize, s);
            }
            let pads = seq_len - seq.len();
            prop_assert_eq!(batch.attention_mask().row(b).unwrap().iter().filter(|&&m| m == 0).count(), pads);
        }
    }

    /// Stream batching reproduces the stream when flattened; targets are the inputs
    /// shifted by one.
    #[test]
    fn stream_windows_cover_the_stream(stream in prop::collection::vec(any::<u32>(), 2..200), batch_size in 1usize..5, seq_len in 1usize..9) {
        prop_assume!(stream.len() > seq_len);
        let mut inputs = Vec::new();
        let mut targets = Vec::new();
        for b in stream_batches(&stream, batch_size, seq_len).unwrap() {
            let b = b.unwrap();
            prop_assert_eq!(b.inputs.seq_len(), seq_len);
            prop_assert!(b.inputs.batch() <= batch_size);
            prop_assert!(b.inputs.attention_mask().as_slice().iter().all(|&m| m == 1));
            inputs.extend_from_slice(b.inputs.ids().as_slice());
            targets.extend_from_slice(b.targets.as_slice());
        }
        let n = (stream.len() - 1) / seq_len * seq_len;
        prop_assert_eq!(&inputs[..], &stream[..n]);
        prop_assert_eq!(&targets[..], &stream[1..=n]);
    }

    /// RoPE through a left-padded batch's position ids equals RoPE of each sequence alone
    /// (and decoding one token at an offset equals the prefill's last row).
    #[test]
    fn rope_follows_position_ids(seqs in ragged(), seed in any::<u64>()) {
        let config = DecoderInputConfig::new(50, 8, 16).with_pad_id(0)
            .with_position_scheme(PositionSchemeConfig::Rope { rope: RopeConfig::new(4, 10000.0, RopeLayout::Interleaved) })
            .with_dtype(DType::F64);
        let input = DecoderInput::<f64, f64>::from_config(&config, 1).unwrap();
        let batch = input.pad_batch(&seqs, PaddingSide::Left).unwrap();
        let out = input.forward(&batch).unwrap();
        let (b, s) = (batch.batch(), batch.seq_len());
        let val = |i: usize| (((i as u64) ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 44) as f64 / 1e6 - 0.5;
        let q: Vec<f64> = (0..b * s * 4).map(val).collect();
        let mut q_rot = Tensor::from_vec(q.clone(), &[b, s, 1, 4]).unwrap();
        let mut k_rot = Tensor::from_vec(q.clone(), &[b, s, 1, 4]).unwrap();
        out.apply_rope(q_rot.view_mut(), k_rot.view_mut(), QkLayout::BatchSeqHeads).unwrap();
        prop_assert_eq!(&q_rot, &k_rot);
        for (bi, seq) in seqs.iter().enumerate() {
            let offset = s - seq.len();
            let last = s - 1;
            // Decode step: the last token alone at position len − 1.
            let step = TokenBatch::with_offset(Tensor::from_vec(vec![seq[seq.len() - 1]], &[1, 1]).unwrap(), seq.len() - 1).unwrap();
            let step_out = input.forward(&step).unwrap();
            let row = (bi * s + last) * 4;
            let mut q1 = Tensor::from_vec(q[row..row + 4].to_vec(), &[1, 1, 1, 4]).unwrap();
            let mut k1 = q1.clone();
            step_out.apply_rope(q1.view_mut(), k1.view_mut(), QkLayout::BatchSeqHeads).unwrap();
            prop_assert_eq!(q1.as_slice(), &q_rot.as_slice()[row..row + 4]);
            let _ = offset;
        }
    }
}

#[test]
fn backward_reaches_the_embedding_and_the_learned_positions() {
    let config = DecoderInputConfig::new(10, 3, 6)
        .with_position_scheme(PositionSchemeConfig::Learned {
            init: Init::normal(0.1),
        })
        .with_embedding_scale(2.0)
        .with_dtype(DType::F64);
    let input = DecoderInput::<f64, f64>::from_config(&config, 5).unwrap();
    let batch = TokenBatch::new(Tensor::from_vec(vec![4, 4, 7], &[1, 3]).unwrap()).unwrap();
    let grad = Tensor::from_vec((0..9).map(f64::from).collect(), &[1, 3, 3]).unwrap();
    let mut grads = input.zero_grads().unwrap();
    input.backward(&batch, grad.view(), &mut grads).unwrap();
    // Token 4 appears at positions 0 and 1; the embedding scale multiplies its gradient.
    let g = grads.model.embedding.as_slice();
    assert_eq!(
        &g[12..15],
        &[2.0 * (0.0 + 3.0), 2.0 * (1.0 + 4.0), 2.0 * (2.0 + 5.0)]
    );
    assert_eq!(&g[21..24], &[12.0, 14.0, 16.0]);
    // Positions 0, 1, 2 each get their own row, unscaled.
    let p = grads.learned_positions.as_ref().unwrap().as_slice();
    assert_eq!(&p[..9], grad.as_slice());
    assert!(p[9..].iter().all(|&x| x == 0.0));
}

#[test]
fn configs_round_trip_through_json_and_bincode() {
    let configs = [
        DecoderInputConfig::new(32000, 4096, 4096),
        DecoderInputConfig::new(100, 16, 64)
            .with_pad_id(0)
            .with_tied_head(true)
            .with_embedding_scale(4.0)
            .with_dtype(DType::BF16)
            .with_position_scheme(PositionSchemeConfig::Sinusoidal { base: 10000.0 }),
        DecoderInputConfig::new(100, 16, 64).with_position_scheme(PositionSchemeConfig::Learned {
            init: Init::XavierUniform { gain: 1.0 },
        }),
        DecoderInputConfig::new(100, 16, 64).with_position_scheme(PositionSchemeConfig::None),
    ];
    for config in configs {
        let json = serde_json::to_string_pretty(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<DecoderInputConfig>(&json).unwrap(),
            config,
            "{json}"
        );
        let bytes = bincode::serde::encode_to_vec(&config, bincode::config::standard()).unwrap();
        let (back, _): (DecoderInputConfig, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, config);
    }
}

#[test]
fn bad_batches_and_configs_are_errors() {
    let config = DecoderInputConfig::new(50, 8, 4).with_pad_id(0);
    let input = DecoderInput::<f32>::from_config(&config, 0).unwrap();
    let empty: [Vec<u32>; 0] = [];
    assert_eq!(
        input.pad_batch(&empty, PaddingSide::Left).unwrap_err(),
        DecoderInputError::EmptyBatch
    );
    assert_eq!(
        input
            .pad_batch(&[vec![1], vec![]], PaddingSide::Left)
            .unwrap_err(),
        DecoderInputError::EmptySequence { index: 1 }
    );
    assert_eq!(
        input
            .pad_batch(&[vec![1], vec![1, 2, 3, 4, 5]], PaddingSide::Right)
            .unwrap_err(),
        DecoderInputError::SequenceTooLong {
            index: 1,
            len: 5,
            max_positions: 4
        }
    );
    let decode =
        TokenBatch::with_offset(Tensor::from_vec(vec![3, 4], &[1, 2]).unwrap(), 3).unwrap();
    assert_eq!(
        input.forward(&decode).unwrap_err().to_string(),
        "position 4 at batch 0, index 1 is outside max_positions 4"
    );
    // An offset past u32 position ids, even near usize::MAX, is an error, not an overflow.
    let far = TokenBatch::with_offset(Tensor::from_vec(vec![3, 4], &[1, 2]).unwrap(), usize::MAX);
    assert!(matches!(
        far,
        Err(DecoderInputError::PositionOutOfRange { .. })
    ));
    let bad_id = TokenBatch::new(Tensor::from_vec(vec![3, 50], &[1, 2]).unwrap()).unwrap();
    assert!(
        input
            .forward(&bad_id)
            .unwrap_err()
            .to_string()
            .contains("token id 50 at batch 0, position 1")
    );
    assert!(matches!(
        stream_batches(&[1, 2, 3], 2, 3),
        Err(DecoderInputError::StreamTooShort {
            stream_len: 3,
            seq_len: 3,
            needed: 4
        })
    ));
    assert!(matches!(
        stream_batches(&[1, 2, 3], 0, 1),
        Err(DecoderInputError::ZeroSize { name: "batch_size" })
    ));
    assert_eq!(
        DecoderInput::<f64>::from_config(&config, 0).unwrap_err(),
        DecoderInputError::DTypeMismatch {
            config: DType::F32,
            requested: DType::F64
        }
    );
    // Tying an N(0, 1) table without a logit scale is refused by the embedding crate.
    let tied = DecoderInputConfig::new(50, 64, 4)
        .with_tied_head(true)
        .with_init(Init::default());
    assert!(
        DecoderInput::<f32>::from_config(&tied, 0)
            .unwrap_err()
            .to_string()
            .contains("expected initial logit std")
    );
    // Masks hold 0/1 only; parts must agree in shape.
    let ids = Tensor::from_vec(vec![1u32, 2], &[1, 2]).unwrap();
    let err = TokenBatch::from_parts(
        ids.clone(),
        Tensor::from_vec(vec![1u8, 2], &[1, 2]).unwrap(),
        Tensor::zeros(&[1, 2]).unwrap(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        DecoderInputError::MaskValue {
            value: 2,
            batch: 0,
            index: 1
        }
    );
    let err = TokenBatch::from_parts(
        ids,
        Tensor::zeros(&[2, 1]).unwrap(),
        Tensor::zeros(&[1, 2]).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        DecoderInputError::BatchShape {
            what: "attention_mask",
            ..
        }
    ));
    // RoPE helpers on a non-RoPE scheme say so.
    let sin = DecoderInput::<f32>::from_config(
        &config
            .clone()
            .with_position_scheme(PositionSchemeConfig::Sinusoidal { base: 1e4 }),
        0,
    )
    .unwrap();
    let batch = TokenBatch::new(Tensor::from_vec(vec![1, 2], &[1, 2]).unwrap()).unwrap();
    let out = sin.forward(&batch).unwrap();
    let mut q = Tensor::<f32>::zeros(&[1, 2, 1, 8]).unwrap();
    let mut k = q.clone();
    assert_eq!(
        out.apply_rope(q.view_mut(), k.view_mut(), QkLayout::BatchSeqHeads)
            .unwrap_err(),
        DecoderInputError::NotRope {
            scheme: "sinusoidal"
        }
    );
    let _ = TensorView::<f32>::new(&[], &[0]).unwrap();
}

#[test]
fn config_errors_carry_their_numbers() {
    use tokenloom::decoder_input::{DecoderInputConfig, DecoderInputError};
    let mut config = DecoderInputConfig::new(10, 4, 16);
    config.pad_id = Some(12);
    assert_eq!(
        config.validate(),
        Err(DecoderInputError::PadIdOutOfRange {
            pad_id: 12,
            vocab_size: 10
        })
    );
    config.pad_id = None;
    config.embedding_scale = Some(f64::NAN);
    assert!(matches!(
        config.validate(),
        Err(DecoderInputError::BadScale { name: "embedding_scale", value }) if value.is_nan()
    ));
}

/// The borrowed backward checks everything before writing: a position past the table, a
/// bad scale or an id outside the vocabulary leaves both gradients as they were.
#[test]
fn embed_backward_into_refuses_bad_input_without_writing() {
    use tokenloom::decoder_input::functional::{AbsolutePositionGrads, embed_backward_into};
    use tokenloom::embedding::EmbeddingOptions;
    use tokenloom::tensor::{Accumulate, TensorView, TensorViewMut};

    let options = EmbeddingOptions::default();
    let grad_hidden = [1.0f64, 2.0, 3.0, 4.0];
    for (ids, position_ids, scale) in [
        ([1u32, 2], [0u32, 2], None), // position 2 of a 2-row table
        ([1, 2], [0, 1], Some(-1.0)), // a negative scale
        ([1, 3], [0, 1], Some(2.0)),  // id 3 of a 3-row table
    ] {
        let mut grad_table = [7.0f64; 6];
        let mut grad_positions = [9.0f64; 4];
        let result = embed_backward_into(
            (&ids[..], [1, 2]),
            (&grad_hidden[..], [1, 2, 2]),
            scale,
            &options,
            (&mut grad_table[..], [3, 2]),
            Some(AbsolutePositionGrads {
                position_ids: TensorView::new(&position_ids, &[1, 2]).unwrap(),
                grad_table: TensorViewMut::new(&mut grad_positions, &[2, 2]).unwrap(),
                options: &options,
            }),
            Accumulate::Add,
        );
        assert!(result.is_err(), "{ids:?} {position_ids:?} {scale:?}");
        assert_eq!(grad_table, [7.0; 6]);
        assert_eq!(grad_positions, [9.0; 4]);
    }
}
