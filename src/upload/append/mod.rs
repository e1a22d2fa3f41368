//! PATCH: streaming a request body into parts with bounded memory.
//!
//! The pipeline runs in named stages:
//! 1. **admission** ([`UploadService::append`]): a cap on uploads written at
//!    once, checked before a byte is read; then the upload's lock, and the
//!    checks of offset, length and room that leave a refused upload as it was;
//! 2. **reading** ([`read`]): the body is read chunk by chunk and cut on the
//!    global part grid, until it ends, is cut off, or the upload is taken
//!    over or the server shuts down;
//! 3. **part buffering** ([`buffer`]): each part is built in one buffer that
//!    holds a share of a global budget until its bytes are committed;
//! 4. **committing** ([`commit`]): a committer task uploads full parts, several
//!    at once, and commits them strictly in order, each with a compare-and-set
//!    of the offset; the bytes past the last full part join the tail at the end;
//! 5. **checksum verdict** ([`verify`]): a checked body's commits are held until
//!    the whole body is judged, and dropped unless it matches.
//!
//! So an acknowledged byte is always durable, and at most
//! `parts_in_flight + 2` part buffers exist per PATCH, whatever its size.
//! Across all PATCHes, at most `parts_in_flight_total` parts are on their way
//! to the store: a PATCH whose next part is full waits for a slot before it
//! reads on. While slots are short (this PATCH waited for one, or more
//! PATCHes are being written than there are slots), a PATCH starts its next
//! part only with fewer than its share of the slots in flight, at least one:
//! so with many fast uploads each holds about one part's buffer, not one
//! waiting and others in flight. A stored part's buffer goes back to a pool
//! for the next part. If
//! the client goes away, the body stalls, another request takes the upload
//! over or the server shuts down, reading stops and everything received so
//! far is kept, as the spec asks ("store as much of the received data as
//! possible").

pub(crate) mod buffer;
mod commit;
mod read;
mod receive;
mod verify;

pub use verify::{TrailerSlot, Verify};

use super::access::{Action, Caller};
use super::error::HookRefusal;
use super::model::{UploadId, UploadInfo, UploadState};
use super::notify::ProgressHook;
use super::plan;
use super::ports::{Change, Commit, LockGuard, PartsFrom};
use super::{Error, Result, SizeExceeded, UploadService};
use bytes::Bytes;
use commit::CommitCtx;
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A request body, as the core sees it: no HTTP types.
pub type BodyStream = Pin<Box<dyn Stream<Item = std::result::Result<Bytes, BodyError>> + Send>>;

/// The client's body broke off (disconnect, reset, malformed framing).
#[derive(Debug, Clone)]
pub struct BodyError(pub String);

/// What a PATCH asks for.
pub struct AppendRequest {
    /// `Upload-Offset`: where the client believes the upload stands.
    pub offset: u64,
    /// `Upload-Length`, to settle a deferred length.
    pub declared_length: Option<u64>,
    /// `Content-Length`, when the body has one.
    pub content_length: Option<u64>,
    pub body: BodyStream,
    /// The body's checksum, if the client sent one.
    pub verify: Verify,
}

impl UploadService {
    /// Appends a PATCH body to an upload, then finishes it if it is complete.
    ///
    /// # Errors
    /// [`Error::TooManyWriters`] before anything is read; not found, offset
    /// mismatch, size exceeded, busy, store failures. Bytes committed before
    /// an error stay committed; HEAD reports them.
    ///
    /// The work runs in its own task: if the caller's future is dropped (a
    /// server cancels a request whose client reset the stream), the task
    /// still reads the body to its end or error and commits what arrived.
    pub async fn append(
        self: &Arc<Self>,
        caller: &Caller,
        id: &UploadId,
        request: AppendRequest,
    ) -> Result<UploadInfo> {
        // Authorized before the lock is asked for, so no stranger can make
        // the upload's writer let go, and before a byte is read.
        self.authorized(caller, Action::Write, id).await?;
        // Admission: past the cap on uploads being written, refuse at once,
        // before a byte is read.
        let Ok(slot) = self.active.clone().try_acquire_owned() else {
            self.counters.refused_active.fetch_add(1, Ordering::Relaxed);
            return Err(Error::TooManyWriters {
                limit: self.limits.max_active_appends,
            });
        };
        let (service, id) = (self.clone(), id.clone());
        let progress = ProgressHook::new(self.clone(), caller.clone(), request.offset);
        let work = async move {
            let _slot = slot;
            service.append_here(&id, request, progress).await
        };
        // The request's span goes along, so its log lines carry its id.
        tokio::spawn(tracing::Instrument::in_current_span(work))
            .await
            .map_err(|e| Error::Internal(format!("append task failed: {e}")))?
    }

    async fn append_here(
        &self,
        id: &UploadId,
        request: AppendRequest,
        mut progress: ProgressHook,
    ) -> Result<UploadInfo> {
        let guard = self.locker.acquire(id, self.limits.lock_wait).await?;
        let mut result = self.append_locked(id, &guard, request, &mut progress).await;
        if let Some(answer) = progress.stopped() {
            // The lock is still held, as removing asks.
            result = self.stop_upload(id, progress.caller(), answer).await;
        }
        if let Ok(info) = &mut result
            && let Err(e) = self.touch(info).await
        {
            tracing::warn!(upload = %id, error = %e, "could not extend the upload's expiry");
        }
        let result = self.forget_if_lost(id, result).await;
        guard.release().await;
        result
    }

