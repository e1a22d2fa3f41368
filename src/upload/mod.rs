//! The upload core: creation, status, appending, finishing and termination.
//!
//! [`UploadService`] decides offsets, parts and completion, and talks to the
//! outside world only through the traits in [`crate::store`]. It knows nothing
//! of HTTP; the handlers in [`crate::http`] translate requests into calls here.

mod append;
mod commit;
mod concat;
pub mod concat_plan;
mod expiry;
mod filling;
mod finish;
pub mod model;
pub mod plan;
#[cfg(test)]
mod tests;
mod verify;

pub use append::{AppendRequest, BodyError, BodyStream};
pub use verify::{TrailerSlot, Verify};

use crate::error::{Error, Result};
use crate::protocol::metadata::Metadata;
use crate::store::{Locker, ObjectStore, StateStore};
use model::{Concat, UploadId, UploadInfo, UploadState, now_secs};
use plan::PartLimits;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Sizes and timings the core works within.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The store's multipart rules.
    pub parts: PartLimits,
    /// The part size used unless an upload is too large for it.
    pub part_size: u64,
    /// The largest `Upload-Length` accepted (advertised as `Tus-Max-Size`).
    pub max_size: u64,
    /// The largest size a deferred-length upload may reach; its part size is
    /// chosen so that this fits in the part grid.
    pub max_deferred_size: u64,
    /// How long a PATCH waits for another request to let go of an upload.
    pub lock_wait: Duration,
    /// Part uploads in flight per PATCH while more bytes are read.
    pub parts_in_flight: usize,
    /// Bytes buffered across all requests, in KiB; past it, requests wait
    /// up to `budget_wait`, then stop, keep what they have and get 503.
    pub buffer_budget_kib: u32,
    /// How long a PATCH waits for room in the buffer budget.
    pub budget_wait: std::time::Duration,
    /// PATCHes (and creations with a body) written at once; past it, 429.
    pub max_active_appends: usize,
    /// A PATCH body that sends nothing for this long is treated as cut off.
    pub body_idle_timeout: Duration,
    /// Unfinished uploads expire this long after their last PATCH; `None`
    /// keeps them forever.
    pub expire_after: Option<Duration>,
    /// Answer 410 Gone for expired uploads instead of 404.
    pub expired_gone: bool,
}

impl Limits {
    /// Production defaults for a given part size and optional size cap.
    pub fn new(part_size: u64, max_size: Option<u64>) -> Self {
        let parts = PartLimits::S3;
        Self {
            parts,
            part_size,
            max_size: max_size.unwrap_or(parts.max_object_size),
            max_deferred_size: max_size
                .unwrap_or(part_size.saturating_mul(u64::from(parts.max_parts))),
            lock_wait: Duration::from_secs(3),
            parts_in_flight: 2,
            buffer_budget_kib: 1024 * 1024,
            budget_wait: Duration::from_secs(5),
            max_active_appends: 1024,
            body_idle_timeout: Duration::from_secs(60),
            expire_after: Some(Duration::from_secs(24 * 3600)),
            expired_gone: false,
        }
    }
}

/// What a POST asks for.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    /// `Upload-Length`, or `None` for `Upload-Defer-Length: 1`.
    pub length: Option<u64>,
    pub metadata: Option<Metadata>,
    /// `Upload-Concat`, if present.
    pub concat: Option<NewConcat>,
}

/// The `Upload-Concat` of a POST.
#[derive(Debug, Clone)]
pub enum NewConcat {
    Partial,
    /// A final upload: the header as sent, and the partials it names.
    Final {
        header: String,
        partials: Vec<UploadId>,
    },
}

/// The upload core, shared by all requests.
pub struct UploadService {
    objects: Arc<dyn ObjectStore>,
    state: Arc<dyn StateStore>,
    locker: Arc<dyn Locker>,
    limits: Limits,
    key_prefix: String,
    budget: Arc<Semaphore>,
    /// One permit per upload being written (`max_active_appends`).
    active: Arc<Semaphore>,
    /// Cancelled at shutdown: PATCHes stop reading and commit what they have.
    stopping: CancellationToken,
    counters: Counters,
}

