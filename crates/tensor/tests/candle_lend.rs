//! `lend`: shared and mutable candle tensors of several element types in one call, the
//! closure's parameters typed by the handles.
#![cfg(feature = "candle")]

mod common;

use candle_core::{DType, Device, Tensor};
use common::within_time;
use tokenloom_tensor::TensorError;
use tokenloom_tensor::adapters::candle::{FlattenLending, lend, read, with_view_mut, write};

fn is_conflict<R>(result: &Result<R, TensorError>, needle: &str) -> bool {
    matches!(result, Err(TensorError::LendingConflict { reason, .. }) if reason.contains(needle))
}

#[test]
fn five_tensors_of_two_dtypes_in_one_call() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    // cos and sin are the halves of one cache; q and k the halves of one fused qk buffer.
    let cache = Tensor::arange(0f32, 8.0, &dev)?.reshape((2, 4))?;
    let (cos, sin) = (cache.narrow(0, 0, 1)?, cache.narrow(0, 1, 1)?);
    let qk = Tensor::zeros((2, 3), DType::F32, &dev)?;
    let (q, k) = (qk.narrow(0, 0, 1)?, qk.narrow(0, 1, 1)?);
    let positions = Tensor::new(&[4i64, 9, 11], &dev)?;
    let seen = lend(
        (
            read::<f32>(&cos),
            read::<f32>(&sin),
            read::<i64>(&positions),
            write::<f32>(&q),
            write::<f32>(&k),
        ),
        |(cos, sin, positions, mut q, mut k)| {
            for (i, &p) in positions.as_slice().iter().enumerate() {
                q.as_mut_slice()[i] = cos.as_slice()[i] + p as f32;
                k.as_mut_slice()[i] = sin.as_slice()[i] - p as f32;
            }
            Ok::<_, TensorError>((cos.shape().dims().to_vec(), positions.as_slice().len()))
        },
    )
    .flat()?;
    assert_eq!(seen, (vec![1, 4], 3));
    assert_eq!(qk.to_vec2::<f32>()?, [[4.0, 10.0, 13.0], [0.0, -4.0, -5.0]]);
    Ok(())
}

#[test]
fn read_and_write_of_disjoint_parts_of_one_storage() -> Result<(), Box<dyn std::error::Error>> {
    let buffer = Tensor::arange(0f64, 6.0, &Device::Cpu)?;
    let (src, dst) = (buffer.narrow(0, 0, 3)?, buffer.narrow(0, 3, 3)?);
    lend((read::<f64>(&src), write::<f64>(&dst)), |(src, mut dst)| {
        dst.as_mut_slice().copy_from_slice(src.as_slice());
    })?;
    assert_eq!(buffer.to_vec1::<f64>()?, [0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    // Overlapping reads of one storage no item writes are fine.
    let sum = lend((read::<f64>(&buffer), read::<f64>(&src)), |(all, src)| {
        all.as_slice().iter().chain(src.as_slice()).sum::<f64>()
    })?;
    assert_eq!(sum, 9.0);
    Ok(())
}

#[test]
fn overlap_in_a_written_storage_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    let buffer = Tensor::zeros(6, DType::F32, &Device::Cpu)?;
    let (a, b) = (buffer.narrow(0, 0, 4)?, buffer.narrow(0, 2, 4)?);
    let both_written = lend((write::<f32>(&a), write::<f32>(&b)), |_| ());
    assert!(
        is_conflict(&both_written, "tensors 0 and 1 overlap"),
        "{both_written:?}"
    );
    let read_written = lend((read::<f32>(&b), write::<f32>(&a)), |_| ());
    assert!(is_conflict(&read_written, "overlap"), "{read_written:?}");
    let same = lend((write::<f32>(&buffer), write::<f32>(&buffer)), |_| ());
    assert!(is_conflict(&same, "overlap"), "{same:?}");
    Ok(())
}

#[test]
fn wrong_dtype_strided_and_nested_are_typed_errors() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let t = Tensor::zeros((2, 3), DType::F32, &dev)?;
    let ids = Tensor::new(&[1u32, 2], &dev)?;
    let wrong = lend((read::<f32>(&t), read::<i64>(&ids)), |_| ());
    assert!(
        matches!(
            &wrong,
            Err(TensorError::ForeignDType {
                expected: "i64",
                ..
            })
        ),
        "{wrong:?}"
    );
    let wrong_written = lend((write::<f64>(&t),), |_| ());
    assert!(
        matches!(
            &wrong_written,
            Err(TensorError::ForeignDType {
                expected: "f64",
                ..
            })
        ),
        "{wrong_written:?}"
    );
    let strided = t.t()?;
    let strided = lend((read::<f32>(&strided),), |_| ());
    assert!(
        matches!(strided, Err(TensorError::NotContiguous { .. })),
        "{strided:?}"
    );
    // Inside a mutable lending of the same storage: refused, not a hang.
    let nested = within_time(move || {
        let t2 = t.clone();
        with_view_mut(&t, |_: tokenloom_tensor::TensorViewMut<'_, f32>| {
            lend((read::<f32>(&t2),), |_| ())
        })
        .unwrap()
    });
    assert!(
        is_conflict(&nested, "inside a mutable lending"),
        "{nested:?}"
    );
    Ok(())
}

#[test]
fn two_threads_lending_in_opposite_orders_do_not_deadlock() {
    let a = Tensor::zeros(1000, DType::F32, &Device::Cpu).unwrap();
    let b = Tensor::zeros(1000, DType::F32, &Device::Cpu).unwrap();
    let done = within_time(move || {
        let (a2, b2) = (a.clone(), b.clone());
        let other = std::thread::spawn(move || {
            for _ in 0..2000 {
                lend((read::<f32>(&b2), write::<f32>(&a2)), |(b, mut a)| {
                    a.as_mut_slice()[0] += b.as_slice()[0] + 1.0;
                })
                .unwrap();
            }
        });
        for _ in 0..2000 {
            lend((read::<f32>(&a), write::<f32>(&b)), |(a, mut b)| {
                b.as_mut_slice()[1] += a.as_slice()[1] + 1.0;
            })
            .unwrap();
        }
        other.join().is_ok()
    });
    assert!(done);
}
