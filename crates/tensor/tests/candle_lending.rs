//! Lending candle tensors: nested lendings that would wait for their own lock are typed
//! errors (they hung before), and several mutable tensors are lent in one call.
#![cfg(feature = "candle")]

mod common;

use candle_core::{DType, Device, Tensor};
use common::within_time;
use tokenloom_tensor::adapters::candle::{
    with_view, with_view_mut, with_view_mut_from, with_views_mut,
};
use tokenloom_tensor::{TensorError, TensorView, TensorViewMut};

fn cache() -> (Tensor, Tensor, Tensor) {
    let cache = Tensor::zeros((4, 3), DType::F32, &Device::Cpu).unwrap();
    let cos = cache.narrow(0, 0, 2).unwrap();
    let sin = cache.narrow(0, 2, 2).unwrap();
    (cache, cos, sin)
}

fn is_conflict<R>(result: &Result<R, TensorError>, needle: &str) -> bool {
    match result {
        Err(TensorError::LendingConflict {
            framework: "candle",
            reason,
            ..
        }) => reason.contains(needle),
        _ => false,
    }
}

#[test]
fn nested_mutable_lending_of_one_storage_is_refused_not_a_hang() {
    let inner = within_time(|| {
        let (_cache, cos, sin) = cache();
        with_view_mut(&cos, |_: TensorViewMut<'_, f32>| {
            with_view_mut(&sin, |_: TensorViewMut<'_, f32>| ())
        })
        .unwrap()
    });
    assert!(is_conflict(&inner, "inside a mutable lending"), "{inner:?}");

    // A read nested in a write of the same storage, and any lending inside a write.
    let (read_in_write, other_in_write) = within_time(|| {
        let (_cache, cos, sin) = cache();
        let other = Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap();
        let a = with_view_mut(&cos, |_: TensorViewMut<'_, f32>| {
            with_view(&sin, |_: TensorView<'_, f32>| ())
        })
        .unwrap();
        let b = with_view_mut(&cos, |_: TensorViewMut<'_, f32>| {
            with_view(&other, |_: TensorView<'_, f32>| ())
        })
        .unwrap();
        (a, b)
    });
    assert!(is_conflict(&read_in_write, "inside a mutable lending"));
    assert!(is_conflict(&other_in_write, "inside a mutable lending"));
}

#[test]
fn writing_a_storage_an_enclosing_lending_reads_is_refused() {
    let (write_in_read, from_in_read) = within_time(|| {
        let (_cache, cos, sin) = cache();
        let dst = Tensor::zeros((2, 3), DType::F32, &Device::Cpu).unwrap();
        let a = with_view(&cos, |_: TensorView<'_, f32>| {
            with_view_mut(&sin, |_: TensorViewMut<'_, f32>| ())
        })
        .unwrap();
        // Writing another storage from inside a read is fine.
        let b = with_view(&cos, |c: TensorView<'_, f32>| {
            with_view_mut_from(
                &dst,
                &sin,
                |mut d: TensorViewMut<'_, f32>, s: TensorView<'_, f32>| {
                    d.as_mut_slice().copy_from_slice(s.as_slice());
                    c.as_slice().len()
                },
            )
        })
        .unwrap();
        (a, b)
    });
    assert!(
        is_conflict(&write_in_read, "mutable tensor 0 shares its storage"),
        "{write_in_read:?}"
    );
    assert_eq!(from_in_read, Ok(6));
}

#[test]
fn shared_lendings_nest_and_a_refusal_leaves_no_trace() {
    let (_cache, cos, sin) = cache();
    let n = with_view(&cos, |c: TensorView<'_, f32>| {
        with_view(&sin, |s: TensorView<'_, f32>| {
            c.as_slice().len() + s.as_slice().len()
        })
    });
    assert_eq!(n, Ok(Ok(12)));
    let refused = with_view_mut(&cos, |_: TensorViewMut<'_, f32>| {
        with_view_mut(&sin, |_: TensorViewMut<'_, f32>| ())
    });
    assert!(matches!(refused, Ok(Err(_))));
    // The registry forgot both lendings: a fresh mutable lending works.
    with_view_mut(&sin, |mut s: TensorViewMut<'_, f32>| {
        s.as_mut_slice().fill(5.0)
    })
    .unwrap();
    assert_eq!(sin.to_vec2::<f32>().unwrap(), [[5.0; 3]; 2]);
}

#[test]
fn several_mutable_tensors_in_one_call() {
    let (cache, cos, sin) = within_time(|| {
        let (cache, cos, sin) = cache();
        let other = Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap();
        // Given out of storage order, and one of them from another storage.
        with_views_mut(
            &[&sin, &other, &cos],
            |mut v: Vec<TensorViewMut<'_, f32>>| {
                assert_eq!(v.len(), 3);
                assert_eq!(v[0].dims(), &[2, 3][..]);
                assert_eq!(v[1].dims(), &[2][..]);
                v[0].as_mut_slice().fill(2.0);
                v[1].as_mut_slice().fill(7.0);
                v[2].as_mut_slice().fill(1.0);
            },
        )
        .unwrap();
        assert_eq!(other.to_vec1::<f32>().unwrap(), [7.0, 7.0]);
        (cache, cos, sin)
    });
    assert_eq!(cos.to_vec2::<f32>().unwrap(), [[1.0; 3]; 2]);
    assert_eq!(sin.to_vec2::<f32>().unwrap(), [[2.0; 3]; 2]);
    let flat = cache.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    assert_eq!(flat[5..7], [1.0, 2.0]);
}

#[test]
fn overlapping_or_nested_flat_lendings_are_refused() {
    let (cache, cos, _sin) = cache();
    let middle = cache.narrow(0, 1, 2).unwrap();
    let overlap = with_views_mut(&[&cos, &middle], |_: Vec<TensorViewMut<'_, f32>>| ());
    assert!(
        is_conflict(&overlap, "tensors 0 and 1 overlap"),
        "{overlap:?}"
    );
    let same = with_views_mut(&[&cos, &cos], |_: Vec<TensorViewMut<'_, f32>>| ());
    assert!(is_conflict(&same, "overlap"), "{same:?}");
    let wrong = with_views_mut(&[&cos], |_: Vec<TensorViewMut<'_, f64>>| ());
    assert!(matches!(
        wrong,
        Err(TensorError::ForeignDType {
            expected: "f64",
            ..
        })
    ));
    let transposed = cos.t().unwrap();
    let strided = with_views_mut(&[&transposed], |_: Vec<TensorViewMut<'_, f32>>| ());
    assert!(matches!(strided, Err(TensorError::NotContiguous { .. })));
    let nested = within_time(move || {
        with_views_mut(&[&cache], |_: Vec<TensorViewMut<'_, f32>>| {
            with_views_mut(&[&middle], |_: Vec<TensorViewMut<'_, f32>>| ())
        })
        .unwrap()
    });
    assert!(
        is_conflict(&nested, "inside a mutable lending"),
        "{nested:?}"
    );
}
