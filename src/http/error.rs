//! The one place that turns a refusal into a tus 1.0.0 response: a status,
//! the headers that go with it, and a message.
//!
//! The HTTP layer's own refusals (a malformed header, a wrong version or
//! content type) and the upload core's, which are named by cause, meet here.
//! Each status names the rule of the tus 1.0.0 spec that asks for it, or the
//! HTTP practice it follows. Store failures are logged with their detail and
//! answered with a generic message, so backend text never reaches clients.

use crate::protocol::checksum::ChecksumError;
use crate::protocol::headers::HeaderError;
use crate::protocol::metadata::MetadataError;
use crate::protocol::{TUS_VERSION, names};
use crate::upload::access::{Answer, Denial};
use crate::upload::ports::StoreError;
use crate::upload::{self, ConcatRefusal, HookRefusal, SizeExceeded, TrailerProblem};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// A request the HTTP layer refuses or could not serve.
#[derive(Debug, Error)]
pub enum Error {
    /// Missing or unsupported `Tus-Resumable`.
    #[error("unsupported or missing Tus-Resumable; this server speaks tus {TUS_VERSION}")]
    UnsupportedVersion,
    /// A PATCH (or a POST with a body) that is not tus data.
    #[error("Content-Type must be application/offset+octet-stream")]
    UnsupportedMediaType,
    /// A header the request got wrong, or a combination the protocol forbids.
    #[error("{0}")]
    Malformed(String),
    /// The method does not apply to this URL.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The upload core refused or failed.
    #[error(transparent)]
    Upload(#[from] upload::Error),
}

/// A refusal's code, as tusd names its errors (`ERR_UPLOAD_NOT_FOUND`...),
/// put on the response for the metrics layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub &'static str);

/// Results of the HTTP layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The tus-specific 460, which `http` has no constant for.
fn checksum_mismatch() -> StatusCode {
    StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
}

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            // tus 1.0.0, Tus-Resumable: a version the server does not support
            // MUST get 412 Precondition Failed, with Tus-Version.
            Self::UnsupportedVersion => StatusCode::PRECONDITION_FAILED,
            // tus 1.0.0, PATCH: a Content-Type other than
            // application/offset+octet-stream SHOULD get 415.
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // creation: an Upload-Defer-Length other than 1 gets 400 Bad
            // Request; every other malformed tus header is refused the same way.
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            // RFC 9110 §15.5.6: the method is not one this URL supports.
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Upload(e) => upload_status(e),
        }
    }
}

impl Error {
    /// The refusal's code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedVersion => "ERR_UNSUPPORTED_VERSION",
            Self::UnsupportedMediaType => "ERR_INVALID_CONTENT_TYPE",
            Self::Malformed(_) => "ERR_INVALID_REQUEST",
            Self::MethodNotAllowed => "ERR_METHOD_NOT_ALLOWED",
            Self::Upload(e) => upload_code(e),
        }
    }
}

/// The code of each refusal of the upload core.
fn upload_code(e: &upload::Error) -> &'static str {
    use upload::Error as E;
    match e {
        E::NotFound | E::Lost { .. } | E::Concat(ConcatRefusal::Unknown(_)) => {
            "ERR_UPLOAD_NOT_FOUND"
        }
        E::Expired => "ERR_UPLOAD_GONE",
        E::OffsetMismatch { .. } => "ERR_MISMATCHED_OFFSET",
        E::FinalIsReadOnly => "ERR_MODIFY_FINAL",
        E::SizeExceeded(_) => "ERR_MAX_SIZE_EXCEEDED",
        E::LengthAlreadySet { .. } | E::LengthBelowOffset { .. } => "ERR_INVALID_UPLOAD_LENGTH",
        E::ChecksumMismatch { .. } => "ERR_CHECKSUM_MISMATCH",
        E::ChecksumTrailer(_) => "ERR_INVALID_CHECKSUM",
        E::Concat(_) => "ERR_INVALID_CONCAT",
        E::NotFinished { .. } => "ERR_UPLOAD_NOT_FINISHED",
        E::Busy | E::Finishing => "ERR_UPLOAD_LOCKED",
        E::TooManyWriters { .. } => "ERR_TOO_MANY_UPLOADS",
        E::BufferFull => "ERR_BUFFER_FULL",
        E::Store(StoreError::Unavailable(_)) => "ERR_STORE_UNAVAILABLE",
        E::Store(_) | E::Internal(_) => "ERR_INTERNAL_SERVER_ERROR",
        E::Denied(Denial::Unauthenticated { invalid: false, .. }) => "ERR_TOKEN_MISSING",
        E::Denied(Denial::Unauthenticated { .. }) => "ERR_TOKEN_INVALID",
        E::Denied(Denial::Forbidden(_)) => "ERR_ACCESS_DENIED",
        E::Denied(Denial::Rejected(_)) => "ERR_ACCESS_REJECTED",
        E::Denied(Denial::Unavailable(_)) => "ERR_ACCESS_UNAVAILABLE",
        E::IdTaken(_) => "ERR_UPLOAD_ID_TAKEN",
        E::Hook(HookRefusal::UploadRejected(_)) => "ERR_UPLOAD_REJECTED",
        E::Hook(HookRefusal::TerminationRejected(_)) => "ERR_UPLOAD_TERMINATION_REJECTED",
        E::Hook(HookRefusal::UploadStopped(_)) => "ERR_UPLOAD_STOPPED",
        E::Hook(HookRefusal::Unavailable { .. }) => "ERR_HOOK_UNAVAILABLE",
    }
}

