//! PATCH: streaming a request body into parts with bounded memory.
//!
//! The body is read chunk by chunk and cut on the global part grid
//! ([`plan::Cutter`]). Each full part is handed over a bounded channel to a
//! committer task, which uploads up to `parts_in_flight` parts at once while
//! more bytes arrive, and commits them to the state store strictly in order,
//! each with a compare-and-set of the offset. Bytes past the last full part
//! join the tail when the body ends, in one more commit. So an acknowledged
//! byte is always durable (decisions.md 4), and at most
//! `parts_in_flight + 2` part buffers exist per PATCH, whatever its size
//! (decisions.md 7); a global budget caps them across all requests.
//!
//! If the client goes away, the holder is asked to release the upload, or the
//! body stalls, reading stops and everything received so far is kept: full
//! parts are still committed and the rest joins the tail, as the spec asks
//! ("store as much of the received data as possible").

use super::UploadService;
use super::commit::{CommitCtx, PartJob, commit_parts};
use super::filling::Filling;
use super::model::{UploadId, UploadInfo, UploadState};
use super::plan::{self, Cutter};
use super::verify::{Verifier, Verify};
use crate::error::{Error, Result};
use crate::store::{Change, Commit, LockGuard};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

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

/// Why reading the body stopped.
enum Ended {
    Complete,
    ClientGone(BodyError),
    Released,
    IdleTimeout,
    Overflow,
    Failed(Error),
}

impl UploadService {
    /// Appends a PATCH body to an upload, then finishes it if it is complete.
    ///
    /// # Errors
    /// 404, 409 on an offset mismatch, 413 past the length, 423 when the
    /// upload stays busy, store failures. Bytes committed before an error
    /// stay committed; HEAD reports them.
    ///
    /// The work runs in its own task: if the caller's future is dropped (a
    /// server cancels a request whose client reset the stream), the task
    /// still reads the body to its end or error and commits what arrived.
    pub async fn append(
        self: &Arc<Self>,
        id: &UploadId,
        request: AppendRequest,
    ) -> Result<UploadInfo> {
        // Admission: past the cap on uploads being written, refuse at once,
        // before a byte is read (429: Uppy pauses its whole queue on it).
        let Ok(slot) = self.active.clone().try_acquire_owned() else {
            self.counters.refused_active.fetch_add(1, Ordering::Relaxed);
            return Err(Error::TooManyRequests(format!(
                "more than {} uploads are being written; retry shortly",
                self.limits.max_active_appends
            )));
        };
        let (service, id) = (self.clone(), id.clone());
        tokio::spawn(async move {
            let _slot = slot;
            service.append_here(&id, request).await
        })
        .await
        .map_err(|e| Error::Internal(format!("append task failed: {e}")))?
    }

