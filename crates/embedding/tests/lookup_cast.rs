//! Mixed-precision lookup: half tables into f32/f64 outputs exactly, f32 tables into half
//! outputs rounded once, through the same checks as `lookup_into`.

use tokenloom_embedding::{EmbeddingError, functional};
use tokenloom_tensor::{Tensor, bf16, f16};

fn ids(n: usize, vocab_size: usize) -> Vec<i64> {
    (0..n)
        .map(|i| ((i * 7919 + 13) % vocab_size) as i64)
        .collect()
}

#[test]
fn half_tables_widen_exactly_and_f32_tables_round_once() {
    // Large enough for the threaded path: (4096 ids, 256) f32 outputs are 4 MiB.
    let (vocab_size, n_embd, n) = (1000, 256, 4096);
    let values: Vec<f32> = (0..vocab_size * n_embd)
        .map(|i| ((i as f32) * 0.618).sin() * 3.0)
        .collect();
    let ids = ids(n, vocab_size);
    let table_bf16: Vec<bf16> = values.iter().map(|&x| bf16::from_f32(x)).collect();
    let mut out = vec![0.0f32; n * n_embd];
    functional::lookup_cast_into(
        (&table_bf16[..], [vocab_size, n_embd]),
        (&ids[..], [n]),
        (&mut out[..], [n, n_embd]),
    )
    .unwrap();
    for (k, &id) in ids.iter().enumerate() {
        let row = &table_bf16[id as usize * n_embd..][..n_embd];
        assert!(
            out[k * n_embd..][..n_embd]
                .iter()
                .zip(row)
                .all(|(o, t)| *o == t.to_f32())
        );
    }
    let table_f16: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
    let mut wide = vec![0.0f64; 8 * n_embd];
    functional::lookup_cast_into(
        (&table_f16[..], [vocab_size, n_embd]),
        (&ids[..8], [2, 4]),
        (&mut wide[..], [2, 4, n_embd]),
    )
    .unwrap();
    assert_eq!(
        wide[n_embd + 3],
        f64::from(table_f16[ids[1] as usize * n_embd + 3].to_f32())
    );
    let mut narrow = vec![bf16::ZERO; 8 * n_embd];
    functional::lookup_cast_into(
        (&values[..], [vocab_size, n_embd]),
        (&ids[..8], [8]),
        (&mut narrow[..], [8, n_embd]),
    )
    .unwrap();
    let want = Tensor::from_vec(values.clone(), &[vocab_size, n_embd]).unwrap();
    let row = &want.as_slice()[ids[5] as usize * n_embd..][..n_embd];
    assert!(
        narrow[5 * n_embd..][..n_embd]
            .iter()
            .zip(row)
            .all(|(o, &t)| *o == bf16::from_f32(t))
    );
}

#[test]
fn mixed_precision_lookups_check_like_lookup_into() {
    let table = [bf16::ONE; 6];
    let mut out = [0.0f32; 4];
    assert!(matches!(
        functional::lookup_cast_into((&table[..], [3, 2]), &[1i64, 3], (&mut out[..], [2, 2])),
        Err(EmbeddingError::TokenOutOfRange { .. })
    ));
    assert!(matches!(
        functional::lookup_cast_into((&table[..], [3, 2]), &[1i64, 2], (&mut out[..], [4])),
        Err(EmbeddingError::OutputShape { .. })
    ));
    assert_eq!(out, [0.0; 4], "unchanged on error");
}
