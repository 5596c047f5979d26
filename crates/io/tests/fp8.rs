//! FP8 safetensors tensors against `data/fp8_golden.safetensors` (ml_dtypes' values,
//! written by `data/make_fp8_golden.py`): every byte of each 8-bit type converts exactly,
//! and a block-scaled weight dequantizes to the reference's bits.

use tokenloom_io::{IoError, SafetensorsFile};
use tokenloom_tensor::bf16;

fn golden() -> SafetensorsFile {
    SafetensorsFile::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fp8_golden.safetensors"
    ))
    .unwrap()
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_byte_of_every_fp8_type_converts_exactly() {
    let file = golden();
    for ty in ["e4m3", "e5m2", "e8m0"] {
        let got = file.load::<f32>(&format!("all.{ty}")).unwrap();
        let want = file.load::<f32>(&format!("all.{ty}.f32")).unwrap();
        assert_eq!(got.dims(), &[16, 16]);
        for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
            assert!(same_bits(*g, *w), "{ty} byte {i:#04x}: {g} vs {w}");
        }
        // f64 widens the same values; bf16 holds every E4M3/E5M2/E8M0 value exactly.
        let wide = file.load::<f64>(&format!("all.{ty}")).unwrap();
        let narrow = file.load::<bf16>(&format!("all.{ty}")).unwrap();
        for ((w, n), v) in wide
            .as_slice()
            .iter()
            .zip(narrow.as_slice())
            .zip(want.as_slice())
        {
            assert!(
                same_bits(*w as f32, *v) && same_bits(n.to_f32(), *v),
                "{ty} {v}"
            );
        }
    }
}

#[test]
fn block_scaled_weights_dequantize_to_the_reference_bits() {
    let file = golden();
    let got = file
        .load_block_scaled::<f32>("blocked.weight", [4, 8])
        .unwrap();
    let want = file.load::<f32>("blocked.f32").unwrap();
    assert_eq!(got.dims(), &[10, 20]);
    assert!(
        got.as_slice()
            .iter()
            .zip(want.as_slice())
            .all(|(g, w)| same_bits(*g, *w))
    );
    let got = file
        .load_block_scaled::<bf16>("blocked.weight", [4, 8])
        .unwrap();
    let want = file.load::<bf16>("blocked.bf16").unwrap();
    assert_eq!(got.as_slice(), want.as_slice());
}

#[test]
fn a_scaled_weight_is_never_read_without_its_scales() {
    let file = golden();
    let err = file.load::<f32>("blocked.weight").unwrap_err();
    assert!(
        matches!(&err, IoError::ScaledFp8 { name, scales }
            if name == "blocked.weight" && scales == "blocked.weight_scale_inv"),
        "{err}"
    );
    assert!(err.to_string().contains("load_block_scaled"), "{err}");
}

#[test]
fn block_sizes_and_scale_shapes_that_do_not_tile_are_errors() {
    let file = golden();
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.weight", [0, 8]),
        Err(IoError::BlockSize { block: [0, 8], .. })
    ));
    // 128×128 blocks over (10, 20) need one scale, the file has (3, 3).
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.weight", [128, 128]),
        Err(IoError::ShapeMismatch { ref name, ref expected, ref got })
            if name == "blocked.weight_scale_inv" && expected == &[1, 1] && got == &[3, 3]
    ));
    // Not an FP8 weight; no scales beside it.
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.f32", [4, 8]),
        Err(IoError::UnsupportedDType { .. })
    ));
    assert!(matches!(
        file.load_block_scaled::<f32>("all.e4m3", [4, 8]),
        Err(IoError::MissingTensor { .. })
    ));
    assert!(matches!(
        file.load_block_scaled::<f32>("all.e8m0", [4, 8]),
        Err(IoError::UnsupportedDType { .. })
    ));
}

