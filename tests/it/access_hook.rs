//! The `pre-access` hook against a receiver run by the test: it sees the
//! request's credentials and the uploads, its rejection is the answer, a
//! revocation takes effect on the next request (or after the cache), and a
//! hook that is down or slow closes the door with 503.

use crate::helpers::{TestApp, location, serve_app};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver answers, and what it was asked.
#[derive(Default)]
struct Receiver {
    /// Answers by upload id; `{}` for any other.
    answers: HashMap<String, Value>,
    delay: Duration,
    asked: Vec<Value>,
}

type Shared = Arc<Mutex<Receiver>>;

async fn answer(State(receiver): State<Shared>, body: axum::body::Bytes) -> impl IntoResponse {
    let request: Value = serde_json::from_slice(&body).expect("a JSON hook request");
    let (delay, answer) = {
        let mut r = receiver.lock().expect("receiver");
        let id = request["Event"]["Upload"]["ID"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        r.asked.push(request);
        (r.delay, r.answers.get(&id).cloned().unwrap_or(json!({})))
    };
    tokio::time::sleep(delay).await;
    ([("content-type", "application/json")], answer.to_string())
}

/// Starts a receiver on a loopback port; returns its URL and state.
async fn receiver() -> (String, Shared) {
    let shared = Shared::default();
    let app = axum::Router::new()
        .route("/hook", post(answer))
        .with_state(shared.clone());
    (serve_app(app, "/hook").await, shared)
}

async fn app_asking(url: String, cache: Duration, timeout: Duration) -> TestApp {
    TestApp::spawn_with(move |s| {
        s.auth.access_hook_url = Some(url);
        s.auth.access_hook_cache = cache;
        s.auth.access_hook_timeout = timeout;
    })
    .await
}

/// A finished 3-byte upload; creation is not the access hook's to judge.
async fn finished_upload(app: &TestApp) -> String {
    let url = app.create(Some(3)).await;
    assert_eq!(
        app.patch(&url, 0, b"abc".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    url
}

async fn get(app: &TestApp, url: &str) -> reqwest::Response {
    app.http
        .get(url)
        .header("Cookie", "session=s3cr3t")
        .send()
        .await
        .expect("GET")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_decides_and_a_revocation_is_immediate() {
    let (hook, receiver) = receiver().await;
    let app = app_asking(hook, Duration::ZERO, Duration::from_secs(5)).await;
    let url = finished_upload(&app).await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    assert_eq!(get(&app, &url).await.status(), StatusCode::OK);
    {
        let r = receiver.lock().expect("receiver");
        let read = r.asked.last().expect("asked");
        assert_eq!(read["Type"], "pre-access");
        assert_eq!(read["Event"]["Access"]["Mode"], "read");
        assert_eq!(read["Event"]["Access"]["Uploads"][0]["ID"], id.as_str());
        assert_eq!(read["Event"]["Access"]["Uploads"][0]["Offset"], 3);
        assert_eq!(read["Event"]["HTTPRequest"]["Method"], "GET");
        assert_eq!(
            read["Event"]["HTTPRequest"]["Header"]["Cookie"][0],
            "session=s3cr3t"
        );
        let modes: Vec<&str> = r
            .asked
            .iter()
            .filter_map(|a| a["Event"]["Access"]["Mode"].as_str())
            .collect();
        assert_eq!(
            modes,
            ["write", "read"],
            "PATCH writes, GET reads; POST is not asked"
        );
    }
    // The profile is hidden: the very next request is refused.
    receiver
        .lock()
        .expect("receiver")
        .answers
        .insert(id.clone(), json!({ "RejectAccess": true }));
    let refused = get(&app, &url).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.head(&url).await.status(), StatusCode::FORBIDDEN);
    // The application may choose the answer, in tusd's HTTPResponse shape.
    let chosen = json!({ "rejectAccess": true, "HTTPResponse": {
        "StatusCode": 401, "Body": "{\"error\":\"log in again\"}",
        "Header": { "Content-Type": "application/json" } } });
    receiver
        .lock()
        .expect("receiver")
        .answers
        .insert(id.clone(), chosen);
    let chosen = get(&app, &url).await;
    assert_eq!(chosen.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(chosen.headers()["content-type"], "application/json");
    assert_eq!(
        chosen.text().await.expect("body"),
        "{\"error\":\"log in again\"}"
    );
    let delete = app
        .http
        .delete(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(delete.status(), StatusCode::UNAUTHORIZED);
    receiver.lock().expect("receiver").answers.remove(&id);
    assert_eq!(
        get(&app, &url).await.status(),
        StatusCode::OK,
        "shared again"
    );
    // The hook is told the method the client means.
    let overridden = app
        .http
        .post(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .expect("POST as DELETE");
    assert_eq!(overridden.status(), StatusCode::NO_CONTENT);
    let r = receiver.lock().expect("receiver");
    let last = r.asked.last().expect("asked");
    assert_eq!(last["Event"]["HTTPRequest"]["Method"], "DELETE");
    assert_eq!(last["Event"]["Access"]["Mode"], "write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_is_down_or_slow_closes_the_door() {
    let (hook, receiver) = receiver().await;
    let app = app_asking(hook, Duration::ZERO, Duration::from_secs(1)).await;
    let url = finished_upload(&app).await;
    receiver.lock().expect("receiver").delay = Duration::from_secs(3);
    let slow = get(&app, &url).await;
    assert_eq!(slow.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(slow.headers().contains_key("retry-after"));
    let head = app.head(&url).await;
    assert_eq!(head.status(), StatusCode::SERVICE_UNAVAILABLE);

    let closed = format!("http://127.0.0.1:{}/hook", crate::servers::free_port());
    let down = app_asking(closed, Duration::ZERO, Duration::from_secs(5)).await;
    let created = down.post(Some(3), &[]).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let head = down.head(&location(&created)).await;
    assert_eq!(
        head.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "never an open door"
    );
    let m = crate::metrics::Scrape::of(&format!("http://{}/metrics", down.addr)).await;
    let hook = [("hooktype", "pre-access")];
    assert_eq!(m.get("partway_hook_invocations_total", &hook), 1.0);
    assert_eq!(m.get("partway_hook_errors_total", &hook), 1.0);
    let reason = [("reason", "hook_unavailable")];
    assert_eq!(m.get("partway_auth_refusals_total", &reason), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_decision_holds_for_its_time() {
    let (hook, receiver) = receiver().await;
    let app = app_asking(hook, Duration::from_secs(2), Duration::from_secs(5)).await;
    let url = finished_upload(&app).await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    assert_eq!(get(&app, &url).await.status(), StatusCode::OK);
    let asked = receiver.lock().expect("receiver").asked.len();
    receiver
        .lock()
        .expect("receiver")
        .answers
        .insert(id, json!({ "RejectAccess": true }));
    assert_eq!(get(&app, &url).await.status(), StatusCode::OK, "cached");
    assert_eq!(
        receiver.lock().expect("receiver").asked.len(),
        asked,
        "not asked again"
    );
    // Another credential is another question.
    let other = app
        .http
        .get(&url)
        .header("Cookie", "session=other")
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), StatusCode::FORBIDDEN);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        get(&app, &url).await.status(),
        StatusCode::FORBIDDEN,
        "the cache ran out"
    );
}
