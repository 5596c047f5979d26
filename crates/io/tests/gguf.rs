//! GGUF: writer/reader round trips for every supported type, and errors for malformed
//! headers (never panics, never unbounded allocation).

use proptest::prelude::*;
use tokenloom_io::{
    GgmlType, GgufFile, GgufFormatError, GgufValue, GgufWriteTensor, GgufWriteValue, IoError,
    dequantize_q8_0, gguf_bytes, quantize_q8_0,
};
use tokenloom_tensor::{bf16, f16};

fn sample_file() -> Vec<u8> {
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
    gguf_bytes(
        &[
            (
                "general.architecture",
                GgufWriteValue::String("llama".into()),
            ),
            ("llama.embedding_length", GgufWriteValue::U32(32)),
            ("llama.rope.freq_base", GgufWriteValue::F32(10000.0)),
            ("tokenizer.ggml.add_bos_token", GgufWriteValue::Bool(true)),
            (
                "tokenizer.ggml.tokens",
                GgufWriteValue::StringArray(vec!["<s>".into(), "▁dogs".into(), "ü".into()]),
            ),
            (
                "tokenizer.ggml.scores",
                GgufWriteValue::F32Array(vec![0.0, -1.5, -2.25]),
            ),
            (
                "tokenizer.ggml.token_type",
                GgufWriteValue::I32Array(vec![3, 1, 1]),
            ),
        ],
        &[
            GgufWriteTensor {
                name: "f32".into(),
                ggml_type: 0,
                ne: vec![32, 2],
                data: values.iter().flat_map(|x| x.to_le_bytes()).collect(),
            },
            GgufWriteTensor {
                name: "f16".into(),
                ggml_type: 1,
                ne: vec![32, 2],
                data: values
                    .iter()
                    .flat_map(|&x| f16::from_f32(x).to_le_bytes())
                    .collect(),
            },
            GgufWriteTensor {
                name: "bf16".into(),
                ggml_type: 30,
                ne: vec![32, 2],
                data: values
                    .iter()
                    .flat_map(|&x| bf16::from_f32(x).to_le_bytes())
                    .collect(),
            },
            GgufWriteTensor {
                name: "q8".into(),
                ggml_type: 8,
                ne: vec![32, 2],
                data: quantize_q8_0(&values),
            },
            GgufWriteTensor {
                name: "q4".into(),
                ggml_type: 3,
                ne: vec![32, 1],
                data: vec![0; 20],
            },
            GgufWriteTensor {
                name: "q8_1".into(),
                ggml_type: 9,
                ne: vec![32, 1],
                data: vec![0; 36],
            },
        ],
    )
}

#[test]
fn every_supported_type_round_trips() {
    let file = GgufFile::from_bytes(sample_file()).unwrap();
    let values: Vec<f32> = (0..64).map(|i| (i as f32 - 31.5) / 8.0).collect();
    assert_eq!(
        file.get("general.architecture").unwrap().as_str(),
        Some("llama")
    );
    assert_eq!(
        file.get("llama.embedding_length").unwrap().as_u64(),
        Some(32)
    );
    assert_eq!(
        file.get("tokenizer.ggml.add_bos_token"),
        Some(&GgufValue::Bool(true))
    );
    let tokens = file.get("tokenizer.ggml.tokens").unwrap().as_strings();
    assert_eq!(
        tokens,
        Some(&["<s>".to_owned(), "▁dogs".into(), "ü".into()][..])
    );
    let scores = file.get("tokenizer.ggml.scores").unwrap().as_numbers();
    assert_eq!(scores, Some(&[0.0, -1.5, -2.25][..]));
    let types = file.get("tokenizer.ggml.token_type").unwrap().as_numbers();
    assert_eq!(types, Some(&[3.0, 1.0, 1.0][..]));
    for name in ["f32", "f16", "bf16"] {
        let t = file.load::<f32>(name).unwrap();
        assert_eq!(
            t.dims(),
            &[2, 32],
            "{name}: ne [32, 2] is torch shape (2, 32)"
        );
        // These values are exact in all three types.
        assert_eq!(t.as_slice(), &values[..], "{name}");
    }
    let q8 = file.load::<f32>("q8").unwrap();
    assert_eq!(
        q8.as_slice(),
        &dequantize_q8_0::<f32>(&quantize_q8_0(&values), "test").unwrap()[..]
    );
    for (got, want) in q8.as_slice().iter().zip(&values) {
        assert!(
            (got - want).abs() <= 4.0 / 127.0 / 2.0 + 1e-3,
            "{got} vs {want}"
        );
    }
    // An all-zero Q4_1 block (scale 0, min 0) decodes to zeros.
    assert_eq!(file.load::<f32>("q4").unwrap().as_slice(), &[0.0; 32]);
    assert_eq!(file.info("q4").unwrap().ggml_type, GgmlType::Q4_1);
    let err = file.load::<f32>("q8_1").unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `q8_1` has dtype Q8_1, which cannot be read as f32, f64, f16 or bf16"
    );
    assert!(matches!(
        file.load::<f32>("nope"),
        Err(IoError::MissingTensor { .. })
    ));
}

