//! The scatter's row loops compiled for AVX2 as well, chosen at run time.
//!
//! [`Task::add_rows`] is written once, in portable Rust, and inlined here into a function
//! compiled with AVX2 enabled. The sums are the same IEEE operations in the same order
//! (Rust never contracts `a*b + c`), so both builds give bit-identical gradients (tested
//! in `tests.rs`); the AVX2 build converts `f32` to `f64` four values per instruction
//! instead of two, which is most of the cost of the exact `f64` sum
//! (docs/benchmarks/plain-loop.md, "The cost of the `f64` sum").

use tokenloom_tensor::Element;
#[cfg(target_arch = "x86_64")]
use tokenloom_tensor::isa::Avx2;
use tokenloom_tensor::stream::Streamer;

use super::{Mode, RowGroups, SumFloat, Task};

/// The instruction set the scatter's loops run with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// The build target's baseline (SSE2 on x86-64).
    Baseline,
    /// AVX2, with the proof that this CPU has it.
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

impl Isa {
    /// The widest instruction set this CPU supports (a cached check after the first call).
    pub(super) fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(proof) = Avx2::detect() {
            return Isa::Avx2(proof);
        }
        Isa::Baseline
    }
}

impl<T: Element, S: SumFloat> Task<'_, T, S> {
    /// [`Task::add_rows`] built for `isa`.
    pub(super) fn add_rows_with<G: Element>(
        &mut self,
        isa: Isa,
        groups: &RowGroups,
        grad_output: &[G],
        mode: Mode,
        streamer: &mut Streamer,
    ) {
        match isa {
            Isa::Baseline => self.add_rows(groups, grad_output, mode, streamer),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: an `Avx2` value exists only after `Avx2::detect` found AVX2 on this
            // CPU (tokenloom_tensor::isa), so the CPU executes the instructions
            // `add_rows_avx2` is compiled with; it is safe to call otherwise.
            #[allow(unsafe_code)]
            Isa::Avx2(_proof) => unsafe {
                add_rows_avx2(self, groups, grad_output, mode, streamer)
            },
        }
    }
}

/// [`Task::add_rows`] compiled with AVX2 enabled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn add_rows_avx2<G: Element, T: Element, S: SumFloat>(
    task: &mut Task<'_, T, S>,
    groups: &RowGroups,
    grad_output: &[G],
    mode: Mode,
    streamer: &mut Streamer,
) {
    task.add_rows(groups, grad_output, mode, streamer);
}
