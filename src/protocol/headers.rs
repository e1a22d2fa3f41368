//! Typed parsing of the tus numeric and flag headers.
//!
//! The spec defines `Upload-Offset` and `Upload-Length` as non-negative
//! integers. We accept exactly that: ASCII digits, no sign, no spaces inside,
//! no more than fits in a `u64`. Anything else is a [`HeaderError`], which the
//! HTTP layer answers with 400.

use thiserror::Error;

/// A header value that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {name} header: {reason}")]
pub struct HeaderError {
    /// The header's canonical name, e.g. `Upload-Offset`.
    pub name: &'static str,
    /// A short, client-safe explanation.
    pub reason: &'static str,
}

impl HeaderError {
    fn new(name: &'static str, reason: &'static str) -> Self {
        Self { name, reason }
    }
}

/// Parses a non-negative integer header such as `Upload-Offset`.
///
/// # Errors
/// Returns a [`HeaderError`] naming `name` when the value is empty, has a sign
/// or any non-digit, or does not fit in 64 bits.
pub fn parse_u64(name: &'static str, raw: &[u8]) -> Result<u64, HeaderError> {
    let text = std::str::from_utf8(raw).map_err(|_| HeaderError::new(name, "not ASCII"))?;
    let text = text.trim_matches(|c| c == ' ' || c == '\t');
    if text.is_empty() {
        return Err(HeaderError::new(name, "empty"));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::new(name, "must be a non-negative integer"));
    }
    text.parse::<u64>()
        .map_err(|_| HeaderError::new(name, "too large"))
}

/// Parses `Upload-Defer-Length`, whose only legal value is `1`.
///
/// # Errors
/// Any other value is a [`HeaderError`].
pub fn parse_defer_length(raw: &[u8]) -> Result<(), HeaderError> {
    if raw.trim_ascii() == b"1" {
        Ok(())
    } else {
        Err(HeaderError::new("Upload-Defer-Length", "must be 1"))
    }
}

/// Whether a `Tus-Resumable` value names the version we speak.
pub fn is_supported_version(raw: &[u8]) -> bool {
    raw.trim_ascii() == super::TUS_VERSION.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_plain_integers() {
        assert_eq!(parse_u64("Upload-Offset", b"0"), Ok(0));
        assert_eq!(parse_u64("Upload-Offset", b" 42 "), Ok(42));
        assert_eq!(
            parse_u64("Upload-Offset", b"18446744073709551615"),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.0",
            b"0x10",
            b"1 2",
            b"18446744073709551616",
            b"abc",
            b"\xff",
        ] {
            let err = parse_u64("Upload-Length", bad).expect_err("must reject");
            assert_eq!(err.name, "Upload-Length");
        }
    }

    #[test]
    fn defer_length_is_only_one() {
        assert!(parse_defer_length(b"1").is_ok());
        assert!(parse_defer_length(b"0").is_err());
        assert!(parse_defer_length(b"true").is_err());
    }

    #[test]
    fn version_check() {
        assert!(is_supported_version(b"1.0.0"));
        assert!(!is_supported_version(b"0.2.2"));
        assert!(!is_supported_version(b""));
    }

    proptest! {
        #[test]
        fn parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..32)) {
            let _ = parse_u64("Upload-Offset", &raw);
        }

        #[test]
        fn round_trips_any_u64(n in any::<u64>()) {
            prop_assert_eq!(parse_u64("Upload-Offset", n.to_string().as_bytes()), Ok(n));
        }
    }
}
