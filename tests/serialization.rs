//! bincode files of tensors and embeddings: bit-exact round trips for every dtype, and
//! errors (never panics) for wrong, corrupted and truncated files.

use proptest::prelude::*;
use tokenloom::embedding::{Embedding, EmbeddingError};
use tokenloom::tensor::{DType, Element, Tensor, TensorError, bf16, f16};

/// Arbitrary bit patterns, including NaN payloads, infinities and -0.0.
fn bits_tensor<T: Element>(from_bits: fn(u64) -> T) -> impl Strategy<Value = Tensor<T>> {
    (prop::collection::vec(1usize..6, 1..4)).prop_flat_map(move |dims| {
        let len: usize = dims.iter().product();
        prop::collection::vec(any::<u64>(), len).prop_map(move |bits| {
            Tensor::from_vec(bits.into_iter().map(from_bits).collect(), &dims).unwrap()
        })
    })
}

fn same_bits<T: Element>(a: &Tensor<T>, b: &Tensor<T>) -> bool {
    a.dims() == b.dims() && {
        let raw =
            |t: &Tensor<T>| bincode::serde::encode_to_vec(t, bincode::config::standard()).unwrap();
        raw(a) == raw(b)
    }
}

fn f32_bits(b: u64) -> f32 {
    f32::from_bits(b as u32)
}
fn f64_bits(b: u64) -> f64 {
    f64::from_bits(b)
}
fn f16_bits(b: u64) -> f16 {
    f16::from_bits(b as u16)
}
fn bf16_bits(b: u64) -> bf16 {
    bf16::from_bits(b as u16)
}

fn round_trip<T: Element>(t: &Tensor<T>) {
    let bytes = t.to_bytes().unwrap();
    let back = Tensor::<T>::from_bytes(&bytes).unwrap();
    assert!(same_bits(t, &back), "tensor round trip changed bits");

    if let Ok(table) = Embedding::from_weight(
        t.clone()
            .reshape(&[t.dims()[0], t.as_slice().len() / t.dims()[0]])
            .unwrap(),
    ) {
        let back = Embedding::<T>::from_bytes(&table.to_bytes().unwrap()).unwrap();
        assert!(
            same_bits(table.weight(), back.weight()),
            "embedding round trip changed bits"
        );
    }
}

/// Every strict prefix and every single-bit flip of a valid file is an error.
fn corruption_is_detected<T: Element>(t: &Tensor<T>, cut: usize, flip: usize) {
    let bytes = t.to_bytes().unwrap();
    let cut = cut % bytes.len();
    assert!(
        Tensor::<T>::from_bytes(&bytes[..cut]).is_err(),
        "prefix of {cut} bytes accepted"
    );
    let mut flipped = bytes.clone();
    let bit = flip % (bytes.len() * 8);
    flipped[bit / 8] ^= 1 << (bit % 8);
    assert!(
        Tensor::<T>::from_bytes(&flipped).is_err(),
        "flip of bit {bit} accepted"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(tokenloom_testkit::cases_or(48)))]

    #[test]
    fn f32_round_trips(t in bits_tensor(f32_bits), cut in any::<usize>(), flip in any::<usize>()) {
        round_trip(&t);
        corruption_is_detected(&t, cut, flip);
    }

    #[test]
    fn f64_round_trips(t in bits_tensor(f64_bits), cut in any::<usize>(), flip in any::<usize>()) {
        round_trip(&t);
        corruption_is_detected(&t, cut, flip);
    }

    #[test]
    fn f16_round_trips(t in bits_tensor(f16_bits), cut in any::<usize>(), flip in any::<usize>()) {
        round_trip(&t);
        corruption_is_detected(&t, cut, flip);
    }

    #[test]
    fn bf16_round_trips(t in bits_tensor(bf16_bits), cut in any::<usize>(), flip in any::<usize>()) {
        round_trip(&t);
        corruption_is_detected(&t, cut, flip);
    }

    /// Random bytes, and random bytes behind a valid magic, are errors.
    #[test]
    fn random_bytes_are_errors(mut bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(Tensor::<f32>::from_bytes(&bytes).is_err());
        prop_assert!(Embedding::<f32>::from_bytes(&bytes).is_err());
        if bytes.len() >= 8 {
            bytes[..8].copy_from_slice(b"TLTENSOR");
            prop_assert!(Tensor::<f32>::from_bytes(&bytes).is_err());
        }
    }
}

