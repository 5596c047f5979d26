//! The lookup's unit tests: row selection, errors, and the decode step's path.

use tokenloom_tensor::TensorViewMut;

use super::*;
use crate::Init;

fn table() -> Embedding<f32> {
    let weight = Tensor::from_vec((0..12).map(|x| x as f32).collect(), &[4, 3]).unwrap();
    Embedding::from_weight(weight).unwrap()
}

#[test]
fn lookup_selects_rows() {
    let out = table().forward(&[3, 0, 3]).unwrap();
    assert_eq!(out.as_slice(), &[9., 10., 11., 0., 1., 2., 9., 10., 11.]);
}

#[test]
fn errors_locate_the_bad_id() {
    let ids = Tensor::from_vec(vec![0, 1, 2, 3, 4, 0], &[2, 3]).unwrap();
    let err = table().forward(&ids).unwrap_err();
    assert_eq!(
        err.to_string(),
        "token id 4 at batch 1, position 1 is outside vocab_size 4"
    );
    let empty = Tensor::from_vec(Vec::<u32>::new(), &[2, 0]).unwrap();
    assert!(matches!(
        table().forward(&empty),
        Err(EmbeddingError::EmptyIds { .. })
    ));
    let cube = Tensor::from_vec(vec![0u32; 8], &[2, 2, 2]).unwrap();
    assert!(matches!(
        table().forward(&cube),
        Err(EmbeddingError::IdsRank { .. })
    ));
}

#[test]
fn forward_into_checks_the_buffer_and_leaves_it_on_error() {
    let t = Embedding::<f64>::seeded(5, 2, Init::default(), 0).unwrap();
    let mut buf = [7.0f64; 4];
    let err = t
        .forward_into(&[1, 9], TensorViewMut::new(&mut buf, &[2, 2]).unwrap())
        .unwrap_err();
    assert!(matches!(
        err,
        EmbeddingError::TokenOutOfRange {
            token: 9,
            position: 1,
            ..
        }
    ));
    assert_eq!(buf, [7.0; 4]);
    let err = t
        .forward_into(&[1, 2], TensorViewMut::new(&mut buf, &[1, 4]).unwrap())
        .unwrap_err();
    assert!(matches!(err, EmbeddingError::OutputShape { .. }), "{err}");
    t.forward_into(&[1, 2], TensorViewMut::new(&mut buf, &[2, 2]).unwrap())
        .unwrap();
    assert_eq!(&buf[2..], t.row(2).unwrap());
}

/// One id takes `lookup_rows_into`'s decode path only for the shapes, ids and options
/// it handles; every other single-id call gives the general path's result or error.
#[test]
fn a_single_id_writes_or_fails_as_the_general_path_does() {
    let t = table();
    let mut buf = [7.0f32; 3];
    for (ids_dims, out_dims) in [(&[1][..], &[1, 3][..]), (&[1, 1], &[1, 1, 3])] {
        let ids = (&[2u32][..], ids_dims);
        t.forward_into(ids, (&mut buf[..], out_dims)).unwrap();
        assert_eq!(buf, [6., 7., 8.]);
    }
    buf = [7.0; 3];
    // Ranks that do not pair up, a wrong n_embd, an id out of range or negative.
    for (ids_dims, out_dims) in [
        (&[1][..], &[1, 1, 3][..]),
        (&[1, 1], &[1, 3]),
        (&[1], &[3]),
        (&[1, 1], &[3, 1, 1]),
    ] {
        let err = t
            .forward_into((&[2u32][..], ids_dims), (&mut buf[..], out_dims))
            .unwrap_err();
        assert!(matches!(err, EmbeddingError::OutputShape { .. }), "{err}");
    }
    let mut short = [7.0f32; 2];
    let err = t
        .forward_into((&[2u32][..], &[1, 1][..]), (&mut short[..], &[1, 1, 2][..]))
        .unwrap_err();
    assert!(matches!(err, EmbeddingError::OutputShape { .. }), "{err}");
    for id in [4i64, -1] {
        let err = t
            .forward_into((&[id][..], &[1, 1][..]), (&mut buf[..], &[1, 1, 3][..]))
            .unwrap_err();
        assert_eq!(
            err,
            EmbeddingError::TokenOutOfRange {
                token: id,
                batch: 0,
                position: 0,
                vocab_size: 4
            }
        );
    }
    assert_eq!(buf, [7.0; 3]);
    // With max_norm the row is renormalised, as `forward` returns it.
    let options = crate::EmbeddingOptions {
        max_norm: Some(MaxNorm {
            max_norm: 1.0,
            norm_type: crate::NormType::P(2.0),
        }),
        ..Default::default()
    };
    let t = t.with_options(options).unwrap();
    t.forward_into((&[2u32][..], &[1, 1][..]), (&mut buf[..], &[1, 1, 3][..]))
        .unwrap();
    assert_eq!(buf[..], *t.forward(&[2u32]).unwrap().as_slice());
    assert!(
        buf.iter().map(|x| x * x).sum::<f32>() <= 1.0 + 1e-6,
        "{buf:?}"
    );
}
