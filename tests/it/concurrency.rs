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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_takes_over_a_stalled_upload_without_waiting_out_the_ttl() {
    let a = TestApp::spawn().await;
    let settings = a.settings.clone();
    // A second instance on the same Redis, bucket and prefixes.
    let b = TestApp::spawn_with(|s| *s = settings).await;
    let bytes = data(12 * MIB, 12);
    let url_a = a.create(Some(bytes.len() as u64)).await;
    let url_b = format!("{}{}", b.endpoint(), crate::helpers::id_of(&url_a));

    // The client's connection to instance A stalls after 1 MiB, holding the lock.
    let (tx, stalled) = stalled_patch(&a.http, &url_a, bytes[..MIB].to_vec()).await;
    a.await_locked(&url_a).await;

    // It reconnects through instance B and resumes as tus-js-client does:
    // HEAD, then PATCH from the offset HEAD reports, again on 409 or 423.
    let start = std::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 50, "no takeover after {attempts} attempts");
        let head = b.head(&url_b).await;
        assert_eq!(
            head.status(),
            StatusCode::OK,
            "HEAD never fails on contention"
        );
        let offset = header_u64(head.headers(), "upload-offset").expect("offset");
        let start_at = usize::try_from(offset).expect("offset");
        let response = b.patch(&url_b, offset, bytes[start_at..].to_vec()).await;
        match response.status() {
            StatusCode::NO_CONTENT => break,
            StatusCode::CONFLICT | StatusCode::LOCKED => continue,
            other => panic!("PATCH through B got {other}"),
        }
    }
    let took = start.elapsed();
    eprintln!("takeover: {took:?} in {attempts} attempts");
    // A takeover, not the lock's TTL running out.
    assert!(took < partway::config::defaults::LOCK_TTL, "took {took:?}");
    drop(tx);
    let _ = stalled.await;
    // Same bucket and prefix: A's view of the object is B's.
    a.assert_object(&url_a, &bytes).await;
}
