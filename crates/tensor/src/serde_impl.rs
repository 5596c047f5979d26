//! serde for [`Tensor`]: serialized as `{v, dtype, shape, data}` and deserialized through
//! the validating constructor, so a decoded tensor always satisfies its invariant.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::element::{DType, Element};
use crate::error::TensorError;
use crate::tensor::Tensor;

/// The version of the serde representation, written as the field `v`.
pub const TENSOR_SERDE_VERSION: u32 = 1;

#[derive(Serialize)]
struct TensorReprRef<'a, T> {
    v: u32,
    dtype: DType,
    shape: &'a [usize],
    data: &'a [T],
}

#[derive(Deserialize)]
struct TensorRepr<T> {
    v: u32,
    dtype: DType,
    shape: Vec<usize>,
    data: Vec<T>,
}

impl<T: Element> Serialize for Tensor<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TensorReprRef {
            v: TENSOR_SERDE_VERSION,
            dtype: T::DTYPE,
            shape: self.dims(),
            data: self.as_slice(),
        }
        .serialize(serializer)
    }
}

impl<'de, T: Element> Deserialize<'de> for Tensor<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let repr = TensorRepr::<T>::deserialize(deserializer)?;
        Tensor::try_from(repr).map_err(D::Error::custom)
    }
}

impl<T: Element> TryFrom<TensorRepr<T>> for Tensor<T> {
    type Error = TensorError;

    fn try_from(repr: TensorRepr<T>) -> Result<Self, TensorError> {
        if repr.v != TENSOR_SERDE_VERSION {
            return Err(TensorError::UnsupportedVersion {
                kind: "tensor serde",
                found: repr.v,
                supported: TENSOR_SERDE_VERSION,
            });
        }
        if repr.dtype != T::DTYPE {
            return Err(TensorError::DTypeMismatch {
                expected: T::DTYPE,
                found: repr.dtype,
            });
        }
        Tensor::from_vec(repr.data, &repr.shape)
    }
}
