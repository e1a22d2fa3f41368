//! The reading stage of a PATCH: the body is read chunk by chunk, hashed if
//! it is checked, and cut on the global part grid; each full part is handed
//! to the committer. Reading ends when the body does, or when it must stop
//! early: the client went away or stalled, another request asked for the
//! upload, the server is shutting down, or a refusal.

use super::buffer::PartBuffer;
use super::commit::PartJob;
use super::verify::Verifier;
use super::{BodyError, BodyStream};
use crate::upload::model::{PartNumber, UploadInfo};
use crate::upload::notify::ProgressHook;
use crate::upload::plan::{self, Cutter, Piece};
use crate::upload::ports::LockGuard;
use crate::upload::{Error, SizeExceeded, UploadService};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

/// Why reading the body stopped.
pub(super) enum Ended {
    /// The body arrived whole.
    Complete,
    /// Reading stopped early; every byte received is kept.
    Cut(Cut),
    /// Reading stopped on a refusal; what was committed so far stays.
    Refused(Error),
    /// The committer stopped taking parts: it failed, and its report says why.
    CommitterStopped,
}

/// Why a body was cut short.
pub(super) enum Cut {
    ClientGone(BodyError),
    IdleTimeout,
    /// Another request asked for the upload.
    Takeover,
    /// The server is shutting down.
    Shutdown,
    /// The application's post-receive hook asked to stop the upload.
    Stopped,
}

impl Cut {
    /// Says in the log why the body was cut.
    pub(super) fn log(&self, upload: &UploadInfo) {
        let id = &upload.id;
        match self {
            Self::ClientGone(e) => {
                tracing::info!(upload = %id, error = %e.0, "client went away; keeping what arrived");
            }
            Self::IdleTimeout => tracing::info!(upload = %id, "body stalled; keeping what arrived"),
            Self::Takeover => {
                tracing::info!(upload = %id, "released the upload to another request")
            }
            Self::Shutdown => tracing::info!(upload = %id, "shutting down; keeping what arrived"),
            Self::Stopped => tracing::info!(upload = %id, "the application stopped the upload"),
        }
    }
}

/// Reads one PATCH body into part buffers.
pub(super) struct Reader<'a> {
    service: &'a UploadService,
    guard: &'a LockGuard,
    upload: &'a UploadInfo,
    content_length: Option<u64>,
    /// The most bytes the upload may reach.
    limit: u64,
    cutter: Cutter,
    /// The part being built.
    pub buffer: PartBuffer,
    /// This PATCH's parts on their way to the store, each holding one of
    /// [`OWN_PARTS`] permits.
    own: Arc<Semaphore>,
    /// Whether this PATCH's last part had to wait for a slot: the store is
    /// taking parts slower than the PATCHes bring them.
    saturated: bool,
}

/// Permits counting one PATCH's parts in flight (far more than it can have).
const OWN_PARTS: u32 = 1 << 16;

impl<'a> Reader<'a> {
    pub fn new(
        service: &'a UploadService,
        guard: &'a LockGuard,
        upload: &'a UploadInfo,
        content_length: Option<u64>,
    ) -> Self {
        Self {
            service,
            guard,
            upload,
            content_length,
            limit: upload.length.unwrap_or(upload.max_length),
            cutter: Cutter::new(upload.part_size, upload.offset),
            buffer: PartBuffer::default(),
            own: Arc::new(Semaphore::new(OWN_PARTS as usize)),
            saturated: false,
        }
    }

