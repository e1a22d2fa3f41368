//! `/metrics` after a known workload on Redis and moto, read by the
//! Prometheus client's own text parser: the counts match what was done,
//! and the store latencies, locks and gauges are there. `/metrics` can move
//! to its own listener, or be turned off.

use crate::helpers::{MIB, TestApp, data};
use crate::servers::free_port;
use partway::config::MetricsAt;
use reqwest::StatusCode;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The samples of a scrape, as the Prometheus parser reads them.
pub struct Scrape(Vec<Value>);

impl Scrape {
    pub async fn of(url: &str) -> Self {
        let text = reqwest::get(url).await.expect("GET /metrics");
        assert_eq!(text.status(), StatusCode::OK);
        let kind = text.headers()["content-type"]
            .to_str()
            .expect("text")
            .to_owned();
        assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
        let text = text.text().await.expect("body");
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-env/venv/bin/python");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/parse_metrics.py");
        let mut parser = Command::new(python)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python (run tests/run.sh to install prometheus-client)");
        let mut stdin = parser.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write");
        drop(stdin);
        let output = parser.wait_with_output().expect("parse");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the parser refused the text: {stderr}\n{text}"
        );
        let samples = String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("a sample"))
            .collect();
        Self(samples)
    }

    /// The value of `name` with these labels (a subset match). The parser
    /// names every counter sample `_total`, as OpenMetrics does; the text
    /// partway serves keeps tusd's names (`partway_bytes_received`).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let total = format!("{name}_total");
        self.0
            .iter()
            .filter(|s| s["name"] == name || s["name"] == total.as_str())
            .find(|s| labels.iter().all(|(k, v)| s["labels"][*k] == *v))
            .and_then(|s| s["value"].as_f64())
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_workload() {
    let app = TestApp::spawn().await;
    let bytes = data(6 * MIB + 1, 130);
    let mut urls = Vec::new();
    for _ in 0..3 {
        let url = app.create(Some(bytes.len() as u64)).await;
        assert_eq!(
            app.patch(&url, 0, bytes.clone()).await.status(),
            StatusCode::NO_CONTENT
        );
        urls.push(url);
    }
    let unknown = format!("{}{:032x}", app.endpoint(), 1);
    assert_eq!(app.head(&unknown).await.status(), StatusCode::NOT_FOUND);
    let no_version = app.http.head(&urls[0]).send().await.expect("HEAD");
    assert_eq!(no_version.status(), StatusCode::PRECONDITION_FAILED);
    let delete = app
        .http
        .delete(&urls[2])
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await;
    assert_eq!(delete.expect("DELETE").status(), StatusCode::NO_CONTENT);

    let m = Scrape::of(&format!("http://{}/metrics", app.addr)).await;
    assert_eq!(m.get("partway_requests_total", &[("method", "POST")]), 3.0);
    assert_eq!(m.get("partway_requests_total", &[("method", "PATCH")]), 3.0);
    assert_eq!(m.get("partway_requests_total", &[("method", "HEAD")]), 2.0);
    assert_eq!(
        m.get("partway_requests_total", &[("method", "DELETE")]),
        1.0
    );
    let not_found = [("status", "404"), ("code", "ERR_UPLOAD_NOT_FOUND")];
    assert_eq!(m.get("partway_errors_total", &not_found), 1.0);
    let version = [("status", "412"), ("code", "ERR_UNSUPPORTED_VERSION")];
    assert_eq!(m.get("partway_errors_total", &version), 1.0);
    assert_eq!(m.get("partway_uploads_created", &[]), 3.0);
    assert_eq!(m.get("partway_uploads_finished", &[]), 3.0);
    assert_eq!(m.get("partway_uploads_terminated", &[]), 1.0);
    assert_eq!(
        m.get("partway_bytes_received", &[]),
        3.0 * bytes.len() as f64
    );
    assert_eq!(
        m.get(
            "partway_hook_invocations_total",
            &[("hooktype", "post-finish")]
        ),
        0.0
    );
    assert!(
        m.get("partway_connections_open", &[]) >= 1.0,
        "the scrape's own connection"
    );
    assert_eq!(m.get("partway_uploads_active", &[]), 0.0);
    assert_eq!(m.get("partway_buffer_bytes_in_use", &[]), 0.0);
    // Two parts per upload (5 MiB, then the rest), one Complete each.
    let parts = [("operation", "UploadPart"), ("outcome", "ok")];
    assert_eq!(
        m.get("partway_s3_request_duration_seconds_count", &parts),
        6.0
    );
    let complete = [("operation", "CompleteMultipartUpload"), ("outcome", "ok")];
    assert_eq!(
        m.get("partway_s3_request_duration_seconds_count", &complete),
        3.0
    );
    let inf = [
        ("operation", "UploadPart"),
        ("outcome", "ok"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        m.get("partway_s3_request_duration_seconds_bucket", &inf),
        6.0
    );
    let commits = [("operation", "commit"), ("outcome", "ok")];
    assert!(m.get("partway_redis_request_duration_seconds_count", &commits) >= 6.0);
    let locked = [("outcome", "acquired")];
    assert!(m.get("partway_lock_wait_seconds_count", &locked) >= 4.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_to_their_own_listener_or_go_away() {
    let port = free_port();
    let apart = TestApp::spawn_with(move |s| {
        s.metrics = MetricsAt::Listen(format!("127.0.0.1:{port}").parse().expect("addr"));
    })
    .await;
    let main = reqwest::get(format!("http://{}/metrics", apart.addr))
        .await
        .expect("GET");
    assert_eq!(
        main.status(),
        StatusCode::NOT_FOUND,
        "not on the main listener"
    );
    let unknown = format!("{}{:032x}", apart.endpoint(), 2);
    assert_eq!(apart.head(&unknown).await.status(), StatusCode::NOT_FOUND);
    let m = Scrape::of(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert_eq!(m.get("partway_requests_total", &[("method", "HEAD")]), 1.0);
    let off = TestApp::spawn_with(|s| s.metrics = MetricsAt::Off).await;
    let none = reqwest::get(format!("http://{}/metrics", off.addr))
        .await
        .expect("GET");
    assert_eq!(none.status(), StatusCode::NOT_FOUND);
}

/// The `partway_*` names in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("partway_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_dashboard_asks_for_metrics_partway_serves() {
    let app = TestApp::spawn().await;
    let bytes = data(6 * MIB, 131);
    let url = app.create(Some(bytes.len() as u64)).await;
    assert_eq!(
        app.patch(&url, 0, bytes).await.status(),
        StatusCode::NO_CONTENT
    );
    let served = reqwest::get(format!("http://{}/metrics", app.addr))
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("compose/grafana/dashboards/partway.json");
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    let exprs: Vec<&str> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .filter_map(|t| t["expr"].as_str())
        .collect();
    assert!(exprs.len() >= 9, "{exprs:?}");
    for name in exprs.iter().flat_map(|e| metric_names(e)) {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        assert!(
            served.contains(&format!("# TYPE {family} ")),
            "the dashboard asks for {name}, which /metrics does not serve"
        );
    }
}
