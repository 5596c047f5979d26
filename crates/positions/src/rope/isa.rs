//! [`Avx2`]: the proof that this CPU runs AVX2 and F16C instructions.
//!
//! The AVX2 build of the rotation loop is `unsafe` to call on a CPU without AVX2. The
//! dispatch only calls it with an [`Avx2`] value in hand, and this module is the only
//! place one can be made: by [`Avx2::detect`], which asks the CPU, or by the `unsafe`
//! [`Avx2::new_unchecked`], whose caller promises it (memchr's `is_available()` /
//! `new_unchecked` pattern). The private field keeps every other module from writing
//! `Avx2 { .. }`.

/// This CPU supports AVX2 and F16C.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Avx2 {
    _proof: (),
}

impl Avx2 {
    /// The proof, if the CPU has AVX2 and F16C (a cached check after the first call).
    pub(super) fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Some(Self { _proof: () });
        }
        None
    }

    /// The proof, without checking.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX2 and F16C.
    #[allow(unsafe_code, dead_code)] // the documented escape hatch; detection is the norm
    pub(super) unsafe fn new_unchecked() -> Self {
        Self { _proof: () }
    }
}