    /// Reads `body` to its end (or until it must stop), sending each full
    /// part to `parts` and feeding every byte to `verifier`.
    pub async fn read(
        &mut self,
        body: &mut BodyStream,
        parts: &mpsc::Sender<PartJob>,
        verifier: &mut Option<Verifier>,
        hook: &mut ProgressHook,
    ) -> Ended {
        loop {
            hook.report(self.upload, self.cutter.position(), false);
            let chunk = match self.next_chunk(body, &hook.stop).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => return Ended::Complete,
                Err(ended) => return ended,
            };
            if self.cutter.position() + chunk.len() as u64 > self.limit {
                return Ended::Refused(SizeExceeded::PastLength.into());
            }
            if let Some(verifier) = verifier {
                verifier.update(&chunk);
            }
            if let Err(ended) = self.cut(chunk, parts).await {
                return ended;
            }
        }
    }

    /// The next chunk, `None` at the end of the body, or why to stop.
    async fn next_chunk(
        &self,
        body: &mut BodyStream,
        stop: &CancellationToken,
    ) -> Result<Option<Bytes>, Ended> {
        let service = self.service;
        let next = tokio::select! {
            biased;
            () = self.guard.stop_signal().cancelled() => {
                service.counters.takeovers.fetch_add(1, Ordering::Relaxed);
                return Err(Ended::Cut(Cut::Takeover));
            }
            () = service.stopping.cancelled() => return Err(Ended::Cut(Cut::Shutdown)),
            () = stop.cancelled() => return Err(Ended::Cut(Cut::Stopped)),
            next = tokio::time::timeout(service.limits.body_idle_timeout, body.next()) => next,
        };
        match next {
            Err(_) => Err(Ended::Cut(Cut::IdleTimeout)),
            Ok(None) => Ok(None),
            Ok(Some(Err(e))) => Err(Ended::Cut(Cut::ClientGone(e))),
            Ok(Some(Ok(chunk))) => {
                let len = chunk.len() as u64;
                service
                    .counters
                    .bytes_received
                    .fetch_add(len, Ordering::Relaxed);
                Ok(Some(chunk))
            }
        }
    }

    /// Cuts `chunk` on the part grid into the part buffer, sending each part
    /// it completes.
    async fn cut(&mut self, mut chunk: Bytes, parts: &mpsc::Sender<PartJob>) -> Result<(), Ended> {
        while !chunk.is_empty() {
            let piece = self.cutter.take(chunk.len() as u64);
            if !self.buffer.is_started() {
                self.start_part(piece).await?;
            }
            self.buffer
                .bytes
                .extend_from_slice(&chunk.split_to(piece.len as usize));
            if piece.fills_part {
                self.send_part(piece.part, parts).await?;
            }
        }
        Ok(())
    }

    /// Reserves a part's share of the budget and allocates its buffer once,
    /// as large as this part (or what is left of the body) needs.
    async fn start_part(&mut self, piece: Piece) -> Result<(), Ended> {
        let part_size = self.upload.part_size;
        let at = self.cutter.position() - piece.len;
        let room = part_size - at % part_size;
        let expected = self.content_length.map_or(room, |sent| {
            room.min((self.upload.offset + sent).saturating_sub(at))
        });
        if let Some(share) = self.share() {
            self.await_share(share).await;
        }
        let Some(permit) = self.service.reserve(part_size).await else {
            let counters = &self.service.counters;
            counters.refused_budget.fetch_add(1, Ordering::Relaxed);
            return Err(Ended::Refused(Error::BufferFull));
        };
        self.buffer.budget = Some(permit);
        // Room for the stored tail only if this body may complete the part:
        // one that ends short of it (its Content-Length says so) adds to the
        // tail and needs no copy of it, nor the zeroed room.
        let room_for_tail = if self.consumes_tail(piece.part) && expected == room {
            self.start_tail()
        } else {
            0
        };
        self.buffer
            .start(expected, room_for_tail, &self.service.part_pool);
        Ok(())
    }

    /// Hands the full part `part` to the committer, with the stored tail in
    /// front if the part begins with it.
    async fn send_part(&mut self, part: u32, parts: &mpsc::Sender<PartJob>) -> Result<(), Ended> {
        let number = PartNumber::new(part)
            .ok_or_else(|| Ended::Refused(Error::Internal(format!("part number {part}"))))?;
        let consumes_tail = self.consumes_tail(part);
        let new_bytes = self.buffer.new_bytes();
        if consumes_tail {
            let state = &self.service.state;
            let tail = state.read_tail(&self.upload.id, self.start_tail()).await;
            let filled = tail
                .map_err(Error::from)
                .and_then(|tail| self.buffer.fill_placeholder(&tail));
            filled.map_err(Ended::Refused)?;
        }
        let slot = self.slot().await?;
        let uncounted = |_| Ended::Refused(Error::Internal("too many parts in flight".into()));
        let own = self.own.clone().try_acquire_owned().map_err(uncounted)?;
        let (data, budget) = self.buffer.take_part();
        let job = PartJob {
            number,
            data,
            new_bytes,
            consumes_tail,
            _budget: budget,
            _slot: slot,
            _own: own,
        };
        parts.send(job).await.map_err(|_| Ended::CommitterStopped)
    }

    /// A slot among the parts in flight across all PATCHes for a full part,
    /// noting whether it had to be waited for.
    async fn slot(&mut self) -> Result<OwnedSemaphorePermit, Ended> {
        let slots = &self.service.part_slots;
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            self.saturated = false;
            return Ok(slot);
        }
        self.saturated = true;
        // Waits even if the body is cut meanwhile: the part is full, and
        // slots free as other parts finish (or their store requests time
        // out).
        let slot = slots.clone().acquire_owned().await;
        slot.map_err(|_| Ended::Refused(Error::Internal("part slots closed".into())))
    }

    /// This PATCH's share of the slots, at least one, when it must keep to
    /// it: when its last part waited for a slot (the store takes parts
    /// slower than PATCHes bring them), or when more PATCHes are being
    /// written than there are slots.
    fn share(&self) -> Option<u32> {
        let total = self.service.limits.parts_in_flight_total.max(1);
        let writers = self.service.active_appends().max(1);
        if !self.saturated && writers <= total {
            return None;
        }
        Some(u32::try_from((total / writers).max(1)).unwrap_or(u32::MAX))
    }

    /// Waits to start the next part until fewer than `share` of this
    /// PATCH's parts are in flight. A part waiting for a slot keeps the
    /// store as busy as another behind it would, which would only hold a
    /// second buffer.
    async fn await_share(&self, share: u32) {
        let in_flight_below_share = OWN_PARTS - share.saturating_sub(1).min(OWN_PARTS - 1);
        // Granted once at most `share - 1` parts hold a permit; given back
        // at once.
        let _ = self.own.acquire_many(in_flight_below_share).await;
    }

    /// Bytes of the upload's offset in the tail when this PATCH began.
    fn start_tail(&self) -> u64 {
        plan::tail_len(self.upload.offset, self.upload.part_size)
    }

    /// Whether `part` begins with the stored tail: the first part this PATCH
    /// writes, when the upload stopped inside it.
    fn consumes_tail(&self, part: u32) -> bool {
        part == plan::part_number(self.upload.offset, self.upload.part_size)
            && self.start_tail() > 0
    }
}
