//! Block-quantized GGUF decoding, bit for bit against gguf-py.
//!
//! `tests/data/quant_golden.gguf` was written by gguf-py (`tests/data/make_quant_golden.py`):
//! for every type tokenloom decodes, random blocks (and, for the legacy types, gguf-py's
//! own quantization of random floats), each beside gguf-py's dequantization of it as F32.
//! Every decoding path here — whole tensors, single rows, the quantized matrix, dot
//! products — must agree with those values.

use proptest::prelude::*;
use tokenloom_io::{BlockCodec, GgmlType, GgufFile, IoError, QuantizedMatrix};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/quant_golden.gguf");

fn golden() -> GgufFile {
    GgufFile::open(GOLDEN).unwrap()
}

/// The quantized tensors of the golden file with their expected values.
fn cases(file: &GgufFile) -> Vec<(String, GgmlType, Vec<f32>)> {
    let mut cases = Vec::new();
    // Every format tokenloom decodes has its golden case (by its gguf-py name).
    for &qtype in BlockCodec::formats() {
        let name = qtype.name();
        for kind in ["random", "quantized"] {
            let tensor = format!("{name}.{kind}");
            if file.info(&tensor).is_err() {
                assert_eq!(kind, "quantized", "{tensor} missing from the golden file");
                continue;
            }
            let expected = file.load::<f32>(&format!("{tensor}.dequantized")).unwrap();
            cases.push((tensor, qtype, expected.as_slice().to_vec()));
        }
    }
    cases
}

fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            g.to_bits() == w.to_bits(),
            "{what}: value {i} is {g:e}, gguf-py gives {w:e}"
        );
    }
}

#[test]
fn golden_file_covers_every_supported_quantized_type() {
    let file = golden();
    let cases = cases(&file);
    // 23 types with random blocks, 8 (the legacy types, TQ2_0, TQ1_0 and MXFP4) also with
    // gguf-py's quantization (it has no NVFP4 quantizer).
    assert_eq!(BlockCodec::formats().len(), 23);
    assert_eq!(cases.len(), 31);
    for (tensor, qtype, _) in &cases {
        let info = file.info(tensor).unwrap();
        assert_eq!(info.ggml_type, *qtype, "{tensor}");
        assert!(qtype.is_quantized() && qtype.is_supported(), "{tensor}");
    }
}

#[test]
fn whole_tensors_decode_bit_exactly() {
    let file = golden();
    for (tensor, _, want) in cases(&file) {
        let got = file.load::<f32>(&tensor).unwrap();
        assert_eq!(got.dims()[0], 3, "{tensor}");
        assert_bits_eq(got.as_slice(), &want, &tensor);
        // f64 widens the same f32 values exactly.
        let wide = file.load::<f64>(&tensor).unwrap();
        for (w, &v) in wide.as_slice().iter().zip(&want) {
            assert!(w.to_bits() == f64::from(v).to_bits() || (w.is_nan() && v.is_nan()));
        }
    }
}

#[test]
fn quantized_rows_decode_bit_exactly_without_the_dense_table() {
    let file = golden();
    for (tensor, qtype, want) in cases(&file) {
        let matrix = file.quantized(&tensor).unwrap();
        let (rows, cols) = (matrix.rows(), matrix.cols());
        assert_eq!((rows, matrix.qtype()), (3, qtype), "{tensor}");
        let codec = BlockCodec::of(qtype).unwrap();
        assert_eq!(
            matrix.bytes_in_memory(),
            rows * cols / codec.block_elems() * codec.block_bytes(),
            "{tensor}"
        );
        let mut row = vec![0.0f32; cols];
        for r in 0..rows {
            matrix.row_into(r, &mut row).unwrap();
            assert_bits_eq(
                &row,
                &want[r * cols..(r + 1) * cols],
                &format!("{tensor} row {r}"),
            );
        }
        assert_bits_eq(matrix.to_dense::<f32>().unwrap().as_slice(), &want, &tensor);
    }
}

