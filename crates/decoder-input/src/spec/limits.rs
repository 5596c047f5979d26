//! Bounds on sizes a model file states, checked before anything is sized by them.

use std::path::Path;

use crate::error::DecoderInputError;

/// The most decoder layers a model spec accepts (the largest released models have
/// about 130). A layer count above it is [`DecoderInputError::BadValue`]: the spec holds
/// one entry per layer, and a file must not size that table at will.
pub const MAX_LAYERS: usize = 1 << 16;

/// `n_layers` when it is at most [`MAX_LAYERS`], else the error naming `key`.
pub(crate) fn check_layer_count(
    n_layers: Option<usize>,
    path: &Path,
    key: String,
) -> Result<Option<usize>, DecoderInputError> {
    match n_layers {
        Some(n) if n > MAX_LAYERS => Err(DecoderInputError::BadValue {
            path: path.to_path_buf(),
            key,
            value: n.to_string(),
            expected: "a layer count of at most tokenloom_decoder_input::spec::MAX_LAYERS (65536)",
        }),
        n => Ok(n),
    }
}
