//! The one error type of partway, and the one place that picks status codes.
//!
//! Each variant names its status and where the tus 1.0.0 spec asks for it.
//! Store failures are logged with their detail and answered with a generic
//! message, so backend text never reaches clients.

use crate::protocol::headers::HeaderError;
use crate::protocol::metadata::MetadataError;
use crate::protocol::{TUS_VERSION, names};
use crate::store::{CommitError, LockError, StoreError};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

/// A request partway refuses or could not serve.
#[derive(Debug, Error)]
pub enum Error {
    /// 412 with `Tus-Version`: missing or unsupported `Tus-Resumable`.
    #[error("unsupported or missing Tus-Resumable; this server speaks tus {TUS_VERSION}")]
    UnsupportedVersion,
    /// 415: a PATCH must be `application/offset+octet-stream`.
    #[error("Content-Type must be application/offset+octet-stream")]
    UnsupportedMediaType,
    /// 400: a malformed header or a request the protocol forbids.
    #[error("{0}")]
    BadRequest(String),
    /// 404: no such upload (never created, terminated, or not an id of ours).
    #[error("upload not found")]
    NotFound,
    /// 404: the store lost the upload's multipart upload (a lifecycle rule or
    /// the store's own cleanup aborted it); its state is removed and the
    /// client must start over. The detail is logged.
    #[error("upload no longer exists in storage; start a new upload")]
    UploadLost(String),
    /// 409: `Upload-Offset` is not the upload's offset.
    #[error("Upload-Offset {got} does not match the upload's offset {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    /// 460: the body does not match its `Upload-Checksum`; nothing of it
    /// was kept.
    #[error("checksum mismatch: the body does not match its {0} Upload-Checksum")]
    ChecksumMismatch(&'static str),
    /// 403: the request is not allowed on this upload (a PATCH to a final
    /// upload of the concatenation extension).
    #[error("{0}")]
    Forbidden(String),
    /// 409: the upload is not in a state that allows this request (a GET of
    /// an unfinished upload).
    #[error("{0}")]
    Conflict(String),
    /// 410: the upload expired (when configured instead of 404).
    #[error("upload expired")]
    Gone,
    /// 413: larger than the server or the upload allows.
    #[error("{0}")]
    TooLarge(String),
    /// 423: another request holds the upload (clients retry 423).
    #[error("{0}")]
    Locked(String),
    /// 405: the method does not apply to this URL.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 429 with `Retry-After`: too many uploads are being written at once.
    #[error("{0}")]
    TooManyRequests(String),
    /// 503 with `Retry-After`: a backing store is unreachable for now, or
    /// the server's buffers are full.
    #[error("service temporarily unavailable; retry shortly")]
    Unavailable(String),
    /// 500: anything else; the detail is logged, not sent.
    #[error("internal error")]
    Internal(String),
}

/// Results in partway.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::PRECONDITION_FAILED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound | Self::UploadLost(_) => StatusCode::NOT_FOUND,
            Self::OffsetMismatch { .. } | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::ChecksumMismatch(_) => {
                StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Gone => StatusCode::GONE,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Locked(_) => StatusCode::LOCKED,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A 423 for an upload busy with another request.
    pub fn busy() -> Self {
        Self::Locked("the upload is busy with another request; retry shortly".into())
    }
}

impl Error {
    /// Maps a store error on the upload's own multipart upload: NotFound there
    /// means the upload is lost, not that partway failed.
    pub fn from_multipart(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(detail) => Self::UploadLost(detail),
            other => other.into(),
        }
    }
}

impl From<HeaderError> for Error {
    fn from(e: HeaderError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<MetadataError> for Error {
    fn from(e: MetadataError) -> Self {
        Self::BadRequest(e.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => Self::Unavailable(detail),
            StoreError::NotFound(detail) | StoreError::Other(detail) => Self::Internal(detail),
        }
    }
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::NotFound => Self::NotFound,
            // Someone else moved the upload on: the client should look again.
            CommitError::Conflict | CommitError::LockLost => Self::busy(),
            CommitError::Store(s) => s.into(),
        }
    }
}

impl From<LockError> for Error {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Busy => Self::busy(),
            LockError::Store(s) => s.into(),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(detail) => tracing::error!(%detail, "request failed"),
            Self::Unavailable(detail) => tracing::warn!(%detail, "store unavailable"),
            Self::UploadLost(detail) => tracing::warn!(%detail, "multipart upload lost"),
            _ => tracing::debug!(error = %self, "request refused"),
        }
        let mut response = (self.status(), format!("{self}\n")).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::UnsupportedVersion => {
                headers.insert(names::TUS_VERSION, HeaderValue::from_static(TUS_VERSION));
            }
            Self::OffsetMismatch { expected, .. } => {
                headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(*expected));
            }
            Self::Unavailable(_) | Self::Locked(_) | Self::TooManyRequests(_) => {
                headers.insert("retry-after", HeaderValue::from_static("1"));
            }
            Self::ChecksumMismatch(_) => {
                // hyper knows no reason phrase for the tus-specific 460.
                response
                    .extensions_mut()
                    .insert(hyper::ext::ReasonPhrase::from_static(b"Checksum Mismatch"));
            }
            _ => {}
        }
        response
    }
}