/// Events worth counting, for tests, load runs and (later) metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// PATCHes that let go of an upload because another request asked.
    pub takeovers: std::sync::atomic::AtomicU64,
    /// Requests refused for the cap on active uploads (429).
    pub refused_active: std::sync::atomic::AtomicU64,
    /// PATCHes stopped because the buffer budget stayed full (503).
    pub refused_budget: std::sync::atomic::AtomicU64,
}

impl UploadService {
    /// A service over the given stores; object keys are `<key_prefix><id>`.
    pub fn new(
        objects: Arc<dyn ObjectStore>,
        state: Arc<dyn StateStore>,
        locker: Arc<dyn Locker>,
        limits: Limits,
        key_prefix: impl Into<String>,
    ) -> Self {
        let budget = Arc::new(Semaphore::new(limits.buffer_budget_kib as usize));
        let active = Arc::new(Semaphore::new(limits.max_active_appends.max(1)));
        Self {
            objects,
            state,
            locker,
            limits,
            key_prefix: key_prefix.into(),
            budget,
            active,
            stopping: CancellationToken::new(),
            counters: Counters::default(),
        }
    }

    /// Starts a graceful shutdown: PATCHes in flight stop reading, commit
    /// what they received and answer.
    pub fn begin_shutdown(&self) {
        self.stopping.cancel();
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// What this instance has counted since it started.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Creates an upload: its record, and its multipart upload in the store.
    ///
    /// # Errors
    /// 413 when the length is over the limit; store failures.
    pub async fn create(&self, mut new: NewUpload) -> Result<UploadInfo> {
        let concat = match new.concat.take() {
            None => None,
            Some(NewConcat::Partial) => Some(Concat::Partial),
            Some(NewConcat::Final { header, partials }) => {
                return self.create_final(new, header, partials).await;
            }
        };
        let (part_size, max_length) = match new.length {
            Some(length) if length > self.limits.max_size => {
                return Err(Error::TooLarge(format!(
                    "Upload-Length {length} exceeds the maximum of {} bytes",
                    self.limits.max_size
                )));
            }
            Some(length) => (self.part_size_for(length)?, length),
            None => (
                self.part_size_for(self.limits.max_deferred_size)?,
                self.limits.max_deferred_size,
            ),
        };
        self.create_record(new, part_size, max_length, concat).await
    }

    /// Writes a new upload's record and starts its multipart upload (or,
    /// when it is empty, writes its object at once).
    async fn create_record(
        &self,
        new: NewUpload,
        part_size: u64,
        max_length: u64,
        concat: Option<Concat>,
    ) -> Result<UploadInfo> {
        let id = UploadId::random();
        let object_key = format!("{}{id}", self.key_prefix);
        let content_type = new.metadata.as_ref().and_then(Metadata::content_type);
        let (multipart_id, state) = if new.length == Some(0) {
            self.objects
                .put_object(&object_key, content_type.as_deref(), bytes::Bytes::new())
                .await?;
            (None, UploadState::Completed)
        } else {
            let mp = self
                .objects
                .create_multipart(&object_key, content_type.as_deref())
                .await?;
            (Some(mp), UploadState::Receiving)
        };
        let info = UploadInfo {
            id,
            length: new.length,
            max_length,
            offset: 0,
            part_size,
            metadata: new.metadata.map(|m| m.raw().to_owned()),
            content_type,
            object_key,
            multipart_id,
            state,
            created_at: now_secs(),
            expires_at: None,
            concat,
        };
        let info = UploadInfo {
            expires_at: self.expiry_for(&info),
            ..info
        };
        if let Err(e) = self.state.create(&info).await {
            if let Some(mp) = &info.multipart_id
                && let Err(abort) = self.objects.abort_multipart(&info.object_key, mp).await
            {
                tracing::warn!(error = %abort, "could not abort an orphaned multipart upload");
            }
            return Err(e.into());
        }
        tracing::info!(upload = %info.id, length = ?info.length, part_size, "upload created");
        Ok(info)
    }

    fn part_size_for(&self, total: u64) -> Result<u64> {
        plan::part_size(total, self.limits.part_size, &self.limits.parts)
            .map_err(|e| Error::TooLarge(e.to_string()))
    }

    /// The upload's state for HEAD, in one state-store read.
    ///
    /// An upload whose bytes have all arrived but whose object is not yet
    /// assembled is finished here first, so HEAD never reports an upload as
    /// complete before its object exists. HEAD never waits for the lock: if
    /// another request holds it, the answer is 423, which clients retry.
    ///
    /// # Errors
    /// 404 for an unknown upload; 423 while it cannot be finished yet.
    pub async fn head(&self, id: &UploadId) -> Result<UploadInfo> {
        let info = self.get(id).await?;
        let unfinished_final = info.is_final() && info.state != UploadState::Completed;
        if !(info.all_bytes_received() || unfinished_final) || info.state == UploadState::Completed
        {
            return Ok(info);
        }
        let Some(guard) = self.locker.try_acquire(id).await? else {
            return Err(Error::busy());
        };
        // Re-read under the lock: another request may have finished it.
        let finished = match self.get(id).await {
            Ok(fresh) => self.finish(&guard, fresh).await,
            Err(e) => Err(e),
        };
        let finished = self.forget_if_lost(id, finished).await;
        guard.release().await;
        finished.map_err(|e| match e {
            Error::UploadLost(_) | Error::NotFound => e,
            e => {
                tracing::warn!(upload = %id, error = %e, "finishing on HEAD failed");
                Error::Locked("the upload is being finished; retry shortly".into())
            }
        })
    }

    /// Removes the state of an upload whose multipart upload the store lost,
    /// so every later request gets a plain 404 and the client starts over.
    async fn forget_if_lost<T>(&self, id: &UploadId, result: Result<T>) -> Result<T> {
        if let Err(Error::UploadLost(detail)) = &result {
            tracing::warn!(upload = %id, %detail, "the store lost this upload; removing its state");
            if let Err(e) = self.state.remove(id).await {
                tracing::warn!(upload = %id, error = %e, "could not remove a lost upload's state");
            }
        }
        result
    }

    /// A live upload's record: 404 (or 410) once it has expired, even
    /// before the reaper has removed it.
    async fn get(&self, id: &UploadId) -> Result<UploadInfo> {
        match self.state.get(id).await? {
            Some(info) if !info.expired(now_secs()) => Ok(info),
            Some(_) => Err(self.expired_error()),
            None if self.limits.expired_gone && self.state.is_gone(id).await? => Err(Error::Gone),
            None => Err(Error::NotFound),
        }
    }

    /// A finished upload, for download.
    ///
    /// # Errors
    /// 404 for an unknown upload; 409 while it is unfinished.
    pub async fn finished(&self, id: &UploadId) -> Result<UploadInfo> {
        let info = self.get(id).await?;
        if info.state != UploadState::Completed {
            let progress = match info.length {
                Some(length) => format!("{} of {length} bytes", info.offset),
                None => format!("{} bytes so far", info.offset),
            };
            return Err(Error::Conflict(format!(
                "the upload is not finished ({progress}); it can be downloaded once it is"
            )));
        }
        Ok(info)
    }

    /// The objects behind the seam, for streaming a download.
    pub fn objects(&self) -> &Arc<dyn ObjectStore> {
        &self.objects
    }

    /// Terminates an upload: aborts its multipart upload, deletes its object
    /// if it was finished, and removes all its state.
    ///
    /// # Errors
    /// 404 for an unknown upload; 423 if a request keeps holding it.
    pub async fn terminate(&self, id: &UploadId) -> Result<()> {
        let guard = self.locker.acquire(id, self.limits.lock_wait).await?;
        let result = match self.state.get(id).await {
            Ok(Some(info)) => self.remove_upload(&info).await,
            Ok(None) => Err(Error::NotFound),
            Err(e) => Err(e.into()),
        };
        guard.release().await;
        if result.is_ok() {
            tracing::info!(upload = %id, "upload terminated");
        }
        result
    }

    /// Aborts an upload's multipart upload, deletes its object if it has
    /// one and removes its state. The caller holds its lock.
    async fn remove_upload(&self, info: &UploadInfo) -> Result<()> {
        let id = &info.id;
        if let Some(mp) = &info.multipart_id {
            self.objects.abort_multipart(&info.object_key, mp).await?;
        }
        if info.state != UploadState::Receiving {
            self.objects.delete_object(&info.object_key).await?;
        }
        self.state.remove(id).await?;
        Ok(())
    }
}
