//! The benchmark's comparison GEMMs (`tokenloom_devtools::gemm_peer`) compute the product
//! they claim to, and refuse buffers of the wrong size instead of reading past them.

use tokenloom::tensor::{Tensor, matmul_transposed};
use tokenloom_devtools::gemm_peer::{gemm_abt, matrixmultiply_abt};

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 1013) as f32 / 1013.0 - 0.5)
        .collect()
}

#[test]
fn both_peers_agree_with_tokenloom_matmul_transposed() {
    type Peer = fn(&[f32], &[f32], &mut [f32], (usize, usize, usize));
    let peers: [(&str, Peer); 2] = [("matrixmultiply", matrixmultiply_abt), ("gemm", gemm_abt)];
    for ((m, k, n), (peer, product)) in [(1, 1, 1), (1, 64, 300), (7, 33, 19), (64, 129, 65)]
        .into_iter()
        .flat_map(|dims| peers.map(|p| (dims, p)))
    {
        let (a, b) = (values(m * k, 1), values(n * k, 2));
        let mut c = vec![f32::NAN; m * n];
        product(&a, &b, &mut c, (m, k, n));
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
                "{peer}, {m}x{k}x{n}, element {i}: {got} vs {want}"
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
#[should_panic(expected = "c is not (2, 5)")]
fn gemm_abt_refuses_a_short_output() {
    gemm_abt(&[0.0; 6], &[0.0; 15], &mut [0.0; 9], (2, 3, 5));
}

#[test]
#[should_panic(expected = "empty product")]
fn matrixmultiply_abt_refuses_an_empty_product() {
    matrixmultiply_abt(&[], &[], &mut [], (0, 3, 5));
}