/// The status for each refusal of the upload core.
fn upload_status(e: &upload::Error) -> StatusCode {
    use upload::Error as E;
    match e {
        // tus 1.0.0, HEAD and PATCH: an unknown upload SHOULD get 404 (HEAD
        // allows 410 or 403 too). A lost upload is answered the same way,
        // so the client starts over.
        E::NotFound | E::Lost { .. } => StatusCode::NOT_FOUND,
        // expiration: resuming an expired upload gets 404 or 410, and 410
        // SHOULD be used by a server that keeps track of expired uploads.
        E::Expired => StatusCode::GONE,
        // tus 1.0.0, PATCH: offsets that do not match MUST get 409 Conflict.
        E::OffsetMismatch { .. } => StatusCode::CONFLICT,
        // concatenation: a PATCH to a final upload MUST get 403 Forbidden.
        E::FinalIsReadOnly => StatusCode::FORBIDDEN,
        // creation: a length over the maximum (Tus-Max-Size) MUST get 413;
        // a body past the upload's length is refused the same way.
        E::SizeExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
        // creation-defer-length: once declared, the length must not change,
        // nor fall below the bytes already received; refused as a bad
        // request, as other tus servers do.
        E::LengthAlreadySet { .. } | E::LengthBelowOffset { .. } => StatusCode::BAD_REQUEST,
        // checksum: a body that does not match its checksum gets 460
        // Checksum Mismatch, and none of it is kept.
        E::ChecksumMismatch { .. } => checksum_mismatch(),
        // checksum: an algorithm the server does not support gets 400; so
        // does an announced trailer that did not come or is not a checksum.
        E::ChecksumTrailer(_) => StatusCode::BAD_REQUEST,
        // A partial that does not exist, or that the caller may not read,
        // is not found, whichever it is: no existence oracle.
        E::Concat(ConcatRefusal::Unknown(_)) => StatusCode::NOT_FOUND,
        // concatenation: a final must name finished partial uploads (this
        // server does not offer concatenation-unfinished); anything else is
        // a bad request.
        E::Concat(_) => StatusCode::BAD_REQUEST,
        // A GET of an upload whose object does not exist yet (RFC 9110 §15.5.10).
        E::NotFinished { .. } => StatusCode::CONFLICT,
        // tus clients retry 423 Locked, as tusd answers for a busy upload.
        E::Busy | E::Finishing => StatusCode::LOCKED,
        // RFC 6585 §4; Uppy pauses its whole queue on 429 and retries.
        E::TooManyWriters { .. } => StatusCode::TOO_MANY_REQUESTS,
        // RFC 9110 §15.6.4, with Retry-After: worth retrying shortly.
        E::BufferFull | E::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        E::Denied(denial) => denial_status(denial),
        // An id the application chose for a new upload is taken.
        E::IdTaken(_) => StatusCode::CONFLICT,
        // The application refused (400 unless it chose a status), or its
        // blocking hook could not be asked: 503 with Retry-After, which tus
        // clients retry; never a 500, never an open door.
        E::Hook(HookRefusal::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        E::Hook(refusal) => refusal
            .answer()
            .and_then(|a| a.status)
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::BAD_REQUEST),
        // RFC 9110 §15.6.1: partway failed; the detail is logged, not sent.
        E::Store(_) | E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status for each refusal of the authorizer.
fn denial_status(denial: &Denial) -> StatusCode {
    match denial {
        // RFC 6750 §3.1: a missing, malformed, expired or badly signed
        // token gets 401 with a WWW-Authenticate challenge.
        Denial::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
        // RFC 9110 §15.5.4: understood, and refused; the pre-access hook's
        // rejection without a status of its own (as tusd#1077) too.
        Denial::Forbidden(_) => StatusCode::FORBIDDEN,
        Denial::Rejected(answer) => answer
            .status
            .and_then(|s| StatusCode::from_u16(s).ok())
            .filter(|s| s.is_client_error() || s.is_server_error())
            .unwrap_or(StatusCode::FORBIDDEN),
        // RFC 9110 §15.6.4, with Retry-After: the access hook is down or
        // slow; never an open door.
        Denial::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// `WWW-Authenticate` for a 401 (RFC 6750 §3): `invalid_token` for a bad
/// token, `invalid_request` when none was sent.
fn challenge(reason: &str, invalid: bool) -> HeaderValue {
    let error = if invalid {
        "invalid_token"
    } else {
        "invalid_request"
    };
    let description: String = reason
        .chars()
        .filter(|c| c.is_ascii_graphic() && *c != '"' && *c != '\\' || *c == ' ')
        .collect();
    HeaderValue::from_str(&format!(
        "Bearer realm=\"partway\", error=\"{error}\", error_description=\"{description}\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"partway\""))
}

/// Puts the application's chosen headers on a rejection; framing headers
/// stay partway's.
fn answer_headers(headers: &mut axum::http::HeaderMap, answer: &Answer) {
    for (name, value) in &answer.headers {
        let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) else {
            continue;
        };
        if name != axum::http::header::CONTENT_LENGTH
            && name != axum::http::header::TRANSFER_ENCODING
            && name != axum::http::header::CONNECTION
        {
            headers.insert(name, value);
        }
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl From<MetadataError> for Error {
    fn from(e: MetadataError) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl From<ChecksumError> for Error {
    fn from(e: ChecksumError) -> Self {
        Self::Malformed(e.to_string())
    }
}

impl From<SizeExceeded> for Error {
    fn from(e: SizeExceeded) -> Self {
        Self::Upload(e.into())
    }
}

impl From<ConcatRefusal> for Error {
    fn from(e: ConcatRefusal) -> Self {
        Self::Upload(e.into())
    }
}

impl From<TrailerProblem> for Error {
    fn from(e: TrailerProblem) -> Self {
        Self::Upload(upload::Error::ChecksumTrailer(e))
    }
}

/// Logs a refusal at the level it deserves, with what clients are not told.
fn log(e: &Error) {
    use upload::Error as E;
    match e {
        Error::Upload(E::Store(StoreError::Unavailable(detail))) => {
            tracing::warn!(%detail, "store unavailable");
        }
        Error::Upload(E::Store(source)) => tracing::error!(error = %source, "request failed"),
        Error::Upload(E::Internal(detail)) => tracing::error!(%detail, "request failed"),
        Error::Upload(E::Lost { detail }) => tracing::warn!(%detail, "multipart upload lost"),
        Error::Upload(E::Denied(Denial::Unavailable(detail))) => {
            tracing::warn!(%detail, "authorization unavailable");
        }
        Error::Upload(E::Hook(HookRefusal::Unavailable { kind, detail })) => {
            tracing::warn!(hook = %kind, %detail, "a blocking hook is unavailable");
        }
        _ => tracing::debug!(error = %e, "request refused"),
    }
}

/// The message a client reads: store failures say only what to do.
fn message(e: &Error) -> String {
    match e {
        Error::Upload(
            upload::Error::Store(StoreError::Unavailable(_)) | upload::Error::BufferFull,
        ) => "service temporarily unavailable; retry shortly".into(),
        Error::Upload(upload::Error::Store(_)) => "internal error".into(),
        Error::Upload(upload::Error::Denied(Denial::Rejected(answer))) => answer
            .body
            .clone()
            .unwrap_or_else(|| "access rejected".into()),
        Error::Upload(upload::Error::Hook(refusal)) => refusal
            .answer()
            .and_then(|a| a.body.clone())
            .unwrap_or_else(|| format!("{refusal}\n")),
        other => other.to_string(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        log(&self);
        let status = self.status();
        let body = match &self {
            Self::Upload(upload::Error::Denied(Denial::Rejected(_)) | upload::Error::Hook(_)) => {
                message(&self)
            }
            _ => format!("{}\n", message(&self)),
        };
        let mut response = (status, body).into_response();
        response.extensions_mut().insert(ErrorCode(self.code()));
        let headers = response.headers_mut();
        match &self {
            Self::Upload(upload::Error::Denied(Denial::Unauthenticated { reason, invalid })) => {
                headers.insert("www-authenticate", challenge(reason, *invalid));
            }
            Self::Upload(upload::Error::Denied(Denial::Rejected(answer))) => {
                answer_headers(headers, answer);
            }
            Self::Upload(upload::Error::Hook(refusal)) => {
                if let Some(answer) = refusal.answer() {
                    answer_headers(headers, answer);
                }
            }
            // "The Server MUST include the Tus-Version header in the 412 response".
            Self::UnsupportedVersion => {
                headers.insert(names::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
            }
            // The client resumes from the offset partway has.
            Self::Upload(upload::Error::OffsetMismatch { expected, .. }) => {
                headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(*expected));
            }
            _ => {}
        }
        if matches!(
            status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::LOCKED | StatusCode::TOO_MANY_REQUESTS
        ) && !headers.contains_key("retry-after")
        {
            headers.insert("retry-after", HeaderValue::from_static("1"));
        }
        if status == checksum_mismatch() {
            // hyper knows no reason phrase for the tus-specific 460.
            response
                .extensions_mut()
                .insert(hyper::ext::ReasonPhrase::from_static(b"Checksum Mismatch"));
        }
        response
    }
}
