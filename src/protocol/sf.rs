//! Structured fields (RFC 8941 / RFC 9651), as far as the resumable-upload
//! draft's request headers need them: an Item that is an Integer or a
//! Boolean, with parameters allowed and ignored, parsed strictly. Anything
//! else in those headers is malformed, and the request is refused with 400
//! rather than half-read. Dictionaries are only written (`Upload-Limit`).

use thiserror::Error;

/// A structured field that is not what the header must hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{name}: {problem} (a structured-field {expected})")]
pub struct SfError {
    pub name: &'static str,
    pub expected: &'static str,
    pub problem: String,
}

/// The bare item of `raw`, with surrounding spaces and parameters dropped.
fn bare_item<'a>(
    name: &'static str,
    expected: &'static str,
    raw: &'a [u8],
) -> Result<&'a str, SfError> {
    let fail = |problem: &str| SfError {
        name,
        expected,
        problem: problem.to_owned(),
    };
    let text = std::str::from_utf8(raw).map_err(|_| fail("not ASCII"))?;
    let text = text.trim_matches(' ');
    let (item, params) = text.split_once(';').unwrap_or((text, ""));
    let params_ok = params.is_empty()
        || params.split(';').all(|p| {
            let key = p.trim_start_matches(' ').split('=').next().unwrap_or("");
            key.starts_with(|c: char| c.is_ascii_lowercase() || c == '*')
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.*".contains(c))
        });
    if !params_ok {
        return Err(fail("malformed parameters"));
    }
    Ok(item)
}

/// An Integer item that is not negative (at most 15 digits).
///
/// # Errors
/// [`SfError`] for anything else.
pub fn non_negative_integer(name: &'static str, raw: &[u8]) -> Result<u64, SfError> {
    let item = bare_item(name, "Integer", raw)?;
    let digits_ok = (1..=15).contains(&item.len()) && item.bytes().all(|b| b.is_ascii_digit());
    if !digits_ok {
        return Err(SfError {
            name,
            expected: "non-negative Integer",
            problem: format!("{item:?} is not one"),
        });
    }
    item.parse().map_err(|_| SfError {
        name,
        expected: "Integer",
        problem: format!("{item:?} is out of range"),
    })
}

/// A Boolean item: `?1` or `?0`.
///
/// # Errors
/// [`SfError`] for anything else.
pub fn boolean(name: &'static str, raw: &[u8]) -> Result<bool, SfError> {
    match bare_item(name, "Boolean", raw)? {
        "?1" => Ok(true),
        "?0" => Ok(false),
        other => Err(SfError {
            name,
            expected: "Boolean",
            problem: format!("{other:?} is not ?1 or ?0"),
        }),
    }
}

/// A Dictionary of Integer members, as `key=1, other=2`.
pub fn integer_dictionary<'a>(members: impl IntoIterator<Item = (&'a str, u64)>) -> String {
    members
        .into_iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(non_negative_integer("Upload-Offset", b"0"), Ok(0));
        assert_eq!(non_negative_integer("Upload-Offset", b" 42 "), Ok(42));
        assert_eq!(non_negative_integer("Upload-Offset", b"42;a=1"), Ok(42));
        assert_eq!(
            non_negative_integer("Upload-Offset", b"999999999999999"),
            Ok(999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.0",
            b"0x10",
            b"1000000000000000",
            b"1,2",
            b"?1",
            b"1;A=1",
        ] {
            assert!(
                non_negative_integer("Upload-Offset", bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn booleans_are_strict() {
        assert_eq!(boolean("Upload-Complete", b"?1"), Ok(true));
        assert_eq!(boolean("Upload-Complete", b"?0"), Ok(false));
        for bad in [&b"1"[..], b"true", b"?2", b"", b"?1, ?0"] {
            assert!(boolean("Upload-Complete", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dictionaries_are_written() {
        assert_eq!(
            integer_dictionary([("max-size", 10), ("min-size", 0)]),
            "max-size=10, min-size=0"
        );
    }
}
