//! Resumable Uploads for HTTP (draft-ietf-httpbis-resumable-upload), on the
//! same URLs, store and core as tus 1.0.
//!
//! A request carrying `Upload-Draft-Interop-Version` is served here; every
//! other request stays tus 1.0. Interop versions 3 (draft -01) to 9 (-12)
//! are served; where versions differ, [`Interop`] says how: `Upload-Incomplete`
//! (3) or `Upload-Complete` (4+); `application/partial-upload` required on
//! appends (6+); `expires` (6) or `max-age` (7+) in `Upload-Limit`; 201
//! (3 to 6) or 204 (7+) for an append. `Upload-Offset` is on every answer
//! that has one, which tus-js-client's two draft modes need.
//!
//! No 104 (Upload Resumption Supported) is sent: hyper has no way to send
//! an interim response yet. Clients learn the upload's URL from the 201 of
//! an empty creation ("careful creation"), as tus-js-client does.

mod problem;
mod requests;

pub(crate) use requests::{collection, upload};

use crate::protocol::{names, sf};
use crate::upload::model::{UploadInfo, UploadState, now_secs};
use axum::http::{HeaderMap, HeaderValue};
use problem::Problem;

/// An interop version of the draft that partway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interop(u64);

/// The interop versions served, oldest first.
pub const INTEROP_VERSIONS: std::ops::RangeInclusive<u64> = 3..=9;

impl Interop {
    /// The version a request asks for: `None` for a tus request.
    ///
    /// # Errors
    /// A malformed value, or a version partway does not serve.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Option<Self>, Problem> {
        let Some(raw) = headers.get(names::INTEROP_VERSION) else {
            return Ok(None);
        };
        let version = sf::non_negative_integer("Upload-Draft-Interop-Version", raw.as_bytes())
            .map_err(|e| Problem::malformed(e.to_string()))?;
        if !INTEROP_VERSIONS.contains(&version) {
            return Err(Problem::malformed(format!(
                "Upload-Draft-Interop-Version {version} is not served; partway serves {} to {}",
                INTEROP_VERSIONS.start(),
                INTEROP_VERSIONS.end()
            )));
        }
        // A structured-field Item sent on two lines combines into a list,
        // which is not an Item.
        let single = [
            names::INTEROP_VERSION,
            names::UPLOAD_COMPLETE,
            names::UPLOAD_INCOMPLETE,
            names::UPLOAD_OFFSET,
            names::UPLOAD_LENGTH,
        ];
        if let Some(name) = super::repeated(headers, &single) {
            return Err(Problem::malformed(format!("{name} is sent more than once")));
        }
        Ok(Some(Self(version)))
    }

    /// Appends must be `application/partial-upload` (from -04).
    fn requires_partial_upload_type(self) -> bool {
        self.0 >= 6
    }

    /// Whether completeness is `Upload-Incomplete` (-01) rather than
    /// `Upload-Complete`.
    fn inverted(self) -> bool {
        self.0 == 3
    }

    /// `Upload-Limit` is sent (from -04).
    fn has_limits(self) -> bool {
        self.0 >= 6
    }

    /// The status of a successful append: 201 up to -05, then 204.
    fn append_status(self) -> axum::http::StatusCode {
        if self.0 <= 6 {
            axum::http::StatusCode::CREATED
        } else {
            axum::http::StatusCode::NO_CONTENT
        }
    }

    /// Whether the request says the upload is complete after it: `None`
    /// when it does not say.
    ///
    /// # Errors
    /// A malformed value.
    fn complete(self, headers: &HeaderMap) -> Result<Option<bool>, Problem> {
        let (name, label) = if self.inverted() {
            (names::UPLOAD_INCOMPLETE, "Upload-Incomplete")
        } else {
            (names::UPLOAD_COMPLETE, "Upload-Complete")
        };
        let Some(raw) = headers.get(name) else {
            return Ok(None);
        };
        let value =
            sf::boolean(label, raw.as_bytes()).map_err(|e| Problem::malformed(e.to_string()))?;
        Ok(Some(value != self.inverted()))
    }

    /// Sets the completeness header, the interop version and, where the
    /// version has them, the limits.
    fn describe(self, headers: &mut HeaderMap, complete: bool, limits: &Limits) {
        headers.insert(names::INTEROP_VERSION, HeaderValue::from(self.0));
        let (name, value) = if self.inverted() {
            (names::UPLOAD_INCOMPLETE, !complete)
        } else {
            (names::UPLOAD_COMPLETE, complete)
        };
        headers.insert(
            name,
            HeaderValue::from_static(if value { "?1" } else { "?0" }),
        );
        if self.has_limits() {
            limits.insert(self, headers);
        }
    }
}

/// What `Upload-Limit` says.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub max_size: u64,
    /// Seconds left before the upload expires.
    pub max_age: Option<u64>,
}

impl Limits {
    /// The limits of `info`, within a server whose maximum is `max_size`.
    fn of(info: &UploadInfo, max_size: u64) -> Self {
        let unfinished = info.state != UploadState::Completed;
        Self {
            max_size: info.length.unwrap_or(info.max_length).min(max_size),
            max_age: info
                .expires_at
                .filter(|_| unfinished)
                .map(|at| at.saturating_sub(now_secs())),
        }
    }

    /// `Upload-Limit`, with `expires` for -04/-05 and `max-age` after.
    fn insert(self, interop: Interop, headers: &mut HeaderMap) {
        let age_key = if interop.0 == 6 { "expires" } else { "max-age" };
        let mut members = vec![("max-size", self.max_size), ("min-size", 0)];
        members.extend(self.max_age.map(|age| (age_key, age)));
        if let Ok(value) = HeaderValue::from_str(&sf::integer_dictionary(members)) {
            headers.insert(names::UPLOAD_LIMIT, value);
        }
    }
}

/// What OPTIONS adds for the draft: the server's limits, the media type
/// appends use, and the interop versions served
/// (`Upload-Draft-Interop-Versions`, partway's own header).
pub(crate) fn options_headers(headers: &mut HeaderMap, max_size: u64) {
    let versions: Vec<String> = INTEROP_VERSIONS.map(|v| v.to_string()).collect();
    if let Ok(value) = HeaderValue::from_str(&versions.join(", ")) {
        headers.insert("upload-draft-interop-versions", value);
    }
    let limits = sf::integer_dictionary([("max-size", max_size), ("min-size", 0)]);
    if let Ok(value) = HeaderValue::from_str(&limits) {
        headers.insert(names::UPLOAD_LIMIT, value);
    }
    headers.insert(
        "accept-patch",
        HeaderValue::from_static("application/partial-upload"),
    );
}

/// An answer to OPTIONS, with the interop version echoed if one was asked.
pub(crate) fn echo(
    mut response: axum::response::Response,
    v: Option<Interop>,
) -> axum::response::Response {
    if let Some(v) = v {
        response
            .headers_mut()
            .insert(names::INTEROP_VERSION, HeaderValue::from(v.0));
    }
    response
}
