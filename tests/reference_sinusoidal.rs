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
