//! The benchmark's comparison GEMM (`tests/support/gemm_peer.rs`) computes the product
//! it claims to, and refuses buffers of the wrong size instead of reading past them.

#[path = "support/gemm_peer.rs"]
mod gemm_peer;

use gemm_peer::matrixmultiply_abt;
use tokenloom::tensor::{Tensor, matmul_transposed};

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 1013) as f32 / 1013.0 - 0.5)
        .collect()
}

#[test]
fn matrixmultiply_abt_agrees_with_tokenloom_matmul_transposed() {
    for (m, k, n) in [(1, 1, 1), (1, 64, 300), (7, 33, 19), (64, 129, 65)] {
        let (a, b) = (values(m * k, 1), values(n * k, 2));
        let mut c = vec![f32::NAN; m * n];
        matrixmultiply_abt(&a, &b, &mut c, (m, k, n));
        let expected = matmul_transposed(
            Tensor::from_vec(a, &[m, k]).unwrap().view(),
            Tensor::from_vec(b, &[n, k]).unwrap().view(),
        )
        .unwrap();
        for (i, (&got, &want)) in c.iter().zip(expected.as_slice()).enumerate() {
            // Two f32 GEMMs may sum in different orders: compare within k ulps of 1.
            let tolerance = k as f32 * f32::EPSILON;
            assert!(
                (got - want).abs() <= tolerance,
                "{m}x{k}x{n}, element {i}: {got} vs {want}"
            );
        }
    }
}

#[test]
#[should_panic(expected = "b is not (5, 3)")]
fn matrixmultiply_abt_refuses_a_short_operand() {
    let mut c = vec![0.0; 10];
    matrixmultiply_abt(&[0.0; 6], &[0.0; 14], &mut c, (2, 3, 5));
}

#[test]
#[should_panic(expected = "empty product")]
fn matrixmultiply_abt_refuses_an_empty_product() {
    matrixmultiply_abt(&[], &[], &mut [], (0, 3, 5));
}
