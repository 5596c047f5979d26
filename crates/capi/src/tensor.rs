//! [`TokenloomTensor`]: a caller's buffer described for the kernels, and the checks that
//! turn it into a view. Every dereference of a caller's pointer is here.

use std::ffi::c_void;

use tokenloom_tensor::{Shape, TensorView, TensorViewMut};

use crate::error::{Failure, TokenloomStatus, run};

/// The most dimensions a [`TokenloomTensor`] can have.
pub const TOKENLOOM_MAX_RANK: usize = 8;

/// Element types, as the `dtype` field of a [`TokenloomTensor`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenloomDtype {
    /// 32-bit IEEE float.
    F32 = 0,
    /// 64-bit IEEE float.
    F64 = 1,
    /// IEEE half precision (storage; computed in f32).
    F16 = 2,
    /// bfloat16 (storage; computed in f32).
    Bf16 = 3,
    /// Unsigned 32-bit token ids (tokenizers, candle).
    U32 = 4,
    /// Signed 32-bit token ids (many C++ code bases).
    I32 = 5,
    /// Signed 64-bit token ids (PyTorch's `LongTensor`).
    I64 = 6,
}

impl TokenloomDtype {
    fn from_tag(tag: i32) -> Option<Self> {
        [
            Self::F32,
            Self::F64,
            Self::F16,
            Self::Bf16,
            Self::U32,
            Self::I32,
            Self::I64,
        ]
        .into_iter()
        .find(|d| *d as i32 == tag)
    }

    fn size(self) -> usize {
        match self {
            Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::U32 | Self::I32 => 4,
            Self::F64 | Self::I64 => 8,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
            Self::U32 => "u32",
            Self::I32 => "i32",
            Self::I64 => "i64",
        }
    }
}

/// A caller's tensor: `rank` dimensions (the first `rank` entries of `dims`, outermost
/// first), row-major and contiguous, of elements of `dtype` (a [`TokenloomDtype`] value)
/// at `data`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TokenloomTensor {
    /// The first element; may be null only for a tensor with no elements.
    pub data: *mut c_void,
    /// A [`TokenloomDtype`] value.
    pub dtype: i32,
    /// The number of dimensions, at most [`TOKENLOOM_MAX_RANK`].
    pub rank: usize,
    /// The dimensions; entries past `rank` are ignored.
    pub dims: [usize; TOKENLOOM_MAX_RANK],
}

impl TokenloomTensor {
    /// Describes a buffer (for Rust callers and tests).
    ///
    /// # Panics
    ///
    /// When `dims` has more than [`TOKENLOOM_MAX_RANK`] entries.
    #[must_use]
    pub fn new(data: *mut c_void, dtype: TokenloomDtype, dims: &[usize]) -> Self {
        let mut all = [0; TOKENLOOM_MAX_RANK];
        all[..dims.len()].copy_from_slice(dims);
        Self {
            data,
            dtype: dtype as i32,
            rank: dims.len(),
            dims: all,
        }
    }
}

/// Fills `*out` with the descriptor of a caller's buffer: `data`, a [`TokenloomDtype`]
/// tag and the `rank` dimensions at `dims` (outermost first; not read when `rank` is 0).
/// The buffer itself is checked when a kernel receives the descriptor.
///
/// Returns `TOKENLOOM_STATUS_NULL_POINTER` for a null `out` (or a null `dims` with a
/// positive `rank`), `TOKENLOOM_STATUS_BAD_DTYPE` for an unknown tag and
/// `TOKENLOOM_STATUS_BAD_SHAPE` for a rank above [`TOKENLOOM_MAX_RANK`]; `*out` is
/// unchanged then.
///
/// # Safety
///
/// `out` is null or points to a writable descriptor; `dims` is null or points to `rank`
/// readable `size_t` values.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tokenloom_tensor_init(
    out: *mut TokenloomTensor,
    data: *mut c_void,
    dtype: i32,
    rank: usize,
    dims: *const usize,
) -> TokenloomStatus {
    run(|| {
        if out.is_null() || (rank > 0 && dims.is_null()) {
            return Err(Failure::new(
                TokenloomStatus::NullPointer,
                "tokenloom_tensor_init: null out or dims",
            ));
        }
        let dtype = TokenloomDtype::from_tag(dtype).ok_or_else(|| {
            Failure::new(
                TokenloomStatus::BadDtype,
                format!("tokenloom_tensor_init: unknown dtype tag {dtype}"),
            )
        })?;
        if rank > TOKENLOOM_MAX_RANK {
            return Err(Failure::new(
                TokenloomStatus::BadShape,
                format!("tokenloom_tensor_init: rank {rank} is above {TOKENLOOM_MAX_RANK}"),
            ));
        }
        let dims: &[usize] = if rank == 0 {
            &[]
        } else {
            // SAFETY: non-null (checked) and `rank` readable values (the caller's contract).
            unsafe { std::slice::from_raw_parts(dims, rank) }
        };
        // SAFETY: non-null (checked) and writable (the caller's contract).
        unsafe { out.write(TokenloomTensor::new(data, dtype, dims)) };
        Ok(())
    })
}

