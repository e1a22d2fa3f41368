//! Raising events: the core's side of the [`Application`] port.
//!
//! Durable events are built here and handed to the state store with the
//! change they report; blocking hooks are asked here, and a hook that gives
//! no usable answer stops what it guards ([`HookRefusal::Unavailable`]),
//! never opens it. post-receive is sent in the background: it reports
//! progress, and only its `StopUpload` matters.

use super::access::Caller;
use super::error::HookRefusal;
use super::events::{Event, EventBody, FileInfo, HookKind, HttpRequest, Verdict, new_event_id};
use super::model::UploadInfo;
use super::{Result, UploadService};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

impl UploadService {
    /// The event of hook `kind` for `info`, caused by `caller`.
    pub(super) fn event(&self, kind: HookKind, info: &UploadInfo, caller: &Caller) -> Event {
        Event {
            kind,
            body: EventBody {
                upload: FileInfo::of(info, &self.storage),
                http_request: HttpRequest::of(caller),
            },
            id: new_event_id(),
        }
    }

    /// The durable event of `kind` for the outbox, if the application wants it.
    pub(super) fn announce(
        &self,
        kind: HookKind,
        info: &UploadInfo,
        caller: &Caller,
    ) -> Vec<Event> {
        if self.app.wants(kind) {
            vec![self.event(kind, info, caller)]
        } else {
            Vec::new()
        }
    }

    /// Asks blocking hook `event.kind`; an empty verdict if it is not wanted.
    ///
    /// # Errors
    /// [`HookRefusal::Unavailable`] when the application gave no usable answer.
    pub(super) async fn ask(&self, event: Event) -> Result<Verdict> {
        if !self.app.wants(event.kind) {
            return Ok(Verdict::default());
        }
        self.app.send(&event).await.map_err(|e| {
            tracing::warn!(hook = %event.kind, error = %e, "a blocking hook failed");
            HookRefusal::Unavailable {
                kind: event.kind,
                detail: e.0,
            }
            .into()
        })
    }
}

/// post-receive for one PATCH: sent at most once per interval while the
/// body is read, and at its end, only when the offset moved. Its
/// `StopUpload` cancels `stop`, which ends the PATCH.
pub(super) struct ProgressHook {
    service: Arc<UploadService>,
    caller: Caller,
    /// Whether the application wants post-receive at all, asked once.
    wanted: bool,
    last_sent: Option<Instant>,
    last_offset: u64,
    /// Cancelled when the application asked to stop the upload.
    pub stop: CancellationToken,
    /// The response the application chose with its `StopUpload`.
    pub answer: Arc<std::sync::Mutex<Option<super::access::Answer>>>,
}

impl std::fmt::Debug for ProgressHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressHook")
            .field("last_offset", &self.last_offset)
            .finish_non_exhaustive()
    }
}

impl ProgressHook {
    /// The caller of the PATCH.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// Whether the application asked to stop, and the response it chose.
    pub fn stopped(&self) -> Option<Option<super::access::Answer>> {
        self.stop
            .is_cancelled()
            .then(|| self.answer.lock().ok().and_then(|a| a.clone()))
    }

    /// Progress of a PATCH that starts at `offset`.
    pub fn new(service: Arc<UploadService>, caller: Caller, offset: u64) -> Self {
        Self {
            wanted: service.app.wants(HookKind::PostReceive),
            service,
            caller,
            last_sent: None,
            last_offset: offset,
            stop: CancellationToken::new(),
            answer: Arc::default(),
        }
    }

    /// Reports `info` at `offset` if the interval has passed (or `force`)
    /// and the offset moved.
    pub fn report(&mut self, info: &UploadInfo, offset: u64, force: bool) {
        if !self.wanted || offset == self.last_offset {
            return;
        }
        let service = &self.service;
        let due = self
            .last_sent
            .is_none_or(|at| at.elapsed() >= service.limits.progress_interval);
        if !(due || force) {
            return;
        }
        self.last_sent = Some(Instant::now());
        self.last_offset = offset;
        let info = UploadInfo {
            offset,
            ..info.clone()
        };
        let event = service.event(HookKind::PostReceive, &info, &self.caller);
        let (app, stop, answer) = (service.app.clone(), self.stop.clone(), self.answer.clone());
        tokio::spawn(async move {
            match app.send(&event).await {
                Ok(verdict) if verdict.stop_upload => {
                    if let Ok(mut slot) = answer.lock() {
                        *slot = verdict.response;
                    }
                    stop.cancel();
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "post-receive not delivered"),
            }
        });
    }
}
