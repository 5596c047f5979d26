//! `QuantizedEmbedding`: the lookup and the logits from stored blocks agree with the
//! dequantized dense table, through the same checks and errors as `Embedding`.

use proptest::prelude::*;
use tokenloom_embedding::{EmbeddingError, QuantizedEmbedding, functional};
use tokenloom_io::{BlockCodec, GgmlType, QuantizedMatrix, quantize_q8_0};
use tokenloom_tensor::{Tensor, bf16, f16};

/// Formats with their block sizes, for tables of random blocks.
const TYPES: [GgmlType; 6] = [
    GgmlType::Q4_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q4K,
    GgmlType::Q6K,
    GgmlType::IQ4XS,
];

/// A table of `vocab_size` rows of random blocks (a 16-bit LCG; any bytes are valid).
fn random_table(
    qtype: GgmlType,
    vocab_size: usize,
    blocks_per_row: usize,
    seed: u32,
) -> QuantizedEmbedding {
    let codec = BlockCodec::of(qtype).unwrap();
    let n_embd = codec.block_elems() * blocks_per_row;
    let len = vocab_size * codec.bytes_for(n_embd).unwrap();
    let mut state = seed;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (state >> 16) as u8
        })
        .collect();
    // Keep every f16 scale finite and small: clear the top exponent bits of each block's
    // leading bytes and of the Q6_K scale at its end.
    for block in bytes.chunks_exact_mut(codec.block_bytes()) {
        let n = block.len();
        for at in [1, 3, n - 1] {
            block[at] &= 0x23;
        }
    }
    QuantizedEmbedding::new(QuantizedMatrix::from_bytes(qtype, bytes, vocab_size, n_embd).unwrap())
        .unwrap()
}

fn bits_eq(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn lookup_equals_the_dequantized_table_for_every_id_type_and_float_type() {
    for qtype in TYPES {
        let table = random_table(qtype, 50, 2, 7);
        let dense = table.to_dense::<f32>().unwrap();
        let ids_u32 = Tensor::from_vec(vec![3u32, 49, 0, 3, 17, 8], &[2, 3]).unwrap();
        let want = dense.forward(&ids_u32).unwrap();
        let got: Tensor<f32> = table.forward(&ids_u32).unwrap();
        assert_eq!(got.dims(), &[2, 3, table.n_embd()]);
        assert!(bits_eq(got.as_slice(), want.as_slice()), "{qtype:?}");
        let ids_i64 = Tensor::from_vec(vec![3i64, 49, 0, 3, 17, 8], &[2, 3]).unwrap();
        let ids_i32 = Tensor::from_vec(vec![3i32, 49, 0, 3, 17, 8], &[2, 3]).unwrap();
        assert!(bits_eq(
            table.forward::<f32, _>(&ids_i64).unwrap().as_slice(),
            want.as_slice()
        ));
        assert!(bits_eq(
            table.forward::<f32, _>(&ids_i32).unwrap().as_slice(),
            want.as_slice()
        ));
        // f16 and bf16: each f32 value rounded once.
        let half: Tensor<f16> = table.forward(&ids_u32).unwrap();
        let brain: Tensor<bf16> = table.forward(&ids_u32).unwrap();
        for ((h, b), w) in half
            .as_slice()
            .iter()
            .zip(brain.as_slice())
            .zip(want.as_slice())
        {
            assert_eq!(h.to_bits(), f16::from_f32(*w).to_bits());
            assert_eq!(b.to_bits(), bf16::from_f32(*w).to_bits());
        }
        // Into a caller's buffer, and one row at a time.
        let mut out = vec![0.0f32; 6 * table.n_embd()];
        table
            .forward_into(&ids_u32, (&mut out[..], [2, 3, table.n_embd()]))
            .unwrap();
        assert!(bits_eq(&out, want.as_slice()));
        let mut row = vec![0.0f32; table.n_embd()];
        table.row_into(49, &mut row).unwrap();
        assert!(bits_eq(&row, dense.row(49).unwrap()));
    }
}

#[test]
fn bad_ids_and_buffers_are_the_errors_of_embedding() {
    let table = random_table(GgmlType::Q8_0, 10, 1, 3);
    let err = table
        .forward::<f32, _>(&Tensor::from_vec(vec![1i64, 2, 3, -4], &[2, 2]).unwrap())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "token id -4 at batch 1, position 1 is outside vocab_size 10"
    );
    let err = table.forward::<f32, _>(&[10u32]).unwrap_err();
    assert!(matches!(
        err,
        EmbeddingError::TokenOutOfRange { token: 10, .. }
    ));
    assert!(matches!(
        table.forward::<f32, _>(&[0u32; 0]).unwrap_err(),
        EmbeddingError::EmptyIds { .. }
    ));
    let mut wrong = vec![0.0f32; 31];
    assert!(matches!(
        table.forward_into(&[1u32], (&mut wrong[..], [1, 31])),
        Err(EmbeddingError::OutputShape { .. })
    ));
    assert!(matches!(
        table.row_into(10, &mut [0.0f32; 32]),
        Err(EmbeddingError::TokenOutOfRange { token: 10, .. })
    ));
    assert!(matches!(
        table.row_into(1, &mut wrong),
        Err(EmbeddingError::OutputShape { .. })
    ));
}

