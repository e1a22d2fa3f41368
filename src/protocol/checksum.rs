//! The checksum extension: parsing `Upload-Checksum` and hashing a body.
//!
//! `Upload-Checksum: <algorithm> <base64 digest>` covers the body of the one
//! request that carries it (in a header, or as a trailer of a chunked body for
//! checksum-trailer). [`Hasher`] is fed the body as it streams; the core
//! compares [`Hasher::finish`] with the expected digest before it commits a
//! byte. CRC-32 and CRC-32C digests are the 4-byte big-endian value, as S3
//! encodes them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::Digest;
use thiserror::Error;

/// The algorithms partway verifies, as advertised in `Tus-Checksum-Algorithm`.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::Sha1,
    Algorithm::Md5,
    Algorithm::Sha256,
    Algorithm::Sha512,
    Algorithm::Crc32,
    Algorithm::Crc32c,
];

/// A checksum algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Md5,
    Sha256,
    Sha512,
    Crc32,
    Crc32c,
}

impl Algorithm {
    /// The protocol name (lowercase ASCII).
    pub fn name(self) -> &'static str {
        match self {
            Self::Sha1 => "sha1",
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Crc32 => "crc32",
            Self::Crc32c => "crc32c",
        }
    }

    fn digest_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Md5 => 16,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
            Self::Crc32 | Self::Crc32c => 4,
        }
    }

    /// The comma-separated list for `Tus-Checksum-Algorithm`.
    pub fn advertised() -> String {
        ALGORITHMS
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A refused `Upload-Checksum`; both kinds are answered with 400.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ChecksumError {
    #[error("Upload-Checksum must be \"<algorithm> <base64 digest>\"")]
    Malformed,
    #[error("unsupported checksum algorithm {0:?}; supported: sha1, md5, sha256, crc32, crc32c")]
    Unsupported(String),
    #[error("Upload-Checksum digest is not valid base64 of a {0} digest")]
    BadDigest(&'static str),
}

/// An expected checksum of one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: Algorithm,
    pub digest: Vec<u8>,
}

impl Checksum {
    /// Parses an `Upload-Checksum` value.
    ///
    /// # Errors
    /// [`ChecksumError`] for a malformed value, an unknown algorithm or a
    /// digest of the wrong length.
    pub fn parse(raw: &[u8]) -> Result<Self, ChecksumError> {
        let text = std::str::from_utf8(raw).map_err(|_| ChecksumError::Malformed)?;
        let (name, digest) = text
            .trim()
            .split_once(' ')
            .ok_or(ChecksumError::Malformed)?;
        let algorithm = ALGORITHMS
            .iter()
            .copied()
            .find(|a| a.name() == name)
            .ok_or_else(|| ChecksumError::Unsupported(name.chars().take(32).collect()))?;
        let digest = STANDARD
            .decode(digest.trim())
            .ok()
            .filter(|d| d.len() == algorithm.digest_len())
            .ok_or(ChecksumError::BadDigest(algorithm.name()))?;
        Ok(Self { algorithm, digest })
    }

    /// The header value for this checksum.
    pub fn encode(&self) -> String {
        format!(
            "{} {}",
            self.algorithm.name(),
            STANDARD.encode(&self.digest)
        )
    }
}

/// Hashes a body incrementally with one algorithm.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(sha1::Sha1::new()),
            Algorithm::Md5 => Self::Md5(md5::Md5::new()),
            Algorithm::Sha256 => Self::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(sha2::Sha512::new()),
            Algorithm::Crc32 => Self::Crc32(crc32fast::Hasher::new()),
            Algorithm::Crc32c => Self::Crc32c(0),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Md5(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
            Self::Crc32(h) => h.update(data),
            Self::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Md5(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
            Self::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Self::Crc32c(crc) => crc.to_be_bytes().to_vec(),
        }
    }
}

/// The digest of `data` under `algorithm`, in one call.
pub fn digest(algorithm: Algorithm, data: &[u8]) -> Vec<u8> {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(data);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        STANDARD.encode(bytes)
    }

    #[test]
    fn known_digests() {
        // Published test vectors for "hello world" / "123456789".
        let hello = b"hello world";
        assert_eq!(
            b64(&digest(Algorithm::Sha1, hello)),
            "Kq5sNclPz7QV2+lfQIuc6R7oRu0="
        );
        assert_eq!(
            b64(&digest(Algorithm::Md5, hello)),
            "XrY7u+Ae7tCTyyK7j1rNww=="
        );
        assert_eq!(
            b64(&digest(Algorithm::Sha256, hello)),
            "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek="
        );
        assert_eq!(
            digest(Algorithm::Crc32, b"123456789"),
            0xCBF4_3926_u32.to_be_bytes()
        );
        assert_eq!(
            digest(Algorithm::Crc32c, b"123456789"),
            0xE306_9283_u32.to_be_bytes()
        );
    }

    #[test]
    fn incremental_equals_one_shot() {
        for algorithm in ALGORITHMS.iter().copied() {
            let mut h = Hasher::new(algorithm);
            h.update(b"hello ");
            h.update(b"");
            h.update(b"world");
            assert_eq!(
                h.finish(),
                digest(algorithm, b"hello world"),
                "{algorithm:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = Checksum::parse(&raw);
        }

        #[test]
        fn round_trips(n in 0usize..ALGORITHMS.len(), digest in proptest::collection::vec(proptest::prelude::any::<u8>(), 64)) {
            let algorithm = ALGORITHMS[n];
            let checksum = Checksum { algorithm, digest: digest[..algorithm.digest_len()].to_vec() };
            proptest::prop_assert_eq!(Checksum::parse(checksum.encode().as_bytes()), Ok(checksum));
        }
    }

    #[test]
    fn parses_and_refuses() {
        let ok = Checksum::parse(b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").expect("valid");
        assert_eq!(ok.algorithm, Algorithm::Sha1);
        assert_eq!(ok.encode(), "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=");
        assert_eq!(
            Checksum::parse(b"sha3-256 AAAA"),
            Err(ChecksumError::Unsupported("sha3-256".into()))
        );
        assert_eq!(
            Checksum::parse(b"SHA1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Err(ChecksumError::Unsupported("SHA1".into()))
        );
        for bad in [&b"sha1"[..], b"", b"sha1Kq5s", b"\xff\xfe x"] {
            assert_eq!(
                Checksum::parse(bad),
                Err(ChecksumError::Malformed),
                "{bad:?}"
            );
        }
        assert_eq!(
            Checksum::parse(b"sha1 !!!"),
            Err(ChecksumError::BadDigest("sha1"))
        );
        assert_eq!(
            Checksum::parse(b"md5 Kq5sNclPz7QV2+lfQIuc6R7oRu0="),
            Err(ChecksumError::BadDigest("md5"))
        );
    }
}
