//! Core tests: the real PATCH pipeline over the embedded store, with the part
//! limits shrunk so that many parts fit in a small test. The store enforces
//! the multipart rules (minimum size of every part but the last, contiguous
//! part numbers, matching ETags), so a pipeline that cut parts wrongly fails.

use super::model::{UploadInfo, UploadState};
use super::plan::PartLimits;
use super::*;
use crate::upload::access::Caller;

/// A caller without credentials, on a service that lets anyone in.
pub(super) fn anyone() -> Caller {
    Caller::anonymous()
}
use crate::store::local::{LocalLocker, LocalObjects, LocalState};
use bytes::Bytes;
use proptest::prelude::*;
use std::time::Duration;

mod access;
mod extensions;
mod faults;
mod hooks;
mod in_flight;

pub(super) const PART: u64 = 1024;

pub(super) fn service(dir: &std::path::Path) -> (Arc<UploadService>, LocalObjects) {
    let (service, objects) = bare_service(dir);
    (Arc::new(service), objects)
}

/// The test service on the embedded store in `dir`, not yet shared.
pub(super) fn bare_service(dir: &std::path::Path) -> (UploadService, LocalObjects) {
    let parts = PartLimits {
        min_part_size: PART,
        max_part_size: 1 << 20,
        max_parts: 10_000,
        granularity: 1,
        max_object_size: 1 << 30,
    };
    let objects = LocalObjects::new(dir, parts);
    let limits = Limits {
        parts,
        part_size: PART,
        max_size: 1 << 20,
        max_deferred_size: 64 * PART,
        lock_wait: Duration::from_secs(1),
        parts_in_flight: 2,
        parts_in_flight_total: 8,
        buffer_budget_kib: 64,
        body_idle_timeout: Duration::from_secs(5),
        expire_after: Some(Duration::from_secs(3600)),
        expired_gone: false,
        resume_grace: Duration::from_secs(3600),
        budget_wait: Duration::from_secs(5),
        max_active_appends: 64,
        assembly_in_flight: 3,
        reap_batch: 100,
        progress_interval: Duration::from_secs(1),
    };
    let locker = LocalLocker::new();
    let service = UploadService::new(
        Arc::new(objects.clone()),
        Arc::new(LocalState::new(dir, &locker)),
        Arc::new(locker),
        limits,
        "",
    );
    (service, objects)
}

/// A body made of the given chunks, optionally failing after them.
pub(super) fn body(chunks: Vec<Vec<u8>>, then_fail: bool) -> BodyStream {
    let mut items: Vec<std::result::Result<Bytes, BodyError>> =
        chunks.into_iter().map(|c| Ok(Bytes::from(c))).collect();
    if then_fail {
        items.push(Err(BodyError("connection reset".into())));
    }
    Box::pin(futures_util::stream::iter(items))
}

/// A new upload of `length` bytes (`None`: deferred), without metadata.
pub(super) async fn new_upload(service: &Arc<UploadService>, length: Option<u64>) -> UploadInfo {
    service
        .create(
            &anyone(),
            NewUpload {
                length,
                metadata: None,
                concat: None,
            },
        )
        .await
        .expect("create")
}

/// The finished object of `info` in the embedded store.
pub(super) fn stored(objects: &LocalObjects, info: &UploadInfo) -> Vec<u8> {
    std::fs::read(objects.path_of(&info.object_key).expect("path")).expect("object")
}

/// A PATCH of `bytes` at `offset`, with a Content-Length, in one chunk.
pub(super) fn send(offset: u64, bytes: &[u8]) -> AppendRequest {
    AppendRequest {
        offset,
        declared_length: None,
        content_length: Some(bytes.len() as u64),
        body: body(vec![bytes.to_vec()], false),
        verify: Verify::None,
    }
}

