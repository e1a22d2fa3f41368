//! S3 and Redis misbehaving behind a fault-injecting proxy: S3 shedding a
//! share of requests with 503, S3 going silent, Redis connections cut. The
//! SDK's retries (with backoff, a bounded number of times) absorb what they
//! can; a request whose retries are spent fails cleanly with 503, and the
//! upload resumes once the store is back, byte-exact.

use crate::helpers::{MIB, TestApp, data, header_u64};
use crate::proxy::{FaultProxy, Mode};
use crate::servers::servers;
use partway::config::{Backend, Settings};
use reqwest::StatusCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn addr_of(url: &str) -> SocketAddr {
    let host = url
        .split("://")
        .nth(1)
        .expect("scheme")
        .trim_end_matches('/');
    host.parse().expect("loopback address")
}

/// A partway whose S3 (or Redis) traffic goes through `proxy`.
fn via_s3(proxy: &FaultProxy) -> impl FnOnce(&mut Settings) + use<> {
    let url = proxy.url("http");
    move |s| {
        if let Backend::S3 { s3, .. } = &mut s.backend {
            s3.endpoint = Some(url);
            s3.read_timeout = Some(Duration::from_secs(2));
        }
    }
}

/// Uploads `bytes`, resuming from HEAD after anything but success, as tus
/// clients do; returns the failures met (each a 5xx or 423 or 409).
async fn upload_resuming(app: &TestApp, url: &str, bytes: &[u8], deadline: Duration) -> Vec<u16> {
    let start = Instant::now();
    let mut failures = Vec::new();
    loop {
        assert!(start.elapsed() < deadline, "not finished: {failures:?}");
        let head = app.head(url).await;
        if head.status() != StatusCode::OK {
            assert!(head.status().is_server_error() || head.status() == StatusCode::LOCKED);
            failures.push(head.status().as_u16());
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let offset = header_u64(head.headers(), "upload-offset").expect("offset");
        if offset == bytes.len() as u64 {
            return failures;
        }
        let from = usize::try_from(offset).expect("offset");
        let response = app.patch(url, offset, bytes[from..].to_vec()).await;
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            continue;
        }
        assert!(
            matches!(status.as_u16(), 503 | 423 | 409),
            "unexpected {status}"
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(response.headers().contains_key("retry-after"));
        }
        failures.push(status.as_u16());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_finish_while_s3_sheds_every_other_connection() {
    let proxy = FaultProxy::start(addr_of(&servers().s3_endpoint)).await;
    let app = TestApp::spawn_with(via_s3(&proxy)).await;
    let mut uploads = Vec::new();
    for i in 0..3 {
        let bytes = data(11 * MIB + i, 80 + i as u64);
        uploads.push((app.create(Some(bytes.len() as u64)).await, bytes));
    }
    proxy.set(Mode::Http503 { every: 2 });
    for (url, bytes) in &uploads {
        let failures = upload_resuming(&app, url, bytes, Duration::from_secs(120)).await;
        eprintln!("{url}: client-visible failures {failures:?}");
    }
    proxy.set(Mode::Pass);
    assert!(proxy.shed() > 0, "no request was shed");
    eprintln!("S3 requests shed with 503: {}", proxy.shed());
    for (url, bytes) in &uploads {
        app.assert_object(url, bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_s3_fails_the_request_cleanly_and_the_upload_resumes() {
    let proxy = FaultProxy::start(addr_of(&servers().s3_endpoint)).await;
    let app = TestApp::spawn_with(via_s3(&proxy)).await;
    let bytes = data(12 * MIB, 90);
    let url = app.create(Some(bytes.len() as u64)).await;
    let first = app.patch(&url, 0, bytes[..6 * MIB].to_vec()).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    // S3 accepts connections and never answers: the PATCH must end, with
    // a 503, once the SDK's bounded attempts have timed out.
    proxy.set(Mode::BlackHole);
    let start = Instant::now();
    let stuck = app
        .patch(&url, 6 * MIB as u64, bytes[6 * MIB..].to_vec())
        .await;
    assert_eq!(stuck.status(), StatusCode::SERVICE_UNAVAILABLE);
    eprintln!("black-holed PATCH answered in {:?}", start.elapsed());
    proxy.set(Mode::Pass);
    upload_resuming(&app, &url, &bytes, Duration::from_secs(60)).await;
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cut_and_slow_redis_connections_cost_retries_not_bytes() {
    let proxy = FaultProxy::start(addr_of(&servers().redis_url)).await;
    let redis_url = proxy.url("redis");
    let app = TestApp::spawn_with(move |s| {
        if let Backend::S3 { redis_url: url, .. } = &mut s.backend {
            *url = redis_url;
        }
    })
    .await;
    let bytes = data(9 * MIB + 3, 91);
    let url = app.create(Some(bytes.len() as u64)).await;
    proxy.set(Mode::Latency(Duration::from_millis(20)));
    let first = app.patch(&url, 0, bytes[..MIB].to_vec()).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);
    // Every Redis connection is cut: requests answer 503 with Retry-After.
    proxy.set(Mode::Reset);
    let head = app.head(&url).await;
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(head.headers().contains_key("retry-after"));
    proxy.set(Mode::Pass);
    let failures = upload_resuming(&app, &url, &bytes, Duration::from_secs(60)).await;
    eprintln!("after the cut: {failures:?}");
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finish_that_s3_refuses_is_completed_by_a_later_head() {
    let proxy = FaultProxy::start(addr_of(&servers().s3_endpoint)).await;
    let app = TestApp::spawn_with(via_s3(&proxy)).await;
    let bytes = data(11 * MIB + 17, 92);
    let url = app.create(Some(bytes.len() as u64)).await;
    let last = bytes.len() - 1;
    let most = app.patch(&url, 0, bytes[..last].to_vec()).await;
    assert_eq!(most.status(), StatusCode::NO_CONTENT);
    // The last byte arrives and is acknowledged into the tail, but S3 refuses
    // everything while partway uploads the last part and completes.
    proxy.set(Mode::Http503 { every: 1 });
    let final_byte = app.patch(&url, last as u64, bytes[last..].to_vec()).await;
    assert_eq!(final_byte.status(), StatusCode::SERVICE_UNAVAILABLE);
    // HEAD never reports it complete before the object exists.
    let head = app.head(&url).await;
    assert_eq!(head.status(), StatusCode::LOCKED, "retryable, never 5xx");
    assert!(!app.object_exists(&url).await);
    proxy.set(Mode::Pass);
    let head = app.head(&url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        header_u64(head.headers(), "upload-offset"),
        Some(bytes.len() as u64)
    );
    app.assert_object(&url, &bytes).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}
