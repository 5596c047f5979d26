//! The C API's mixed-precision backward, optimizer steps on caller state and
//! EmbeddingBag, called as C would (through the exported functions), against the Rust
//! functions they wrap; and their refusals.

use std::ffi::c_void;
use std::ptr::null;

use tokenloom_capi::*;
use tokenloom_embedding::{EmbeddingOptions, functional};
use tokenloom_tensor::{Accumulate, bf16};

/// A read-only descriptor.
fn t<T>(data: &[T], dtype: TokenloomDtype, dims: &[usize]) -> TokenloomTensor {
    TokenloomTensor::new(data.as_ptr().cast_mut().cast::<c_void>(), dtype, dims)
}

/// A descriptor the call writes through.
fn w<T>(data: &mut [T], dtype: TokenloomDtype, dims: &[usize]) -> TokenloomTensor {
    TokenloomTensor::new(data.as_mut_ptr().cast::<c_void>(), dtype, dims)
}

#[test]
fn a_bf16_gradient_goes_into_an_f32_gradient() {
    let ids = [3i64, 1, 3, 3];
    let grad_output: Vec<bf16> = (0..8).map(|i| bf16::from_f32(i as f32 * 0.37)).collect();
    let mut grad_weight = [0.0f32; 10];
    let status = unsafe {
        tokenloom_backward_dense(
            &t(&ids, TokenloomDtype::I64, &[4]),
            &t(&grad_output, TokenloomDtype::Bf16, &[4, 2]),
            &w(&mut grad_weight, TokenloomDtype::F32, &[5, 2]),
            false,
            0,
            false,
            false,
        )
    };
    assert_eq!(status, TokenloomStatus::Ok);
    let mut want = [0.0f32; 10];
    functional::backward_dense_cast(
        &ids,
        (&grad_output[..], [4, 2]),
        (&mut want[..], [5, 2]),
        &EmbeddingOptions::default(),
        Accumulate::Replace,
    )
    .unwrap();
    assert_eq!(grad_weight, want);
    // An f32 gradient into a bf16 one narrows: refused.
    let mut narrow = [bf16::ZERO; 10];
    let status = unsafe {
        tokenloom_backward_dense(
            &t(&ids, TokenloomDtype::I64, &[4]),
            &t(&want[..8], TokenloomDtype::F32, &[4, 2]),
            &w(&mut narrow, TokenloomDtype::Bf16, &[5, 2]),
            false,
            0,
            false,
            false,
        )
    };
    assert_eq!(status, TokenloomStatus::BadDtype);
}

#[test]
fn sgd_with_momentum_keeps_its_velocity_in_the_callers_buffer() {
    let mut weight = [1.0f32; 4];
    let grad = [1.0f32, 2.0, 3.0, 4.0];
    let mut velocity = [0.0f32; 4];
    for _ in 0..2 {
        let status = unsafe {
            tokenloom_sgd_step(
                &w(&mut weight, TokenloomDtype::F32, &[2, 2]),
                &t(&grad, TokenloomDtype::F32, &[2, 2]),
                null(),
                &w(&mut velocity, TokenloomDtype::F32, &[2, 2]),
                0.5,
                0.9,
                0.0,
                false,
                0,
            )
        };
        assert_eq!(status, TokenloomStatus::Ok);
    }
    // b1 = g, b2 = 0.9 g + g = 1.9 g; p = 1 − 0.5 (g + 1.9 g).
    assert_eq!(velocity, [1.9, 3.8, 5.7, 7.6]);
    assert!((weight[0] - (1.0 - 0.5 * 2.9)).abs() < 1e-6, "{weight:?}");
    let status = unsafe {
        tokenloom_sgd_step(
            &w(&mut weight, TokenloomDtype::F32, &[2, 2]),
            &t(&grad, TokenloomDtype::F32, &[2, 2]),
            null(),
            null(),
            0.5,
            0.9,
            0.0,
            false,
            0,
        )
    };
    assert_eq!(status, TokenloomStatus::NullPointer);
}

#[test]
fn embedding_bag_max_and_its_backward_through_c() {
    let table = [1.0f32, 9.0, 5.0, 2.0, 3.0, 3.0]; // (3, 2)
    let ids = [[0i32, 1, 2], [2, 2, 2]];
    let mut out = [0.0f32; 4];
    let mut max_indices = [0i64; 4];
    let ids_t = t(ids.as_flattened(), TokenloomDtype::I32, &[2, 3]);
    let status = unsafe {
        tokenloom_embedding_bag(
            &t(&table, TokenloomDtype::F32, &[3, 2]),
            &ids_t,
            null(),
            false,
            null(),
            TokenloomBagMode::Max as i32,
            false,
            0,
            &w(&mut out, TokenloomDtype::F32, &[2, 2]),
            &w(&mut max_indices, TokenloomDtype::I64, &[2, 2]),
        )
    };
    assert_eq!(status, TokenloomStatus::Ok);
    assert_eq!(out, [5.0, 9.0, 3.0, 3.0]);
    assert_eq!(max_indices, [1, 0, 2, 2]);
    let grad_out = [1.0f32, 2.0, 3.0, 4.0];
    let mut grad_weight = [7.0f32; 6];
    let status = unsafe {
        tokenloom_embedding_bag_backward(
            &ids_t,
            null(),
            false,
            null(),
            &t(&grad_out, TokenloomDtype::F32, &[2, 2]),
            &w(&mut max_indices, TokenloomDtype::I64, &[2, 2]),
            TokenloomBagMode::Max as i32,
            false,
            0,
            false,
            &w(&mut grad_weight, TokenloomDtype::F32, &[3, 2]),
            false,
        )
    };
    assert_eq!(status, TokenloomStatus::Ok);
    assert_eq!(grad_weight, [0.0, 2.0, 1.0, 0.0, 3.0, 4.0]);
    let status = unsafe {
        tokenloom_embedding_bag(
            &t(&table, TokenloomDtype::F32, &[3, 2]),
            &ids_t,
            null(),
            false,
            null(),
            7,
            false,
            0,
            &w(&mut out, TokenloomDtype::F32, &[2, 2]),
            null(),
        )
    };
    assert_eq!(status, TokenloomStatus::InvalidArgument);
}

#[test]
fn a_bf16_table_looks_up_into_f32_activations() {
    let table: Vec<bf16> = (0..6).map(|i| bf16::from_f32(i as f32 * 1.25)).collect();
    let ids = [2u32, 0];
    let mut out = [0.0f32; 4];
    let status = unsafe {
        tokenloom_lookup(
            &t(&table, TokenloomDtype::Bf16, &[3, 2]),
            &t(&ids, TokenloomDtype::U32, &[2]),
            &w(&mut out, TokenloomDtype::F32, &[2, 2]),
        )
    };
    assert_eq!(status, TokenloomStatus::Ok);
    assert_eq!(out, [5.0, 6.25, 0.0, 1.25]);
    let mut narrow = [bf16::ZERO; 4];
    let wide = [0.0f32; 6];
    let status = unsafe {
        tokenloom_lookup(
            &t(&wide, TokenloomDtype::F32, &[3, 2]),
            &t(&ids, TokenloomDtype::U32, &[2]),
            &w(&mut narrow, TokenloomDtype::Bf16, &[2, 2]),
        )
    };
    assert_eq!(status, TokenloomStatus::BadDtype);
}
