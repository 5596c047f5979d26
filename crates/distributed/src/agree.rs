//! Agreement across ranks in one small collective: configurations that must match,
//! inputs that must be replicated, and errors only some ranks can see.

use tokenloom_tensor::{Element, TokenId};

use crate::comm::Communicator;
use crate::error::DistributedError;

/// A 64-bit fingerprint of a byte stream, to compare replicated inputs across ranks
/// without sending them (a multiply–rotate mix over 8-byte words; not cryptographic: it
/// catches mistakes, not adversaries).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fingerprint(u64);

impl Fingerprint {
    pub(crate) fn new() -> Self {
        Self(0x243F_6A88_85A3_08D3)
    }

    pub(crate) fn word(&mut self, w: u64) {
        self.0 = (self.0 ^ w)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31);
    }

    pub(crate) fn dims(mut self, dims: &[usize]) -> Self {
        self.word(dims.len() as u64);
        for &d in dims {
            self.word(d as u64);
        }
        self
    }

    pub(crate) fn ids<I: TokenId>(mut self, ids: &[I]) -> Self {
        for &id in ids {
            // Two's-complement bits of the id: a different id gives a different word.
            self.word(id.to_i64().cast_unsigned());
        }
        self
    }

    pub(crate) fn values<T: Element>(mut self, values: &[T]) -> Self {
        for &v in values {
            self.word(v.to_bits64());
        }
        self
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// One collective that checks, on every rank alike:
/// - each `(name, value)` of `config` is the same on every rank
///   ([`DistributedError::ConfigMismatch`]);
/// - each `(what, fingerprint)` of `replicated` is the same on every rank
///   ([`DistributedError::NotReplicated`]);
/// - no rank's `local` result is an error (its own error there,
///   [`DistributedError::PeerFailed`] on the others).
///
/// Every rank returns an error or none does, so no rank goes on to a collective its
/// peers will not enter.
pub(crate) fn agree<C: Communicator + ?Sized, R>(
    comm: &C,
    step: &'static str,
    config: &[(&'static str, u64)],
    replicated: &[(&'static str, u64)],
    local: Result<R, DistributedError>,
) -> Result<R, DistributedError> {
    let mut words = Vec::with_capacity(2 * (config.len() + replicated.len()) + 1);
    for &(_, v) in config.iter().chain(replicated) {
        words.push(v);
        words.push(!v);
    }
    // The lowest failing rank has the largest code.
    let failed = if local.is_err() {
        (comm.size() - comm.rank()) as u64
    } else {
        0
    };
    words.push(failed);
    comm.all_reduce_max_u64(&mut words)?;
    for (i, &(field, _)) in config.iter().enumerate() {
        let (max, min) = (words[2 * i], !words[2 * i + 1]);
        if max != min {
            return Err(DistributedError::ConfigMismatch { field, min, max });
        }
    }
    for (i, &(what, _)) in replicated.iter().enumerate() {
        let j = 2 * (config.len() + i);
        if words[j] != !words[j + 1] {
            return Err(DistributedError::NotReplicated { what });
        }
    }
    let code = words[words.len() - 1];
    match local {
        Err(e) => Err(e),
        Ok(_) if code != 0 => Err(DistributedError::PeerFailed {
            rank: comm.size() - code as usize,
            step,
        }),
        Ok(r) => Ok(r),
    }
}

/// The dtype as a small number for configuration checks.
pub(crate) fn dtype_code<T: Element>() -> u64 {
    tokenloom_tensor::DType::ALL
        .iter()
        .position(|&d| d == T::DTYPE)
        .map_or(u64::MAX, |p| p as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ThreadGroup;

    #[test]
    fn every_rank_gets_the_same_verdict() {
        // Config differs on rank 2.
        let out = ThreadGroup::run(3, |comm| {
            let n = if comm.rank() == 2 { 16 } else { 8 };
            agree(&comm, "test", &[("n_embd", n)], &[], Ok(()))
        })
        .unwrap();
        for r in out {
            assert_eq!(
                r,
                Err(DistributedError::ConfigMismatch {
                    field: "n_embd",
                    min: 8,
                    max: 16
                })
            );
        }
        // Inputs differ on rank 1.
        let out = ThreadGroup::run(3, |comm| {
            let ids: [u32; 2] = if comm.rank() == 1 { [1, 3] } else { [1, 2] };
            let fp = Fingerprint::new().ids(&ids).finish();
            agree(&comm, "test", &[], &[("token ids", fp)], Ok(()))
        })
        .unwrap();
        for r in out {
            assert_eq!(
                r,
                Err(DistributedError::NotReplicated { what: "token ids" })
            );
        }
        // Ranks 1 and 2 fail locally: they keep their errors, rank 0 names rank 1.
        let out = ThreadGroup::run(3, |comm| {
            let local = if comm.rank() == 0 {
                Ok(())
            } else {
                Err(DistributedError::BadShard {
                    vocab_size: comm.rank(),
                    rank: 0,
                    n_ranks: 0,
                })
            };
            agree(&comm, "loading", &[], &[], local)
        })
        .unwrap();
        assert_eq!(
            out[0],
            Err(DistributedError::PeerFailed {
                rank: 1,
                step: "loading"
            })
        );
        assert!(matches!(
            out[1],
            Err(DistributedError::BadShard { vocab_size: 1, .. })
        ));
        assert!(matches!(
            out[2],
            Err(DistributedError::BadShard { vocab_size: 2, .. })
        ));
    }
}
