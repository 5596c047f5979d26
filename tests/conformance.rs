//! tokenloom's own implementations pass the conformance kit, and deliberately wrong ones
//! fail it with a readable report.

use tokenloom::embedding::Embedding;
use tokenloom::positions::{QkLayout, RopeCache, RopeConfig, RopeLayout, TokenPositions};
use tokenloom::tensor::Tensor;
use tokenloom_testkit::conformance::{check_embedding_backward, check_lookup, check_rope};

fn tokenloom_lookup(weight: &Tensor<f32>, ids: &Tensor<u32>) -> Tensor<f32> {
    Embedding::from_weight(weight.clone())
        .unwrap()
        .forward(ids)
        .unwrap()
}

fn tokenloom_backward(
    vocab_size: usize,
    n_embd: usize,
    ids: &Tensor<u32>,
    grad_output: &Tensor<f64>,
) -> Tensor<f64> {
    let table =
        Embedding::<f64>::from_weight(Tensor::zeros(&[vocab_size, n_embd]).unwrap()).unwrap();
    table.backward_dense(ids, grad_output.view()).unwrap()
}

fn rope_with(config: &RopeConfig, x: &Tensor<f64>, positions: &Tensor<u32>) -> Tensor<f64> {
    let max = positions
        .as_slice()
        .iter()
        .max()
        .map_or(1, |&p| p as usize + 1);
    let cache = RopeCache::<f64>::new(config, max).unwrap();
    cache
        .apply(
            x.view(),
            QkLayout::BatchSeqHeads,
            TokenPositions::Ids(positions.view()),
        )
        .unwrap()
}

#[test]
fn tokenloom_passes_the_kit() {
    check_lookup(tokenloom_lookup).unwrap_or_else(|f| panic!("{f}"));
    check_embedding_backward(tokenloom_backward).unwrap_or_else(|f| panic!("{f}"));
    check_rope(rope_with).unwrap_or_else(|f| panic!("{f}"));
}

#[test]
fn an_off_by_one_lookup_is_rejected() {
    let off_by_one = |weight: &Tensor<f32>, ids: &Tensor<u32>| {
        let shifted: Vec<u32> = ids
            .as_slice()
            .iter()
            .map(|&i| (i + 1) % weight.dims()[0] as u32)
            .collect();
        tokenloom_lookup(weight, &Tensor::from_vec(shifted, ids.dims()).unwrap())
    };
    let failure = check_lookup(off_by_one).unwrap_err();
    let report = failure.to_string();
    assert_eq!(failure.check, "lookup");
    assert!(
        report.starts_with("conformance check `lookup` failed: element"),
        "{report}"
    );
    // The first check against PyTorch's own output already catches it.
    assert!(report.contains("PyTorch gives"), "{report}");
    assert!(
        report.contains("minimal failing case:\nreference case `emb_fwd_basic_f64`"),
        "{report}"
    );
}

#[test]
fn half_split_where_interleaved_is_configured_is_rejected() {
    let wrong_layout = |config: &RopeConfig, x: &Tensor<f64>, positions: &Tensor<u32>| {
        let swapped = config.clone().with_layout(match config.layout {
            RopeLayout::Interleaved => RopeLayout::HalfSplit,
            other => other,
        });
        rope_with(&swapped, x, positions)
    };
    let failure = check_rope(wrong_layout).unwrap_err();
    let report = failure.to_string();
    assert_eq!(failure.check, "rope");
    assert!(report.contains("Meta's model.py gives"), "{report}");
    assert!(report.contains("rope_meta_default_f64"), "{report}");
}