#[test]
fn malformed_headers_are_errors() {
    let good = sample_file();
    let mut bad_magic = good.clone();
    bad_magic[0] = b'X';
    assert_eq!(
        GgufFile::from_bytes(bad_magic).unwrap_err(),
        IoError::Gguf(GgufFormatError::BadMagic { magic: *b"XGUF" })
    );
    let mut bad_version = good.clone();
    bad_version[4] = 9;
    assert_eq!(
        GgufFile::from_bytes(bad_version).unwrap_err(),
        IoError::Gguf(GgufFormatError::UnsupportedVersion { version: 9 })
    );
    // A tensor count of 2^60 is refused before anything is allocated.
    let mut huge_count = good.clone();
    huge_count[8..16].copy_from_slice(&(1u64 << 60).to_le_bytes());
    assert!(matches!(
        GgufFile::from_bytes(huge_count).unwrap_err(),
        IoError::Gguf(GgufFormatError::TooManyEntries { count, .. }) if count == 1 << 60
    ));
    // Four bytes: the version field is missing.
    assert_eq!(
        GgufFile::from_bytes(good[..4].to_vec()).unwrap_err(),
        IoError::Gguf(GgufFormatError::Truncated {
            what: "version".into(),
            needed: 4,
            offset: 4,
            remaining: 0
        })
    );
    let mut huge_kv = good.clone();
    huge_kv[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(GgufFile::from_bytes(huge_kv).is_err());
    // Cut anywhere before the end of the last tensor's data: an error, never a panic.
    // (The alignment padding after it is optional.)
    let file = GgufFile::from_bytes(good.clone()).unwrap();
    let data_end = file
        .tensors()
        .iter()
        .map(|t| t.offset + t.n_bytes.unwrap())
        .max()
        .unwrap() as usize;
    assert!(GgufFile::from_bytes(good[..data_end].to_vec()).is_ok());
    for cut in 0..data_end {
        assert!(
            GgufFile::from_bytes(good[..cut].to_vec()).is_err(),
            "prefix of {cut} bytes accepted"
        );
    }
}

#[test]
fn a_tensor_past_the_end_of_the_file_is_rejected() {
    // A header claiming a (2^20 × 2^20) f32 tensor in a tiny file.
    let bytes = gguf_bytes(
        &[],
        &[GgufWriteTensor {
            name: "huge".into(),
            ggml_type: 0,
            ne: vec![1 << 20, 1 << 20],
            data: vec![0; 64],
        }],
    );
    let err = GgufFile::from_bytes(bytes).unwrap_err();
    assert!(
        matches!(&err, IoError::Gguf(GgufFormatError::PastEnd { tensor, bytes, .. })
            if tensor == "huge" && *bytes == 4 << 40),
        "{err}"
    );
    assert!(err.to_string().contains("runs past the end"), "{err}");
    // Regression (found by the hostile-input property): an element count whose byte size
    // overflows u64 is an error, not an arithmetic overflow.
    let bytes = gguf_bytes(
        &[],
        &[GgufWriteTensor {
            name: "overflow".into(),
            ggml_type: 28, // F64: 8 bytes an element
            ne: vec![1 << 62, 2],
            data: vec![0; 64],
        }],
    );
    let err = GgufFile::from_bytes(bytes).unwrap_err();
    assert!(
        matches!(&err, IoError::Gguf(GgufFormatError::ByteCountOverflow { tensor, .. }) if tensor == "overflow"),
        "{err}"
    );
}

proptest! {
    // `TOKENLOOM_HOSTILE_CASES` (default 256), as tests/hostile_inputs.rs.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("TOKENLOOM_HOSTILE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random bytes and single-byte corruptions of a valid file never panic.
    #[test]
    fn hostile_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), index in any::<usize>(), byte in any::<u8>()) {
        let _ = GgufFile::from_bytes(bytes.clone());
        let mut with_magic = b"GGUF\x03\x00\x00\x00".to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = GgufFile::from_bytes(with_magic);
        let mut corrupted = sample_file();
        let i = index % corrupted.len();
        corrupted[i] = byte;
        if let Ok(file) = GgufFile::from_bytes(corrupted) {
            for t in file.tensors().to_vec() {
                let _ = file.load::<f32>(&t.name);
            }
        }
    }
}

