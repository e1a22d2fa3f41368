//! Resuming: after a connection cut mid-PATCH, and across a restart.

use crate::helpers::{MIB, TestApp, data, header_u64, id_of};
use reqwest::StatusCode;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// Sends a PATCH announcing `announced` bytes, writes only `sent`, and drops
/// the connection, as a client losing its network would.
async fn cut_patch(app: &TestApp, url: &str, offset: u64, announced: usize, sent: &[u8]) {
    cut_patch_with(app, url, offset, announced, sent, false).await;
}

/// As [`cut_patch`]; with `reset`, the connection ends with a TCP RST instead
/// of a clean close, as when a client process is killed.
async fn cut_patch_with(
    app: &TestApp,
    url: &str,
    offset: u64,
    announced: usize,
    sent: &[u8],
    reset: bool,
) {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "PATCH /files/{} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n\
         Content-Length: {announced}\r\n\r\n",
        id_of(url),
        app.addr
    );
    stream.write_all(head.as_bytes()).await.expect("headers");
    stream.write_all(sent).await.expect("partial body");
    stream.flush().await.expect("flush");
    if reset {
        // Let the server read what was sent, then reset the connection. A
        // body longer than a part shows progress once that part is
        // committed; on a busy machine that takes longer than any fixed wait.
        let start = Instant::now();
        while sent.len() > 5 << 20
            && app.offset(url).await == offset
            && start.elapsed() < Duration::from_secs(10)
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        stream.set_zero_linger().expect("SO_LINGER 0");
    }
    drop(stream);
}

/// Polls HEAD until the offset reaches `want` (the server commits what it
/// received once it notices the cut).
async fn await_offset(app: &TestApp, url: &str, want: u64) {
    let start = Instant::now();
    loop {
        let offset = app.offset(url).await;
        if offset == want {
            return;
        }
        assert!(offset < want, "offset {offset} passed {want}");
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "offset stuck at {offset}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls HEAD until the offset stops moving (the server has committed what
/// it kept of a cut request).
async fn settled_offset(app: &TestApp, url: &str) -> u64 {
    let mut last = u64::MAX;
    let mut steady = 0;
    for _ in 0..300 {
        let offset = app.offset(url).await;
        steady = if offset == last { steady + 1 } else { 0 };
        if steady == 5 {
            return offset;
        }
        last = offset;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("offset never settled");
}

/// PATCHes the rest of `bytes` from `offset`, retrying 423 as clients do.
async fn finish(app: &TestApp, url: &str, bytes: &[u8], offset: u64) {
    for _ in 0..50 {
        let response = app
            .patch(url, offset, bytes[offset as usize..].to_vec())
            .await;
        match response.status() {
            StatusCode::NO_CONTENT => {
                assert_eq!(
                    header_u64(response.headers(), "upload-offset"),
                    Some(bytes.len() as u64)
                );
                return;
            }
            StatusCode::LOCKED => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("PATCH to finish got {other}"),
        }
    }
    panic!("upload stayed locked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_byte_received_before_a_cut_is_kept() {
    let app = TestApp::spawn().await;
    let bytes = data(17 * MIB, 7);
    let url = app.create(Some(bytes.len() as u64)).await;
    // Cut inside the first part: everything lands in the tail.
    cut_patch(&app, &url, 0, bytes.len(), &bytes[..3 * MIB]).await;
    await_offset(&app, &url, 3 * MIB as u64).await;
    // Cut again past two part boundaries, starting from a non-empty tail.
    let next = 3 * MIB + 8 * MIB + 12345;
    cut_patch(
        &app,
        &url,
        3 * MIB as u64,
        bytes.len() - 3 * MIB,
        &bytes[3 * MIB..next],
    )
    .await;
    await_offset(&app, &url, next as u64).await;
    finish(&app, &url, &bytes, next as u64).await;
    app.assert_object(&url, &bytes).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_patches_loses_nothing() {
    let mut app = TestApp::spawn().await;
    let bytes = data(17 * MIB, 8);
    let url = app.create(Some(bytes.len() as u64)).await;
    let first = 7 * MIB + 99;
    let response = app.patch(&url, 0, bytes[..first].to_vec()).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.restart().await;
    assert_eq!(
        app.offset(&url).await,
        first as u64,
        "offset survives the restart"
    );
    finish(&app, &url, &bytes, first as u64).await;
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_deferred_uploads_and_metadata() {
    let mut app = TestApp::spawn().await;
    let response = app
        .post(
            None,
            &[("Upload-Metadata", "filename bsOkdGFkYXRhLnR4dA==,empty")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let url = crate::helpers::location(&response);
    let bytes = data(2 * MIB, 9);
    assert_eq!(
        app.patch(&url, 0, bytes[..MIB].to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    app.restart().await;
    let head = app.head(&url).await;
    assert_eq!(
        crate::helpers::header_str(&head, "upload-defer-length"),
        Some("1")
    );
    assert_eq!(
        crate::helpers::header_str(&head, "upload-metadata"),
        Some("filename bsOkdGFkYXRhLnR4dA==,empty")
    );
    let length = bytes.len().to_string();
    let response = app
        .patch_with(
            &url,
            MIB as u64,
            bytes[MIB..].to_vec().into(),
            &[("Upload-Length", &length)],
        )
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_received_before_a_connection_reset_are_kept() {
    let app = TestApp::spawn().await;
    let bytes = data(12 * MIB, 12);
    let url = app.create(Some(bytes.len() as u64)).await;
    let sent = 6 * MIB + 777;
    cut_patch_with(&app, &url, 0, bytes.len(), &bytes[..sent], true).await;
    // A reset drops whatever the server had not read yet, so the offset is
    // what it read: more than the first part (5 MiB) means the bytes past it
    // were committed to the tail after the reset.
    let kept = settled_offset(&app, &url).await;
    assert!(
        kept > 5 * MIB as u64 && kept <= sent as u64,
        "kept {kept} of {sent}"
    );
    finish(&app, &url, &bytes, kept).await;
    app.assert_object(&url, &bytes).await;
}
