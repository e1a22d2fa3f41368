//! Who may do what: the core's authorization seam and the rules it keeps
//! whichever authorizer is plugged in.
//!
//! Every request-facing operation of [`UploadService`] names its [`Action`]
//! and presents the request's [`Caller`]. The core asks its [`Authorizer`]
//! (a port, like the stores: JWT verification and the access hook are
//! adapters of it) for a [`Grant`], then applies the rules that hold for any
//! authorizer:
//!
//! - an upload answers only its owner; anyone else is told it does not exist
//!   ([`Error::NotFound`]), so there is no existence oracle. An admin grant
//!   acts on any upload; a grant's shared `uploads` may be read;
//! - a grant's `actions`, `max_size` and `content_types` bound what it does;
//! - a credential past its expiry still resumes (HEAD, PATCH) an unfinished
//!   upload of its subject within [`Limits::resume_grace`](super::Limits);
//! - a single-use creation credential is redeemed once, atomically, in the
//!   state store.

use super::model::{UploadId, UploadInfo, UploadState, now_secs};
use super::{Error, Result, SizeExceeded, UploadService};
use crate::protocol::metadata::Metadata;
use async_trait::async_trait;
use http::HeaderMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// What a request does to an upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Creating an upload (POST), a final upload included.
    Create,
    /// Reading an upload's progress (HEAD).
    Status,
    /// Appending to an upload (PATCH).
    Write,
    /// Downloading a finished upload (GET).
    Read,
    /// Terminating an upload (DELETE).
    Delete,
    /// Naming an upload as a partial of a final upload.
    Concat,
}

/// The verbs a grant can be limited to (the token claim `actions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    Create,
    Write,
    Read,
    Delete,
}

impl Permission {
    /// Parses a claim value: `create`, `write`, `read` or `delete`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "create" => Some(Self::Create),
            "write" => Some(Self::Write),
            "read" => Some(Self::Read),
            "delete" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// Whether an access reads or changes the uploads it names (the access
/// hook's `Access.Mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Read,
    Write,
}

impl Action {
    /// The action's name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Status => "status",
            Self::Write => "write",
            Self::Read => "read",
            Self::Delete => "delete",
            Self::Concat => "concat",
        }
    }

    /// Whether it reads or changes the uploads it names.
    pub fn mode(self) -> Mode {
        match self {
            Self::Create | Self::Write | Self::Delete => Mode::Write,
            Self::Status | Self::Read | Self::Concat => Mode::Read,
        }
    }

    /// Whether a grant limited to `granted` may do this. HEAD serves both
    /// readers and writers (a writer must learn the offset to resume); a
    /// final upload is made of partials the creator may concatenate.
    fn allowed_by(self, granted: &[Permission]) -> bool {
        let has = |p| granted.contains(&p);
        match self {
            Self::Create | Self::Concat => has(Permission::Create),
            Self::Status => has(Permission::Read) || has(Permission::Write),
            Self::Write => has(Permission::Write),
            Self::Read => has(Permission::Read),
            Self::Delete => has(Permission::Delete),
        }
    }

    /// Whether a grant's shared `uploads` cover this action.
    fn reads(self) -> bool {
        matches!(self, Self::Status | Self::Read)
    }
}

/// The request as an authorizer sees it: its headers (credentials among
/// them), method, target and peer. Its `Debug` never shows header values.
#[derive(Clone, Default)]
pub struct Caller {
    headers: HeaderMap,
    method: String,
    uri: String,
    peer: Option<SocketAddr>,
}

impl Caller {
    /// A request with these headers, method, target (path and query) and peer.
    pub fn new(headers: HeaderMap, method: &str, uri: &str, peer: Option<SocketAddr>) -> Self {
        Self {
            headers,
            method: method.to_owned(),
            uri: uri.to_owned(),
            peer,
        }
    }

    /// A caller with no credentials (tests, and code acting for partway).
    pub fn anonymous() -> Self {
        Self::default()
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub fn method(&self) -> &str {
        &self.method
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }
}

impl fmt::Debug for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Caller")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .field("peer", &self.peer)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// What an authorizer allows: who the caller is and what it may do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grant {
    /// The caller's subject; it owns the uploads it creates. `None` when the
    /// authorizer does not identify callers: such uploads have no owner.
    pub subject: Option<String>,
    /// Acts on any upload, whoever owns it (the application's backend).
    pub admin: bool,
    /// Limits carried by the credential.
    pub rules: Rules,
    /// The credential's expiry passed this long ago: only a resume within
    /// the grace is allowed.
    pub expired_for: Option<Duration>,
    /// A single-use credential, to be redeemed if it creates an upload.
    pub redeem: Option<Redemption>,
}

