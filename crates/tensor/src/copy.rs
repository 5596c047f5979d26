//! Row copies: the lookup's one job is moving table rows, and for rows of a few KiB that
//! are in cache (a decode step's row, a frequent token's), a loop of 32-byte AVX loads
//! and *aligned* stores beats glibc's `memcpy` on the AMD EPYC this project measured on
//! (which switches to `rep movsb` at these sizes): 0.77–0.97× its time from 2 KiB to
//! 256 KiB with the destination 16 bytes off a 32-byte boundary, 0.77–1.03× aligned, the
//! same speed at 1 KiB, and slower below (docs/benchmarks/next-to-pytorch.md, "Copying a
//! row"). On an Intel Xeon with AVX-512 and fast short `rep movsb` the same loop is
//! *slower*: the decode step's 16 KiB row took 1.37× the plain loop's time with it, 1.06×
//! with `memcpy` ("A row copy for AMD only"). So [`copy`] takes the AVX loop from
//! [`VECTOR_COPY_MIN_BYTES`] up on AMD CPUs with AVX, and `memcpy` everywhere else.

/// From this many bytes on, [`copy`] uses the AVX loop on AMD CPUs with AVX.
pub const VECTOR_COPY_MIN_BYTES: usize = 2048;

/// Copies `src` into `dst`, element by element as `dst.iter_mut().zip(src)` pairs them:
/// the first `min(dst.len(), src.len())` elements of `dst` become those of `src`, the
/// rest of `dst` is untouched. The bits are copied unchanged, as `copy_from_slice` does.
///
/// # Examples
///
/// ```
/// use tokenloom_tensor::copy::copy;
///
/// let src: Vec<f32> = (0..5000).map(|i| i as f32).collect();
/// let mut dst = vec![0.0f32; 5000];
/// copy(&mut dst, &src);
/// assert_eq!(dst, src);
/// ```
#[inline]
pub fn copy<T: Copy>(dst: &mut [T], src: &[T]) {
    let len = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..len], &src[..len]);
    #[cfg(target_arch = "x86_64")]
    if std::mem::size_of_val(src) >= VECTOR_COPY_MIN_BYTES
        && amd_cpu()
        && let Some(_proof) = crate::isa::Avx::detect()
    {
        // SAFETY: the `Avx` proof says this CPU has AVX, the only requirement of
        // `copy_avx` beyond its (safe) signature.
        #[allow(unsafe_code)]
        unsafe {
            copy_avx(dst, src);
        }
        return;
    }
    dst.copy_from_slice(src);
}

/// Whether this is an AMD CPU (CPUID vendor `AuthenticAMD`), asked once per process:
/// CPUID traps to the hypervisor on a VM, far too slow for every row.
#[cfg(target_arch = "x86_64")]
#[inline]
fn amd_cpu() -> bool {
    static AMD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AMD.get_or_init(|| {
        // SAFETY: CPUID leaf 0 exists on every x86-64 CPU. (`__cpuid` is a safe function
        // from Rust 1.94 on; the MSRV, 1.89, still needs the block.)
        #[allow(unused_unsafe, unsafe_code)]
        let leaf = unsafe { std::arch::x86_64::__cpuid(0) };
        [leaf.ebx, leaf.edx, leaf.ecx]
            .map(u32::to_le_bytes)
            .concat()
            == *b"AuthenticAMD"
    })
}

/// [`copy`] for equal lengths of at least 64 bytes: 32-byte loads, aligned 32-byte
/// stores from `dst`'s first 32-byte boundary on, and one unaligned store at each end.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn copy_avx<T: Copy>(dst: &mut [T], src: &[T]) {
    use std::arch::x86_64::{__m256i, _mm256_loadu_si256, _mm256_store_si256, _mm256_storeu_si256};

    const V: usize = 32;
    let bytes = std::mem::size_of_val(src);
    if bytes < 2 * V || bytes != std::mem::size_of_val(dst) {
        dst.copy_from_slice(src);
        return;
    }
    let s = src.as_ptr().cast::<u8>();
    let d = dst.as_mut_ptr().cast::<u8>();
    // SAFETY: `s` is valid for reads and `d` for writes of `bytes` bytes (`src` and `dst`
    // are slices of that size; `bytes >= 64` was checked), and they do not overlap (a
    // shared and a unique borrow). Every offset below is in `0..=bytes - 32`: `first`
    // and `last` read 32 bytes at 0 and `bytes - 32`; the loops start at `start` (1 to
    // 32, `d + start` 32-byte aligned) and read and write `[i, i + 32)` only while
    // `i + 32 <= bytes`. Aligned stores are made only at `d + i` with `i ≡ start`
    // (mod 32). Bytes are copied as bytes: `T: Copy` has no drop glue, and every byte of
    // `dst` ends up equal to the same byte of `src` (overlapping stores write the same
    // values), so every element is a valid `T`, as after `copy_from_slice`.
    #[allow(unsafe_code)]
    unsafe {
        let first = _mm256_loadu_si256(s.cast::<__m256i>());
        let last = _mm256_loadu_si256(s.add(bytes - V).cast::<__m256i>());
        let start = V - (d as usize & (V - 1));
        let mut i = start;
        while i + 4 * V <= bytes {
            let a = _mm256_loadu_si256(s.add(i).cast::<__m256i>());
            let b = _mm256_loadu_si256(s.add(i + V).cast::<__m256i>());
            let c = _mm256_loadu_si256(s.add(i + 2 * V).cast::<__m256i>());
            let e = _mm256_loadu_si256(s.add(i + 3 * V).cast::<__m256i>());
            _mm256_store_si256(d.add(i).cast::<__m256i>(), a);
            _mm256_store_si256(d.add(i + V).cast::<__m256i>(), b);
            _mm256_store_si256(d.add(i + 2 * V).cast::<__m256i>(), c);
            _mm256_store_si256(d.add(i + 3 * V).cast::<__m256i>(), e);
            i += 4 * V;
        }
        while i + V <= bytes {
            let a = _mm256_loadu_si256(s.add(i).cast::<__m256i>());
            _mm256_store_si256(d.add(i).cast::<__m256i>(), a);
            i += V;
        }
        _mm256_storeu_si256(d.cast::<__m256i>(), first);
        _mm256_storeu_si256(d.add(bytes - V).cast::<__m256i>(), last);
    }
}

