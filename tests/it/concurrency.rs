//! Two writers on one upload: the lock lets one in at a time, and bytes from
//! the two never interleave.

use crate::helpers::{MIB, TestApp, data, header_u64, stalled_patch};
use reqwest::StatusCode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_patch_never_interleaves_with_the_first() {
    let app = TestApp::spawn().await;
    let first = data(12 * MIB, 10);
    let second = data(12 * MIB, 11);
    let url = app.create(Some(first.len() as u64)).await;

    // The first writer sends 1 MiB, then stalls with its request still open.
    let (tx, stalled) = stalled_patch(&app.http, &url, first[..MIB].to_vec()).await;
    app.await_locked(&url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The second writer asks for the upload. The first is told to let go and
    // keeps what it read, so the second's offset 0 is now stale.
    let response = app.patch(&url, 0, second.clone()).await;
    assert!(
        [StatusCode::CONFLICT, StatusCode::LOCKED].contains(&response.status()),
        "second writer got {}",
        response.status()
    );
    drop(tx);
    let _ = stalled.await;
    // All of it sat below the first part boundary: any offset above 0 was
    // committed by the release path, and the object check below shows that
    // nothing of the second writer got in.
    let offset = app.offset(&url).await;
    assert!(
        offset > 0 && offset <= MIB as u64,
        "kept {offset} bytes of the first writer"
    );
    let rest = app.patch(&url, offset, first[MIB..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_u64(rest.headers(), "upload-offset"),
        Some(first.len() as u64)
    );
    app.assert_object(&url, &first).await;
}
