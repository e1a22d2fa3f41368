//! The draft's refusals as `application/problem+json` (RFC 9457): its own
//! problem types where the draft names one (a mismatching offset, an
//! inconsistent length, a completed upload), and `about:blank` with the
//! status and headers tus would give for everything else, so authorization,
//! hooks and limits answer the same in both protocols.

use crate::http::Error as TusError;
use crate::protocol::names;
use crate::upload;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

const TYPES: &str = "https://iana.org/assignments/http-problem-types#";

/// A refusal of a draft request.
#[derive(Debug)]
pub(crate) enum Problem {
    /// A header that is not what the draft says it must be.
    Malformed(String),
    /// The client's offset is not the upload's.
    MismatchingOffset { expected: u64, provided: u64 },
    /// Lengths that do not agree, within a request or with the upload.
    InconsistentLength(String),
    /// An append to an upload that is complete.
    CompletedUpload,
    /// Anything tus 1.0 refuses the same way.
    Tus(TusError),
}

impl Problem {
    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::Malformed(detail.into())
    }
}

impl From<TusError> for Problem {
    fn from(e: TusError) -> Self {
        match e {
            TusError::Upload(upload::Error::OffsetMismatch { expected, got }) => {
                Self::MismatchingOffset {
                    expected,
                    provided: got,
                }
            }
            TusError::Upload(
                e @ (upload::Error::LengthAlreadySet { .. }
                | upload::Error::LengthBelowOffset { .. }),
            ) => Self::InconsistentLength(e.to_string()),
            e => Self::Tus(e),
        }
    }
}

impl From<upload::Error> for Problem {
    fn from(e: upload::Error) -> Self {
        TusError::from(e).into()
    }
}

/// `{"type", "title"}` and `members`, as problem+json, with `status`.
fn problem(status: StatusCode, kind: &str, title: &str, members: Map<String, Value>) -> Response {
    let mut body = json!({ "type": kind, "title": title });
    if let Value::Object(fields) = &mut body {
        fields.extend(members);
    }
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = match self {
            Self::Malformed(detail) => {
                problem(StatusCode::BAD_REQUEST, "about:blank", &detail, Map::new())
            }
            Self::MismatchingOffset { expected, provided } => {
                let members = json!({ "expected-offset": expected, "provided-offset": provided });
                let mut response = problem(
                    StatusCode::CONFLICT,
                    &format!("{TYPES}mismatching-upload-offset"),
                    "offset from request does not match offset of resource",
                    members.as_object().cloned().unwrap_or_default(),
                );
                response
                    .headers_mut()
                    .insert(names::UPLOAD_OFFSET, HeaderValue::from(expected));
                response
            }
            Self::InconsistentLength(detail) => problem(
                StatusCode::BAD_REQUEST,
                &format!("{TYPES}inconsistent-upload-length"),
                &format!("inconsistent length values for upload: {detail}"),
                Map::new(),
            ),
            Self::CompletedUpload => problem(
                StatusCode::BAD_REQUEST,
                &format!("{TYPES}completed-upload"),
                "upload is already completed",
                Map::new(),
            ),
            Self::Tus(e) => tus_problem(e),
        };
        // An error is never the upload's final response.
        response
            .headers_mut()
            .insert(names::UPLOAD_COMPLETE, HeaderValue::from_static("?0"));
        response
    }
}

/// tus's answer to `e` (status, headers, error code), with a problem body.
fn tus_problem(e: TusError) -> Response {
    let detail = e.to_string();
    let mut response = e.into_response();
    let status = response.status();
    let title = status.canonical_reason().unwrap_or("refused").to_owned();
    let mut body = json!({ "type": "about:blank", "title": title });
    // What a client did wrong is said; what failed inside is logged.
    if status.is_client_error() {
        body["detail"] = Value::from(detail);
    }
    *response.body_mut() = axum::body::Body::from(body.to_string());
    let headers = response.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}