#[test]
fn wrong_dtype_and_wrong_kind_are_named() {
    let t = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]).unwrap();
    let bytes = t.to_bytes().unwrap();
    assert_eq!(
        Tensor::<bf16>::from_bytes(&bytes).unwrap_err(),
        TensorError::DTypeMismatch {
            expected: DType::BF16,
            found: DType::F32
        }
    );
    let err = Embedding::<f32>::from_bytes(&bytes).unwrap_err();
    assert!(
        matches!(err, EmbeddingError::Tensor(TensorError::BadMagic { .. })),
        "{err}"
    );
    let table = Embedding::from_weight(t).unwrap();
    let err = Embedding::<f64>::from_bytes(&table.to_bytes().unwrap()).unwrap_err();
    assert_eq!(err.to_string(), "dtype mismatch: stored f32, requested f64");
}

#[test]
fn truncation_and_corruption_have_their_own_errors() {
    let t = Tensor::from_vec(vec![1.0f64; 16], &[4, 4]).unwrap();
    let bytes = t.to_bytes().unwrap();
    assert!(matches!(
        Tensor::<f64>::from_bytes(&bytes[..bytes.len() - 1]),
        Err(TensorError::Truncated { .. })
    ));
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        Tensor::<f64>::from_bytes(&longer),
        Err(TensorError::TrailingBytes { extra: 1 })
    ));
    let mut flipped = bytes.clone();
    *flipped.last_mut().unwrap() ^= 0x40;
    assert!(matches!(
        Tensor::<f64>::from_bytes(&flipped),
        Err(TensorError::ChecksumMismatch { .. })
    ));
    let mut newer = bytes;
    newer[8] = 2;
    assert!(matches!(
        Tensor::<f64>::from_bytes(&newer),
        Err(TensorError::UnsupportedVersion { found: 2, .. })
    ));
}

#[test]
fn save_is_atomic_and_load_reports_the_path() {
    let dir = std::env::temp_dir().join(format!("tokenloom-serialization-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("table.tle");
    let table = Embedding::<bf16>::seeded(7, 3, Default::default(), 5).unwrap();
    table.save(&path).unwrap();
    // Overwriting leaves exactly one file, with the new contents, and no temporary file.
    let other = Embedding::<bf16>::seeded(7, 3, Default::default(), 6).unwrap();
    other.save(&path).unwrap();
    assert_eq!(Embedding::<bf16>::load(&path).unwrap(), other);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("table.tle")]);
    let missing = dir.join("missing.tle");
    let err = Embedding::<f32>::load(&missing).unwrap_err();
    assert!(err.to_string().contains("missing.tle"), "{err}");
    // Saving into a directory that does not exist is an error, not a panic.
    assert!(table.save(dir.join("no/such/dir/t.tle")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn checkpoints_keep_options_and_the_frozen_flag() {
    use tokenloom::embedding::{EmbeddingConfig, NormType};
    let table = EmbeddingConfig::new(9, 4)
        .with_padding_idx(3)
        .with_max_norm(2.0, NormType::Infinity)
        .with_scale_grad_by_freq(true)
        .init_seeded::<f16>(4)
        .unwrap();
    let back = Embedding::<f16>::from_bytes(&table.to_bytes().unwrap()).unwrap();
    assert_eq!(back, table);
    assert_eq!(back.options().padding_idx, Some(3));
    let frozen = Embedding::from_pretrained(table.weight().clone(), true).unwrap();
    let back = Embedding::<f16>::from_bytes(&frozen.to_bytes().unwrap()).unwrap();
    assert!(back.is_frozen());
}
