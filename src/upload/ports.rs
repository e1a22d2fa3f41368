//! The core's ports: the traits the upload core needs from the outside
//! world, and the types that cross them. The adapters of the `store` module
//! implement them; the core owns them.
//!
//! Three narrow traits, in domain types only (no `aws_sdk_s3`, `redis` or HTTP
//! types leak through):
//! - [`ObjectStore`]: the multipart operations the core needs (S3 in
//!   production, a local directory in the embedded default);
//! - [`StateStore`]: the upload records, the tail of bytes past the last full
//!   part, and the compare-and-set commit that moves an offset (Redis in
//!   production). Keeping the tail here is what makes "append tail + move
//!   offset" one atomic step; a store that keeps tails elsewhere (an S3
//!   object, say) implements this same trait;
//! - [`Locker`]: one writer per upload;
//! - [`Outbox`]: the events a state change wrote for the application, until
//!   they are delivered.

use super::events::Event;
use super::model::{
    ETag, LockToken, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId, UploadInfo,
    UploadState,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::ops::Range;
use std::pin::Pin;
use std::time::Duration;
use thiserror::Error;
use tokio_util::sync::CancellationToken;

/// A failure of a backing store, classified for the HTTP layer.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The multipart upload or object does not exist (S3 NoSuchUpload / NoSuchKey).
    #[error("not found in store: {0}")]
    NotFound(String),
    /// Worth retrying later: throttling, a timeout, a connection failure.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A record with this id exists already.
    #[error("exists in store: {0}")]
    Exists(String),
    /// Anything else; logged, never shown to clients.
    #[error("store error: {0}")]
    Other(String),
}

/// How a multipart upload's parts will arrive, which decides how the store
/// checks them: uploaded parts carry a checksum of their own bytes, while
/// copied parts (UploadPartCopy) have none to carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartsFrom {
    /// A PATCH's bytes, uploaded part by part.
    Uploads,
    /// A final upload's assembly: mostly copies of its partial uploads.
    Assembly,
}

