//! The checksum-verdict stage of a PATCH (the checksum and checksum-trailer
//! extensions).
//!
//! A PATCH that carries a checksum is hashed as it streams. Its parts still go
//! up to S3 while it is read, but none of them, and none of its tail bytes, is
//! committed until the whole body has arrived and its digest matches: a part
//! that reached S3 and was never committed is simply overwritten by the next
//! upload of that part number, since part numbers follow offsets. A checksum
//! announced as
//! a trailer (`Trailer: Upload-Checksum`) is only known at the end, so such a
//! body is hashed with every supported algorithm.

use super::read::Ended;
use crate::protocol::checksum::{ALGORITHMS, Checksum, ChecksumError, Hasher};
use crate::upload::{Error, Result, TrailerProblem};
use std::sync::{Arc, Mutex};

/// Where the trailer of a chunked body is put once it has arrived.
pub type TrailerSlot = Arc<Mutex<Option<Result<Checksum, ChecksumError>>>>;

/// How a body's integrity is to be checked.
#[derive(Default)]
pub enum Verify {
    /// No checksum: parts are committed as they are uploaded.
    #[default]
    None,
    /// `Upload-Checksum` came as a header.
    Header(Checksum),
    /// `Upload-Checksum` was announced as a trailer; the HTTP layer fills
    /// the slot when it arrives.
    Trailer(TrailerSlot),
}

/// Hashes a body and judges it at the end.
pub(super) struct Verifier {
    hashers: Vec<Hasher>,
    expected: Verify,
}

impl Verifier {
    /// A verifier for `verify`, or `None` when there is nothing to check.
    pub(super) fn new(verify: Verify) -> Option<Self> {
        let hashers = match &verify {
            Verify::None => return None,
            Verify::Header(checksum) => vec![Hasher::new(checksum.algorithm)],
            Verify::Trailer(_) => ALGORITHMS.iter().map(|a| Hasher::new(*a)).collect(),
        };
        Some(Self {
            hashers,
            expected: verify,
        })
    }

    /// Feeds body bytes.
    pub(super) fn update(&mut self, data: &[u8]) {
        for hasher in &mut self.hashers {
            hasher.update(data);
        }
    }

    /// Compares the digest of the whole body with the expected one.
    ///
    /// # Errors
    /// [`Error::ChecksumMismatch`]; [`Error::ChecksumTrailer`] when an
    /// announced trailer did not come or is malformed.
    pub(super) fn verdict(self) -> Result<()> {
        let expected = match self.expected {
            Verify::None => return Ok(()),
            Verify::Header(checksum) => checksum,
            Verify::Trailer(slot) => {
                let arrived = slot.lock().ok().and_then(|mut s| s.take());
                match arrived {
                    Some(Ok(checksum)) => checksum,
                    Some(Err(e)) => return Err(Error::ChecksumTrailer(e.into())),
                    None => return Err(Error::ChecksumTrailer(TrailerProblem::Missing)),
                }
            }
        };
        let position = ALGORITHMS
            .iter()
            .position(|a| *a == expected.algorithm)
            .unwrap_or(0);
        let hasher = if self.hashers.len() == 1 {
            self.hashers.into_iter().next()
        } else {
            self.hashers.into_iter().nth(position)
        };
        match hasher.map(Hasher::finish) {
            Some(digest) if digest == expected.digest => Ok(()),
            _ => Err(Error::ChecksumMismatch {
                algorithm: expected.algorithm.name(),
            }),
        }
    }
}

/// What the checksum stage decided about a body's bytes.
pub(super) enum Verdict {
    /// No checksum, or it matched: keep every byte.
    Keep,
    /// A checked body cut before it could be judged: keep none of it.
    Unjudged,
    /// A mismatch, or a trailer that did not come: keep none, and say why.
    Refused(Error),
}

impl Verdict {
    /// Judges a body that ended as `ended`.
    pub(super) fn of(verifier: Option<Verifier>, ended: &Ended) -> Self {
        match (verifier, ended) {
            (None, _) => Self::Keep,
            (Some(verifier), Ended::Complete) => match verifier.verdict() {
                Ok(()) => Self::Keep,
                Err(e) => Self::Refused(e),
            },
            (Some(_), _) => Self::Unjudged,
        }
    }

    /// Whether the body's bytes may be committed.
    pub(super) fn keeps(&self) -> bool {
        matches!(self, Self::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::checksum::{Algorithm, digest};

    fn checksum(algorithm: Algorithm, data: &[u8]) -> Checksum {
        Checksum {
            algorithm,
            digest: digest(algorithm, data),
        }
    }

    #[test]
    fn header_checksums_match_and_mismatch() {
        let mut v = Verifier::new(Verify::Header(checksum(Algorithm::Sha1, b"abc"))).expect("some");
        v.update(b"ab");
        v.update(b"c");
        assert!(v.verdict().is_ok());
        let mut v = Verifier::new(Verify::Header(checksum(Algorithm::Sha1, b"abc"))).expect("some");
        v.update(b"abd");
        assert!(matches!(
            v.verdict(),
            Err(Error::ChecksumMismatch { algorithm: "sha1" })
        ));
    }

    #[test]
    fn trailers_are_judged_with_the_algorithm_they_name() {
        for algorithm in ALGORITHMS.iter().copied() {
            let slot = TrailerSlot::default();
            let mut v = Verifier::new(Verify::Trailer(slot.clone())).expect("some");
            v.update(b"hello");
            *slot.lock().expect("lock") = Some(Ok(checksum(algorithm, b"hello")));
            assert!(v.verdict().is_ok(), "{algorithm:?}");
        }
        let slot = TrailerSlot::default();
        let v = Verifier::new(Verify::Trailer(slot)).expect("some");
        assert!(matches!(
            v.verdict(),
            Err(Error::ChecksumTrailer(TrailerProblem::Missing))
        ));
    }
}
