//! The same typed error on every rank.

use tokenloom_embedding::{EmbeddingError, EmbeddingOptions, functional};
use tokenloom_tensor::Tensor;

use crate::comm::Communicator;
use crate::embedding::VocabParallelEmbedding;
use crate::error::DistributedError;
use crate::head::VocabParallelHead;

use super::*;

pub(super) fn errors<C: Communicator + ?Sized>(
    comm: &C,
    report: &mut Report,
) -> Result<(), DistributedError> {
    let table = full_table::<f32>(11);
    let emb = VocabParallelEmbedding::from_full(
        comm,
        (&table[..], [VOCAB_SIZE, N_EMBD]),
        EmbeddingOptions::default(),
    )?;

    // An id outside the vocabulary: the single-process error, on every rank.
    let mut bad = ids(2, 6, 12);
    bad[8] = VOCAB_SIZE as u32;
    let single = functional::lookup((&table[..], [VOCAB_SIZE, N_EMBD]), (&bad[..], [2, 6]), None)
        .unwrap_err();
    let ok = matches!(
        single,
        EmbeddingError::TokenOutOfRange {
            token: 37,
            batch: 1,
            position: 2,
            ..
        }
    );
    let got = emb.forward(comm, (&bad[..], [2, 6]));
    report.check(ok && expect_err(got, &single.into()), || {
        "out-of-range id: not the single-process error".into()
    });
    let negative = [3i64, -2];
    let got = emb.forward(comm, &negative[..]);
    let expected = EmbeddingError::TokenOutOfRange {
        token: -2,
        batch: 0,
        position: 1,
        vocab_size: VOCAB_SIZE,
    };
    report.check(expect_err(got, &expected.into()), || {
        "negative id: wrong error".into()
    });

    // A target outside the vocabulary.
    let head = VocabParallelHead::<f32>::tied(1.0);
    let hidden = &table[..2 * N_EMBD];
    let got = head.loss(comm, &emb, (hidden, [2, N_EMBD]), &[1i64, 40]);
    let expected = DistributedError::TargetOutOfRange {
        target: 40,
        row: 1,
        vocab_size: VOCAB_SIZE,
    };
    report.check(expect_err(got, &expected), || {
        "out-of-range target: wrong error".into()
    });

    if comm.size() > 1 {
        let last = comm.size() - 1;
        // Ids that differ on the last rank.
        let mut ids = ids(1, 5, 13);
        if comm.rank() == last {
            ids[4] = (ids[4] + 1) % VOCAB_SIZE as u32;
        }
        let got = emb.forward(comm, &ids[..]);
        report.check(
            expect_err(got, &DistributedError::NotReplicated { what: "token ids" }),
            || "ids differing on one rank: not reported on every rank".into(),
        );
        // A configuration that differs on rank 1 (n_embd 9 instead of 8).
        let shard = emb.shard();
        let n_embd = if comm.rank() == 1 { 9 } else { N_EMBD };
        let rows = Tensor::from_vec(vec![0.0f32; shard.len() * n_embd], &[shard.len(), n_embd])?;
        let got = VocabParallelEmbedding::new(comm, VOCAB_SIZE, rows, EmbeddingOptions::default());
        let expected = DistributedError::ConfigMismatch {
            field: "n_embd",
            min: 8,
            max: 9,
        };
        report.check(expect_err(got, &expected), || {
            "mismatched n_embd: not reported on every rank".into()
        });
    }
    Ok(())
}
