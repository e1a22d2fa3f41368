//! GET of a finished upload: the object, streamed from the store through
//! partway at the upload's own URL, which never expires.
//!
//! One byte range per request (206, or 416 when it cannot be satisfied), a
//! strong ETag (the upload id: a finished upload never changes), and
//! `If-None-Match` / `If-Range`. The object is streamed chunk by chunk, so
//! memory does not grow with its size. Uploaded content is served as an
//! attachment in a sandbox, with a sanitized file name, so neither its bytes
//! nor its metadata can script partway's origin or inject headers.

use super::AppState;
use super::Result;
use crate::protocol::metadata::Metadata;
use crate::upload;
use crate::upload::access::Caller;
use crate::upload::model::{UploadId, UploadInfo};
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header as h};
use axum::response::{IntoResponse, Response};
use futures_util::TryStreamExt;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use std::ops::Range;

/// What a `Range` header asks of an object of a given length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ranged {
    /// No usable range: the whole object.
    Whole,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range that starts past the end.
    Unsatisfiable,
}

/// Interprets a `Range` value for an object of `len` bytes. Malformed,
/// multiple or non-byte ranges are ignored, as RFC 9110 allows.
pub(super) fn parse_range(value: &str, len: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", suffix) => match number(suffix) {
            None => Ranged::Whole,
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if len == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part(len - n.min(len)..len),
        },
        (start, end) => {
            let Some(start) = number(start) else {
                return Ranged::Whole;
            };
            let end = match end {
                "" => u64::MAX,
                end => match number(end) {
                    Some(end) if end >= start => end,
                    _ => return Ranged::Whole,
                },
            };
            if start >= len {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(start..end.min(len - 1) + 1)
            }
        }
    }
}

/// Whether a conditional header lists `etag` (or `*`).
fn lists(value: &HeaderValue, etag: &str) -> bool {
    value.to_str().is_ok_and(|v| {
        v.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == etag)
    })
}

/// A `Content-Disposition` that cannot inject anything: an ASCII fallback
/// name made of safe characters, and the full name percent-encoded.
pub(super) fn disposition(name: Option<&str>) -> String {
    let Some(name) = name.map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim()) else {
        return "attachment".into();
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " ._-()[]+,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let ascii = ascii.trim_matches(|c| c == ' ' || c == '.');
    if ascii.is_empty() {
        return "attachment".into();
    }
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, NON_ALPHANUMERIC)
    )
}

fn file_name(info: &UploadInfo) -> Option<String> {
    let metadata = Metadata::parse(info.metadata.as_deref()?.as_bytes()).ok()?;
    ["filename", "name"]
        .iter()
        .filter_map(|k| metadata.get(k))
        .find_map(|v| std::str::from_utf8(v).ok().map(str::to_owned))
        .filter(|n| !n.is_empty())
}

/// A header value from text partway made.
fn value(text: &str) -> Result<HeaderValue> {
    Ok(HeaderValue::from_str(text).map_err(|e| upload::Error::Internal(e.to_string()))?)
}

/// The range of an object of `len` bytes the request asks for, honoured only
/// while `If-Range` still names `etag`.
fn requested_range(request: &HeaderMap, etag: &str, len: u64) -> Ranged {
    let range_applies = request
        .get(h::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag));
    match request.get(h::RANGE).and_then(|v| v.to_str().ok()) {
        Some(range) if range_applies => parse_range(range, len),
        _ => Ranged::Whole,
    }
}

/// GET: the finished upload's bytes.
pub(super) async fn get(
    app: &AppState,
    caller: &Caller,
    id: &UploadId,
    request: &HeaderMap,
) -> Result<Response> {
    let info = app.service.finished(caller, id).await?;
    let len = info.offset;
    let etag = format!("\"{}\"", info.id);
    let mut response = Response::new(Body::empty());
    let headers = response.headers_mut();
    headers.insert(h::ETAG, value(&etag)?);
    headers.insert(h::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        h::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if request
        .get(h::IF_NONE_MATCH)
        .is_some_and(|v| lists(v, &etag))
    {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(response);
    }
    let range = match requested_range(request, &etag, len) {
        Ranged::Unsatisfiable => return unsatisfiable(len),
        Ranged::Part(range) => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            let last = range.end - 1;
            let content_range = format!("bytes {}-{last}/{len}", range.start);
            response
                .headers_mut()
                .insert(h::CONTENT_RANGE, value(&content_range)?);
            Some(range)
        }
        Ranged::Whole => None,
    };
    content_headers(response.headers_mut(), &info)?;
    let size = range.as_ref().map_or(len, |r| r.end - r.start);
    response
        .headers_mut()
        .insert(h::CONTENT_LENGTH, HeaderValue::from(size));
    if size > 0 {
        let stream = app.service.read(&info, range).await?;
        *response.body_mut() = Body::from_stream(stream.map_err(|e| {
            tracing::warn!(error = %e, "download broke off");
            std::io::Error::other(e.to_string())
        }));
    }
    Ok(response)
}

/// 416, naming the upload's length.
fn unsatisfiable(len: u64) -> Result<Response> {
    let mut refused = (
        StatusCode::RANGE_NOT_SATISFIABLE,
        format!("range not satisfiable: the upload has {len} bytes\n"),
    )
        .into_response();
    refused
        .headers_mut()
        .insert(h::CONTENT_RANGE, value(&format!("bytes */{len}"))?);
    Ok(refused)
}

/// What the content is and how a browser may treat it: an attachment in a
/// sandbox, so it cannot script partway's origin.
fn content_headers(headers: &mut HeaderMap, info: &UploadInfo) -> Result<()> {
    let content_type = info
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    headers.insert(
        h::CONTENT_TYPE,
        value(content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    headers.insert(
        h::CONTENT_DISPOSITION,
        value(&disposition(file_name(info).as_deref()))?,
    );
    headers.insert(
        h::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranged::Part(0..10));
        assert_eq!(parse_range("bytes=90-", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=90-500", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-10", 100), Ranged::Part(90..100));
        assert_eq!(parse_range("bytes=-500", 100), Ranged::Part(0..100));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), Ranged::Unsatisfiable);
        for ignored in [
            "bytes=0-1,5-6",
            "items=0-1",
            "bytes=5-1",
            "bytes=a-b",
            "bytes=-",
            "bytes=+1-2",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(parse_range(ignored, 100), Ranged::Whole, "{ignored}");
        }
    }

    #[test]
    fn dispositions_are_safe() {
        assert_eq!(disposition(None), "attachment");
        assert_eq!(
            disposition(Some("report.pdf")),
            "attachment; filename=\"report.pdf\"; filename*=UTF-8''report%2Epdf"
        );
        let evil = disposition(Some("a\"; filename=x.html\r\nSet-Cookie: y"));
        assert!(!evil.contains('\r') && !evil.contains('\n'));
        assert!(evil.starts_with("attachment; filename=\"a__ filename_x.html__Set-Cookie_ y\";"));
        assert!(disposition(Some("../../etc/passwd")).contains("filename=\"passwd\""));
        assert!(disposition(Some("Grüße.txt")).contains("Gr%C3%BC%C3%9Fe%2Etxt"));
    }
}