#[test]
fn training_a_quantized_table_says_to_dequantize_first() {
    let table = random_table(GgmlType::Q4K, 4, 1, 5);
    let err = table.backward().unwrap_err();
    assert_eq!(
        err.to_string(),
        "backward needs a dense table, but this one is stored as Q4_K: dequantize it first (QuantizedEmbedding::to_dense)"
    );
    // to_dense gives a trainable table.
    let dense = table.to_dense::<f32>().unwrap();
    assert_eq!(dense.weight().dims(), &[4, 256]);
}

#[test]
fn logits_from_stored_blocks_equal_the_dense_logits() {
    for qtype in TYPES {
        let table = random_table(qtype, 300, 1, 11);
        let dense = table.to_dense::<f32>().unwrap();
        let n_embd = table.n_embd();
        for rows in [1, 4, 12] {
            let hidden: Vec<f32> = (0..rows * n_embd)
                .map(|i| ((i * 37) % 101) as f32 / 101.0 - 0.5)
                .collect();
            let hidden = (&hidden[..], [rows, n_embd]);
            let want = functional::logits(hidden, dense.weight(), 0.5).unwrap();
            let got = table.logits(hidden, 0.5).unwrap();
            assert_eq!(got.dims(), &[rows, 300]);
            if rows <= 8 {
                assert!(
                    bits_eq(got.as_slice(), want.as_slice()),
                    "{qtype:?} rows {rows}"
                );
            } else {
                for (g, w) in got.as_slice().iter().zip(want.as_slice()) {
                    assert!(
                        (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                        "{qtype:?}: {g} vs {w}"
                    );
                }
            }
            let mut into = vec![0.0f32; rows * 300];
            table
                .logits_into(hidden, 0.5, (&mut into[..], [rows, 300]))
                .unwrap();
            assert!(bits_eq(&into, got.as_slice()));
        }
    }
    let table = random_table(GgmlType::Q8_0, 8, 1, 2);
    let h = [0.0f32; 31];
    assert!(matches!(
        table.logits((&h[..], [1, 31]), 1.0),
        Err(EmbeddingError::GradShape { .. })
    ));
    let h = [0.0f32; 32];
    assert!(matches!(
        table.logits((&h[..], [1, 32]), 0.0),
        Err(EmbeddingError::InvalidOption { .. })
    ));
}

#[test]
fn a_q8_0_table_is_close_to_the_values_it_quantized() {
    let values: Vec<f32> = (0..16 * 64)
        .map(|i| ((i * 13) % 97) as f32 / 48.0 - 1.0)
        .collect();
    let table = QuantizedEmbedding::new(
        QuantizedMatrix::from_bytes(GgmlType::Q8_0, quantize_q8_0(&values), 16, 64).unwrap(),
    )
    .unwrap();
    assert_eq!(table.bytes_in_memory(), 16 * 2 * 34);
    let x: Tensor<f32> = table.forward(&[5u32]).unwrap();
    for (got, want) in x.as_slice().iter().zip(&values[5 * 64..6 * 64]) {
        // Q8_0's step is max|x| / 127 per block of 32.
        assert!(
            (got - want).abs() <= 1.0 / 127.0 / 2.0 + 1e-6,
            "{got} vs {want}"
        );
    }
}

proptest! {
    /// For any format, ids and batch shape, the lookup is the dense lookup of the
    /// dequantized table.
    #[test]
    fn lookup_is_the_dense_lookup_of_the_dequantized_table(
        type_index in 0..TYPES.len(),
        vocab_size in 1usize..40,
        seed in any::<u32>(),
        ids in proptest::collection::vec(any::<u32>(), 1..24),
        batch in 1usize..4,
    ) {
        let table = random_table(TYPES[type_index], vocab_size, 1, seed);
        let ids: Vec<u32> = ids.iter().map(|id| id % vocab_size as u32).collect();
        let seq_len = ids.len() / batch;
        prop_assume!(seq_len > 0);
        let ids = Tensor::from_vec(ids[..batch * seq_len].to_vec(), &[batch, seq_len]).unwrap();
        let got: Tensor<f32> = table.forward(&ids).unwrap();
        let want = table.to_dense::<f32>().unwrap().forward(&ids).unwrap();
        prop_assert_eq!(got.dims(), want.dims());
        prop_assert!(bits_eq(got.as_slice(), want.as_slice()));
    }
}

#[test]
fn an_fp8_table_looks_up_and_gives_logits_as_its_dense_table() {
    use tokenloom_io::Fp8Matrix;
    let (vocab_size, n_embd) = (9usize, 48usize);
    // Every E4M3 byte but the NaNs, and per-block scales over blocks of (4, 16).
    let bytes: Vec<u8> = (0..vocab_size * n_embd)
        .map(|i| ((i * 113) % 256) as u8)
        .map(|b| if b & 0x7F == 0x7F { 0x38 } else { b })
        .collect();
    let scales: Vec<f32> = (0..3 * 3).map(|i| 0.25 + i as f32 / 8.0).collect();
    let matrix =
        Fp8Matrix::from_parts("F8_E4M3", bytes, vocab_size, n_embd, scales, [4, 16]).unwrap();
    let table = QuantizedEmbedding::new(matrix).unwrap();
    assert_eq!((table.vocab_size(), table.n_embd()), (vocab_size, n_embd));
    let dense = table.to_dense::<f32>().unwrap();

    let ids = Tensor::from_vec(vec![8u32, 0, 3, 3, 7, 1], &[2, 3]).unwrap();
    let got = table.forward::<f32, _>(&ids).unwrap();
    let want = dense.forward(&ids).unwrap();
    assert_eq!(got.dims(), &[2, 3, n_embd]);
    assert!(bits_eq(got.as_slice(), want.as_slice()));

    for rows in [1usize, 8] {
        let hidden: Vec<f32> = (0..rows * n_embd)
            .map(|i| ((i * 29 % 31) as f32 - 15.0) / 16.0)
            .collect();
        let hidden = Tensor::from_vec(hidden, &[rows, n_embd]).unwrap();
        let got = table.logits(&hidden, 1.0).unwrap();
        let want = functional::logits(&hidden, dense.weight(), 1.0).unwrap();
        assert!(bits_eq(got.as_slice(), want.as_slice()), "{rows} rows");
    }

    let err = table.forward::<f32, _>(&[9u32]).unwrap_err();
    assert!(
        matches!(err, EmbeddingError::TokenOutOfRange { .. }),
        "{err}"
    );
    let err = table.backward().unwrap_err();
    assert!(err.to_string().contains("F8_E4M3"), "{err}");
}

#[test]
fn embedding_bag_equals_the_dequantized_table_in_every_mode() {
    use functional::{BagMode, BagOptions, Bags};
    let ids = [3u32, 49, 0, 3, 17, 8, 8];
    let bags = Bags::from_offsets(&ids[..], &[0, 3, 3, 5], false).unwrap();
    for qtype in TYPES {
        let table = random_table(qtype, 50, 2, 11);
        let dense = table.to_dense::<f32>().unwrap();
        let n_embd = table.n_embd();
        for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
            let options = BagOptions::new(mode).with_padding_idx(17);
            let (mut want, mut got) = (vec![0.0f32; 4 * n_embd], vec![0.0f32; 4 * n_embd]);
            let (mut want_arg, mut got_arg) = (vec![0i64; 4 * n_embd], vec![0i64; 4 * n_embd]);
            let max = mode == BagMode::Max;
            functional::embedding_bag_into(
                dense.weight(),
                &bags,
                None,
                &options,
                (&mut want[..], [4, n_embd]),
                max.then_some(&mut want_arg[..]),
            )
            .unwrap();
            table
                .embedding_bag_into(
                    &bags,
                    None,
                    &options,
                    (&mut got[..], [4, n_embd]),
                    max.then_some(&mut got_arg[..]),
                )
                .unwrap();
            assert!(bits_eq(&got, &want), "{qtype:?} {mode:?}");
            assert_eq!(got_arg, want_arg);
        }
    }
}
