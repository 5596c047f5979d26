//! Property tests of the lookup: shapes, row selection, determinism, and errors for every
//! out-of-range id.

use proptest::prelude::*;
use tokenloom_embedding::{Embedding, EmbeddingError, Init};
use tokenloom_tensor::{Element, Tensor, TensorViewMut, bf16, f16};

/// A table size, a seed, and an id tensor of rank 1 or 2 with ids in range (including
/// the edges 0 and vocab_size − 1).
fn case() -> impl Strategy<Value = (usize, usize, u64, Vec<usize>, Vec<u32>)> {
    (
        1usize..300,
        1usize..24,
        any::<u64>(),
        prop_oneof![Just(1usize), Just(2)],
    )
        .prop_flat_map(|(vocab_size, n_embd, seed, rank)| {
            let dims = if rank == 1 {
                prop::collection::vec(1usize..40, 1).boxed()
            } else {
                prop::collection::vec(1usize..8, 2).boxed()
            };
            let max_id = u32::try_from(vocab_size - 1).unwrap();
            dims.prop_flat_map(move |dims| {
                let len: usize = dims.iter().product();
                let id = prop_oneof![Just(0), Just(max_id), 0..=max_id];
                (
                    Just(vocab_size),
                    Just(n_embd),
                    Just(seed),
                    Just(dims),
                    prop::collection::vec(id, len),
                )
            })
        })
}

fn check_lookup<T: Element>(
    vocab_size: usize,
    n_embd: usize,
    seed: u64,
    dims: &[usize],
    ids: Vec<u32>,
) {
    let table = Embedding::<T>::seeded(vocab_size, n_embd, Init::default(), seed).unwrap();
    let ids = Tensor::from_vec(ids, dims).unwrap();
    let out = table.forward(&ids).unwrap();
    // Shape rule: ids.shape + (n_embd,).
    let mut want_dims = dims.to_vec();
    want_dims.push(n_embd);
    assert_eq!(out.dims(), &want_dims[..]);
    // Row selection, bit for bit.
    for (&id, row) in ids.as_slice().iter().zip(out.rows()) {
        let want = table.row(id).unwrap();
        assert!(
            row.iter().zip(want).all(|(a, b)| a.to_bits_eq(b)),
            "row of id {id} differs"
        );
    }
    // Same ids, same rows; and forward_into writes exactly what forward returns.
    assert_eq!(table.forward(&ids).unwrap(), out);
    let mut buf = vec![T::nan(); out.as_slice().len()];
    table
        .forward_into(&ids, TensorViewMut::new(&mut buf, out.dims()).unwrap())
        .unwrap();
    assert!(buf.iter().zip(out.as_slice()).all(|(a, b)| a.to_bits_eq(b)));
}

/// Bitwise equality for floats (distinguishes -0.0 and NaN payloads).
trait BitsEq {
    fn to_bits_eq(&self, other: &Self) -> bool;
}

impl<T: Element> BitsEq for T {
    fn to_bits_eq(&self, other: &Self) -> bool {
        // to_f64 is exact and injective on non-NaN values of every element type; the
        // tables here are drawn from a normal distribution and hold no NaN.
        self.as_f64().to_bits() == other.as_f64().to_bits()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    #[test]
    fn lookup_f32((vocab_size, n_embd, seed, dims, ids) in case()) {
        check_lookup::<f32>(vocab_size, n_embd, seed, &dims, ids);
    }

    #[test]
    fn lookup_f64((vocab_size, n_embd, seed, dims, ids) in case()) {
        check_lookup::<f64>(vocab_size, n_embd, seed, &dims, ids);
    }

    #[test]
    fn lookup_f16((vocab_size, n_embd, seed, dims, ids) in case()) {
        check_lookup::<f16>(vocab_size, n_embd, seed, &dims, ids);
    }

    #[test]
    fn lookup_bf16((vocab_size, n_embd, seed, dims, ids) in case()) {
        check_lookup::<bf16>(vocab_size, n_embd, seed, &dims, ids);
    }

    /// Any id ≥ vocab_size, anywhere in the batch, is the typed error naming it — never a
    /// panic, and never a partial write.
    #[test]
    fn out_of_range_ids_are_errors(
        (vocab_size, n_embd, seed, dims, mut ids) in case(),
        bad_offset in 0u32..=u32::MAX,
        slot in any::<prop::sample::Index>(),
    ) {
        let table = Embedding::<f32>::seeded(vocab_size, n_embd, Init::default(), seed).unwrap();
        let bad = u32::try_from(vocab_size).unwrap().saturating_add(bad_offset);
        let at = slot.index(ids.len());
        ids[at] = bad;
        // The first offending id in row-major order is reported.
        let first = ids.iter().position(|&id| id as usize >= vocab_size).unwrap();
        let seq_len = *dims.last().unwrap();
        let ids = Tensor::from_vec(ids, &dims).unwrap();
        let err = table.forward(&ids).unwrap_err();
        prop_assert_eq!(err, EmbeddingError::TokenOutOfRange {
            token: i64::from(ids.as_slice()[first]),
            batch: first / seq_len,
            position: first % seq_len,
            vocab_size,
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(64)))]

    /// Batch independence: the forward of a concatenated batch is the concatenation of
    /// the forwards of its parts.
    #[test]
    fn concatenated_batches_give_concatenated_outputs(
        (vocab_size, n_embd, seed, dims, ids) in case(),
        (_, _, _, _, ids2) in case(),
    ) {
        let table = Embedding::<f32>::seeded(vocab_size, n_embd, Init::default(), seed).unwrap();
        // Use the second case's shape, with ids folded into this vocabulary.
        let ids2: Vec<u32> = ids2.iter().map(|&i| i % vocab_size as u32).collect();
        let seq_len = *dims.last().unwrap();
        let rows = |ids: &[u32]| Tensor::from_vec(ids.to_vec(), &[ids.len() / seq_len, seq_len]).unwrap();
        // Re-cut the second part to this seq_len (dropping a ragged tail).
        let cut = ids2.len() / seq_len * seq_len;
        prop_assume!(cut > 0);
        let (a, b) = (rows(&ids), rows(&ids2[..cut]));
        let mut joined = ids.clone();
        joined.extend_from_slice(&ids2[..cut]);
        let whole = table.forward(&rows(&joined)).unwrap();
        let mut parts = table.forward(&a).unwrap().into_parts().1;
        parts.extend(table.forward(&b).unwrap().into_parts().1);
        prop_assert_eq!(whole.as_slice(), &parts[..]);
    }
}
