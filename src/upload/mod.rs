//! The upload core: creation, status, appending, finishing and termination.
//!
//! [`UploadService`] decides offsets, parts and completion, and talks to the
//! outside world only through its own ports ([`ports::ObjectStore`],
//! [`ports::StateStore`], [`ports::Locker`]), which the adapters of the
//! `store` module implement. It knows nothing of HTTP: a protocol layer (the
//! `http` module, for tus 1.0) turns requests into calls here, and the
//! core's [`Error`]s, named by cause, into responses.

pub mod access;
mod append;
mod concat;
mod concat_plan;
mod create;
pub mod deliver;
mod error;
pub mod events;
mod expiry;
mod finish;
pub mod health;
mod limits;
pub mod model;
mod notify;
pub mod plan;
pub mod ports;
mod status;
#[cfg(test)]
mod tests;

pub use append::{AppendRequest, BodyError, BodyStream, TrailerSlot, Verify};
pub use concat_plan::ConcatPlanError;
pub use create::{NewConcat, NewUpload};
pub use error::{ConcatRefusal, Error, HookRefusal, Result, SizeExceeded, TrailerProblem};
pub use limits::Limits;

use access::{AnyoneMay, Authorizer};
use events::{Application, Nobody};
use model::UploadId;
use ports::{Locker, ObjectStore, StateStore};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The upload core, shared by all requests.
pub struct UploadService {
    objects: Arc<dyn ObjectStore>,
    state: Arc<dyn StateStore>,
    locker: Arc<dyn Locker>,
    limits: Limits,
    key_prefix: String,
    budget: Arc<Semaphore>,
    /// One permit per part on its way to the object store, across all
    /// PATCHes (`parts_in_flight_total`).
    part_slots: Arc<Semaphore>,
    /// Full-part buffers kept for reuse.
    part_pool: Arc<append::buffer::PartPool>,
    /// One permit per upload being written (`max_active_appends`).
    active: Arc<Semaphore>,
    /// Cancelled at shutdown: PATCHes stop reading and commit what they have.
    stopping: CancellationToken,
    counters: Counters,
    authorizer: Arc<dyn Authorizer>,
    /// Told of events, asked by blocking hooks.
    app: Arc<dyn Application>,
    /// Where objects live, as events name it (`Type`, and `Bucket` on S3).
    storage: BTreeMap<String, String>,
}

/// Events worth counting, for tests, load runs and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// PATCHes that let go of an upload because another request asked.
    pub takeovers: AtomicU64,
    /// Requests refused for the cap on uploads written at once.
    pub refused_active: AtomicU64,
    /// PATCHes stopped because the buffer budget stayed full.
    pub refused_budget: AtomicU64,
    /// Times a PATCH had to wait for room in the buffer budget.
    pub budget_waits: AtomicU64,
    /// Body bytes read from clients (acknowledged or not).
    pub bytes_received: AtomicU64,
    /// Uploads created, finished (their object exists) and terminated.
    pub uploads_created: AtomicU64,
    pub uploads_finished: AtomicU64,
    pub uploads_terminated: AtomicU64,
    /// Requests refused because the upload belongs to another subject.
    pub refused_not_owner: AtomicU64,
    /// Durable events delivered, and given up on (dead-lettered).
    pub outbox_delivered: AtomicU64,
    pub outbox_dead_lettered: AtomicU64,
    /// Gauges: events not yet delivered, and the age of the oldest, as the
    /// deliverer last measured them.
    pub outbox_backlog: AtomicU64,
    pub outbox_oldest_age_ms: AtomicU64,
}

/// One more.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
        let part_slots = Arc::new(Semaphore::new(limits.parts_in_flight_total.max(1)));
        let part_pool = Arc::new(append::buffer::PartPool::new(
            limits.part_size,
            limits.parts_in_flight_total.max(1),
        ));
        Self {
            part_pool,
            objects,
            state,
            locker,
            limits,
            key_prefix: key_prefix.into(),
            budget,
            part_slots,
            active,
            stopping: CancellationToken::new(),
            counters: Counters::default(),
            authorizer: Arc::new(AnyoneMay),
            app: Arc::new(Nobody),
            storage: BTreeMap::new(),
        }
    }

    /// The same service, telling `app` of events and asking its blocking
    /// hooks; `storage` names where objects live, as events say it.
    pub fn with_application(
        mut self,
        app: Arc<dyn Application>,
        storage: BTreeMap<String, String>,
    ) -> Self {
        self.app = app;
        self.storage = storage;
        self
    }

    /// The same service, asking `authorizer` before every request.
    pub fn with_authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// Starts a graceful shutdown: PATCHes in flight stop reading, commit
    /// what they received and answer.
    pub(crate) fn begin_shutdown(&self) {
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

    /// Uploads being written now (PATCHes and creations with a body).
    pub fn active_appends(&self) -> usize {
        self.limits
            .max_active_appends
            .max(1)
            .saturating_sub(self.active.available_permits())
    }

    /// Bytes of the buffer budget held now, in KiB.
    pub fn buffer_in_use_kib(&self) -> u64 {
        let total = u64::from(self.limits.buffer_budget_kib);
        total.saturating_sub(self.budget.available_permits() as u64)
    }

    /// Removes the state of an upload whose multipart upload the store lost,
    /// so every later request finds no such upload and the client starts over.
    async fn forget_if_lost<T>(&self, id: &UploadId, result: Result<T>) -> Result<T> {
        if let Err(Error::Lost { detail }) = &result {
            tracing::warn!(upload = %id, %detail, "the store lost this upload; removing its state");
            if let Err(e) = self.state.remove(id, &[]).await {
                tracing::warn!(upload = %id, error = %e, "could not remove a lost upload's state");
            }
        }
        result
    }

    /// A live upload's record: not found (or expired) once it has expired,
    /// even before the reaper has removed it.
    async fn get(&self, id: &UploadId) -> Result<model::UploadInfo> {
        match self.state.get(id).await? {
            Some(info) if !info.expired(model::now_secs()) => Ok(info),
            Some(_) => Err(self.expired_error()),
            None if self.limits.expired_gone && self.state.is_gone(id).await? => {
                Err(Error::Expired)
            }
            None => Err(Error::NotFound),
        }
    }
}