/// Multipart operations on the object store.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Starts a multipart upload for `key`, whose parts come `from`,
    /// returning its id.
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        from: PartsFrom,
    ) -> Result<MultipartId, StoreError>;

    /// Uploads part `number`; re-uploading a number replaces it.
    async fn upload_part(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        body: Bytes,
    ) -> Result<ETag, StoreError>;

    /// Assembles the object from `parts`, which the core has checked
    /// against the store's rules (see [`super::plan::check_part_list`]).
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        parts: &[PartRecord],
    ) -> Result<(), StoreError>;

    /// Discards a multipart upload and its parts. Already gone is not an error.
    async fn abort_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
    ) -> Result<(), StoreError>;

    /// Writes a whole object in one request (used for empty uploads).
    async fn put_object(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(), StoreError>;

    /// The size of an existing object, or `None`.
    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError>;

    /// Deletes an object. Already gone is not an error.
    async fn delete_object(&self, key: &ObjectKey) -> Result<(), StoreError>;

    /// Answers if the store can be used now (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Uploads part `number` as a server-side copy of bytes `range` of the
    /// object `source` (UploadPartCopy).
    async fn upload_part_copy(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        source: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ETag, StoreError>;

    /// Streams an object, or bytes `range` of it, which the caller has
    /// checked against the object's size.
    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream, StoreError>;
}

/// An object's bytes as they arrive from the store.
pub type ObjectStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// Reads bytes `range` of an object into memory; for small ranges only.
///
/// # Errors
/// Store failures, or fewer bytes than asked for.
pub async fn read_range(
    objects: &dyn ObjectStore,
    key: &ObjectKey,
    range: Range<u64>,
) -> Result<Bytes, StoreError> {
    let want = range.end - range.start;
    let mut stream = objects.get_object(key, Some(range)).await?;
    let mut out = bytes::BytesMut::with_capacity(usize::try_from(want).unwrap_or(0));
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    if out.len() as u64 != want {
        return Err(StoreError::Other(format!(
            "{key}: read {} bytes of a {want}-byte range",
            out.len()
        )));
    }
    Ok(out.freeze())
}

/// What a commit changes besides the offset.
#[derive(Debug, Clone)]
pub enum Change {
    /// Append bytes to the tail.
    AppendTail(Bytes),
    /// Record a part that S3 acknowledged. If `consumes_tail`, the part began
    /// with the stored tail, which is dropped in the same step.
    Part {
        record: PartRecord,
        consumes_tail: bool,
    },
    /// Declare the length of a deferred upload.
    SetLength(u64),
    /// Move to another state. Moving to `completed` drops the tail, which
    /// is no longer needed.
    SetState(UploadState),
    /// Record the multipart upload, started once the first part is coming.
    SetMultipart(MultipartId),
}

/// A compare-and-set on an upload's offset: acknowledged means durable.
///
/// It applies only if the stored offset is still `expected_offset`, the stored
/// tail is `expected_tail_len` bytes long and the writer still holds the
/// upload's lock, so a writer whose lock expired cannot move the offset.
#[derive(Debug, Clone)]
pub struct Commit {
    pub expected_offset: u64,
    pub expected_tail_len: u64,
    pub new_offset: u64,
    pub change: Change,
    /// Events for the outbox, written in the same atomic step.
    pub events: Vec<Event>,
}

/// Why a commit did not apply.
#[derive(Debug, Clone, Error)]
pub enum CommitError {
    /// The record is gone (terminated or reaped meanwhile).
    #[error("the upload no longer exists")]
    NotFound,
    /// The offset or the tail is not what the commit expected.
    #[error("the upload moved on under us (offset or tail changed)")]
    Conflict,
    /// The lock token no longer owns the upload.
    #[error("the upload's lock was lost")]
    LockLost,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Upload records, tails and commits.
#[async_trait]
pub trait StateStore: Send + Sync + 'static {
    /// Stores a new record and writes `events` to the outbox, in one atomic
    /// step. Fails with [`StoreError::Exists`] if the id exists.
    async fn create(&self, info: &UploadInfo, events: &[Event]) -> Result<(), StoreError>;

    /// Reads a record in one round trip (no parts, no tail).
    async fn get(&self, id: &UploadId) -> Result<Option<UploadInfo>, StoreError>;

    /// The committed parts, in ascending order.
    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>, StoreError>;

    /// The first `len` bytes of the tail: the acknowledged ones. Fails if
    /// fewer are stored.
    async fn read_tail(&self, id: &UploadId, len: u64) -> Result<Bytes, StoreError>;

    /// Applies `commit` atomically if its preconditions hold and `lock_token`
    /// still owns the upload's lock.
    async fn commit(
        &self,
        id: &UploadId,
        lock_token: &LockToken,
        commit: Commit,
    ) -> Result<(), CommitError>;

    /// Removes the record, its parts and its tail, and unindexes it; writes
    /// `events` to the outbox in the same atomic step.
    async fn remove(&self, id: &UploadId, events: &[Event]) -> Result<(), StoreError>;

    /// Sets or clears when an upload expires, and indexes it for the reaper.
    /// A record that no longer exists is left alone.
    async fn set_expiry(&self, id: &UploadId, expires_at: Option<u64>) -> Result<(), StoreError>;

    /// Up to `limit` ids indexed to expire at or before `now`.
    async fn expired(&self, now: u64, limit: usize) -> Result<Vec<UploadId>, StoreError>;

    /// Drops an id from the expiry index (its record is already gone).
    async fn unindex(&self, id: &UploadId) -> Result<(), StoreError>;

    /// Remembers for a while that an upload expired, to tell it from an
    /// unknown one.
    async fn mark_gone(&self, id: &UploadId) -> Result<(), StoreError>;

    /// Whether [`StateStore::mark_gone`] was called for `id` recently.
    async fn is_gone(&self, id: &UploadId) -> Result<bool, StoreError>;

    /// Redeems a single-use credential: `true` the first time `key` is
    /// presented, `false` ever after, until `until` (seconds since the Unix
    /// epoch) when it can be forgotten. Atomic across instances.
    async fn redeem(&self, key: &str, until: u64) -> Result<bool, StoreError>;

    /// Answers if the store can be used now (for readiness checks).
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Why a lock could not be taken.
#[derive(Debug, Clone, Error)]
pub enum LockError {
    #[error("the upload is locked by another request")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Releases a held lock; implemented by each locker.
#[async_trait]
pub trait LockRelease: Send + Sync + 'static {
    async fn release(self: Box<Self>);
}

/// A held lock on one upload.
///
/// `stop` is cancelled when the holder should let go: another request asked
/// for the upload, or the lock could not be renewed. The holder then stops
/// reading, commits what it has and calls [`LockGuard::release`].
pub struct LockGuard {
    token: LockToken,
    stop: CancellationToken,
    release: Option<Box<dyn LockRelease>>,
}

impl LockGuard {
    /// Wraps a lock a [`Locker`] has taken.
    pub fn new(token: LockToken, stop: CancellationToken, release: Box<dyn LockRelease>) -> Self {
        Self {
            token,
            stop,
            release: Some(release),
        }
    }

    /// The owner token, checked by every commit.
    pub fn token(&self) -> &LockToken {
        &self.token
    }

    /// Cancelled when the holder should stop and release.
    pub fn stop_signal(&self) -> &CancellationToken {
        &self.stop
    }

    /// Releases the lock now.
    pub async fn release(mut self) {
        if let Some(release) = self.release.take() {
            release.release().await;
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        // A guard dropped without `release` (a panic, a cancelled future)
        // still lets go; the lock's TTL is the last resort.
        if let Some(release) = self.release.take()
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            handle.spawn(release.release());
        }
    }
}

/// One lock per upload.
#[async_trait]
pub trait Locker: Send + Sync + 'static {
    /// Takes the lock on `id`, waiting at most `wait` for the holder to let go.
    async fn acquire(&self, id: &UploadId, wait: Duration) -> Result<LockGuard, LockError>;

    /// Takes the lock only if it is free right now.
    async fn try_acquire(&self, id: &UploadId) -> Result<Option<LockGuard>, LockError>;
}

/// An event waiting in the outbox.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Where the outbox keeps it (a stream entry id, a log sequence number).
    pub key: String,
    pub event: Event,
    /// When it was written, in milliseconds since the Unix epoch.
    pub written_ms: u64,
}

/// How far delivery is behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Events written and not yet delivered.
    pub count: u64,
    /// When the oldest of them was written, in milliseconds since the epoch.
    pub oldest_ms: Option<u64>,
}

/// The events state changes wrote for the application, until delivered.
///
/// Any instance may deliver, one at a time: the holder of the lease.
#[async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Makes the outbox consistent after a crash, before anything is served.
    async fn recover(&self) -> Result<(), StoreError>;

    /// Up to `limit` undelivered events, oldest first.
    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError>;

    /// Drops a delivered event.
    async fn delivered(&self, key: &str) -> Result<(), StoreError>;

    /// Moves an event that could not be delivered to the dead letters.
    async fn dead_letter(&self, pending: &Pending, reason: &str) -> Result<(), StoreError>;

    /// Moves every dead letter back into the outbox; returns how many.
    async fn replay_dead(&self) -> Result<u64, StoreError>;

    /// Takes or renews, for `ttl`, the right to deliver; `true` if `holder`
    /// has it now.
    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// How far delivery is behind.
    async fn backlog(&self) -> Result<Backlog, StoreError>;
}
