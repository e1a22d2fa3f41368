//! The store ports, timed: decorators that pass every call through to the
//! adapter and record how long it took and whether it worked, by
//! operation. S3 calls are named as the S3 API names them; Redis calls by
//! what they do; a lock by whether it was had.

use super::Metrics;
use super::family::Histograms;
use crate::upload::events::Event;
use crate::upload::model::{
    ETag, LockToken, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId, UploadInfo,
};
use crate::upload::ports::{
    Commit, CommitError, LockError, LockGuard, Locker, ObjectStore, ObjectStream, PartsFrom,
    StateStore, StoreError,
};
use async_trait::async_trait;
use bytes::Bytes;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Awaits `call`, recording its time under `operation` in `family`.
async fn timed<T, E>(
    family: &Histograms,
    operation: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let start = Instant::now();
    let result = call.await;
    let outcome = if result.is_ok() { "ok" } else { "error" };
    family.observe(&[operation, outcome], start.elapsed());
    result
}

/// An object store whose calls are timed as S3 requests.
pub struct MeteredObjects {
    pub inner: Arc<dyn ObjectStore>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl ObjectStore for MeteredObjects {
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        from: PartsFrom,
    ) -> Result<MultipartId, StoreError> {
        let call = self.inner.create_multipart(key, content_type, from);
        timed(&self.metrics.s3, "CreateMultipartUpload", call).await
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        body: Bytes,
    ) -> Result<ETag, StoreError> {
        let call = self.inner.upload_part(key, multipart_id, number, body);
        timed(&self.metrics.s3, "UploadPart", call).await
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let call = self.inner.complete_multipart(key, multipart_id, parts);
        timed(&self.metrics.s3, "CompleteMultipartUpload", call).await
    }

    async fn abort_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
    ) -> Result<(), StoreError> {
        let call = self.inner.abort_multipart(key, multipart_id);
        timed(&self.metrics.s3, "AbortMultipartUpload", call).await
    }

    async fn put_object(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(), StoreError> {
        let call = self.inner.put_object(key, content_type, body);
        timed(&self.metrics.s3, "PutObject", call).await
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        timed(&self.metrics.s3, "HeadObject", self.inner.object_size(key)).await
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<(), StoreError> {
        timed(
            &self.metrics.s3,
            "DeleteObject",
            self.inner.delete_object(key),
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.metrics.s3, "HeadBucket", self.inner.ping()).await
    }

    async fn upload_part_copy(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        source: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ETag, StoreError> {
        let call = self
            .inner
            .upload_part_copy(key, multipart_id, number, source, range);
        timed(&self.metrics.s3, "UploadPartCopy", call).await
    }

    /// Timed to the first byte: the stream is the caller's to pace.
    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream, StoreError> {
        timed(
            &self.metrics.s3,
            "GetObject",
            self.inner.get_object(key, range),
        )
        .await
    }
}

/// A state store whose calls are timed as Redis round trips.
pub struct MeteredState {
    pub inner: Arc<dyn StateStore>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl StateStore for MeteredState {
    async fn create(&self, info: &UploadInfo, events: &[Event]) -> Result<(), StoreError> {
        let call = self.inner.create(info, events);
        timed(&self.metrics.redis, "create", call).await
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadInfo>, StoreError> {
        timed(&self.metrics.redis, "get", self.inner.get(id)).await
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>, StoreError> {
        timed(&self.metrics.redis, "parts", self.inner.parts(id)).await
    }

    async fn read_tail(&self, id: &UploadId, len: u64) -> Result<Bytes, StoreError> {
        timed(
            &self.metrics.redis,
            "read_tail",
            self.inner.read_tail(id, len),
        )
        .await
    }

    async fn commit(
        &self,
        id: &UploadId,
        lock_token: &LockToken,
        commit: Commit,
    ) -> Result<(), CommitError> {
        let call = self.inner.commit(id, lock_token, commit);
        timed(&self.metrics.redis, "commit", call).await
    }

    async fn remove(&self, id: &UploadId, events: &[Event]) -> Result<(), StoreError> {
        let call = self.inner.remove(id, events);
        timed(&self.metrics.redis, "remove", call).await
    }

    async fn set_expiry(&self, id: &UploadId, expires_at: Option<u64>) -> Result<(), StoreError> {
        let call = self.inner.set_expiry(id, expires_at);
        timed(&self.metrics.redis, "set_expiry", call).await
    }

    async fn expired(&self, now: u64, limit: usize) -> Result<Vec<UploadId>, StoreError> {
        timed(
            &self.metrics.redis,
            "expired",
            self.inner.expired(now, limit),
        )
        .await
    }

    async fn unindex(&self, id: &UploadId) -> Result<(), StoreError> {
        timed(&self.metrics.redis, "unindex", self.inner.unindex(id)).await
    }

    async fn mark_gone(&self, id: &UploadId) -> Result<(), StoreError> {
        timed(&self.metrics.redis, "mark_gone", self.inner.mark_gone(id)).await
    }

    async fn is_gone(&self, id: &UploadId) -> Result<bool, StoreError> {
        timed(&self.metrics.redis, "is_gone", self.inner.is_gone(id)).await
    }

    async fn redeem(&self, key: &str, until: u64) -> Result<bool, StoreError> {
        timed(&self.metrics.redis, "redeem", self.inner.redeem(key, until)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        timed(&self.metrics.redis, "ping", self.inner.ping()).await
    }
}

/// A locker whose waits are timed, by whether the lock was had.
pub struct MeteredLocker {
    pub inner: Arc<dyn Locker>,
    pub metrics: Arc<Metrics>,
}

#[async_trait]
impl Locker for MeteredLocker {
    async fn acquire(&self, id: &UploadId, wait: Duration) -> Result<LockGuard, LockError> {
        let start = Instant::now();
        let result = self.inner.acquire(id, wait).await;
        let outcome = match &result {
            Ok(_) => "acquired",
            Err(LockError::Busy) => "busy",
            Err(LockError::Store(_)) => "error",
        };
        self.metrics.lock_waits.observe(&[outcome], start.elapsed());
        result
    }

    async fn try_acquire(&self, id: &UploadId) -> Result<Option<LockGuard>, LockError> {
        self.inner.try_acquire(id).await
    }
}