    async fn append_locked(
        &self,
        id: &UploadId,
        guard: &LockGuard,
        request: AppendRequest,
        hook: &mut ProgressHook,
    ) -> Result<UploadInfo> {
        let mut info = self.get(id).await?;
        admit(&info, &request)?;
        if let Some(length) = request.declared_length {
            self.declare_length(guard, &mut info, length).await?;
        }
        if info.state == UploadState::Receiving {
            if info.multipart_id.is_none() && may_fill_a_part(&info, &request) {
                self.start_multipart(guard, &mut info).await?;
            }
            let received = self.receive(guard, &info, request, hook).await;
            hook.report(&info, received.progress.offset, true);
            info.offset = received.progress.offset;
            received.result?;
        }
        if hook.stop.is_cancelled() {
            return Ok(info);
        }
        if info.all_bytes_received() {
            info = self.finish(guard, info, hook.caller()).await?;
        }
        Ok(info)
    }

    /// Ends an upload the application stopped with post-receive: it is
    /// terminated, and the client is told why.
    async fn stop_upload(
        &self,
        id: &UploadId,
        caller: &Caller,
        answer: Option<super::access::Answer>,
    ) -> Result<UploadInfo> {
        tracing::info!(upload = %id, "the application stopped this upload");
        match self.state.get(id).await? {
            Some(info) => self.remove_upload(&info, Some(caller)).await?,
            None => return Err(Error::NotFound),
        }
        super::bump(&self.counters.uploads_terminated);
        Err(HookRefusal::UploadStopped(answer).into())
    }

    /// Sets the length of a deferred upload (or accepts it again unchanged).
    async fn declare_length(
        &self,
        guard: &LockGuard,
        info: &mut UploadInfo,
        length: u64,
    ) -> Result<()> {
        match info.length {
            Some(known) if known == length => return Ok(()),
            Some(known) => return Err(Error::LengthAlreadySet { known }),
            None => {}
        }
        if length < info.offset {
            return Err(Error::LengthBelowOffset {
                length,
                offset: info.offset,
            });
        }
        if length > info.max_length {
            let max = info.max_length;
            return Err(SizeExceeded::DeferredLength { length, max }.into());
        }
        let commit = Commit {
            expected_offset: info.offset,
            expected_tail_len: plan::tail_len(info.offset, info.part_size),
            new_offset: info.offset,
            change: Change::SetLength(length),
            events: Vec::new(),
        };
        self.state.commit(&info.id, guard.token(), commit).await?;
        info.length = Some(length);
        Ok(())
    }

    /// Starts `info`'s multipart upload and records it, before its first
    /// part is cut.
    async fn start_multipart(&self, guard: &LockGuard, info: &mut UploadInfo) -> Result<()> {
        let content_type = info.content_type.as_deref();
        let mp = self
            .objects
            .create_multipart(&info.object_key, content_type, PartsFrom::Uploads)
            .await?;
        let commit = Commit {
            expected_offset: info.offset,
            expected_tail_len: plan::tail_len(info.offset, info.part_size),
            new_offset: info.offset,
            change: Change::SetMultipart(mp.clone()),
            events: Vec::new(),
        };
        if let Err(e) = self.state.commit(&info.id, guard.token(), commit).await {
            if let Err(abort) = self.objects.abort_multipart(&info.object_key, &mp).await {
                tracing::warn!(upload = %info.id, error = %abort, "could not abort an unrecorded multipart upload");
            }
            return Err(e.into());
        }
        info.multipart_id = Some(mp);
        Ok(())
    }

    /// What the committer needs to write `info`'s parts under `guard`. An
    /// upload still without a multipart upload cuts no part (see
    /// [`may_fill_a_part`]); if one came, it is refused.
    fn commit_ctx(&self, guard: &LockGuard, info: &UploadInfo) -> Result<CommitCtx> {
        let multipart_id = info.multipart_id.clone();
        Ok(CommitCtx {
            objects: self.objects.clone(),
            state: self.state.clone(),
            id: info.id.clone(),
            key: info.object_key.clone(),
            multipart_id,
            token: guard.token().clone(),
            in_flight: self.limits.parts_in_flight.max(1),
            pool: self.part_pool.clone(),
        })
    }
}

/// Whether `request` may complete a part of `info`: it reaches the next
/// boundary of the part grid, or its length is unknown.
fn may_fill_a_part(info: &UploadInfo, request: &AppendRequest) -> bool {
    let next_boundary = (info.offset / info.part_size + 1) * info.part_size;
    request
        .content_length
        .is_none_or(|sent| info.offset + sent >= next_boundary)
}

/// The checks that refuse a PATCH before anything changes: a refused request
/// leaves the upload as it was.
fn admit(info: &UploadInfo, request: &AppendRequest) -> Result<()> {
    if info.is_final() {
        return Err(Error::FinalIsReadOnly);
    }
    if request.offset != info.offset {
        return Err(Error::OffsetMismatch {
            expected: info.offset,
            got: request.offset,
        });
    }
    // Check the body against the length it will have.
    let length = request.declared_length.or(info.length);
    let room = length
        .unwrap_or(info.max_length)
        .saturating_sub(info.offset);
    match request.content_length {
        Some(sent) if sent > room => Err(SizeExceeded::Body { sent, room }.into()),
        _ => Ok(()),
    }
}