/// A described and checked tensor: its pointer is non-null (or the tensor is empty) and
/// aligned, and its byte size fits `isize`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw {
    data: *mut c_void,
    pub(crate) dtype: TokenloomDtype,
    pub(crate) shape: Shape,
    bytes: usize,
    what: &'static str,
}

/// [`describe`] for an optional argument: `None` for a null pointer.
pub(crate) fn describe_optional(
    tensor: *const TokenloomTensor,
    what: &'static str,
) -> Result<Option<Raw>, Failure> {
    (!tensor.is_null())
        .then(|| describe(tensor, what))
        .transpose()
}

/// Checks what `tensor` points to, without reading its data.
pub(crate) fn describe(tensor: *const TokenloomTensor, what: &'static str) -> Result<Raw, Failure> {
    if tensor.is_null() {
        return Err(Failure::new(
            TokenloomStatus::NullPointer,
            format!("{what}: the tensor descriptor is null"),
        ));
    }
    // SAFETY: non-null (checked above); the caller passes a pointer to a descriptor, which
    // is plain data read by value.
    let tensor = unsafe { *tensor };
    let dtype = TokenloomDtype::from_tag(tensor.dtype).ok_or_else(|| {
        Failure::new(
            TokenloomStatus::BadDtype,
            format!("{what}: unknown dtype tag {}", tensor.dtype),
        )
    })?;
    if tensor.rank > TOKENLOOM_MAX_RANK {
        return Err(Failure::new(
            TokenloomStatus::BadShape,
            format!(
                "{what}: rank {} is more than {TOKENLOOM_MAX_RANK}",
                tensor.rank
            ),
        ));
    }
    let shape = Shape::new(&tensor.dims[..tensor.rank])
        .map_err(|e| Failure::new(TokenloomStatus::BadShape, format!("{what}: {e}")))?;
    let bytes = shape
        .elem_count()
        .checked_mul(dtype.size())
        .filter(|&b| isize::try_from(b).is_ok())
        .ok_or_else(|| {
            Failure::new(
                TokenloomStatus::BadShape,
                format!("{what}: shape {shape} of {} is too large", dtype.name()),
            )
        })?;
    if bytes > 0 && tensor.data.is_null() {
        return Err(Failure::new(
            TokenloomStatus::NullPointer,
            format!("{what}: data is null for shape {shape}"),
        ));
    }
    if !tensor.data.is_null() && !tensor.data.addr().is_multiple_of(dtype.size()) {
        return Err(Failure::new(
            TokenloomStatus::Misaligned,
            format!(
                "{what}: data at {:p} is not aligned to {} bytes for {}",
                tensor.data,
                dtype.size(),
                dtype.name()
            ),
        ));
    }
    Ok(Raw {
        data: tensor.data,
        dtype,
        shape,
        bytes,
        what,
    })
}

/// Refuses an output whose bytes overlap an input's.
pub(crate) fn check_disjoint(out: &Raw, inputs: &[&Raw]) -> Result<(), Failure> {
    let range = |r: &Raw| (r.data.addr(), r.data.addr() + r.bytes);
    let (start, end) = range(out);
    for input in inputs {
        let (s, e) = range(input);
        if out.bytes > 0 && input.bytes > 0 && start < e && s < end {
            return Err(Failure::new(
                TokenloomStatus::Aliased,
                format!(
                    "{} overlaps {} in memory: outputs must not alias inputs",
                    out.what, input.what
                ),
            ));
        }
    }
    Ok(())
}

/// A Rust type that a dtype tag names.
pub(crate) trait Tagged: Copy + 'static {
    const TAG: TokenloomDtype;
}

