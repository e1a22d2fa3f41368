//! Credentials never leak: the `partway` binary, logging at its most
//! verbose, answers requests with good, bad and foreign tokens and a cookie,
//! and neither its log nor any response body holds a token or the cookie.

use crate::binary::{launch_with, ready, terminate};
use crate::servers::free_port;
use crate::tokens::Signer;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_cookies_never_reach_the_log_or_a_response() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::new();
    let port = free_port();
    let log = dir.path().join("partway.log");
    let secret = signer.secret_file().display().to_string();
    let hook = format!("http://127.0.0.1:{}/hook", free_port());
    let args = [
        "--auth-jwt-secret-file",
        &secret,
        "--auth-cookie",
        "pw",
        "--access-hook-url",
        &hook,
        "--access-hook-timeout",
        "1s",
    ];
    let out = std::fs::File::create(&log).expect("log file");
    let server = launch_with(&dir.path().join("data"), port, args, "trace", out.into());
    ready(port).await;
    let alice = signer.token("alice", 600, json!({}));
    let bob = signer.token("bob", 600, json!({}));
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    let expired = signer.token("alice", -600, json!({}));
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/files/");
    let created = http
        .post(&base)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "3")
        .header("Authorization", format!("Bearer {alice}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = created.headers()["location"]
        .to_str()
        .expect("location")
        .to_owned();
    let mut bodies = Vec::new();
    for token in [&alice, &bob, &forged, &expired] {
        for (method, target) in [
            (Method::HEAD, &url),
            (Method::GET, &url),
            (Method::POST, &base),
        ] {
            let response = http
                .request(method.clone(), target.as_str())
                .header("Tus-Resumable", "1.0.0")
                .header("Upload-Length", "3")
                .header("Authorization", format!("Bearer {token}"))
                .send()
                .await
                .expect("request");
            bodies.push(response.text().await.expect("body"));
        }
        let by_cookie = http
            .get(&url)
            .header("Cookie", format!("pw={token}"))
            .send()
            .await;
        bodies.push(by_cookie.expect("GET").text().await.expect("body"));
    }
    terminate(server).await;
    let logged = std::fs::read_to_string(&log).expect("log");
    assert!(
        logged.contains("DEBUG") || logged.contains("TRACE"),
        "the log is verbose"
    );
    for token in [&alice, &bob, &forged, &expired] {
        let signature = token.rsplit('.').next().expect("a signature");
        assert!(!logged.contains(signature), "a token in the log");
        for body in &bodies {
            assert!(!body.contains(signature), "a token in a response: {body}");
        }
    }
}