#[test]
fn dot_rows_match_the_dense_dot_product() {
    let file = golden();
    for (tensor, _, want) in cases(&file) {
        let matrix = file.quantized(&tensor).unwrap();
        let cols = matrix.cols();
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 7919) % 31) as f32 / 8.0 - 2.0)
            .collect();
        for r in 0..matrix.rows() {
            let row = &want[r * cols..(r + 1) * cols];
            let exact: f64 = row
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let scale: f64 = row
                .iter()
                .zip(&x)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum();
            let got = f64::from(matrix.dot_row(r, &x).unwrap());
            // f32 accumulation of `cols` products: |error| ≤ cols·ε·Σ|aᵢbᵢ|.
            let bound = cols as f64 * f64::from(f32::EPSILON) * scale;
            assert!(
                (got - exact).abs() <= bound,
                "{tensor} row {r}: dot {got} vs {exact} (bound {bound})"
            );
        }
    }
}

#[test]
fn bad_rows_and_buffers_are_errors() {
    let file = golden();
    let matrix = file.quantized("Q4_K.random").unwrap();
    let mut row = vec![0.0f32; matrix.cols()];
    assert!(matches!(
        matrix.row_into(3, &mut row),
        Err(IoError::Tensor(_))
    ));
    let mut short = vec![0.0f32; matrix.cols() - 1];
    let err = matrix.row_into(0, &mut short).unwrap_err();
    assert!(matches!(err, IoError::QuantizedLength { .. }), "{err}");
    assert!(matrix.dot_row(0, &short).is_err());
    // Plain-float tensors are not quantized matrices.
    let err = file.quantized("Q4_K.random.dequantized").unwrap_err();
    assert!(err.to_string().contains("F32"), "{err}");
    assert!(matches!(
        file.quantized("nope"),
        Err(IoError::MissingTensor { .. })
    ));
}

#[test]
fn lengths_that_are_not_whole_blocks_are_errors() {
    let codec = BlockCodec::of(GgmlType::Q6K).unwrap();
    let err = codec.bytes_for(300).unwrap_err();
    assert_eq!(
        err.to_string(),
        "300 values are not a whole number of Q6_K blocks of 256"
    );
    let err = QuantizedMatrix::from_bytes(GgmlType::Q6K, vec![0; 209], 1, 256).unwrap_err();
    assert_eq!(
        err.to_string(),
        "256 values of Q6_K take 210 bytes, but 209 were given"
    );
    let err = QuantizedMatrix::from_bytes(GgmlType::Other(9), vec![0; 36], 1, 32).unwrap_err();
    assert!(err.to_string().contains("Q8_1"), "{err}");
}

#[test]
fn non_finite_scales_decode_as_ieee_arithmetic_makes_them() {
    // A Q8_0 block whose f16 scale is NaN decodes to NaN; an infinite scale gives ±inf
    // for non-zero codes and NaN for code 0 (inf · 0), as in ggml and gguf-py.
    let codec = BlockCodec::of(GgmlType::Q8_0).unwrap();
    let mut block = vec![0u8; 34];
    block[..2].copy_from_slice(&0x7e00u16.to_le_bytes()); // f16 NaN
    block[2] = 5;
    let values: Vec<f32> = codec.dequantize(&block, 32).unwrap();
    assert!(values.iter().all(|v| v.is_nan()));
    block[..2].copy_from_slice(&0x7c00u16.to_le_bytes()); // f16 +inf
    block[3] = 0xfb; // -5
    let values: Vec<f32> = codec.dequantize(&block, 32).unwrap();
    assert_eq!(values[0], f32::INFINITY);
    assert_eq!(values[1], f32::NEG_INFINITY);
    assert!(values[2].is_nan());
}