macro_rules! tagged {
    ($($t:ty => $tag:ident),*) => {
        $(impl Tagged for $t {
            const TAG: TokenloomDtype = TokenloomDtype::$tag;
        })*
    };
}

tagged!(
    f32 => F32,
    f64 => F64,
    half::f16 => F16,
    half::bf16 => Bf16,
    u32 => U32,
    i32 => I32,
    i64 => I64
);

impl Raw {
    fn expect<T: Tagged>(&self) -> Result<(), Failure> {
        if self.dtype == T::TAG {
            Ok(())
        } else {
            Err(Failure::new(
                TokenloomStatus::BadDtype,
                format!(
                    "{}: dtype {} where {} is needed",
                    self.what,
                    self.dtype.name(),
                    T::TAG.name()
                ),
            ))
        }
    }

    /// The tensor as a read-only view of `T`.
    ///
    /// # Safety
    ///
    /// The caller's contract: `data` addresses `shape.elem_count()` initialised elements,
    /// alive and not written by anyone else for `'a`.
    pub(crate) unsafe fn view<'a, T: Tagged>(&self) -> Result<TensorView<'a, T>, Failure> {
        self.expect::<T>()?;
        let data: &[T] = if self.bytes == 0 {
            &[]
        } else {
            // SAFETY: `describe` checked the pointer is non-null and aligned for `T` (the
            // dtype matches, checked above) and that the byte size fits `isize`; the
            // caller guarantees the elements are valid for `'a` (this function's
            // contract).
            unsafe { std::slice::from_raw_parts(self.data.cast::<T>(), self.shape.elem_count()) }
        };
        Ok(TensorView::from_shape(data, self.shape)?)
    }

    /// The tensor as a mutable view of `T`.
    ///
    /// # Safety
    ///
    /// As [`Raw::view`], and no other reference to the memory exists for `'a`
    /// ([`check_disjoint`] refuses overlaps with the call's inputs).
    pub(crate) unsafe fn view_mut<'a, T: Tagged>(&self) -> Result<TensorViewMut<'a, T>, Failure> {
        self.expect::<T>()?;
        let data: &mut [T] = if self.bytes == 0 {
            &mut []
        } else {
            // SAFETY: as in `view`, plus exclusivity: the caller's contract and
            // `check_disjoint` guarantee no input of the call shares these bytes.
            unsafe {
                std::slice::from_raw_parts_mut(self.data.cast::<T>(), self.shape.elem_count())
            }
        };
        Ok(TensorViewMut::from_shape(data, self.shape)?)
    }
}

/// Runs `$body` with `$t` the float type of `$raw` (f32, f64, f16 or bf16).
macro_rules! with_float {
    ($raw:expr, |$t:ident| $body:expr) => {{
        use $crate::tensor::TokenloomDtype as D;
        match $raw.dtype {
            D::F32 => {
                type $t = f32;
                $body
            }
            D::F64 => {
                type $t = f64;
                $body
            }
            D::F16 => {
                type $t = half::f16;
                $body
            }
            D::Bf16 => {
                type $t = half::bf16;
                $body
            }
            other => Err($crate::error::Failure::new(
                $crate::error::TokenloomStatus::BadDtype,
                format!(
                    "dtype {} where a float (f32, f64, f16, bf16) is needed",
                    other.name()
                ),
            )),
        }
    }};
}

/// Runs `$body` with `$t` the id type of `$raw` (u32, i32 or i64).
macro_rules! with_id {
    ($raw:expr, |$t:ident| $body:expr) => {{
        use $crate::tensor::TokenloomDtype as D;
        match $raw.dtype {
            D::U32 => {
                type $t = u32;
                $body
            }
            D::I32 => {
                type $t = i32;
                $body
            }
            D::I64 => {
                type $t = i64;
                $body
            }
            other => Err($crate::error::Failure::new(
                $crate::error::TokenloomStatus::BadDtype,
                format!("ids of dtype {} (u32, i32 or i64 are needed)", other.name()),
            )),
        }
    }};
}