/// Limits a credential carries; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// The largest upload it may create or grow.
    pub max_size: Option<u64>,
    /// Content-type patterns (`image/*`, `application/pdf`) the upload's
    /// `filetype` or `type` metadata must match.
    pub content_types: Option<Vec<String>>,
    /// Uploads it may read (HEAD, GET) although another subject owns them.
    pub uploads: Vec<UploadId>,
    /// The verbs it may use; `None` is all of them.
    pub actions: Option<Vec<Permission>>,
}

/// A single-use credential's identity and how long it must be remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redemption {
    /// Unique per credential (for a JWT, its issuer and `jti`).
    pub key: String,
    /// Until when the credential could still be presented, seconds since
    /// the Unix epoch.
    pub until: u64,
}

/// Why an authorizer refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// No credential, or one that is not valid (HTTP 401).
    #[error("{reason}")]
    Unauthenticated {
        reason: String,
        /// The credential was sent but is bad (as opposed to missing).
        invalid: bool,
    },
    /// A valid credential that does not allow this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The application refused, and chose the answer.
    #[error("access rejected")]
    Rejected(Answer),
    /// The authorizer could not decide now; worth retrying (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
}

/// An answer chosen by the application: status, headers and body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// One access to authorize.
#[derive(Debug)]
pub struct AccessRequest<'a> {
    pub action: Action,
    /// The uploads acted on, as recorded; empty for a creation, or when the
    /// upload named does not exist.
    pub uploads: &'a [UploadInfo],
    pub caller: &'a Caller,
}

/// Decides whether a caller may do an action; partway's adapters (JWT, the
/// access hook) and an embedder's own implement it.
#[async_trait]
pub trait Authorizer: Send + Sync {
    /// A grant for this access, or why not.
    async fn authorize(&self, request: &AccessRequest<'_>) -> Result<Grant, Denial>;
}

/// Lets anyone do anything: partway without authorization configured. Its
/// grant is an admin's, so uploads created while tokens were required stay
/// reachable once they no longer are.
#[derive(Debug, Default)]
pub struct AnyoneMay;

#[async_trait]
impl Authorizer for AnyoneMay {
    async fn authorize(&self, _: &AccessRequest<'_>) -> Result<Grant, Denial> {
        Ok(Grant {
            admin: true,
            ..Grant::default()
        })
    }
}

/// Several authorizers that must all agree, asked in order; the grant is
/// the first one that names a subject (or the first one).
pub struct AllOf(pub Vec<Arc<dyn Authorizer>>);

#[async_trait]
impl Authorizer for AllOf {
    async fn authorize(&self, request: &AccessRequest<'_>) -> Result<Grant, Denial> {
        let mut chosen: Option<Grant> = None;
        for authorizer in &self.0 {
            let grant = authorizer.authorize(request).await?;
            if chosen
                .as_ref()
                .is_none_or(|c| c.subject.is_none() && grant.subject.is_some())
            {
                chosen = Some(grant);
            }
        }
        Ok(chosen.unwrap_or_default())
    }
}

/// Whether `content_type` matches one of `patterns` (`type/*`, `*/*`, or
/// exact), ignoring case and parameters.
pub fn content_type_allowed(patterns: &[String], content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        match pattern.strip_suffix("/*") {
            Some("*") => essence.contains('/'),
            Some(major) => essence.split_once('/').is_some_and(|(m, _)| m == major),
            None => essence == pattern,
        }
    })
}

/// The refusal of a credential past its expiry, where no grace applies.
fn expired() -> Error {
    Denial::Unauthenticated {
        reason: "the token has expired".into(),
        invalid: true,
    }
    .into()
}

