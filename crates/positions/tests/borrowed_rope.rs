//! RoPE on borrowed memory: caller-supplied cos/sin tables, out-of-place rotation, and
//! tokenloom's tables written into caller buffers all agree with the cache.

use proptest::prelude::*;
use tokenloom_positions::{
    Direction, PositionError, QkLayout, RopeCache, RopeConfig, RopeLayout, RopeTables,
    TokenPositions, convert_qk_layout, convert_qk_layout_into, sinusoidal_into, sinusoidal_table,
};
use tokenloom_tensor::{Tensor, bf16};
use tokenloom_testkit::strategies::rope_config as config;

fn qk_layout() -> impl Strategy<Value = QkLayout> {
    prop_oneof![Just(QkLayout::BatchSeqHeads), Just(QkLayout::BatchHeadsSeq)]
}

/// A config, dims in `layout`, values and an offset.
fn case() -> impl Strategy<Value = (RopeConfig, QkLayout, [usize; 4], Vec<f32>, usize)> {
    (
        config(),
        qk_layout(),
        1usize..3,
        1usize..6,
        1usize..4,
        0usize..500,
    )
        .prop_flat_map(|(config, layout, b, s, h, offset)| {
            let dims = match layout {
                QkLayout::BatchSeqHeads => [b, s, h, config.head_dim],
                QkLayout::BatchHeadsSeq => [b, h, s, config.head_dim],
            };
            let len: usize = dims.iter().product();
            (
                Just(config),
                Just(layout),
                Just(dims),
                prop::collection::vec(-3.0f32..3.0, len),
                Just(offset),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    /// Out of place equals in place bit for bit, in every direction; the input is kept.
    #[test]
    fn out_of_place_equals_in_place((config, layout, dims, x, offset) in case()) {
        let seq_len = match layout { QkLayout::BatchSeqHeads => dims[1], QkLayout::BatchHeadsSeq => dims[2] };
        let cache = RopeCache::<f32>::new(&config, offset + seq_len).unwrap();
        let positions = TokenPositions::Offset(offset);
        let x_tensor = Tensor::from_vec(x.clone(), &dims).unwrap();
        for direction in 0..3 {
            let mut in_place = x_tensor.clone();
            let mut out = Tensor::<f32>::zeros(&dims).unwrap();
            match direction {
                0 => {
                    cache.rotate_in_place(&mut in_place, layout, positions, Direction::Forward).unwrap();
                    cache.rotate_into(&x_tensor, &mut out, layout, positions, Direction::Forward).unwrap();
                }
                1 => {
                    cache.rotate_in_place(&mut in_place, layout, positions, Direction::Inverse).unwrap();
                    cache.rotate_into(&x_tensor, &mut out, layout, positions, Direction::Inverse).unwrap();
                }
                _ => {
                    cache.rotate_in_place(&mut in_place, layout, positions, Direction::Backward).unwrap();
                    cache.rotate_into(&x_tensor, &mut out, layout, positions, Direction::Backward).unwrap();
                }
            }
            prop_assert_eq!(out.as_slice(), in_place.as_slice(), "direction {}", direction);
            prop_assert_eq!(x_tensor.as_slice(), &x[..]);
        }
    }

    /// The caller's own tables — here tokenloom's, written into the caller's buffers with
    /// `cos_sin_into` — rotate exactly as the cache does.
    #[test]
    fn caller_tables_rotate_as_the_cache((config, layout, dims, x, offset) in case()) {
        let seq_len = match layout { QkLayout::BatchSeqHeads => dims[1], QkLayout::BatchHeadsSeq => dims[2] };
        let max_positions = offset + seq_len;
        let cache = RopeCache::<f32>::new(&config, max_positions).unwrap();
        let half = config.rotary_dim / 2;
        let (mut cos, mut sin) = (vec![0.0f32; max_positions * half], vec![0.0f32; max_positions * half]);
        config
            .cos_sin_into(max_positions, 0, (&mut cos[..], [max_positions, half]), (&mut sin[..], [max_positions, half]))
            .unwrap();
        prop_assert_eq!(&cos[..], cache.cos().as_slice());
        prop_assert_eq!(&sin[..], cache.sin().as_slice());
        let tables = RopeTables::new((&cos[..], [max_positions, half]), (&sin[..], [max_positions, half]), config.layout)
            .unwrap()
            .with_attention_factor(cache.attention_factor())
            .unwrap();
        let mut by_cache = x.clone();
        let mut by_tables = x.clone();
        cache.rotate_in_place((&mut by_cache[..], dims), layout, TokenPositions::Offset(offset), Direction::Forward).unwrap();
        tables.rotate_in_place((&mut by_tables[..], dims), layout, TokenPositions::Offset(offset), Direction::Forward).unwrap();
        prop_assert_eq!(&by_cache, &by_tables);
        // A window of the tables starting at `offset`, with positions counted from 0.
        let (mut cos_w, mut sin_w) = (vec![0.0f32; seq_len * half], vec![0.0f32; seq_len * half]);
        config
            .cos_sin_into(max_positions, offset, (&mut cos_w[..], [seq_len, half]), (&mut sin_w[..], [seq_len, half]))
            .unwrap();
        let window = RopeTables::new((&cos_w[..], [seq_len, half]), (&sin_w[..], [seq_len, half]), config.layout).unwrap();
        let mut by_window = vec![0.0f32; x.len()];
        window.rotate_into((&x[..], dims), (&mut by_window[..], dims), layout, TokenPositions::Offset(0), Direction::Forward).unwrap();
        prop_assert_eq!(&by_window, &by_cache);
    }
}

/// Tables computed by the caller's own code in f32 (as candle or PyTorch would) rotate
/// within f32 rounding of tokenloom's f64-angle tables.
#[test]
fn tables_computed_elsewhere_in_f32() {
    let (head_dim, max_positions) = (16, 64);
    let half = head_dim / 2;
    let mut cos = vec![0.0f32; max_positions * half];
    let mut sin = vec![0.0f32; max_positions * half];
    for p in 0..max_positions {
        for i in 0..half {
            let inv_freq = 1.0f32 / 10000f32.powf(2.0 * i as f32 / head_dim as f32);
            let angle = p as f32 * inv_freq;
            cos[p * half + i] = angle.cos();
            sin[p * half + i] = angle.sin();
        }
    }
    let tables = RopeTables::new(
        (&cos[..], [max_positions, half]),
        (&sin[..], [max_positions, half]),
        RopeLayout::HalfSplit,
    )
    .unwrap();
    let cache = RopeCache::<f32>::new(
        &RopeConfig::new(head_dim, 10000.0, RopeLayout::HalfSplit),
        max_positions,
    )
    .unwrap();
    let x: Vec<f32> = (0..2 * 64 * head_dim)
        .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let dims = [1, 2, 64, head_dim];
    let (mut a, mut b) = (vec![0.0f32; x.len()], vec![0.0f32; x.len()]);
    tables
        .rotate_into(
            (&x[..], dims),
            (&mut a[..], dims),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Offset(0),
            Direction::Forward,
        )
        .unwrap();
    cache
        .rotate_into(
            (&x[..], dims),
            (&mut b[..], dims),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Offset(0),
            Direction::Forward,
        )
        .unwrap();
    let max_diff = a
        .iter()
        .zip(&b)
        .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(max_diff < 1e-5, "{max_diff}");
    // bf16 activations with the same f32 tables: rotated in f32, rounded once.
    let xb: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
    let mut outb = vec![bf16::ZERO; x.len()];
    tables
        .rotate_into(
            (&xb[..], dims),
            (&mut outb[..], dims),
            QkLayout::BatchHeadsSeq,
            TokenPositions::Offset(0),
            Direction::Forward,
        )
        .unwrap();
    assert!(
        outb.iter()
            .zip(&a)
            .all(|(o, r)| (o.to_f32() - r).abs() <= 0.02 * (1.0 + r.abs()))
    );
}

#[test]
fn bad_tables_and_buffers_are_errors() {
    let cos = [1.0f32; 8];
    let sin = [0.0f32; 6];
    assert!(matches!(
        RopeTables::new(
            (&cos[..], [4, 2]),
            (&sin[..], [3, 2]),
            RopeLayout::HalfSplit
        ),
        Err(PositionError::RopeTablesShape { .. })
    ));
    assert!(matches!(
        RopeTables::new(&cos, &cos, RopeLayout::HalfSplit),
        Err(PositionError::RopeTablesShape { .. })
    ));
    let tables = RopeTables::new(
        (&cos[..], [4, 2]),
        (&cos[..], [4, 2]),
        RopeLayout::HalfSplit,
    )
    .unwrap();
    assert!(matches!(
        tables.with_attention_factor(0.0),
        Err(PositionError::InvalidParameter { .. })
    ));
    // Heads narrower than rotary_dim 4.
    let mut x = [0.0f32; 6];
    assert!(matches!(
        tables.rotate_in_place(
            (&mut x[..], [1, 1, 3, 2]),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(0),
            Direction::Forward
        ),
        Err(PositionError::QkTooNarrow { rotary_dim: 4, .. })
    ));
    // An output of another shape, and a position past the tables: nothing is written.
    let x = [1.0f32; 8];
    let mut out = [7.0f32; 8];
    assert!(matches!(
        tables.rotate_into(
            (&x[..], [1, 2, 1, 4]),
            (&mut out[..], [1, 1, 2, 4]),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(0),
            Direction::Forward
        ),
        Err(PositionError::OutputShape { .. })
    ));
    assert!(matches!(
        tables.rotate_into(
            (&x[..], [1, 2, 1, 4]),
            (&mut out[..], [1, 2, 1, 4]),
            QkLayout::BatchSeqHeads,
            TokenPositions::Offset(3),
            Direction::Forward
        ),
        Err(PositionError::PositionOutOfRange {
            position: 4,
            max_positions: 4,
            ..
        })
    ));
    assert_eq!(out, [7.0; 8]);
    // cos_sin_into with buffers of the wrong width.
    let config = RopeConfig::new(8, 10000.0, RopeLayout::Interleaved);
    let mut c = [0.0f64; 6];
    let mut s = [0.0f64; 6];
    assert!(matches!(
        config.cos_sin_into(8, 0, (&mut c[..], [2, 3]), (&mut s[..], [2, 3])),
        Err(PositionError::OutputShape { what: "cos", .. })
    ));
}

#[test]
fn sinusoidal_and_layout_conversion_into_caller_buffers() {
    let table = sinusoidal_table::<f64>(10, 7, 10000.0).unwrap();
    let mut rows = vec![0.0f64; 3 * 7];
    sinusoidal_into((&mut rows[..], [3, 7]), 10000.0, 5).unwrap();
    assert_eq!(&rows[..], &table.as_slice()[5 * 7..8 * 7]);
    assert!(sinusoidal_into(&mut rows, 10000.0, 0).is_err()); // rank 1

    let w = Tensor::from_vec((0..48).map(|v| v as f32).collect(), &[8, 6]).unwrap();
    let want = convert_qk_layout(
        &w,
        "q_proj",
        2,
        4,
        4,
        RopeLayout::Interleaved,
        RopeLayout::HalfSplit,
    )
    .unwrap();
    let mut dst = [0.0f32; 48];
    convert_qk_layout_into(
        &w,
        (&mut dst[..], [8, 6]),
        "q_proj",
        2,
        4,
        4,
        RopeLayout::Interleaved,
        RopeLayout::HalfSplit,
    )
    .unwrap();
    assert_eq!(&dst[..], want.as_slice());
    assert!(matches!(
        convert_qk_layout_into(
            &w,
            (&mut dst[..], [6, 8]),
            "q_proj",
            2,
            4,
            4,
            RopeLayout::Interleaved,
            RopeLayout::HalfSplit,
        ),
        Err(PositionError::OutputShape { .. })
    ));
}

#[test]
fn i64_and_i32_position_ids_rotate_as_u32_ids_and_negatives_are_errors() {
    let (batch, seq_len, n_heads, head_dim) = (2, 3, 2, 8);
    let cache = RopeCache::<f32>::new(
        &RopeConfig::new(head_dim, 10000.0, RopeLayout::HalfSplit),
        16,
    )
    .unwrap();
    let x: Vec<f32> = (0..batch * seq_len * n_heads * head_dim)
        .map(|i| (i as f32 * 0.37).sin())
        .collect();
    let x = Tensor::from_vec(x, &[batch, seq_len, n_heads, head_dim]).unwrap();
    let ids_u32 = [3u32, 9, 15, 0, 0, 7];
    let ids = |data: &[u32]| Tensor::from_vec(data.to_vec(), &[batch, seq_len]).unwrap();
    let want = cache
        .apply(
            &x,
            QkLayout::BatchSeqHeads,
            TokenPositions::Ids(ids(&ids_u32).view()),
        )
        .unwrap();
    let i64s = Tensor::from_vec(ids_u32.map(i64::from).to_vec(), &[batch, seq_len]).unwrap();
    let i32s = Tensor::from_vec(ids_u32.map(|p| p as i32).to_vec(), &[batch, seq_len]).unwrap();
    for positions in [
        TokenPositions::IdsI64(i64s.view()),
        TokenPositions::IdsI32(i32s.view()),
    ] {
        let got = cache.apply(&x, QkLayout::BatchSeqHeads, positions).unwrap();
        assert_eq!(got.as_slice(), want.as_slice());
    }
    let negative = Tensor::from_vec(vec![0i64, 1, 2, 3, -4, 5], &[batch, seq_len]).unwrap();
    let err = cache
        .apply(
            &x,
            QkLayout::BatchSeqHeads,
            TokenPositions::IdsI64(negative.view()),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            PositionError::NegativePosition {
                position: -4,
                batch: 1,
                index: 1
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "position id -4 at batch 1, index 1 is negative"
    );
    let past = Tensor::from_vec(vec![0i32, 1, 16, 3, 4, 5], &[batch, seq_len]).unwrap();
    assert!(matches!(
        cache.apply(
            &x,
            QkLayout::BatchSeqHeads,
            TokenPositions::IdsI32(past.view())
        ),
        Err(PositionError::PositionOutOfRange {
            position: 16,
            batch: 0,
            index: 2,
            max_positions: 16
        })
    ));
}

#[test]
fn the_first_half_of_a_duplicated_cache_rotates_without_a_copy() {
    let (max_positions, head_dim) = (12, 8);
    let half = head_dim / 2;
    let cache = RopeCache::<f32>::new(
        &RopeConfig::new(head_dim, 10000.0, RopeLayout::HalfSplit),
        max_positions,
    )
    .unwrap();
    // transformers' cache: cat(freqs, freqs) per row, (max_positions, head_dim).
    let duplicate = |t: &[f32]| -> Vec<f32> {
        t.chunks(half)
            .flat_map(|row| row.iter().chain(row))
            .copied()
            .collect()
    };
    let (cos, sin) = (
        duplicate(cache.cos().as_slice()),
        duplicate(cache.sin().as_slice()),
    );
    let strided = RopeTables::from_strided(
        &cos,
        &sin,
        max_positions,
        half,
        head_dim,
        RopeLayout::HalfSplit,
    )
    .unwrap();
    let x = Tensor::from_vec(
        (0..2 * 5 * 3 * head_dim)
            .map(|i| (i as f32 * 0.11).cos())
            .collect(),
        &[2, 5, 3, head_dim],
    )
    .unwrap();
    let (mut a, mut b) = (x.clone(), x.clone());
    for (tables, out) in [(strided, &mut a), (cache.tables(), &mut b)] {
        tables
            .rotate_in_place(
                out.view_mut(),
                QkLayout::BatchSeqHeads,
                TokenPositions::Offset(7),
                Direction::Forward,
            )
            .unwrap();
    }
    assert_eq!(a.as_slice(), b.as_slice());
    // Too short for the rows asked for, or a stride below the row length.
    assert!(matches!(
        RopeTables::from_strided(
            &cos,
            &sin,
            max_positions + 1,
            half,
            head_dim,
            RopeLayout::HalfSplit
        ),
        Err(PositionError::RopeTablesStride { .. })
    ));
    assert!(matches!(
        RopeTables::from_strided(
            &cos,
            &sin,
            max_positions,
            half,
            half - 1,
            RopeLayout::HalfSplit
        ),
        Err(PositionError::RopeTablesStride { .. })
    ));
    assert!(matches!(
        RopeTables::<f32>::from_strided(&[], &[], 0, half, head_dim, RopeLayout::HalfSplit),
        Err(PositionError::RopeTablesStride { .. })
    ));
}