/// Splits `data` into pieces of the given sizes (the last takes the rest).
fn split(data: &[u8], sizes: &[usize]) -> Vec<Vec<u8>> {
    let mut rest = data;
    let mut out = Vec::new();
    for &s in sizes {
        let (now, later) = rest.split_at(s.min(rest.len()));
        out.push(now.to_vec());
        rest = later;
    }
    out.push(rest.to_vec());
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn upload_in_patches(
    service: &Arc<UploadService>,
    objects: &LocalObjects,
    data: &[u8],
    patch_sizes: &[usize],
    chunk_sizes: &[usize],
    deferred: bool,
) -> Vec<u8> {
    let length = (!deferred).then_some(data.len() as u64);
    let info = service
        .create(
            &anyone(),
            NewUpload {
                length,
                metadata: None,
                concat: None,
            },
        )
        .await
        .expect("create");
    let patches = split(data, patch_sizes);
    let count = patches.len();
    let mut offset = 0u64;
    for (i, patch) in patches.into_iter().enumerate() {
        let last = i + 1 == count;
        let len = patch.len() as u64;
        let after = service
            .append(
                &anyone(),
                &info.id,
                AppendRequest {
                    offset,
                    declared_length: (deferred && last).then_some(data.len() as u64),
                    content_length: (i % 2 == 0).then_some(len),
                    body: body(split(&patch, chunk_sizes), false),
                    verify: Verify::None,
                },
            )
            .await
            .expect("append");
        offset += len;
        assert_eq!(after.offset, offset);
    }
    let info = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(info.state, UploadState::Completed);
    let path = objects.path_of(&info.object_key).expect("object path");
    std::fs::read(path).expect("object exists")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn any_patch_and_chunk_split_stores_the_exact_bytes(
        data in proptest::collection::vec(any::<u8>(), 0..6000),
        patch_sizes in proptest::collection::vec(
            prop_oneof![Just(0usize), Just(1usize), 0usize..3000], 0..8),
        chunk_sizes in proptest::collection::vec(
            prop_oneof![Just(0usize), Just(1usize), 0usize..1500], 0..6),
        deferred in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (service, objects) = service(dir.path());
        let stored = runtime().block_on(upload_in_patches(
            &service, &objects, &data, &patch_sizes, &chunk_sizes, deferred,
        ));
        prop_assert_eq!(stored, data);
    }
}

#[tokio::test]
async fn a_broken_body_keeps_every_byte_that_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let info = new_upload(&service, Some(5000)).await;
    // 2500 bytes arrive (two full parts and a tail of 452), then the line dies.
    let after = service
        .append(
            &anyone(),
            &info.id,
            AppendRequest {
                offset: 0,
                declared_length: None,
                content_length: Some(5000),
                body: body(split(&data[..2500], &[700, 1]), true),
                verify: Verify::None,
            },
        )
        .await
        .expect("a cut body is not an error of the upload");
    assert_eq!(after.offset, 2500);
    assert_eq!(
        service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .offset,
        2500
    );
    let done = service
        .append(
            &anyone(),
            &info.id,
            AppendRequest {
                offset: 2500,
                declared_length: None,
                content_length: None,
                body: body(vec![data[2500..].to_vec()], false),
                verify: Verify::None,
            },
        )
        .await
        .expect("resume");
    assert_eq!(done.state, UploadState::Completed);
    let stored = stored(&objects, &info);
    assert_eq!(stored, data);
}

#[tokio::test]
async fn a_completed_upload_accepts_an_empty_patch_and_refuses_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let info = new_upload(&service, Some(3)).await;
    service
        .append(&anyone(), &info.id, send(0, b"abc"))
        .await
        .expect("append");
    let again = service
        .append(&anyone(), &info.id, send(3, b""))
        .await
        .expect("empty PATCH");
    assert_eq!(again.offset, 3);
    assert!(matches!(
        service.append(&anyone(), &info.id, send(3, b"d")).await,
        Err(Error::SizeExceeded(_))
    ));
    assert!(matches!(
        service.append(&anyone(), &info.id, send(0, b"abc")).await,
        Err(Error::OffsetMismatch {
            expected: 3,
            got: 0
        })
    ));
}

#[tokio::test]
async fn the_embedded_store_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let id = {
        let (first, _) = service(dir.path());
        let info = first
            .create(
                &anyone(),
                NewUpload {
                    length: Some(3000),
                    metadata: Some(
                        crate::protocol::metadata::Metadata::parse(b"name YQ==").expect("metadata"),
                    ),
                    concat: None,
                },
            )
            .await
            .expect("create");
        first
            .append(&anyone(), &info.id, send(0, &data[..1500]))
            .await
            .expect("append");
        info.id
    };
    // A new process over the same directory.
    let (second, objects) = service(dir.path());
    let info = second.head(&anyone(), &id).await.expect("still known");
    assert_eq!(info.offset, 1500);
    assert_eq!(info.metadata.as_deref(), Some("name YQ=="));
    let done = second
        .append(&anyone(), &id, send(1500, &data[1500..]))
        .await
        .expect("resume");
    assert_eq!(done.state, UploadState::Completed);
    let stored = stored(&objects, &done);
    assert_eq!(stored, data);
}

#[tokio::test]
async fn a_refused_patch_does_not_declare_its_length() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let info = new_upload(&service, None).await;
    let too_long = AppendRequest {
        offset: 0,
        declared_length: Some(10),
        content_length: Some(11),
        body: body(vec![vec![1; 11]], false),
        verify: Verify::None,
    };
    assert!(matches!(
        service.append(&anyone(), &info.id, too_long).await,
        Err(Error::SizeExceeded(_))
    ));
    assert_eq!(
        service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .length,
        None
    );
}

#[tokio::test]
async fn a_dropped_request_still_commits_what_arrived() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let info = new_upload(&service, Some(3000)).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::result::Result<Bytes, BodyError>>(4);
    tx.send(Ok(Bytes::from(vec![5u8; 1500])))
        .await
        .expect("send");
    let body: BodyStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let request = AppendRequest {
        offset: 0,
        declared_length: None,
        content_length: Some(3000),
        body,
        verify: Verify::None,
    };
    // The server gives up on the request: its future is dropped mid-body.
    let caller = anyone();
    let dropped = tokio::time::timeout(
        Duration::from_millis(200),
        service.append(&caller, &info.id, request),
    );
    assert!(
        dropped.await.is_err(),
        "still waiting for the rest of the body"
    );
    // Then the connection goes away.
    drop(tx);
    let start = std::time::Instant::now();
    loop {
        let offset = service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .offset;
        if offset == 1500 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "offset stuck at {offset}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