impl UploadService {
    /// Asks the authorizer about `action` on `uploads`, and applies the
    /// rules that do not depend on them: the grant's actions, and expiry.
    pub(super) async fn grant_for(
        &self,
        caller: &Caller,
        action: Action,
        uploads: &[UploadInfo],
    ) -> Result<Grant> {
        let request = AccessRequest {
            action,
            uploads,
            caller,
        };
        let grant = self.authorizer.authorize(&request).await?;
        if let Some(actions) = &grant.rules.actions
            && !action.allowed_by(actions)
        {
            return Err(Denial::Forbidden(format!(
                "the credential does not allow the {} action",
                action.as_str()
            ))
            .into());
        }
        Ok(grant)
    }

    /// The upload `id`, if `caller` may do `action` to it. The credential
    /// is checked before the upload is said to exist or not.
    pub(super) async fn authorized(
        &self,
        caller: &Caller,
        action: Action,
        id: &UploadId,
    ) -> Result<(UploadInfo, Grant)> {
        let found = self.get(id).await;
        let uploads = found.as_ref().map(std::slice::from_ref).unwrap_or(&[]);
        let grant = self.grant_for(caller, action, uploads).await?;
        let info = found?;
        self.check_upload(&grant, action, &info)?;
        Ok((info, grant))
    }

    /// The rules that depend on the upload: ownership, and the resume
    /// grace of an expired credential.
    pub(super) fn check_upload(
        &self,
        grant: &Grant,
        action: Action,
        info: &UploadInfo,
    ) -> Result<()> {
        let owns = info.owner.is_none() || info.owner == grant.subject;
        let shared = action.reads() && grant.rules.uploads.contains(&info.id);
        if !(owns || grant.admin || shared) {
            super::bump(&self.counters.refused_not_owner);
            return Err(Error::NotFound);
        }
        let Some(late) = grant.expired_for else {
            return Ok(());
        };
        let resumes = matches!(action, Action::Status | Action::Write)
            && info.state != UploadState::Completed
            && info.owner.is_some()
            && info.owner == grant.subject;
        if resumes && late <= self.limits.resume_grace {
            return Ok(());
        }
        Err(expired())
    }

    /// A grant to create `length` bytes (or a deferred upload) with this
    /// metadata: its size and content-type limits, and its redemption.
    pub(super) async fn grant_creation(
        &self,
        caller: &Caller,
        length: Option<u64>,
        metadata: Option<&Metadata>,
    ) -> Result<Grant> {
        let grant = self.grant_for(caller, Action::Create, &[]).await?;
        if grant.expired_for.is_some() {
            return Err(expired());
        }
        if let (Some(max), Some(length)) = (grant.rules.max_size, length)
            && length > max
        {
            return Err(SizeExceeded::Grant { length, max }.into());
        }
        if let Some(patterns) = &grant.rules.content_types {
            let declared = metadata.and_then(Metadata::content_type);
            if !declared.is_some_and(|t| content_type_allowed(patterns, &t)) {
                return Err(Denial::Forbidden(format!(
                    "the credential allows only uploads of type {}",
                    patterns.join(", ")
                ))
                .into());
            }
        }
        if let Some(once) = &grant.redeem
            && !self
                .state
                .redeem(&once.key, once.until.max(now_secs() + 1))
                .await?
        {
            return Err(Denial::Forbidden("this creation token was already used".into()).into());
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_by_pattern() {
        let patterns = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        assert!(content_type_allowed(&patterns, "image/png"));
        assert!(content_type_allowed(&patterns, "IMAGE/JPEG; q=1"));
        assert!(content_type_allowed(&patterns, "application/pdf"));
        assert!(!content_type_allowed(&patterns, "application/pdfx"));
        assert!(!content_type_allowed(&patterns, "text/html"));
        assert!(!content_type_allowed(&patterns, "imagepng"));
        assert!(content_type_allowed(&["*/*".into()], "text/plain"));
        assert!(!content_type_allowed(&["*/*".into()], "nonsense"));
    }

    #[test]
    fn head_serves_readers_and_writers() {
        use Permission as P;
        assert!(Action::Status.allowed_by(&[P::Write]));
        assert!(Action::Status.allowed_by(&[P::Read]));
        assert!(!Action::Status.allowed_by(&[P::Create, P::Delete]));
        assert!(!Action::Write.allowed_by(&[P::Read, P::Create]));
        assert!(Action::Concat.allowed_by(&[P::Create]));
    }
}
