//! A hook receiver as an application writes one for tusd: an HTTP server
//! in the test that checks every request against tusd v2's hook shape
//! (every key, every type), checks the signature when it has a secret,
//! records what it got, and answers as the test tells it to.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One hook request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub kind: String,
    pub upload: String,
    pub hook_id: String,
    pub body: Value,
    pub at: Instant,
}

/// How long the receiver waits before it answers a request, if at all.
pub type Delay = Box<dyn Fn(&Value) -> Option<Duration> + Send + Sync>;

/// How the receiver answers a request: `None` for `{}`.
pub type Rule = Box<dyn Fn(&Value) -> Option<(StatusCode, Value)> + Send + Sync>;

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Shape or signature problems, one line each.
    problems: Vec<String>,
    /// While set, every request gets 503 and is not recorded.
    down: bool,
    rules: Vec<Rule>,
    /// How long to wait before answering a request, if at all.
    delays: Vec<Delay>,
    secret: Option<Vec<u8>>,
}

/// The receiver's state, shared with the test.
#[derive(Clone, Default)]
pub struct Receiver(Arc<Mutex<Inner>>);

impl Receiver {
    /// Starts a receiver on a loopback port; returns it and its URL.
    pub async fn start() -> (Self, String) {
        let receiver = Self::default();
        let app = axum::Router::new()
            .route("/hooks", post(answer))
            .with_state(receiver.clone());
        let url = crate::helpers::serve_app(app, "/hooks").await;
        (receiver, url)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().expect("receiver")
    }

    /// Answers with `rule` when it has an answer.
    pub fn rule(
        &self,
        rule: impl Fn(&Value) -> Option<(StatusCode, Value)> + Send + Sync + 'static,
    ) {
        self.lock().rules.push(Box::new(rule));
    }

    /// Waits before answering when `delay` says how long.
    pub fn delay(&self, delay: impl Fn(&Value) -> Option<Duration> + Send + Sync + 'static) {
        self.lock().delays.push(Box::new(delay));
    }

    /// Checks every request's signature with `secret`.
    pub fn verify_with(&self, secret: &[u8]) {
        self.lock().secret = Some(secret.to_vec());
    }

    /// Takes the receiver down (503 to everything) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Everything received and answered so far.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The requests of hook `kind` about `upload`.
    pub fn of(&self, kind: &str, upload: &str) -> Vec<Received> {
        let all = self.received();
        all.into_iter()
            .filter(|r| r.kind == kind && r.upload == upload)
            .collect()
    }

    /// Problems found so far: shape or signature.
    pub fn problems(&self) -> Vec<String> {
        self.lock().problems.clone()
    }

    /// Waits until `done` holds for what was received, up to `secs`.
    pub async fn wait_for(&self, secs: u64, done: impl Fn(&[Received]) -> bool) {
        let start = Instant::now();
        while !done(&self.received()) {
            assert!(
                start.elapsed().as_secs() < secs,
                "the receiver waited {secs}s; got {:#?}",
                self.received()
                    .iter()
                    .map(|r| (&r.kind, &r.upload))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

async fn answer(
    State(receiver): State<Receiver>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let delay = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|request| {
            let inner = receiver.lock();
            inner.delays.iter().find_map(|d| d(&request))
        });
    // Recorded on arrival, answered after the delay.
    let response = record_and_answer(&receiver, &headers, &body);
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    response
}

fn record_and_answer(receiver: &Receiver, headers: &HeaderMap, body: &[u8]) -> Response {
    let mut inner = receiver.lock();
    if inner.down {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        inner.problems.push("a body that is not JSON".into());
        return StatusCode::BAD_REQUEST.into_response();
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let mut problems = shape(&request);
    if header("content-type") != "application/json" {
        problems.push(format!("Content-Type {:?}", header("content-type")));
    }
    if request["ID"].as_str() != Some(header("hook-id")) || header("hook-id").is_empty() {
        problems.push("Hook-Id is not the body's ID".into());
    }
    if let Some(secret) = &inner.secret {
        let ts: u64 = header("hook-timestamp").parse().unwrap_or(0);
        let expected = partway::hook::client::signature(secret, ts, body);
        if header("hook-signature") != expected {
            problems.push("a bad signature".into());
        }
    }
    inner.problems.extend(problems);
    let answer = inner.rules.iter().find_map(|rule| rule(&request));
    inner.received.push(Received {
        kind: request["Type"].as_str().unwrap_or("").to_owned(),
        upload: request["Event"]["Upload"]["ID"]
            .as_str()
            .unwrap_or("")
            .to_owned(),
        hook_id: header("hook-id").to_owned(),
        body: request,
        at: Instant::now(),
    });
    let (status, answer) = answer.unwrap_or((StatusCode::OK, json!({})));
    (
        status,
        [("content-type", "application/json")],
        answer.to_string(),
    )
        .into_response()
}

/// Where `request` differs from tusd v2's hook request.
fn shape(request: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            problems.push(format!("{what}: {request}"));
        }
    };
    let kinds = [
        "pre-create",
        "post-create",
        "post-receive",
        "pre-finish",
        "post-finish",
        "pre-terminate",
        "post-terminate",
    ];
    expect(
        kinds.contains(&request["Type"].as_str().unwrap_or("")),
        "Type",
    );
    let upload = &request["Event"]["Upload"];
    let keys = [
        "ID",
        "Size",
        "SizeIsDeferred",
        "Offset",
        "MetaData",
        "IsPartial",
        "IsFinal",
        "PartialUploads",
        "Storage",
    ];
    let got: Vec<&str> = upload
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    expect(
        got.len() == keys.len() && keys.iter().all(|k| got.contains(k)),
        "Upload keys",
    );
    expect(upload["ID"].is_string(), "ID");
    expect(
        upload["Size"].is_u64() && upload["Offset"].is_u64(),
        "Size, Offset",
    );
    expect(upload["SizeIsDeferred"].is_boolean(), "SizeIsDeferred");
    expect(
        upload["IsPartial"].is_boolean() && upload["IsFinal"].is_boolean(),
        "IsPartial, IsFinal",
    );
    let metadata = upload["MetaData"].as_object();
    expect(
        metadata.is_some_and(|m| m.values().all(Value::is_string)),
        "MetaData",
    );
    expect(
        upload["PartialUploads"].is_null() || upload["PartialUploads"].is_array(),
        "PartialUploads",
    );
    let storage = &upload["Storage"];
    let pre_create = request["Type"] == "pre-create";
    expect(
        if pre_create {
            storage.is_null() && upload["ID"] == ""
        } else {
            storage["Type"] == "s3store"
                && storage["Bucket"].is_string()
                && storage["Key"].is_string()
        },
        "Storage",
    );
    let http = &request["Event"]["HTTPRequest"];
    expect(
        http["Method"].is_string() && http["URI"].is_string(),
        "Method, URI",
    );
    expect(
        http["RemoteAddr"].as_str().is_some_and(|a| a.contains(':')),
        "RemoteAddr",
    );
    let header = http["Header"].as_object();
    expect(
        header.is_some_and(|h| {
            h.values()
                .all(|v| v.as_array().is_some_and(|a| a.iter().all(Value::is_string)))
        }),
        "Header",
    );
    problems
}