pub(crate) use {with_float, with_id};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_init_checks_its_arguments_and_leaves_out_unchanged_on_error() {
        let mut data = [0.0f32; 6];
        let data_ptr: *mut c_void = data.as_mut_ptr().cast();
        let dims = [2usize, 3];
        let mut t = TokenloomTensor::new(std::ptr::null_mut(), TokenloomDtype::F64, &[7]);
        let before = format!("{t:?}");
        let init = |t: *mut TokenloomTensor, tag: i32, rank: usize, dims: *const usize| {
            // SAFETY: `t` is null or a live descriptor, `dims` holds `rank` values or is null.
            unsafe { tokenloom_tensor_init(t, data_ptr, tag, rank, dims) }
        };
        assert_eq!(
            init(std::ptr::null_mut(), 0, 2, dims.as_ptr()),
            TokenloomStatus::NullPointer
        );
        assert_eq!(
            init(&raw mut t, 0, 2, std::ptr::null()),
            TokenloomStatus::NullPointer
        );
        assert_eq!(
            init(&raw mut t, 99, 2, dims.as_ptr()),
            TokenloomStatus::BadDtype
        );
        assert_eq!(
            init(&raw mut t, 0, TOKENLOOM_MAX_RANK + 1, dims.as_ptr()),
            TokenloomStatus::BadShape
        );
        assert_eq!(format!("{t:?}"), before);
        assert_eq!(
            init(&raw mut t, TokenloomDtype::F32 as i32, 2, dims.as_ptr()),
            TokenloomStatus::Ok
        );
        assert_eq!(
            (t.dtype, t.rank, &t.dims[..2]),
            (TokenloomDtype::F32 as i32, 2, &dims[..])
        );
        assert_eq!(
            init(&raw mut t, TokenloomDtype::F32 as i32, 0, std::ptr::null()),
            TokenloomStatus::Ok
        );
        assert_eq!(t.rank, 0);
    }

    #[test]
    fn descriptors_are_checked_before_any_read() {
        let mut data = [0u64; 4];
        let base = data.as_mut_ptr().cast::<u8>();
        let t = |ptr: *mut u8, dtype, dims: &[usize]| TokenloomTensor::new(ptr.cast(), dtype, dims);
        let status = |r: Result<Raw, Failure>| r.map(|_| ()).unwrap_err().status;
        assert_eq!(
            status(describe(std::ptr::null(), "x")),
            TokenloomStatus::NullPointer
        );
        let null = t(std::ptr::null_mut(), TokenloomDtype::F32, &[2]);
        assert_eq!(status(describe(&null, "x")), TokenloomStatus::NullPointer);
        // An empty tensor may have a null pointer.
        let empty = t(std::ptr::null_mut(), TokenloomDtype::F32, &[0, 3]);
        assert!(describe(&empty, "x").is_ok());
        let misaligned = t(base.wrapping_add(2), TokenloomDtype::F32, &[2]);
        assert_eq!(
            status(describe(&misaligned, "x")),
            TokenloomStatus::Misaligned
        );
        let mut bad_tag = t(base, TokenloomDtype::F32, &[2]);
        bad_tag.dtype = 99;
        assert_eq!(status(describe(&bad_tag, "x")), TokenloomStatus::BadDtype);
        let mut too_deep = t(base, TokenloomDtype::F32, &[2]);
        too_deep.rank = 9;
        assert_eq!(status(describe(&too_deep, "x")), TokenloomStatus::BadShape);
        let huge = t(base, TokenloomDtype::F64, &[usize::MAX / 4, 2]);
        assert_eq!(status(describe(&huge, "x")), TokenloomStatus::BadShape);
        // Overlapping input and output, and a dtype mismatch on the view.
        let a = describe(&t(base, TokenloomDtype::F32, &[4]), "a").unwrap();
        let b = describe(&t(base.wrapping_add(8), TokenloomDtype::F32, &[4]), "b").unwrap();
        let c = describe(&t(base.wrapping_add(16), TokenloomDtype::F32, &[4]), "c").unwrap();
        assert_eq!(
            check_disjoint(&b, &[&a]).unwrap_err().status,
            TokenloomStatus::Aliased
        );
        assert!(check_disjoint(&c, &[&a]).is_ok());
        // SAFETY: `data` holds 32 bytes; `a` covers the first 16.
        let wrong = unsafe { a.view::<f64>() };
        assert_eq!(wrong.unwrap_err().status, TokenloomStatus::BadDtype);
        // SAFETY: as above.
        let right = unsafe { a.view::<f32>() }.unwrap();
        assert_eq!(right.as_slice().as_ptr().cast::<u8>(), base.cast_const());
    }
}
