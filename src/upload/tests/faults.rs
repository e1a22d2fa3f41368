//! Core tests with injected store faults: a failed CompleteMultipartUpload,
//! and a multipart upload that vanished behind partway's back.

use super::{PART, anyone, body, new_upload, send, service, stored};
use crate::store::local::{LocalLocker, LocalObjects, LocalState};
use crate::upload::Error;
use crate::upload::model::{self, ETag, MultipartId, ObjectKey, PartNumber, UploadState};
use crate::upload::ports::{PartsFrom, StoreError};
use crate::upload::{AppendRequest, Limits, UploadService, Verify};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn an_upload_whose_multipart_upload_vanished_is_retired_with_404() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    let info = new_upload(&service, Some(4 * PART)).await;
    // The first PATCH starts the multipart upload with its first part.
    let first = vec![7u8; PART as usize + 10];
    service
        .append(&anyone(), &info.id, send(0, &first))
        .await
        .expect("patch");
    let info = service.head(&anyone(), &info.id).await.expect("head");
    // A lifecycle rule (or the store's own cleanup) aborts it behind our back.
    let mp = info.multipart_id.clone().expect("multipart upload");
    crate::upload::ports::ObjectStore::abort_multipart(&objects, &info.object_key, &mp)
        .await
        .expect("abort");
    let data = vec![7u8; 2 * PART as usize];
    let result = service
        .append(
            &anyone(),
            &info.id,
            AppendRequest {
                offset: PART + 10,
                declared_length: None,
                content_length: Some(data.len() as u64),
                body: body(vec![data], false),
                verify: Verify::None,
            },
        )
        .await;
    assert!(matches!(result, Err(Error::Lost { .. })), "{result:?}");
    assert!(matches!(
        service.head(&anyone(), &info.id).await,
        Err(Error::NotFound)
    ));
}

/// Delegates to the embedded store, failing CompleteMultipartUpload a set
/// number of times and counting multipart uploads, parts and PutObjects,
/// and the most part uploads in flight at once (each takes a few ms).
pub(super) struct FlakyComplete {
    inner: LocalObjects,
    failures_left: std::sync::atomic::AtomicUsize,
    pub(super) parts_uploaded: std::sync::atomic::AtomicUsize,
    multiparts_started: std::sync::atomic::AtomicUsize,
    objects_put: std::sync::atomic::AtomicUsize,
    parts_now: std::sync::atomic::AtomicUsize,
    pub(super) parts_peak: std::sync::atomic::AtomicUsize,
    /// Part uploads the store lets through; unbounded unless a test takes
    /// its permits away to hold parts in flight.
    pub(super) let_through: tokio::sync::Semaphore,
}

#[async_trait::async_trait]
impl crate::upload::ports::ObjectStore for FlakyComplete {
    async fn ping(&self) -> std::result::Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        from: PartsFrom,
    ) -> std::result::Result<MultipartId, StoreError> {
        self.multiparts_started.fetch_add(1, Ordering::SeqCst);
        self.inner.create_multipart(key, content_type, from).await
    }
    async fn upload_part(
        &self,
        key: &ObjectKey,
        mp: &MultipartId,
        number: PartNumber,
        body: Bytes,
    ) -> std::result::Result<ETag, StoreError> {
        self.parts_uploaded.fetch_add(1, Ordering::SeqCst);
        let now = self.parts_now.fetch_add(1, Ordering::SeqCst) + 1;
        self.parts_peak.fetch_max(now, Ordering::SeqCst);
        if let Ok(permit) = self.let_through.acquire().await {
            permit.forget();
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
        let etag = self.inner.upload_part(key, mp, number, body).await;
        self.parts_now.fetch_sub(1, Ordering::SeqCst);
        etag
    }
    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        mp: &MultipartId,
        parts: &[model::PartRecord],
    ) -> std::result::Result<(), StoreError> {
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable(
                "injected: Complete timed out".into(),
            ));
        }
        self.inner.complete_multipart(key, mp, parts).await
    }
    async fn abort_multipart(
        &self,
        key: &ObjectKey,
        mp: &MultipartId,
    ) -> std::result::Result<(), StoreError> {
        self.inner.abort_multipart(key, mp).await
    }
    async fn put_object(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Bytes,
    ) -> std::result::Result<(), StoreError> {
        self.objects_put.fetch_add(1, Ordering::SeqCst);
        self.inner.put_object(key, content_type, body).await
    }
    async fn object_size(&self, key: &ObjectKey) -> std::result::Result<Option<u64>, StoreError> {
        self.inner.object_size(key).await
    }
    async fn delete_object(&self, key: &ObjectKey) -> std::result::Result<(), StoreError> {
        self.inner.delete_object(key).await
    }
    async fn upload_part_copy(
        &self,
        key: &ObjectKey,
        mp: &MultipartId,
        number: PartNumber,
        source: &ObjectKey,
        range: std::ops::Range<u64>,
    ) -> std::result::Result<ETag, StoreError> {
        self.inner
            .upload_part_copy(key, mp, number, source, range)
            .await
    }
    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<std::ops::Range<u64>>,
    ) -> std::result::Result<crate::upload::ports::ObjectStream, StoreError> {
        self.inner.get_object(key, range).await
    }
}