proptest! {
    /// Any bytes decode without panicking, for every type, to exactly `values` values;
    /// a row read agrees with the whole-buffer decode.
    #[test]
    fn arbitrary_blocks_decode_without_panicking(
        type_index in 0..BlockCodec::formats().len(),
        seed in proptest::collection::vec(any::<u8>(), 1..64),
        rows in 1usize..4,
    ) {
        let qtype = BlockCodec::formats()[type_index];
        let codec = BlockCodec::of(qtype).unwrap();
        let cols = codec.block_elems() * 2;
        let len = rows * codec.bytes_for(cols).unwrap();
        let bytes: Vec<u8> = seed.iter().copied().cycle().take(len).collect();
        let all: Vec<f32> = codec.dequantize(&bytes, rows * cols).unwrap();
        let matrix = QuantizedMatrix::from_bytes(qtype, bytes.clone(), rows, cols).unwrap();
        let mut row = vec![0.0f32; cols];
        for r in 0..rows {
            matrix.row_into(r, &mut row).unwrap();
            for (a, b) in row.iter().zip(&all[r * cols..(r + 1) * cols]) {
                prop_assert!(a.to_bits() == b.to_bits());
            }
        }
        // Truncated or over-long buffers are errors, never panics or short reads.
        prop_assert!(codec.dequantize::<f32>(&bytes[..len - 1], rows * cols).is_err());
        let mut longer = bytes;
        longer.push(0);
        prop_assert!(QuantizedMatrix::from_bytes(qtype, longer, rows, cols).is_err());
    }
}

