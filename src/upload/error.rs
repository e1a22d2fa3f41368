//! Why the upload core refuses or fails a request, named by cause.
//!
//! The core never picks a status: each variant says what happened, with the
//! values that matter as typed fields, and a protocol layer (the `http` module,
//! for tus 1.0) decides how to answer it. Store failures keep their
//! [`StoreError`] as the source, so a log shows what the store said.

use super::access::{Answer, Denial};
use super::concat_plan::ConcatPlanError;
use super::events::HookKind;
use super::model::UploadId;
use super::plan::PlanError;
use super::ports::{CommitError, LockError, StoreError};
use crate::protocol::checksum::ChecksumError;
use thiserror::Error;

/// A request the upload core refused or could not serve.
#[derive(Debug, Error)]
pub enum Error {
    /// No such upload: never created, terminated, or reaped.
    #[error("upload not found")]
    NotFound,
    /// The upload expired (reported only when the core is configured to
    /// tell expired uploads from unknown ones).
    #[error("upload expired")]
    Expired,
    /// The store lost the upload's multipart upload (a lifecycle rule or its
    /// own cleanup aborted it); the upload's state is removed and the client
    /// must start over. The detail is for the log.
    #[error("upload no longer exists in storage; start a new upload")]
    Lost { detail: String },
    /// The client's offset is not the upload's.
    #[error("Upload-Offset {got} does not match the upload's offset {expected}")]
    OffsetMismatch { expected: u64, got: u64 },
    /// A final upload of a concatenation takes no bytes of its own.
    #[error("a final upload of a concatenation cannot be patched")]
    FinalIsReadOnly,
    /// More bytes than the server or the upload allows.
    #[error("{0}")]
    SizeExceeded(SizeExceeded),
    /// A deferred length declared twice, differently.
    #[error("Upload-Length is already {known} and cannot change")]
    LengthAlreadySet { known: u64 },
    /// A declared length below what was already received.
    #[error("Upload-Length {length} is below the {offset} bytes already received")]
    LengthBelowOffset { length: u64, offset: u64 },
    /// The body does not match its checksum; none of it was kept.
    #[error("checksum mismatch: the body does not match its {algorithm} Upload-Checksum")]
    ChecksumMismatch { algorithm: &'static str },
    /// A checksum announced as a trailer did not come, or was malformed.
    #[error("{0}")]
    ChecksumTrailer(TrailerProblem),
    /// A final upload names partials that cannot be concatenated.
    #[error("Upload-Concat: {0}")]
    Concat(ConcatRefusal),
    /// The upload is not finished, so it cannot be read.
    #[error("the upload is not finished ({}); it can be downloaded once it is", progress(*offset, *length))]
    NotFinished { offset: u64, length: Option<u64> },
    /// Another request holds the upload.
    #[error("the upload is busy with another request; retry shortly")]
    Busy,
    /// Every byte arrived, but the object could not be assembled yet.
    #[error("the upload is being finished; retry shortly")]
    Finishing,
    /// Too many uploads are being written at once.
    #[error("more than {limit} uploads are being written; retry shortly")]
    TooManyWriters { limit: usize },
    /// The buffer budget stayed full; what arrived was kept.
    #[error("the server's buffer budget is exhausted; retry shortly")]
    BufferFull,
    /// The authorizer, or the core's access rules, refused the caller.
    #[error("{0}")]
    Denied(Denial),
    /// The id the application chose for a new upload is taken.
    #[error("an upload with id {0} exists already")]
    IdTaken(UploadId),
    /// The application's hooks refused the request, or could not be asked.
    #[error("{0}")]
    Hook(HookRefusal),
    /// A backing store failed; `StoreError::Unavailable` is worth retrying.
    #[error("store failure")]
    Store(#[source] StoreError),
    /// An invariant of the core broke; the detail is for the log.
    #[error("internal error")]
    Internal(String),
}

/// Which size limit a request ran into.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SizeExceeded {
    #[error("Upload-Length {length} exceeds the maximum of {max} bytes")]
    Length { length: u64, max: u64 },
    #[error("Upload-Length {length} exceeds the {max} bytes a deferred upload may reach")]
    DeferredLength { length: u64, max: u64 },
    #[error("body of {sent} bytes exceeds the {room} bytes left in this upload")]
    Body { sent: u64, room: u64 },
    #[error("body runs past the upload's length")]
    PastLength,
    #[error("Upload-Length {length} exceeds the {max} bytes the credential allows")]
    Grant { length: u64, max: u64 },
    #[error("the partial uploads add up to {total} bytes, over the maximum of {max}")]
    Partials { total: u64, max: u64 },
    #[error(transparent)]
    Grid(#[from] PlanError),
}

/// What was wrong with a checksum announced as a trailer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrailerProblem {
    #[error("Trailer announced Upload-Checksum, but no such trailer arrived")]
    Missing,
    #[error(transparent)]
    Malformed(#[from] ChecksumError),
}

/// Why the partials of a final upload cannot be concatenated.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConcatRefusal {
    #[error("final needs at least one partial upload")]
    NoPartials,
    #[error("upload {0} does not exist")]
    Unknown(UploadId),
    #[error("upload {0} is not a partial upload")]
    NotPartial(UploadId),
    #[error("partial upload {0} is not finished (concatenation-unfinished is not supported)")]
    Unfinished(UploadId),
    #[error(transparent)]
    Unplannable(#[from] ConcatPlanError),
}

fn progress(offset: u64, length: Option<u64>) -> String {
    match length {
        Some(length) => format!("{offset} of {length} bytes"),
        None => format!("{offset} bytes so far"),
    }
}

/// Results of the upload core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A store failure on the upload's own multipart upload: not found there
    /// means the upload is lost, not that partway failed.
    pub fn from_multipart(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(detail) => Self::Lost { detail },
            other => Self::Store(other),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<SizeExceeded> for Error {
    fn from(e: SizeExceeded) -> Self {
        Self::SizeExceeded(e)
    }
}

impl From<Denial> for Error {
    fn from(e: Denial) -> Self {
        Self::Denied(e)
    }
}

impl From<ConcatRefusal> for Error {
    fn from(e: ConcatRefusal) -> Self {
        Self::Concat(e)
    }
}

impl From<CommitError> for Error {
    fn from(e: CommitError) -> Self {
        match e {
            CommitError::NotFound => Self::NotFound,
            // Someone else moved the upload on: the client should look again.
            CommitError::Conflict | CommitError::LockLost => Self::Busy,
            CommitError::Store(s) => Self::Store(s),
        }
    }
}

impl From<LockError> for Error {
    fn from(e: LockError) -> Self {
        match e {
            LockError::Busy => Self::Busy,
            LockError::Store(s) => Self::Store(s),
        }
    }
}

/// How the application's hooks stopped a request.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HookRefusal {
    /// pre-create answered `RejectUpload`; nothing was created.
    #[error("the upload was rejected by the application")]
    UploadRejected(Option<Answer>),
    /// pre-terminate answered `RejectTermination`; the upload stays.
    #[error("the termination was rejected by the application")]
    TerminationRejected(Option<Answer>),
    /// post-receive answered `StopUpload`; the upload was terminated.
    #[error("the upload was stopped by the application")]
    UploadStopped(Option<Answer>),
    /// A blocking hook gave no usable answer, so nothing it guards was done.
    #[error("the application's {kind} hook is unavailable; retry shortly")]
    Unavailable { kind: HookKind, detail: String },
}

impl HookRefusal {
    /// The response the application chose, if any.
    pub fn answer(&self) -> Option<&Answer> {
        match self {
            Self::UploadRejected(a) | Self::TerminationRejected(a) | Self::UploadStopped(a) => {
                a.as_ref()
            }
            Self::Unavailable { .. } => None,
        }
    }
}

impl From<HookRefusal> for Error {
    fn from(e: HookRefusal) -> Self {
        Self::Hook(e)
    }
}
