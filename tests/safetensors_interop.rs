//! safetensors: bit-exact round trips for every dtype, clear errors for wrong names,
//! ranks and dtypes, and interop both ways with Python's `safetensors` package and a real
//! model file written by Python.

mod common;

use proptest::prelude::*;
use tokenloom::embedding::{Embedding, EmbeddingError, Init};
use tokenloom::io::{
    IoError, RawTensor, SafetensorsFile, safetensors_bytes, write_raw_safetensors,
};
use tokenloom::tensor::{Element, Tensor, bf16, f16};

fn bits_table<T: Element>() -> impl Strategy<Value = Tensor<T>> {
    (1usize..6, 1usize..6).prop_flat_map(|(v, d)| {
        prop::collection::vec(any::<u64>(), v * d).prop_map(move |bits| {
            Tensor::from_vec(bits.into_iter().map(T::from_bits64).collect(), &[v, d]).unwrap()
        })
    })
}

fn round_trip_bits<T: Element>(t: &Tensor<T>) -> Result<(), TestCaseError> {
    let file = SafetensorsFile::from_bytes(safetensors_bytes(&[("w", t.view())]).unwrap()).unwrap();
    let back = file.load::<T>("w").unwrap();
    prop_assert_eq!(back.dims(), t.dims());
    for (a, b) in back.as_slice().iter().zip(t.as_slice()) {
        prop_assert_eq!(a.to_bits64(), b.to_bits64());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    #[test]
    fn f32_bit_exact(t in bits_table::<f32>()) { round_trip_bits(&t)?; }
    #[test]
    fn f64_bit_exact(t in bits_table::<f64>()) { round_trip_bits(&t)?; }
    #[test]
    fn f16_bit_exact(t in bits_table::<f16>()) { round_trip_bits(&t)?; }
    #[test]
    fn bf16_bit_exact(t in bits_table::<bf16>()) { round_trip_bits(&t)?; }

    /// Loading into another dtype equals converting after loading.
    #[test]
    fn conversion_on_load(values in prop::collection::vec(-1e4f64..1e4, 1..20)) {
        let n = values.len();
        let t = Tensor::from_vec(values, &[n, 1]).unwrap();
        let file = SafetensorsFile::from_bytes(safetensors_bytes(&[("w", t.view())]).unwrap()).unwrap();
        prop_assert_eq!(file.load::<bf16>("w").unwrap(), t.to_dtype::<bf16>());
        prop_assert_eq!(file.load::<f32>("w").unwrap(), t.to_dtype::<f32>());
        prop_assert_eq!(file.load::<f16>("w").unwrap(), t.to_dtype::<f16>());
    }
}

#[test]
fn wrong_names_ranks_and_dtypes_are_errors() {
    let dir = common::scratch_dir("st-errors");
    let path = dir.join("model.safetensors");
    let ids: Vec<u8> = [1i64, 2, 3].iter().flat_map(|x| x.to_le_bytes()).collect();
    let bias: Vec<u8> = [0.5f32, 0.25]
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    write_raw_safetensors(
        &path,
        &[
            RawTensor {
                name: "position_ids".into(),
                dtype: "I64".into(),
                shape: vec![1, 3],
                data: ids.into(),
            },
            RawTensor {
                name: "norm.bias".into(),
                dtype: "F32".into(),
                shape: vec![2],
                data: bias.into(),
            },
        ],
    )
    .unwrap();
    let err = Embedding::<f32>::from_safetensors(&path, "model.embed_tokens.weight").unwrap_err();
    assert_eq!(
        err.to_string(),
        "no tensor named `model.embed_tokens.weight`; the file contains: `norm.bias`, `position_ids`"
    );
    let err = Embedding::<f32>::from_safetensors(&path, "norm.bias").unwrap_err();
    assert!(
        matches!(err, EmbeddingError::Io(IoError::Rank { expected: 2, .. })),
        "{err}"
    );
    let err = Embedding::<f32>::from_safetensors(&path, "position_ids").unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `position_ids` has dtype I64, which cannot be read as f32, f64, f16 or bf16"
    );
    let file = SafetensorsFile::open(&path).unwrap();
    let err = file
        .load_matrix::<f32>("position_ids", Some([3, 1]))
        .unwrap_err();
    assert!(matches!(err, IoError::ShapeMismatch { .. }), "{err}");
    assert!(SafetensorsFile::open(dir.join("missing.safetensors")).is_err());
    std::fs::write(dir.join("junk.safetensors"), b"not a safetensors file").unwrap();
    let err = SafetensorsFile::open(dir.join("junk.safetensors")).unwrap_err();
    assert!(matches!(err, IoError::InFile { .. }), "{err}");
    assert!(
        matches!(err.without_file(), IoError::Safetensors(_)),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file written by tokenloom is read by Python's `safetensors` package with equal
/// values, in every dtype.
#[test]
#[ignore = "needs Python with safetensors and numpy: pip install safetensors numpy"]
fn python_reads_what_tokenloom_writes() {
    common::require(
        "Python with safetensors and numpy",
        common::python("import safetensors, numpy"),
    );
    let dir = common::scratch_dir("st-python");
    let path = dir.join("from_rust.safetensors");
    let table = Embedding::<f64>::seeded(7, 5, Init::default(), 9).unwrap();
    let w64 = table.weight().clone();
    let tensors: Vec<RawTensor<'_>> = vec![
        raw("w_f64", &w64),
        raw("w_f32", &w64.to_dtype::<f32>()),
        raw("w_f16", &w64.to_dtype::<f16>()),
        raw("w_bf16", &w64.to_dtype::<bf16>()),
    ];
    write_raw_safetensors(&path, &tensors).unwrap();
    // numpy has no bfloat16: that tensor is decoded from its raw bytes (bits << 16), at
    // the offsets of the header.
    let code = format!(
        r#"
import json, struct, numpy as np
from safetensors import safe_open
path = {path:?}
out = {{}}
with safe_open(path, framework="numpy") as f:
    assert sorted(f.keys()) == ["w_bf16", "w_f16", "w_f32", "w_f64"], f.keys()
    for k in ["w_f64", "w_f32", "w_f16"]:
        v = f.get_tensor(k)
        out[k] = {{"dtype": str(v.dtype), "shape": list(v.shape), "data": v.astype(np.float64).ravel().tolist()}}
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
start, end = header["w_bf16"]["data_offsets"]
bits = np.frombuffer(raw[8 + n + start:8 + n + end], dtype="<u2").astype(np.uint32) << 16
out["w_bf16"] = {{"dtype": header["w_bf16"]["dtype"], "shape": header["w_bf16"]["shape"], "data": bits.view(np.float32).astype(np.float64).tolist()}}
print(json.dumps(out))
"#,
        path = path.display().to_string()
    );
    let out = common::python(&code).unwrap_or_else(|e| panic!("python failed: {e}"));
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let check = |name: &str, dtype: &str, want: Vec<f64>| {
        let t = &parsed[name];
        assert_eq!(t["dtype"], dtype, "{name}");
        assert_eq!(t["shape"], serde_json::json!([7, 5]), "{name}");
        let got: Vec<f64> = t["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(got, want, "{name}: values differ");
    };
    let as64 = |t: Vec<f64>| t;
    check("w_f64", "float64", as64(w64.as_slice().to_vec()));
    check(
        "w_f32",
        "float32",
        w64.to_dtype::<f32>()
            .as_slice()
            .iter()
            .map(|x| f64::from(*x))
            .collect(),
    );
    check(
        "w_f16",
        "float16",
        w64.to_dtype::<f16>()
            .as_slice()
            .iter()
            .map(|x| x.to_f64())
            .collect(),
    );
    check(
        "w_bf16",
        "BF16",
        w64.to_dtype::<bf16>()
            .as_slice()
            .iter()
            .map(|x| x.to_f64())
            .collect(),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn raw<T: Element>(name: &str, t: &Tensor<T>) -> RawTensor<'static> {
    let dtype = match T::DTYPE {
        tokenloom::tensor::DType::F32 => "F32",
        tokenloom::tensor::DType::F64 => "F64",
        tokenloom::tensor::DType::F16 => "F16",
        tokenloom::tensor::DType::BF16 => "BF16",
    };
    RawTensor {
        name: name.to_owned(),
        dtype: dtype.to_owned(),
        shape: t.dims().to_vec(),
        data: tokenloom::io::encode_le(t.as_slice()).into(),
    }
}
