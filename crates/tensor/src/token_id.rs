//! [`TokenId`]: the integer types token ids arrive in.

use std::fmt;

mod private {
    pub trait Sealed {}
    impl Sealed for u32 {}
    impl Sealed for i32 {}
    impl Sealed for i64 {}
}

/// An integer type token ids come in, read without conversion: `u32` (tokenizers,
/// candle), `i64` (PyTorch's `LongTensor`, candle) and `i32` (many C++ code bases).
///
/// Sealed: implemented for exactly these three types. A negative id is never a valid
/// index; kernels report it with the same typed error as an id past the vocabulary.
pub trait TokenId:
    Copy + Send + Sync + fmt::Debug + fmt::Display + 'static + private::Sealed
{
    /// The id as a row index, if it is in `[0, vocab_size)`.
    fn index_below(self, vocab_size: usize) -> Option<usize>;

    /// The id's value, for error messages.
    fn to_i64(self) -> i64;

    /// The id as a row index, for an id already checked with
    /// [`index_below`](TokenId::index_below) (a negative id wraps; never call it
    /// unchecked).
    fn checked_index(self) -> usize;
}

impl TokenId for u32 {
    #[inline]
    fn index_below(self, vocab_size: usize) -> Option<usize> {
        usize::try_from(self).ok().filter(|&i| i < vocab_size)
    }
    #[inline]
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    #[inline]
    fn checked_index(self) -> usize {
        self as usize
    }
}

impl TokenId for i32 {
    #[inline]
    fn index_below(self, vocab_size: usize) -> Option<usize> {
        usize::try_from(self).ok().filter(|&i| i < vocab_size)
    }
    #[inline]
    fn to_i64(self) -> i64 {
        i64::from(self)
    }
    #[inline]
    // checked non-negative by `index_below`
    fn checked_index(self) -> usize {
        self as usize
    }
}

impl TokenId for i64 {
    #[inline]
    fn index_below(self, vocab_size: usize) -> Option<usize> {
        usize::try_from(self).ok().filter(|&i| i < vocab_size)
    }
    #[inline]
    fn to_i64(self) -> i64 {
        self
    }
    #[inline]
    // checked by `index_below`
    fn checked_index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negative_and_large_ids_are_outside_every_vocabulary() {
        assert_eq!((-1i64).index_below(10), None);
        assert_eq!((-1i32).index_below(10), None);
        assert_eq!(
            i64::MAX.index_below(usize::MAX),
            usize::try_from(i64::MAX).ok()
        );
        assert_eq!(9u32.index_below(10), Some(9));
        assert_eq!(10u32.index_below(10), None);
        assert_eq!(7i64.checked_index(), 7);
        assert_eq!((-5i32).to_i64(), -5);
    }
}
