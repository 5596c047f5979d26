//! FP8 safetensors tensors against `data/fp8_golden.safetensors` (ml_dtypes' values,
//! written by `data/make_fp8_golden.py`): every byte of each 8-bit type converts exactly,
//! and a block-scaled weight dequantizes to the reference's bits.

use tokenloom_io::{IoError, SafetensorsFile};
use tokenloom_tensor::bf16;

fn golden() -> SafetensorsFile {
    SafetensorsFile::open(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/fp8_golden.safetensors"
    ))
    .unwrap()
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

#[test]
fn every_byte_of_every_fp8_type_converts_exactly() {
    let file = golden();
    for ty in ["e4m3", "e5m2", "e8m0"] {
        let got = file.load::<f32>(&format!("all.{ty}")).unwrap();
        let want = file.load::<f32>(&format!("all.{ty}.f32")).unwrap();
        assert_eq!(got.dims(), &[16, 16]);
        for (i, (g, w)) in got.as_slice().iter().zip(want.as_slice()).enumerate() {
            assert!(same_bits(*g, *w), "{ty} byte {i:#04x}: {g} vs {w}");
        }
        // f64 widens the same values; bf16 holds every E4M3/E5M2/E8M0 value exactly.
        let wide = file.load::<f64>(&format!("all.{ty}")).unwrap();
        let narrow = file.load::<bf16>(&format!("all.{ty}")).unwrap();
        for ((w, n), v) in wide
            .as_slice()
            .iter()
            .zip(narrow.as_slice())
            .zip(want.as_slice())
        {
            assert!(
                same_bits(*w as f32, *v) && same_bits(n.to_f32(), *v),
                "{ty} {v}"
            );
        }
    }
}

#[test]
fn block_scaled_weights_dequantize_to_the_reference_bits() {
    let file = golden();
    let got = file
        .load_block_scaled::<f32>("blocked.weight", [4, 8])
        .unwrap();
    let want = file.load::<f32>("blocked.f32").unwrap();
    assert_eq!(got.dims(), &[10, 20]);
    assert!(
        got.as_slice()
            .iter()
            .zip(want.as_slice())
            .all(|(g, w)| same_bits(*g, *w))
    );
    let got = file
        .load_block_scaled::<bf16>("blocked.weight", [4, 8])
        .unwrap();
    let want = file.load::<bf16>("blocked.bf16").unwrap();
    assert_eq!(got.as_slice(), want.as_slice());
}

#[test]
fn a_scaled_weight_is_never_read_without_its_scales() {
    let file = golden();
    let err = file.load::<f32>("blocked.weight").unwrap_err();
    assert!(
        matches!(&err, IoError::ScaledFp8 { name, scales }
            if name == "blocked.weight" && scales == "blocked.weight_scale_inv"),
        "{err}"
    );
    assert!(err.to_string().contains("load_block_scaled"), "{err}");
}

#[test]
fn block_sizes_and_scale_shapes_that_do_not_tile_are_errors() {
    let file = golden();
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.weight", [0, 8]),
        Err(IoError::BlockSize { block: [0, 8], .. })
    ));
    // 128×128 blocks over (10, 20) need one scale, the file has (3, 3).
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.weight", [128, 128]),
        Err(IoError::ShapeMismatch { ref name, ref expected, ref got })
            if name == "blocked.weight_scale_inv" && expected == &[1, 1] && got == &[3, 3]
    ));
    // Not an FP8 weight; no scales beside it.
    assert!(matches!(
        file.load_block_scaled::<f32>("blocked.f32", [4, 8]),
        Err(IoError::UnsupportedDType { .. })
    ));
    assert!(matches!(
        file.load_block_scaled::<f32>("all.e4m3", [4, 8]),
        Err(IoError::MissingTensor { .. })
    ));
    assert!(matches!(
        file.load_block_scaled::<f32>("all.e8m0", [4, 8]),
        Err(IoError::UnsupportedDType { .. })
    ));
}