#[cfg(test)]
mod tests {
    use half::bf16;

    use super::*;

    /// Every length around the vector sizes and the threshold, at every destination and
    /// source offset within a 32-byte vector: the copied range equals the source, the
    /// guard elements on both sides keep their bits.
    fn check<T: Copy + PartialEq + std::fmt::Debug>(
        make: impl Fn(usize) -> T,
        guard: T,
        copy: impl Fn(&mut [T], &[T]),
    ) {
        let elem = std::mem::size_of::<T>();
        let lens = [0, 1, 15, 16, 17, 31, 33, 64, 127, 129]
            .into_iter()
            .chain([63, 64, 65, 96, 128, 160].map(|b| b / elem))
            .chain([-1, 0, 1, 33].map(|d| (VECTOR_COPY_MIN_BYTES / elem).wrapping_add_signed(d)))
            .chain([4096 + 7]);
        for len in lens {
            for d_off in 0..32 / elem + 1 {
                for s_off in [0, 1, 32 / elem - 1] {
                    let src: Vec<T> = (0..s_off + len).map(&make).collect();
                    let mut buf = vec![guard; d_off + len + 8];
                    copy(&mut buf[d_off..d_off + len], &src[s_off..]);
                    assert_eq!(&buf[d_off..d_off + len], &src[s_off..], "len {len}");
                    assert!(
                        buf[..d_off]
                            .iter()
                            .chain(&buf[d_off + len..])
                            .all(|&x| x == guard)
                    );
                }
            }
        }
    }

    #[test]
    fn copy_writes_exactly_the_common_prefix() {
        check(|i| i as f32 + 0.5, -3.5, copy);
        check(|i| bf16::from_f32(i as f32), bf16::from_f32(-3.5), copy);
        check(|i| i as u8 | 1, 0, copy);
        check(|i| i as f64, -3.5, copy);
        // Unequal lengths: the shorter decides.
        let mut dst = [0u32; 3];
        copy(&mut dst, &[1, 2, 3, 4]);
        assert_eq!(dst, [1, 2, 3]);
        let mut dst = [0u32; 3];
        copy(&mut dst, &[7]);
        assert_eq!(dst, [7, 0, 0]);
    }

    /// The vendor check agrees with the kernel's (`vendor_id` in `/proc/cpuinfo`).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn the_vendor_is_the_one_linux_reports() {
        let info = std::fs::read_to_string("/proc/cpuinfo").expect("/proc/cpuinfo");
        let vendor = info
            .lines()
            .find_map(|l| l.strip_prefix("vendor_id"))
            .and_then(|l| l.split(':').nth(1))
            .expect("a vendor_id line")
            .trim();
        assert_eq!(amd_cpu(), vendor == "AuthenticAMD", "vendor_id {vendor}");
    }

    /// The AVX loop itself, at every size from 0 on (below the threshold too), whenever
    /// the CPU has AVX.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx_loop_writes_exactly_the_slice() {
        if crate::isa::Avx::detect().is_none() {
            return;
        }
        let avx = |dst: &mut [u8], src: &[u8]| {
            let len = dst.len().min(src.len());
            // SAFETY: the CPU has AVX (checked above).
            #[allow(unsafe_code)]
            unsafe {
                copy_avx(&mut dst[..len], &src[..len]);
            }
        };
        check(|i| (i * 7 + 1) as u8, 0, avx);
        check(
            |i| (i * 7 + 1) as u16,
            0,
            |d: &mut [u16], s: &[u16]| {
                let len = d.len().min(s.len());
                // SAFETY: the CPU has AVX (checked above).
                #[allow(unsafe_code)]
                unsafe {
                    copy_avx(&mut d[..len], &s[..len]);
                }
            },
        );
    }
}