    async fn append_here(&self, id: &UploadId, request: AppendRequest) -> Result<UploadInfo> {
        let guard = self.locker.acquire(id, self.limits.lock_wait).await?;
        let mut result = self.append_locked(id, &guard, request).await;
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
    ) -> Result<UploadInfo> {
        let mut info = self.get(id).await?;
        if info.is_final() {
            return Err(Error::Forbidden(
                "a final upload of a concatenation cannot be patched".into(),
            ));
        }
        if request.offset != info.offset {
            return Err(Error::OffsetMismatch {
                expected: info.offset,
                got: request.offset,
            });
        }
        // Check the body against the length it will have before changing
        // anything: a refused request leaves the upload as it was.
        let length = request.declared_length.or(info.length);
        let room = length
            .unwrap_or(info.max_length)
            .saturating_sub(info.offset);
        if let Some(sent) = request.content_length.filter(|&sent| sent > room) {
            return Err(Error::TooLarge(format!(
                "body of {sent} bytes exceeds the {room} bytes left in this upload"
            )));
        }
        if let Some(length) = request.declared_length {
            self.declare_length(guard, &mut info, length).await?;
        }
        if info.state == UploadState::Receiving {
            let (offset, received) = self.receive(guard, &info, request).await;
            info.offset = offset;
            received?;
        }
        if info.all_bytes_received() {
            info = self.finish(guard, info).await?;
        }
        Ok(info)
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
            Some(known) => {
                return Err(Error::BadRequest(format!(
                    "Upload-Length is already {known} and cannot change"
                )));
            }
            None => {}
        }
        if length < info.offset {
            return Err(Error::BadRequest(format!(
                "Upload-Length {length} is below the {} bytes already received",
                info.offset
            )));
        }
        if length > info.max_length {
            return Err(Error::TooLarge(format!(
                "Upload-Length {length} exceeds the {} bytes a deferred upload may reach",
                info.max_length
            )));
        }
        let tail = plan::tail_len(info.offset, info.part_size);
        self.state
            .commit(
                &info.id,
                guard.token(),
                Commit {
                    expected_offset: info.offset,
                    expected_tail_len: tail,
                    new_offset: info.offset,
                    change: Change::SetLength(length),
                },
            )
            .await?;
        info.length = Some(length);
        Ok(())
    }

    /// Streams the body into parts and the tail. Returns the offset reached
    /// (always what is committed) and the error that stopped it, if any.
    async fn receive(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        mut request: AppendRequest,
    ) -> (u64, Result<()>) {
        let start = info.offset;
        let start_tail = plan::tail_len(start, info.part_size);
        let Some(multipart_id) = info.multipart_id.clone() else {
            return (start, Err(Error::Internal("no multipart upload".into())));
        };
        let ctx = CommitCtx {
            objects: self.objects.clone(),
            state: self.state.clone(),
            id: info.id.clone(),
            key: info.object_key.clone(),
            multipart_id,
            token: guard.token().to_owned(),
            in_flight: self.limits.parts_in_flight.max(1),
        };
        let mut verifier = Verifier::new(std::mem::take(&mut request.verify));
        let (verdict_tx, verdict_rx) = match verifier {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let (tx, rx) = mpsc::channel(1);
        let committer = tokio::spawn(commit_parts(ctx, rx, start, start_tail, verdict_rx));
        let mut filling = Filling::default();
        let ended = self
            .read_body(guard, info, request, &tx, &mut filling, &mut verifier)
            .await;
        // Its budget share stays held until the bytes are committed.
        let (pending, _budget) = filling.into_new_bytes();
        drop(tx);
        // A checked body is judged whole; a cut one is not kept at all.
        let judged = match (verifier, &ended) {
            (None, _) => Ok(()),
            (Some(verifier), Ended::Complete) => verifier.verdict(),
            (Some(_), _) => Err(Error::busy()),
        };
        if let Some(tx) = verdict_tx {
            let _ = tx.send(judged.is_ok());
        }
        let (offset, tail, failure) = committer
            .await
            .unwrap_or_else(|e| (start, start_tail, Some(Error::Internal(e.to_string()))));
        if let Some(e) = failure {
            return (offset, Err(e));
        }
        let complete = matches!(ended, Ended::Complete);
        let outcome = match ended {
            Ended::Overflow => {
                return (
                    offset,
                    Err(Error::TooLarge("body runs past the upload's length".into())),
                );
            }
            Ended::Failed(e) => return (offset, Err(e)),
            Ended::ClientGone(e) => {
                tracing::info!(upload = %info.id, error = %e.0, "client went away; keeping what arrived");
                Ok(())
            }
            Ended::IdleTimeout => {
                tracing::info!(upload = %info.id, "body stalled; keeping what arrived");
                Ok(())
            }
            Ended::Released => {
                tracing::info!(upload = %info.id, "released the upload to another request");
                Ok(())
            }
            Ended::Complete => Ok(()),
        };
        if let Err(e) = judged {
            tracing::info!(upload = %info.id, error = %e, "checked body not kept");
            return if complete {
                (offset, Err(e))
            } else {
                (offset, outcome)
            };
        }
        if pending.is_empty() {
            return (offset, outcome);
        }
        let added = pending.len() as u64;
        let appended = self
            .state
            .commit(
                &info.id,
                guard.token(),
                Commit {
                    expected_offset: offset,
                    expected_tail_len: tail,
                    new_offset: offset + added,
                    change: Change::AppendTail(pending.freeze()),
                },
            )
            .await;
        match appended {
            Ok(()) => (offset + added, outcome),
            Err(e) => (offset, Err(e.into())),
        }
    }

    /// Reads the body into `filling`, sending each full part to the committer.
    async fn read_body(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        request: AppendRequest,
        parts: &mpsc::Sender<PartJob>,
        filling: &mut Filling,
        verifier: &mut Option<Verifier>,
    ) -> Ended {
        let part_size = info.part_size;
        let start = info.offset;
        let start_tail = plan::tail_len(start, part_size);
        let first_part = plan::part_number(start, part_size);
        let limit = info.length.unwrap_or(info.max_length);
        let mut body = request.body;
        let mut cutter = Cutter::new(part_size, start);
        loop {
            let next = tokio::select! {
                biased;
                () = guard.stop_signal().cancelled() => {
                    self.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                    return Ended::Released;
                }
                () = self.stopping.cancelled() => return Ended::Released,
                next = tokio::time::timeout(self.limits.body_idle_timeout, body.next()) => next,
            };
            let mut chunk = match next {
                Err(_) => return Ended::IdleTimeout,
                Ok(None) => return Ended::Complete,
                Ok(Some(Err(e))) => return Ended::ClientGone(e),
                Ok(Some(Ok(chunk))) => chunk,
            };
            if cutter.position() + chunk.len() as u64 > limit {
                return Ended::Overflow;
            }
            if let Some(verifier) = verifier {
                verifier.update(&chunk);
            }
            while !chunk.is_empty() {
                let piece = cutter.take(chunk.len() as u64);
                if filling.budget.is_none() {
                    // A new part buffer: reserve its share of the budget and
                    // allocate once, as much as this part (or body) will need.
                    let at = cutter.position() - piece.len;
                    let room = part_size - at % part_size;
                    let expected = request
                        .content_length
                        .map_or(room, |cl| room.min((start + cl).saturating_sub(at)));
                    match self.reserve(part_size).await {
                        Some(permit) => filling.budget = Some(permit),
                        None => {
                            self.counters.refused_budget.fetch_add(1, Ordering::Relaxed);
                            return Ended::Failed(Error::Unavailable(
                                "the server's buffer budget is exhausted; retry shortly".into(),
                            ));
                        }
                    }
                    let room_for_tail = if piece.part == first_part {
                        start_tail
                    } else {
                        0
                    };
                    filling.start(expected, room_for_tail);
                }
                filling
                    .bytes
                    .extend_from_slice(&chunk.split_to(piece.len as usize));
                if !piece.fills_part {
                    continue;
                }
                let consumes_tail = piece.part == first_part && start_tail > 0;
                let new_bytes = (filling.bytes.len() - filling.placeholder) as u64;
                if consumes_tail {
                    match self.state.read_tail(&info.id, start_tail).await {
                        Ok(tail) => {
                            if let Err(e) = filling.fill_placeholder(&tail) {
                                return Ended::Failed(e);
                            }
                        }
                        Err(e) => return Ended::Failed(e.into()),
                    }
                }
                let (data, budget) = filling.take_part();
                let job = PartJob {
                    number: piece.part,
                    data,
                    new_bytes,
                    consumes_tail,
                    _budget: budget,
                };
                if parts.send(job).await.is_err() {
                    // The committer stopped on an error; it reports it.
                    return Ended::Complete;
                }
            }
        }
    }

    /// Waits a bounded time for room in the global buffer budget for one
    /// part; `None` when there is none (the PATCH then stops, keeps what it
    /// has and answers 503 with Retry-After).
    async fn reserve(&self, part_size: u64) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(part_size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.limits.buffer_budget_kib);
        let acquire = self.budget.clone().acquire_many_owned(kib);
        match tokio::time::timeout(self.limits.budget_wait, acquire).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}