#[test]
fn an_fp8_matrix_decodes_rows_and_logits_as_the_dense_table() {
    use tokenloom_tensor::{
        Accumulate, Operand, TensorError, TensorView, TensorViewMut, matmul_into,
    };
    let file = golden();
    let matrix = file.load_fp8_matrix("blocked.weight", [4, 8]).unwrap();
    assert_eq!(
        (matrix.rows(), matrix.cols(), matrix.block(), matrix.dtype()),
        (10, 20, [4, 8], "F8_E4M3")
    );
    assert_eq!(matrix.bytes_in_memory(), 10 * 20 + 4 * 3 * 3);
    // The rows are the reference's (ml_dtypes' product per block), without a dense copy.
    let want = file.load::<f32>("blocked.f32").unwrap();
    let mut row = [0.0f32; 20];
    for r in 0..10 {
        matrix.row_into(r, &mut row).unwrap();
        let expected = &want.as_slice()[r * 20..(r + 1) * 20];
        assert!(
            row.iter().zip(expected).all(|(g, w)| same_bits(*g, *w)),
            "row {r}"
        );
    }
    // Logits: up to 8 rows with the bits of the dense product on the decoded table, more
    // rows through the GEMM on decoded tiles (within f32 rounding).
    for m in [1usize, 3, 8, 11] {
        let a: Vec<f32> = (0..m * 20)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let mut got = vec![0.0f32; m * 10];
        matrix
            .matmul_transposed_into((&a[..], [m, 20]), (&mut got[..], [m, 10]))
            .unwrap();
        let mut dense = vec![0.0f32; m * 10];
        matmul_into(
            TensorView::new(&a, &[m, 20]).unwrap(),
            Operand::AsIs,
            want.view(),
            Operand::Transposed,
            TensorViewMut::new(&mut dense, &[m, 10]).unwrap(),
            Accumulate::Replace,
        )
        .unwrap();
        for (g, d) in got.iter().zip(&dense) {
            if m <= 8 {
                assert!(same_bits(*g, *d), "m={m}: {g} vs {d}");
            } else {
                assert!(
                    same_bits(*g, *d) || (g - d).abs() <= 1e-5 * d.abs().max(1.0),
                    "m={m}: {g} vs {d}"
                );
            }
        }
    }
    // Bad rows and buffers are errors, not panics.
    assert!(matches!(
        matrix.row_into(10, &mut row),
        Err(IoError::Tensor(TensorError::RowOutOfRange {
            index: 10,
            n_rows: 10,
            ..
        }))
    ));
    assert!(matrix.row_into(0, &mut [0.0f32; 19]).is_err());
    assert!(
        matrix
            .matmul_transposed_into(
                (&[0.0f32; 19][..], [1, 19]),
                (&mut [0.0f32; 10][..], [1, 10])
            )
            .is_err()
    );
    assert!(
        matrix
            .matmul_transposed_into((&[0.0f32; 20][..], [1, 20]), (&mut [0.0f32; 9][..], [1, 9]))
            .is_err()
    );
}

#[test]
fn fp8_matrices_from_parts_check_their_dtype_block_and_lengths() {
    use tokenloom_io::Fp8Matrix;
    let ok = Fp8Matrix::from_parts("F8_E5M2", vec![0x3C; 6], 2, 3, vec![2.0; 2], [1, 3]).unwrap();
    let mut row = [0.0f32; 3];
    ok.row_into(1, &mut row).unwrap();
    assert_eq!(row, [2.0; 3], "0x3C is 1.0 in E5M2");
    assert_eq!(ok.to_dense::<f32>().unwrap().as_slice(), [2.0; 6]);
    let parts = |dtype: &str, bytes: usize, scales: usize, block: [usize; 2]| {
        Fp8Matrix::from_parts(dtype, vec![0; bytes], 2, 3, vec![1.0; scales], block)
    };
    assert!(matches!(
        parts("F8_E4M3", 5, 2, [1, 3]),
        Err(IoError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        parts("F8_E4M3", 6, 3, [1, 3]),
        Err(IoError::ShapeMismatch { .. })
    ));
    assert!(matches!(
        parts("F8_E4M3", 6, 2, [0, 3]),
        Err(IoError::BlockSize { .. })
    ));
    assert!(matches!(
        parts("F16", 6, 2, [1, 3]),
        Err(IoError::UnsupportedDType { .. })
    ));
    assert!(matches!(
        parts("F8_E8M0", 6, 2, [1, 3]),
        Err(IoError::UnsupportedDType { .. })
    ));
    // Partial blocks at the edges: (2, 3) in blocks of (4, 2) is a (1, 2) grid.
    assert!(parts("F8_E4M3", 6, 2, [4, 2]).is_ok());
}