/// A service over the embedded store whose Complete fails `failures`
/// times, counting part uploads.
fn flaky_service(
    dir: &std::path::Path,
    failures: usize,
) -> (Arc<UploadService>, Arc<FlakyComplete>, LocalObjects) {
    flaky_service_with(dir, failures, |_| {})
}

/// [`flaky_service`] with its limits adjusted by `adjust`.
pub(super) fn flaky_service_with(
    dir: &std::path::Path,
    failures: usize,
    adjust: impl FnOnce(&mut Limits),
) -> (Arc<UploadService>, Arc<FlakyComplete>, LocalObjects) {
    let (reference, objects) = service(dir);
    let mut limits = reference.limits().clone();
    adjust(&mut limits);
    let flaky = Arc::new(FlakyComplete {
        inner: objects.clone(),
        failures_left: failures.into(),
        parts_uploaded: 0.into(),
        multiparts_started: 0.into(),
        objects_put: 0.into(),
        parts_now: 0.into(),
        parts_peak: 0.into(),
        let_through: tokio::sync::Semaphore::new(tokio::sync::Semaphore::MAX_PERMITS),
    });
    let locker = LocalLocker::new();
    let service = Arc::new(UploadService::new(
        flaky.clone(),
        Arc::new(LocalState::new(dir, &locker)),
        Arc::new(locker),
        limits,
        "",
    ));
    (service, flaky, objects)
}

#[tokio::test]
async fn a_failed_complete_is_retried_by_the_next_head_or_patch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, flaky, objects) = flaky_service(dir.path(), 2);
    let data: Vec<u8> = (0..2500u32).map(|i| (i % 13) as u8).collect();
    let info = new_upload(&service, Some(2500)).await;
    // The last PATCH gets every byte in, but Complete fails: 503.
    let first = service.append(&anyone(), &info.id, send(0, &data)).await;
    assert!(
        matches!(first, Err(Error::Store(StoreError::Unavailable(_)))),
        "{first:?}"
    );
    let uploaded = flaky.parts_uploaded.load(Ordering::SeqCst);
    assert_eq!(uploaded, 3, "two full parts and the last one");
    // HEAD tries again, fails again: 423, never "complete" without an object.
    assert!(matches!(
        service.head(&anyone(), &info.id).await,
        Err(Error::Finishing)
    ));
    assert_eq!(
        objects.path_of(&info.object_key).map(|p| p.exists()),
        Some(false)
    );
    // The next PATCH (empty, at the full offset) finishes it.
    let done = service
        .append(&anyone(), &info.id, send(2500, b""))
        .await
        .expect("finished");
    assert_eq!(done.state, UploadState::Completed);
    assert_eq!(
        flaky.parts_uploaded.load(Ordering::SeqCst),
        uploaded,
        "nothing re-uploaded"
    );
    let stored = stored(&objects, &info);
    assert_eq!(stored, data);
    assert_eq!(
        service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .offset,
        2500
    );
}

#[tokio::test]
async fn a_client_cut_again_and_again_resumes_and_sends_each_part_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, counting, objects) = flaky_service(dir.path(), 0);
    let total = 20 * PART as usize + 321;
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let info = new_upload(&service, Some(total as u64)).await;
    // Each attempt sends the rest but is cut after a pseudo-random share,
    // mid-part more often than not.
    let mut offset = 0;
    let mut cuts = 0;
    let mut x = 0x9E37_79B9_u64;
    while offset < total {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let rest = &data[offset..];
        let sent = (x as usize % (3 * PART as usize)).min(rest.len());
        let cut = sent < rest.len();
        let request = AppendRequest {
            offset: offset as u64,
            declared_length: None,
            content_length: Some(rest.len() as u64),
            body: body(vec![rest[..sent].to_vec()], cut),
            verify: Verify::None,
        };
        let _ = service.append(&anyone(), &info.id, request).await;
        cuts += usize::from(cut);
        let now = service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .offset as usize;
        assert_eq!(now, offset + sent, "every byte that arrived is kept");
        offset = now;
    }
    assert!(cuts > 5, "only {cuts} cuts");
    assert_eq!(stored(&objects, &info), data);
    // 20 full parts and the last one, each sent to the store exactly once.
    assert_eq!(counting.parts_uploaded.load(Ordering::SeqCst), 21);
}