/// A generated case (not only a reference file) catches a subtler bug, and the report
/// shows the shrunk case.
#[test]
fn a_backward_that_drops_repeats_is_rejected_with_a_minimal_case() {
    let last_write_wins =
        |vocab_size: usize, n_embd: usize, ids: &Tensor<u32>, grad_output: &Tensor<f64>| {
            let mut grad = vec![0.0; vocab_size * n_embd];
            for (i, &id) in ids.as_slice().iter().enumerate() {
                let id = id as usize;
                grad[id * n_embd..(id + 1) * n_embd]
                    .copy_from_slice(&grad_output.as_slice()[i * n_embd..(i + 1) * n_embd]);
            }
            Tensor::from_vec(grad, &[vocab_size, n_embd]).unwrap()
        };
    let failure = check_embedding_backward(last_write_wins).unwrap_err();
    assert_eq!(failure.check, "embedding backward");
    assert!(failure.to_string().contains("PyTorch gives"), "{failure}");

    // The same bug hidden from the reference files (it only misbehaves on long batches)
    // is found by the generated cases and shrunk.
    let subtle =
        |vocab_size: usize, n_embd: usize, ids: &Tensor<u32>, grad_output: &Tensor<f64>| {
            if ids.as_slice().len() > 21 {
                last_write_wins(vocab_size, n_embd, ids, grad_output)
            } else {
                tokenloom_backward(vocab_size, n_embd, ids, grad_output)
            }
        };
    let failure = check_embedding_backward(subtle).unwrap_err();
    let report = failure.to_string();
    assert!(
        report.contains("minimal failing case:\nBackwardCase"),
        "{report}"
    );
    assert!(report.contains("weight gradient: element"), "{report}");
}

mod batch {
    //! The padded batch through the kit: `TokenBatch::pad` passes on both sides, and a
    //! batch whose left-padded position ids count the padding fails.

    use tokenloom::decoder_input::{PaddingSide as Side, TokenBatch};
    use tokenloom::tensor::Tensor;
    use tokenloom_testkit::kit::{
        AdapterError, BatchAdapter, Capabilities, Kit, PaddedBatch, PaddingSide,
    };

    struct Tokenloom {
        count_padding: bool,
    }

    impl BatchAdapter for Tokenloom {
        fn capabilities(&self) -> Capabilities {
            Capabilities::new(&[]).with_padding_sides(&[PaddingSide::Left, PaddingSide::Right])
        }

        fn pad(
            &self,
            sequences: &[Vec<u32>],
            pad_id: u32,
            side: PaddingSide,
        ) -> Result<PaddedBatch, AdapterError> {
            let side = match side {
                PaddingSide::Left => Side::Left,
                PaddingSide::Right => Side::Right,
            };
            let batch = TokenBatch::pad(sequences, pad_id, side).map_err(AdapterError::new)?;
            let mask: Vec<u32> = batch
                .attention_mask()
                .as_slice()
                .iter()
                .map(|&m| u32::from(m))
                .collect();
            let seq_len = batch.seq_len();
            let positions: Vec<u32> = if self.count_padding {
                (0..batch.batch() * seq_len)
                    .map(|i| (i % seq_len) as u32)
                    .collect()
            } else {
                batch.position_ids().as_slice().to_vec()
            };
            let dims = batch.ids().dims().to_vec();
            Ok(PaddedBatch {
                ids: batch.ids().clone(),
                attention_mask: Tensor::from_vec(mask, &dims).map_err(AdapterError::new)?,
                position_ids: Tensor::from_vec(positions, &dims).map_err(AdapterError::new)?,
            })
        }
    }

    #[test]
    fn token_batch_pads_as_transformers() {
        let mut kit = Kit::new().with_seed(11);
        kit.check_batch(&Tokenloom {
            count_padding: false,
        });
        let report = kit.finish();
        report.assert_passed();
        assert_eq!(report.checks.len(), 2, "{report}");
    }

    #[test]
    fn position_ids_that_count_the_padding_fail() {
        let mut kit = Kit::new().with_seed(11);
        kit.check_batch(&Tokenloom {
            count_padding: true,
        });
        let report = kit.finish();
        let failure = report.failures().next().map(|c| c.failure.clone().unwrap());
        let failure = failure.unwrap_or_else(|| panic!("not caught:\n{report}"));
        assert!(
            failure.reason.starts_with("position_ids at (batch "),
            "{report}"
        );
        assert!(failure.minimal_case.lines().count() <= 4, "{report}");
    }
}