#[test]
fn integer_tensors_convert_as_pytorch_converts_them() {
    let tensor = |name: &str, ggml_type: u32, data: Vec<u8>, n: u64| GgufWriteTensor {
        name: name.into(),
        ggml_type,
        ne: vec![n],
        data,
    };
    let i32s: [i32; 4] = [-2_147_483_648, 16_777_217, 16_777_219, -7];
    let i64s: [i64; 3] = [i64::MIN, (1 << 53) + 1, 3];
    let bytes = gguf_bytes(
        &[],
        &[
            tensor("i8", 24, vec![0x80, 0x7F, 0xFF, 0x01], 4),
            tensor(
                "i16",
                25,
                [-32768i16, 32767, -1, 2]
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect(),
                4,
            ),
            tensor(
                "i32",
                26,
                i32s.iter().flat_map(|x| x.to_le_bytes()).collect(),
                4,
            ),
            tensor(
                "i64",
                27,
                i64s.iter().flat_map(|x| x.to_le_bytes()).collect(),
                3,
            ),
        ],
    );
    let file = GgufFile::from_bytes(bytes).unwrap();
    assert_eq!(file.info("i8").unwrap().ggml_type, GgmlType::I8);
    assert!(!GgmlType::I64.is_quantized() && GgmlType::I64.is_supported());
    assert_eq!(
        file.load::<f32>("i8").unwrap().as_slice(),
        &[-128.0, 127.0, -1.0, 1.0]
    );
    assert_eq!(
        file.load::<f32>("i16").unwrap().as_slice(),
        &[-32768.0, 32767.0, -1.0, 2.0]
    );
    // torch.tensor([-2**31, 2**24 + 1, 2**24 + 3, -7]).float(): nearest, ties to even.
    assert_eq!(
        file.load::<f32>("i32").unwrap().as_slice(),
        &[-2_147_483_648.0, 16_777_216.0, 16_777_220.0, -7.0]
    );
    assert_eq!(
        file.load::<f64>("i32").unwrap().as_slice(),
        &[-2_147_483_648.0, 16_777_217.0, 16_777_219.0, -7.0]
    );
    // .double() of 2**53 + 1 rounds to 2**53; .bfloat16() goes through float.
    assert_eq!(
        file.load::<f64>("i64").unwrap().as_slice(),
        &[-9_223_372_036_854_775_808.0, 9_007_199_254_740_992.0, 3.0]
    );
    assert_eq!(
        file.load::<bf16>("i64").unwrap().as_slice(),
        &[
            bf16::from_f32(-9.223_372e18),
            bf16::from_f32(9.007_199e15),
            bf16::from_f32(3.0)
        ]
    );
    // Integers are not block formats: no quantized view.
    assert!(matches!(
        file.quantized("i8"),
        Err(IoError::UnsupportedDType { .. }) | Err(IoError::Rank { .. })
    ));
}