/// A PATCH of an upload of 3000 bytes that sends `first` bytes and then
/// waits for more forever; `read` fires once the first bytes were taken
/// and the reader waits for the rest, holding the upload's lock.
fn stalled_patch(first: usize) -> (AppendRequest, tokio::sync::oneshot::Receiver<()>) {
    let (read_tx, read) = tokio::sync::oneshot::channel();
    let rest = futures_util::stream::once(async move {
        let _ = read_tx.send(());
        std::future::pending::<std::result::Result<Bytes, crate::upload::BodyError>>().await
    });
    let sent: std::result::Result<Bytes, crate::upload::BodyError> = Ok(vec![7u8; first].into());
    let body = futures_util::StreamExt::chain(futures_util::stream::iter([sent]), rest);
    let request = AppendRequest {
        offset: 0,
        declared_length: None,
        content_length: Some(3000),
        body: Box::pin(body),
        verify: Verify::None,
    };
    (request, read)
}

#[tokio::test]
async fn takeover_and_shutdown_both_keep_what_arrived_and_only_a_takeover_counts_as_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    let takeovers = || service.counters().takeovers.load(Ordering::SeqCst);
    let taken = new_upload(&service, Some(3000)).await;
    let (request, read) = stalled_patch(1500);
    let first = tokio::spawn({
        let (service, id) = (service.clone(), taken.id.clone());
        async move { service.append(&anyone(), &id, request).await }
    });
    read.await.expect("the first bytes were read");
    // Another request asks for the upload: the stalled PATCH lets go.
    let second = service
        .append(&anyone(), &taken.id, send(1500, &[7u8; 1500]))
        .await;
    let first = first.await.expect("join").expect("the first PATCH answers");
    assert_eq!(first.offset, 1500, "what arrived is kept");
    assert_eq!(second.expect("the second PATCH finishes").offset, 3000);
    assert_eq!(stored(&objects, &taken), vec![7u8; 3000]);
    assert_eq!(takeovers(), 1);
    let stopped = new_upload(&service, Some(3000)).await;
    let (request, read) = stalled_patch(1200);
    let patch = tokio::spawn({
        let (service, id) = (service.clone(), stopped.id.clone());
        async move { service.append(&anyone(), &id, request).await }
    });
    read.await.expect("the first bytes were read");
    service.begin_shutdown();
    let patched = patch.await.expect("join").expect("the PATCH answers");
    assert_eq!(patched.offset, 1200, "what arrived is kept at shutdown");
    assert_eq!(takeovers(), 1, "a shutdown is not a takeover");
}

#[tokio::test]
async fn an_upload_that_ends_inside_its_first_part_is_one_put_object() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, counting, objects) = flaky_service(dir.path(), 0);
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(Ordering::SeqCst);
    // 700 bytes (parts are 1024 here) in two PATCHes: no multipart upload.
    let data: Vec<u8> = (0..700u32).map(|i| (i % 251) as u8).collect();
    let small = new_upload(&service, Some(700)).await;
    service
        .append(&anyone(), &small.id, send(0, &data[..300]))
        .await
        .expect("patch");
    let done = service
        .append(&anyone(), &small.id, send(300, &data[300..]))
        .await
        .expect("patch");
    assert_eq!(done.state, UploadState::Completed);
    assert_eq!(stored(&objects, &small), data);
    assert_eq!(
        (
            count(&counting.multiparts_started),
            count(&counting.objects_put)
        ),
        (0, 1)
    );
    // A deferred upload that ends inside its first part, declared at the end.
    let deferred = new_upload(&service, None).await;
    service
        .append(&anyone(), &deferred.id, send(0, &data[..10]))
        .await
        .expect("patch");
    let end = AppendRequest {
        declared_length: Some(10),
        ..send(10, b"")
    };
    service
        .append(&anyone(), &deferred.id, end)
        .await
        .expect("declare");
    assert_eq!(stored(&objects, &deferred), &data[..10]);
    assert_eq!(
        (
            count(&counting.multiparts_started),
            count(&counting.objects_put)
        ),
        (0, 2)
    );
    // Crossing a part boundary starts one multipart upload, once.
    let big: Vec<u8> = (0..2500u32).map(|i| (i % 13) as u8).collect();
    let large = new_upload(&service, Some(2500)).await;
    service
        .append(&anyone(), &large.id, send(0, &big[..500]))
        .await
        .expect("patch");
    assert_eq!(
        count(&counting.multiparts_started),
        0,
        "not before a part is coming"
    );
    service
        .append(&anyone(), &large.id, send(500, &big[500..]))
        .await
        .expect("patch");
    assert_eq!(stored(&objects, &large), big);
    assert_eq!(
        (
            count(&counting.multiparts_started),
            count(&counting.parts_uploaded)
        ),
        (1, 3)
    );
    // Terminating an upload that never started one leaves nothing behind.
    let dropped = new_upload(&service, Some(700)).await;
    service
        .append(&anyone(), &dropped.id, send(0, &data[..100]))
        .await
        .expect("patch");
    service
        .terminate(&anyone(), &dropped.id)
        .await
        .expect("terminate");
    assert_eq!(count(&counting.multiparts_started), 1);
}
