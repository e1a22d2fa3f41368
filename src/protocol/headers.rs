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

/// A parsed `Upload-Concat` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadConcat {
    Partial,
    /// `final;<url> <url>...`: the URLs (absolute or relative) in order.
    Final(Vec<String>),
}

/// Parses `Upload-Concat`: `partial`, or `final;` and space-separated URLs.
///
/// # Errors
/// A [`HeaderError`] for anything else, or a final with no URL.
pub fn parse_concat(raw: &[u8]) -> Result<UploadConcat, HeaderError> {
    let err = |reason| HeaderError::new("Upload-Concat", reason);
    let text = std::str::from_utf8(raw)
        .map_err(|_| err("not ASCII"))?
        .trim();
    if text == "partial" {
        return Ok(UploadConcat::Partial);
    }
    let urls = text
        .strip_prefix("final;")
        .ok_or_else(|| err("must be \"partial\" or \"final;<urls>\""))?;
    let urls: Vec<String> = urls.split_ascii_whitespace().map(str::to_owned).collect();
    if urls.is_empty() {
        return Err(err("a final upload must name its partial uploads"));
    }
    Ok(UploadConcat::Final(urls))
}

/// The upload id an upload URL ends with: its last path segment, whether
/// the URL is absolute or relative, ignoring any query or fragment.
pub fn url_last_segment(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let path = match path.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => path,
    };
    path.trim_end_matches('/').rsplit('/').next().unwrap_or("")
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

    #[test]
    fn concat_headers() {
        assert_eq!(parse_concat(b"partial"), Ok(UploadConcat::Partial));
        assert_eq!(
            parse_concat(b"final;/files/a http://h:1/files/b"),
            Ok(UploadConcat::Final(vec![
                "/files/a".into(),
                "http://h:1/files/b".into()
            ]))
        );
        for bad in [&b"final;"[..], b"final", b"partial;x", b"", b"FINAL;/a"] {
            assert!(parse_concat(bad).is_err(), "{bad:?}");
        }
        assert_eq!(url_last_segment("http://h:1/files/abc?x=1"), "abc");
        assert_eq!(url_last_segment("/files/abc/"), "abc");
        assert_eq!(url_last_segment("abc"), "abc");
        assert_eq!(url_last_segment("http://host"), "");
    }

    proptest! {
        #[test]
        fn concat_parse_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_concat(&raw);
            let _ = parse_defer_length(&raw);
            let _ = is_supported_version(&raw);
            let _ = url_last_segment(&String::from_utf8_lossy(&raw));
        }

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
