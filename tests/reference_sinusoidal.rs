//! The sinusoidal table matches the Vaswani reference.

mod common;

use common::assert_close;
use tokenloom::positions::{PositionError, sinusoidal_table};

#[test]
fn vaswani_d16_matches_the_reference() {
    let case = common::case("sin_vaswani_d16_f64");
    let d_model = case.f64("config/d_model") as usize;
    let base = case.f64("config/base");
    let positions = case.get("config/positions").as_array().unwrap().len();
    let (shape, want) = case.tensor("expected/pe");
    let pe = sinusoidal_table::<f64>(positions, d_model, base).unwrap();
    assert_eq!(pe.dims(), &shape[..]);
    assert_close("pe", pe.as_slice(), &want, case.f64("tolerance/abs"));
}

#[test]
fn bad_sizes_are_errors() {
    assert_eq!(
        sinusoidal_table::<f32>(0, 8, 1e4).unwrap_err(),
        PositionError::ZeroSize {
            name: "max_positions"
        }
    );
    assert!(sinusoidal_table::<f32>(8, 0, 1e4).is_err());
    assert!(sinusoidal_table::<f32>(8, 8, 1.0).is_err());
    assert!(sinusoidal_table::<f32>(usize::MAX, 2, 1e4).is_err());
}

/// The variants models are ported from, against transcriptions of transformers' own code
/// (tests/reference/generated/sinusoidal_variants.py).
#[test]
fn marian_and_m2m100_tables_match_transformers() {
    use tokenloom::positions::{Sinusoidal, SinusoidalVariant};
    let generated = common::reference_dir().join("generated");
    for d in [16usize, 15] {
        let case = common::Case::load(&generated, &format!("sin_marian_d{d}_f64"));
        let (shape, want) = case.tensor("expected/pe");
        let table = Sinusoidal::new(SinusoidalVariant::Marian, 10000.0)
            .table::<f64>(shape[0], d)
            .unwrap();
        assert_close("marian", table.as_slice(), &want, case.f64("tolerance/abs"));

        let case = common::Case::load(&generated, &format!("sin_m2m100_d{d}_f64"));
        let (shape, want) = case.tensor("expected/pe");
        let padding_idx = case.f64("config/padding_idx") as usize;
        let fairseq =
            Sinusoidal::new(SinusoidalVariant::Fairseq, 10000.0).with_zero_row(padding_idx);
        let table = fairseq.table::<f64>(shape[0], d).unwrap();
        assert_close("m2m100", table.as_slice(), &want, case.f64("tolerance/abs"));
        // Rows 5.. alone, into a caller's buffer, are the same rows.
        let mut rows = vec![0.0f64; 3 * d];
        fairseq.write_into((&mut rows[..], [3, d]), 5).unwrap();
        assert_eq!(&rows[..], &table.as_slice()[5 * d..8 * d]);
        // transformers computes this table in float32: ours, rounded once from f64, is
        // within the float32 error the reference file records.
        let (_, native) = case.tensor("expected/expected_hf_native_float32");
        let ours32 = fairseq.table::<f32>(shape[0], d).unwrap();
        let ours32: Vec<f64> = ours32.as_slice().iter().map(|&x| f64::from(x)).collect();
        assert_close(
            "m2m100 f32",
            &ours32,
            &native,
            2.0 * case.f64("tolerance/float32_vs_float64"),
        );
    }
    // A fairseq table narrower than 4 has no frequencies: an error, not a division by 0.
    assert!(
        Sinusoidal::new(SinusoidalVariant::Fairseq, 10000.0)
            .table::<f32>(4, 3)
            .is_err()
    );
}
