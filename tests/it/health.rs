//! Health and logs: `/healthz` and `/readyz` on Redis and moto (not ready
//! while Redis is down, ready again when it is back), request ids echoed,
//! and the binary's log lines carrying the request and upload ids, as JSON
//! or as plain text without colour codes.

use crate::binary::{launch_with, ready, terminate};
use crate::faults::crash_redis;
use crate::helpers::TestApp;
use crate::servers::{free_port, start_redis, start_redis_on};
use partway::config::Backend;
use reqwest::StatusCode;
use std::time::Duration;

async fn status(app: &TestApp, path: &str) -> StatusCode {
    let url = format!("http://{}{path}", app.addr);
    app.http.get(url).send().await.expect("GET").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_follows_the_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, mut redis) = start_redis(dir.path(), "");
    let app = TestApp::spawn_with(move |s| {
        if let Backend::S3 { redis_url, .. } = &mut s.backend {
            *redis_url = format!("redis://127.0.0.1:{port}/");
        }
    })
    .await;
    assert_eq!(status(&app, "/healthz").await, StatusCode::OK);
    assert_eq!(status(&app, "/readyz").await, StatusCode::OK);
    crash_redis(port).await;
    let _ = redis.wait();
    assert_eq!(
        status(&app, "/readyz").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        status(&app, "/healthz").await,
        StatusCode::OK,
        "the process still serves"
    );
    let (_, mut back) = start_redis_on(dir.path(), port, "");
    let mut answer = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..50 {
        answer = status(&app, "/readyz").await;
        if answer == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(answer, StatusCode::OK, "ready again once Redis is back");
    crash_redis(port).await;
    let _ = back.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let app = TestApp::spawn().await;
    let id_of = |response: &reqwest::Response| {
        response.headers()["x-request-id"]
            .to_str()
            .expect("text")
            .to_owned()
    };
    let given = app.post(Some(3), &[("X-Request-Id", "client-7:a")]).await;
    assert_eq!(id_of(&given), "client-7:a");
    let made = app.head(&format!("{}{:032x}", app.endpoint(), 7)).await;
    assert_eq!(made.status(), StatusCode::NOT_FOUND);
    let made = id_of(&made);
    assert!(
        made.len() == 16 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    let odd = app
        .http
        .get(format!("http://{}/healthz", app.addr))
        .header("X-Request-Id", "a b");
    assert_ne!(
        id_of(&odd.send().await.expect("GET")),
        "a b",
        "only sensible ids are taken"
    );
}

/// Runs the binary with `args`, sends a HEAD with request id `rid` for an
/// unknown upload `upload`, and returns what it logged.
async fn logged(args: &[&str], rid: &str, upload: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("partway.log");
    let port = free_port();
    let out = std::fs::File::create(&log).expect("log");
    let server = launch_with(
        &dir.path().join("data"),
        port,
        args,
        "partway=debug",
        out.into(),
    );
    ready(port).await;
    let head = reqwest::Client::new()
        .head(format!("http://127.0.0.1:{port}/files/{upload}"))
        .header("Tus-Resumable", "1.0.0")
        .header("X-Request-Id", rid)
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::NOT_FOUND);
    terminate(server).await;
    std::fs::read_to_string(&log).expect("log")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_lines_name_the_request_and_the_upload() {
    let upload = format!("{:032x}", rand::random::<u128>());
    let json = logged(&["--log-format", "json"], "rid-json-1", &upload).await;
    let about: Vec<serde_json::Value> = json
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .filter(|line: &serde_json::Value| line["span"]["id"] == "rid-json-1")
        .collect();
    assert!(!about.is_empty(), "no line about the request: {json}");
    assert!(
        about
            .iter()
            .all(|line| line["span"]["upload"] == upload.as_str())
    );
    let text = logged(&[], "rid-text-1", &upload).await;
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
    let line = text
        .lines()
        .find(|l| l.contains("id=rid-text-1"))
        .expect("a line about it");
    assert!(line.contains(&format!("upload={upload}")), "{line}");
}
