//! Faults partway must survive without losing an acknowledged byte: Redis
//! going away and coming back (with AOF, as the README tells operators to
//! run it).

use crate::helpers::{MIB, TestApp, data, header_u64};
use crate::servers::{free_port, start_redis_on};
use partway::config::Backend;
use reqwest::StatusCode;
use std::time::Duration;

/// Kills the redis-server on `port` the hard way, as a crash would.
pub async fn crash_redis(port: u16) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let pid = info
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .expect("process_id")
        .trim()
        .to_owned();
    let status = std::process::Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill");
    assert!(status.success(), "could not kill redis-server {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_crash_gets_503_and_everything_recovers_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let aof = "--appendonly yes --appendfsync always";
    let _redis = start_redis_on(dir.path(), port, aof);
    let app = TestApp::spawn_with(|s| {
        if let Backend::S3 { redis_url, .. } = &mut s.backend {
            *redis_url = format!("redis://127.0.0.1:{port}/");
        }
    })
    .await;
    let bytes = data(12 * MIB + 9, 70);
    let url = app.create(Some(bytes.len() as u64)).await;
    // A full part in S3 and 2 MiB of tail in Redis, acknowledged.
    let first = app.patch(&url, 0, bytes[..7 * MIB].to_vec()).await;
    assert_eq!(first.status(), StatusCode::NO_CONTENT);

    crash_redis(port).await;
    // During the outage: a prompt 503 with Retry-After, never a hang.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let head = http
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("HEAD answers during the outage");
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(head.headers().contains_key("retry-after"));
    let patch = http
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", (7 * MIB).to_string())
        .body(bytes[7 * MIB..].to_vec())
        .send()
        .await;
    if let Ok(patch) = patch {
        assert_eq!(patch.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    // Redis comes back from its AOF on the same port; partway reconnects.
    let _redis = start_redis_on(dir.path(), port, aof);
    let mut offset = None;
    for _ in 0..100 {
        let head = app.head(&url).await;
        if head.status() == StatusCode::OK {
            offset = header_u64(head.headers(), "upload-offset");
            break;
        }
        assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let offset = offset.expect("partway reconnected to Redis");
    assert_eq!(offset, 7 * MIB as u64, "every acknowledged byte survived");
    let rest = app.patch(&url, offset, bytes[7 * MIB..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_loses_no_acknowledged_byte_and_another_one_finishes() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let mut doomed = crate::binary::launch_like(&app, port, &[]).await;
    let bytes = data(13 * MIB + 1, 71);
    let url = app.create(Some(bytes.len() as u64)).await;
    let url_doomed = format!(
        "http://127.0.0.1:{port}/files/{}",
        crate::helpers::id_of(&url)
    );

    // The doomed instance receives 7 MiB and commits the first part as it
    // streams; then the client stalls and the instance is killed -9.
    let (tx, stalled) =
        crate::helpers::stalled_patch(&app.http, &url_doomed, bytes[..7 * MIB].to_vec()).await;
    let start = std::time::Instant::now();
    while app.offset(&url).await < 5 * MIB as u64 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no part committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    doomed.kill().expect("kill -9");
    let _ = doomed.wait();
    drop(tx);
    let _ = stalled.await;

    // The client resumes through the other instance; the dead holder's lock
    // runs out with its TTL, meanwhile PATCH answers 423 and is retried.
    let acknowledged = app.offset(&url).await;
    assert!(
        acknowledged >= 5 * MIB as u64,
        "acknowledged {acknowledged}"
    );
    loop {
        let offset = app.offset(&url).await;
        let from = usize::try_from(offset).expect("offset");
        let response = app.patch(&url, offset, bytes[from..].to_vec()).await;
        match response.status() {
            StatusCode::NO_CONTENT => break,
            StatusCode::LOCKED | StatusCode::CONFLICT => {
                assert!(start.elapsed() < Duration::from_secs(60), "never resumed");
            }
            other => panic!("resume got {other}"),
        }
    }
    app.assert_object(&url, &bytes).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_commits_every_patch_in_flight_and_exits() {
    let app = TestApp::spawn().await;
    let port = free_port();
    let server = crate::binary::launch_like(&app, port, &[]).await;
    // Six PATCHes in flight, each stalled after sending part of its body.
    let mut uploads = Vec::new();
    for i in 0..6 {
        let bytes = data(9 * MIB, 120 + i);
        let url = app.create(Some(bytes.len() as u64)).await;
        let sent = MIB + i as usize * 1000 * 1000;
        let on_server = format!(
            "http://127.0.0.1:{port}/files/{}",
            crate::helpers::id_of(&url)
        );
        let stalled =
            crate::helpers::stalled_patch(&app.http, &on_server, bytes[..sent].to_vec()).await;
        uploads.push((url, bytes, sent, stalled));
    }
    // Let the server read what was sent (it sits in loopback buffers).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let took = crate::binary::terminate(server).await;
    // Bounded by the shutdown grace period, whatever the clients do.
    assert!(
        took < partway::config::defaults::SHUTDOWN_GRACE + Duration::from_secs(5),
        "exited after {took:?}"
    );
    for (url, bytes, sent, (tx, patch)) in uploads {
        drop(tx);
        let _ = patch.await;
        // Everything each PATCH received was committed before the exit.
        assert_eq!(app.offset(&url).await, sent as u64, "{url}");
        let rest = app.patch(&url, sent as u64, bytes[sent..].to_vec()).await;
        assert_eq!(rest.status(), StatusCode::NO_CONTENT);
        app.assert_object(&url, &bytes).await;
    }
}
