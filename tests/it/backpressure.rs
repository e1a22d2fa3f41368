//! Backpressure: far more uploads at once than the buffer budget and the cap
//! on active uploads allow. partway refuses the excess at once with 429 (or
//! 503 when its buffers stay full) and `Retry-After`, never anything else,
//! and clients that retry as tus clients do all finish, byte-exact.

use crate::helpers::{MIB, TestApp, data, header_u64};
use reqwest::StatusCode;
use std::collections::BTreeMap;

/// Uploads `bytes` to `url`, resuming from HEAD after every refusal as
/// tus-js-client does. Returns the refusal statuses it met.
async fn upload_retrying(app: &TestApp, url: &str, bytes: &[u8]) -> Vec<u16> {
    let mut refusals = Vec::new();
    for _ in 0..400 {
        let head = app.head(url).await;
        assert_eq!(head.status(), StatusCode::OK, "HEAD {url}");
        let offset = header_u64(head.headers(), "upload-offset").expect("offset");
        if offset == bytes.len() as u64 {
            return refusals;
        }
        let start = usize::try_from(offset).expect("offset");
        let sent = app
            .http
            .patch(url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string())
            .body(bytes[start..].to_vec())
            .send()
            .await;
        // A refusal sent before the body was read can reach the client as a
        // broken connection instead; tus clients retry both alike.
        let Ok(response) = sent else {
            refusals.push(0);
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            continue;
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            continue;
        }
        assert!(
            matches!(status.as_u16(), 429 | 503 | 423 | 409),
            "unexpected {status} for {url}"
        );
        if matches!(status.as_u16(), 429 | 503) {
            assert!(
                response.headers().contains_key("retry-after"),
                "{status} without Retry-After"
            );
        }
        refusals.push(status.as_u16());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{url} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excess_uploads_are_refused_with_retry_after_and_all_finish() {
    // Room for three 5 MiB part buffers and four uploads being written.
    let app = TestApp::spawn_with(|s| {
        s.max_buffer = 16 * MIB as u64;
        s.max_active_uploads = 4;
    })
    .await;
    let uploads = 24;
    let mut expected = Vec::new();
    for i in 0..uploads {
        let bytes = data(7 * MIB + i * 1000, 300 + i as u64);
        let url = app.create(Some(bytes.len() as u64)).await;
        expected.push((url, bytes));
    }
    let runs = expected
        .iter()
        .map(|(url, bytes)| upload_retrying(&app, url, bytes));
    let refusals = futures_util::future::join_all(runs).await;
    let mut counts = BTreeMap::new();
    for status in refusals.into_iter().flatten() {
        *counts.entry(status).or_insert(0) += 1;
    }
    // 0 counts refusals that arrived as a cut connection.
    assert!(
        counts.get(&429).copied().unwrap_or(0) + counts.get(&0).copied().unwrap_or(0) > 0,
        "24 uploads at once against a cap of 4 met no refusal: {counts:?}"
    );
    eprintln!("refusals by status: {counts:?}");
    for (url, bytes) in &expected {
        app.assert_object(url, bytes).await;
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}
