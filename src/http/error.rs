//! The one place that turns a refusal into a tus 1.0.0 response: a status,
//! the headers that go with it, and a message.
//!
//! The HTTP layer's own refusals (a malformed header, a wrong version or
//! content type) and the upload core's, which are named by cause, meet here.
//! Each status cites the line of the tus 1.0.0 spec that asks for it, or the
//! HTTP practice it follows. Store failures are logged with their detail and
//! answered with a generic message, so backend text never reaches clients.

use crate::protocol::checksum::ChecksumError;
use crate::protocol::headers::HeaderError;
use crate::protocol::metadata::MetadataError;
use crate::protocol::{TUS_VERSION, names};
use crate::upload::ports::StoreError;
use crate::upload::{self, ConcatRefusal, SizeExceeded, TrailerProblem};
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
            // "If the Client's Tus-Resumable version is not supported by the
            // Server, it MUST respond with the 412 Precondition Failed status".
            Self::UnsupportedVersion => StatusCode::PRECONDITION_FAILED,
            // PATCH: "All PATCH requests MUST use Content-Type:
            // application/offset+octet-stream, otherwise the server SHOULD
            // return a 415 Unsupported Media Type status."
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Upload(e) => upload_status(e),
        }
    }
}

/// The status for each refusal of the upload core.
fn upload_status(e: &upload::Error) -> StatusCode {
    use upload::Error as E;
    match e {
        // HEAD: "If the resource is not found, the Server SHOULD return
        // either the 404 Not Found, 410 Gone or 403 Forbidden status".
        // A lost upload is answered the same way, so the client starts over.
        E::NotFound | E::Lost { .. } => StatusCode::NOT_FOUND,
        // Expiration: "the Server SHOULD respond with the 404 Not Found or
        // 410 Gone status" for an expired upload.
        E::Expired => StatusCode::GONE,
        // PATCH: "If the offsets do not match, the Server MUST respond with
        // the 409 Conflict status".
        E::OffsetMismatch { .. } => StatusCode::CONFLICT,
        // Concatenation: "The Server MUST respond with the 403 Forbidden
        // status to PATCH requests against a final upload URL".
        E::FinalIsReadOnly => StatusCode::FORBIDDEN,
        // Creation: "If the length of the upload exceeds the maximum, which
        // MAY be specified using the Tus-Max-Size header, the Server MUST
        // respond with the 413 Request Entity Too Large status".
        E::SizeExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
        E::LengthAlreadySet { .. } | E::LengthBelowOffset { .. } => StatusCode::BAD_REQUEST,
        // Checksum: "460 Checksum Mismatch: The checksums mismatch."
        E::ChecksumMismatch { .. } => checksum_mismatch(),
        // Checksum: "400 Bad Request: The checksum algorithm is not
        // supported by the server" (and a trailer that is not a checksum).
        E::ChecksumTrailer(_) => StatusCode::BAD_REQUEST,
        E::Concat(_) => StatusCode::BAD_REQUEST,
        // A GET of an upload whose object does not exist yet (RFC 9110 §15.5.10).
        E::NotFinished { .. } => StatusCode::CONFLICT,
        // tus clients retry 423 Locked, as tusd answers for a busy upload.
        E::Busy | E::Finishing => StatusCode::LOCKED,
        // RFC 6585 §4; Uppy pauses its whole queue on 429 and retries.
        E::TooManyWriters { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::BufferFull | E::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
        E::Store(_) | E::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
        _ => tracing::debug!(error = %e, "request refused"),
    }
}

/// The message a client reads: store failures say only what to do.
fn message(e: &Error) -> String {
    match e {
        Error::Upload(upload::Error::Store(StoreError::Unavailable(_))) => {
            "service temporarily unavailable; retry shortly".into()
        }
        Error::Upload(upload::Error::BufferFull) => {
            "service temporarily unavailable; retry shortly".into()
        }
        Error::Upload(upload::Error::Store(_)) => "internal error".into(),
        other => other.to_string(),
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        log(&self);
        let status = self.status();
        let mut response = (status, format!("{}\n", message(&self))).into_response();
        let headers = response.headers_mut();
        match &self {
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
        ) {
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