/// Regenerates the golden file with the installed gguf-py and checks that it decodes the
/// same way: guards against the checked-in file drifting from what gguf-py does now.
#[test]
#[ignore = "needs python3 with gguf-py: pip install gguf==0.19.0"]
fn golden_file_agrees_with_installed_gguf_py() {
    let dir = std::env::temp_dir().join(format!("tokenloom-quant-golden-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("quant_golden.gguf");
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/make_quant_golden.py"
    );
    let status = std::process::Command::new("python3")
        .arg(script)
        .arg(&out)
        .status()
        .unwrap_or_else(|e| panic!("python3 cannot be run: {e}"));
    assert!(status.success(), "{script} failed (is gguf installed?)");
    let fresh = GgufFile::open(&out).unwrap();
    let checked_in = golden();
    let (fresh_cases, old_cases) = (cases(&fresh), cases(&checked_in));
    assert_eq!(fresh_cases.len(), old_cases.len());
    for ((name, _, want), (_, _, old)) in fresh_cases.iter().zip(&old_cases) {
        assert_bits_eq(fresh.load::<f32>(name).unwrap().as_slice(), want, name);
        assert_bits_eq(want, old, &format!("{name}: fresh vs checked-in"));
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn quantized_logits_have_the_bits_of_the_dense_product_for_decode_rows() {
    use tokenloom_tensor::{Accumulate, Operand, Tensor, matmul_into};
    let file = golden();
    for (tensor, _, want) in cases(&file) {
        let matrix = file.quantized(&tensor).unwrap();
        let (n, k) = (matrix.rows(), matrix.cols());
        let dense = Tensor::from_vec(want.clone(), &[n, k]).unwrap();
        for m in [1, 2, 8, 9, 20] {
            let a: Vec<f32> = (0..m * k)
                .map(|i| ((i * 2_654_435_761) % 1009) as f32 / 1009.0 - 0.5)
                .collect();
            let a = Tensor::from_vec(a, &[m, k]).unwrap();
            let mut expected = Tensor::<f32>::zeros(&[m, n]).unwrap();
            matmul_into(
                a.view(),
                Operand::AsIs,
                dense.view(),
                Operand::Transposed,
                expected.view_mut(),
                Accumulate::Replace,
            )
            .unwrap();
            let mut got = Tensor::<f32>::zeros(&[m, n]).unwrap();
            matrix
                .matmul_transposed_into(a.view(), got.view_mut())
                .unwrap();
            for (j, (g, e)) in got.as_slice().iter().zip(expected.as_slice()).enumerate() {
                if m <= 8 {
                    assert!(
                        g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                        "{tensor} m={m} element {j}: {g} vs dense {e}"
                    );
                } else {
                    let tol = 1e-5 * e.abs().max(1.0) * k as f32;
                    assert!(
                        (g - e).abs() <= tol || (g.is_nan() && e.is_nan()),
                        "{tensor} m={m} element {j}: {g} vs dense {e}"
                    );
                }
            }
            // A row alone has the bits it has in the batch.
            let mut alone = Tensor::<f32>::zeros(&[1, n]).unwrap();
            let first = tokenloom_tensor::TensorView::new(&a.as_slice()[..k], &[1, k]).unwrap();
            matrix
                .matmul_transposed_into(first, alone.view_mut())
                .unwrap();
            if m <= 8 {
                assert_eq!(alone.as_slice(), &got.as_slice()[..n], "{tensor} m={m}");
            }
        }
    }
}

#[test]
fn quantized_logits_check_their_shapes() {
    use tokenloom_tensor::{Tensor, TensorError, f16};
    let matrix = golden().quantized("Q8_0.quantized").unwrap();
    let (n, k) = (matrix.rows(), matrix.cols());
    let a = Tensor::<f32>::zeros(&[2, k + 1]).unwrap();
    let mut out = Tensor::<f32>::zeros(&[2, n]).unwrap();
    let err = matrix
        .matmul_transposed_into(a.view(), out.view_mut())
        .unwrap_err();
    assert!(
        matches!(
            err,
            IoError::Tensor(TensorError::MatmulShapeMismatch { .. })
        ),
        "{err}"
    );
    let a = Tensor::<f32>::zeros(&[2, k]).unwrap();
    let mut wrong = Tensor::<f32>::zeros(&[2, n + 1]).unwrap();
    assert!(matches!(
        matrix.matmul_transposed_into(a.view(), wrong.view_mut()),
        Err(IoError::Tensor(TensorError::OutputShapeMismatch { .. }))
    ));
    // f16 in, f16 out: each f32 logit rounded once.
    let x: Vec<f32> = (0..k).map(|i| i as f32 / k as f32).collect();
    let h = Tensor::from_vec(x.iter().map(|&v| f16::from_f32(v)).collect(), &[1, k]).unwrap();
    let mut half = Tensor::<f16>::zeros(&[1, n]).unwrap();
    matrix
        .matmul_transposed_into(h.view(), half.view_mut())
        .unwrap();
    let widened: Vec<f32> = x.iter().map(|&v| f16::from_f32(v).to_f32()).collect();
    for (r, got) in half.as_slice().iter().enumerate() {
        assert_eq!(*got, f16::from_f32(matrix.dot_row(r, &widened).unwrap()));
    }
}

#[test]
fn quantized_logits_do_not_depend_on_the_thread_count() {
    use tokenloom_io::quantize_q8_0;
    use tokenloom_tensor::{Par, Tensor, with_par};
    // 8192 rows of 256 Q8_0 values: 2.2 MB of blocks, past the threshold for threads.
    let (n, k) = (8192, 256);
    let values: Vec<f32> = (0..n * k)
        .map(|i| ((i * 7919) % 2003) as f32 / 1000.0 - 1.0)
        .collect();
    let matrix = QuantizedMatrix::from_bytes(GgmlType::Q8_0, quantize_q8_0(&values), n, k).unwrap();
    for m in [1, 3] {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 13) as f32 - 6.0).collect();
        let a = Tensor::from_vec(a, &[m, k]).unwrap();
        let mut threaded = Tensor::<f32>::zeros(&[m, n]).unwrap();
        matrix
            .matmul_transposed_into(a.view(), threaded.view_mut())
            .unwrap();
        let mut single = Tensor::<f32>::zeros(&[m, n]).unwrap();
        with_par(Par::Seq, || {
            matrix
                .matmul_transposed_into(a.view(), single.view_mut())
                .unwrap()
        });
        assert_eq!(threaded, single, "m={m}");
    }
}
