//! Malformed safetensors files: each defect is its own error variant, with the numbers.

use std::borrow::Cow;

use tokenloom_io::{
    IoError, RawTensor, SafetensorsFile, SafetensorsFormatError as S, raw_safetensors_bytes,
};

fn file_with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(data);
    bytes
}

fn error(bytes: Vec<u8>) -> S {
    match SafetensorsFile::from_bytes(bytes) {
        Err(IoError::Safetensors(e)) => e,
        other => panic!("expected a safetensors format error, got {other:?}"),
    }
}

#[test]
fn each_defect_is_its_own_variant() {
    assert_eq!(error(vec![1, 2, 3]), S::TooShort { len: 3 });
    let mut claims_too_much = 1000u64.to_le_bytes().to_vec();
    claims_too_much.extend_from_slice(b"{}");
    assert_eq!(
        error(claims_too_much),
        S::HeaderLength {
            header_len: 1000,
            available: 2
        }
    );
    assert!(matches!(
        error(file_with_header("{not json", &[])),
        S::HeaderNotJson { header_len: 9, .. }
    ));
    assert_eq!(error(file_with_header("[1, 2]", &[])), S::HeaderNotObject);
    assert_eq!(
        error(file_with_header(
            r#"{"w": {"dtype": "F32", "shape": [2]}}"#,
            &[]
        )),
        S::Entry {
            tensor: "w".into(),
            entry: r#"{"dtype":"F32","shape":[2]}"#.into()
        }
    );
    assert_eq!(
        error(file_with_header(
            r#"{"w": {"dtype": "F13", "shape": [2], "data_offsets": [0, 8]}}"#,
            &[0; 8]
        )),
        S::UnknownDType {
            tensor: "w".into(),
            dtype: "F13".into()
        }
    );
    assert_eq!(
        error(file_with_header(
            r#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#,
            &[0; 8]
        )),
        S::DataSize {
            tensor: "w".into(),
            dtype: "F32".into(),
            shape: vec![3],
            needed: Some(12),
            start: 0,
            end: 8
        }
    );
    assert_eq!(
        error(file_with_header(
            r#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#,
            &[0; 8]
        )),
        S::DataPastEnd {
            tensor: "w".into(),
            start: 4,
            end: 12,
            data_len: 8
        }
    );
}

#[test]
fn tensors_that_cannot_be_written_are_errors_with_their_numbers() {
    let tensor = |name: &str, data: Vec<u8>| RawTensor {
        name: name.into(),
        dtype: "F32".into(),
        shape: vec![2],
        data: Cow::Owned(data),
    };
    assert_eq!(
        raw_safetensors_bytes(&[tensor("a", vec![0; 8]), tensor("a", vec![0; 8])]),
        Err(IoError::Safetensors(S::DuplicateName {
            tensor: "a".into()
        }))
    );
    assert_eq!(
        raw_safetensors_bytes(&[tensor("a", vec![0; 7])]),
        Err(IoError::Safetensors(S::WriteSize {
            tensor: "a".into(),
            bytes: 7,
            shape: vec![2],
            dtype: "F32".into()
        }))
    );
}
