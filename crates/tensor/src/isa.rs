//! Proof tokens for instruction sets: the one way the workspace's kernels choose a build
//! compiled for wider instructions than the target's baseline.
//!
//! A function compiled with `#[target_feature(enable = "avx2")]` is `unsafe` to call on a
//! CPU without AVX2. Every such call in tokenloom (the non-temporal stores of
//! [`crate::stream`], the quantized row kernels of tokenloom-io, the RoPE rotation of
//! tokenloom-positions) is made with a token from this module in hand, and a token can
//! only be made by its `detect`, which asks the CPU (a cached check after the first call).
//! The private field keeps other code from writing one; there is deliberately no
//! `new_unchecked`. This is memchr's pattern (`src/arch/`: a vector type is obtained from
//! `is_available()` and carries the proof), kept to the three capabilities used here.
//!
//! On targets other than x86-64, every `detect` returns `None` and the portable builds run.
//!
//! # Examples
//!
//! ```
//! use tokenloom_tensor::isa::{Avx, Avx2, Avx2F16c};
//!
//! if let Some(both) = Avx2F16c::detect() {
//!     // AVX2 + F16C implies AVX2, which implies AVX.
//!     let _: Avx2 = both.avx2();
//!     assert!(Avx::detect().is_some());
//! }
//! ```

/// Proof that this CPU runs AVX instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx {
    _proof: (),
}

/// Proof that this CPU runs AVX2 instructions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2 {
    _proof: (),
}

/// Proof that this CPU runs AVX2 and F16C instructions (every AVX2 CPU shipped has F16C,
/// but the two are separate CPUID bits, so both are checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Avx2F16c {
    _proof: (),
}

impl Avx {
    /// The proof, if this CPU has AVX.
    #[inline]
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            return Some(Self { _proof: () });
        }
        None
    }
}

impl Avx2 {
    /// The proof, if this CPU has AVX2.
    #[inline]
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            return Some(Self { _proof: () });
        }
        None
    }

    /// AVX2 implies AVX.
    #[inline]
    pub fn avx(self) -> Avx {
        Avx { _proof: () }
    }
}

impl Avx2F16c {
    /// The proof, if this CPU has AVX2 and F16C.
    #[inline]
    pub fn detect() -> Option<Self> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            return Some(Self { _proof: () });
        }
        None
    }

    /// The AVX2 part of the proof.
    #[inline]
    pub fn avx2(self) -> Avx2 {
        Avx2 { _proof: () }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each token exists exactly when the CPU reports its features.
    #[test]
    fn detect_agrees_with_the_cpu() {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            assert_eq!(Avx::detect().is_some(), has!("avx"));
            assert_eq!(Avx2::detect().is_some(), has!("avx2"));
            assert_eq!(Avx2F16c::detect().is_some(), has!("avx2") && has!("f16c"));
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            assert_eq!(Avx::detect(), None);
            assert_eq!(Avx2::detect(), None);
            assert_eq!(Avx2F16c::detect(), None);
        }
    }

    /// The implications the downgrades state hold on this CPU.
    #[test]
    fn stronger_proofs_imply_weaker_ones() {
        if let Some(both) = Avx2F16c::detect() {
            assert_eq!(Some(both.avx2()), Avx2::detect());
        }
        if let Some(avx2) = Avx2::detect() {
            assert_eq!(Some(avx2.avx()), Avx::detect());
        }
    }
}
