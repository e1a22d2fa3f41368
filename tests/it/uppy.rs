//! Uppy with @uppy/tus in headless Chromium (Debian's /usr/bin/chromium,
//! driven by playwright-core) uploads a file from disk through partway into
//! S3. The page is served by `tests/js/uppy.mjs` from its own loopback origin,
//! so every tus request is cross-origin, and Uppy sends it with
//! `withCredentials: true`: partway must echo the page's origin from its
//! allow-list and allow credentials, or the browser refuses the responses.
//! With a token in a cookie, Uppy uploads and the page downloads through it.

use crate::clients::{outcome, run_client};
use crate::helpers::{MIB, TestApp, data};
use crate::servers::free_port;
use crate::tokens::Signer;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Output;

pub(crate) fn script() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    for package in ["uppy", "playwright-core"] {
        assert!(
            dir.join("node_modules").join(package).exists(),
            "{package} is not installed: run tests/run.sh (or `npm ci` in tests/js)"
        );
    }
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing: run tests/run.sh (or `apt-get install chromium`)"
    );
    dir.join("uppy.mjs")
}

/// A partway that allows the page's origin, with credentials.
async fn spawn_for_page(page_port: u16) -> TestApp {
    TestApp::spawn_with(|s| {
        s.http.cors_origins = vec![format!("http://127.0.0.1:{page_port}")];
        s.http.cors_credentials = true;
    })
    .await
}

/// Runs `uppy.mjs` on a file holding `bytes`, with its page on `page_port`.
async fn run_uppy(app: &TestApp, page_port: u16, bytes: &[u8], args: &[&str]) -> Output {
    let port = page_port.to_string();
    let args: Vec<&str> = ["--page-port", port.as_str()]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_client("node", &script(), app, bytes, None, &args).await
}

/// Uploads `bytes` with Uppy and returns the upload URL it reported.
async fn upload(app: &TestApp, page_port: u16, bytes: &[u8], args: &[&str]) -> String {
    let output = run_uppy(app, page_port, bytes, args).await;
    let json = outcome("Uppy", &output);
    assert_eq!(json["size"].as_u64(), Some(bytes.len() as u64), "{json}");
    json["url"].as_str().expect("url").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppy_in_chromium_uploads_across_origins() {
    let page_port = free_port();
    let app = spawn_for_page(page_port).await;
    for (size, args) in [
        (1, &[][..]),
        (7 * MIB, &[]),
        (12 * MIB, &["--chunk-size", "5242880"]),
        (12 * MIB + 3, &["--chunk-size", "1048576"]),
    ] {
        let bytes = data(size, 60 + size as u64);
        let url = upload(&app, page_port, &bytes, args).await;
        app.assert_object(&url, &bytes).await;
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppy_in_chromium_parallel_uploads() {
    let page_port = free_port();
    let app = spawn_for_page(page_port).await;
    // parallelUploads: 3 through @uppy/tus: partials, then a final concatenation.
    for size in [7 * MIB + 1, 100 * 1024] {
        let bytes = data(size, 70 + size as u64);
        let url = upload(&app, page_port, &bytes, &["--parallel", "3"]).await;
        app.assert_object(&url, &bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppy_in_chromium_is_refused_from_an_origin_not_allowed() {
    // partway allows another origin only, so the browser blocks the responses:
    // proof that the cross-origin path above is real CORS.
    let page_port = free_port();
    let app = spawn_for_page(free_port()).await;
    let output = run_uppy(&app, page_port, &data(1000, 80), &["--timeout-ms", "60000"]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "Uppy succeeded from a refused origin"
    );
    assert!(
        stderr.contains("blocked by CORS policy"),
        "expected a CORS refusal: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppy_uploads_and_downloads_with_a_cookie_token_from_another_origin() {
    let page_port = free_port();
    let signer = Signer::new();
    let mut auth = signer.settings();
    auth.rules.cookie = Some("pw_token".into());
    let app = TestApp::spawn_with(|s| {
        s.http.cors_origins = vec![format!("http://127.0.0.1:{page_port}")];
        s.http.cors_credentials = true;
        s.auth = auth;
    })
    .await;
    // The app's login left an HttpOnly cookie for partway's host; Uppy's
    // credentialed requests carry it, and so does the page's own fetch.
    let cookie = format!("pw_token={}", signer.token("alice", 600, json!({})));
    let bytes = data(6 * MIB + 7, 85);
    let output = run_uppy(
        &app,
        page_port,
        &bytes,
        &["--cookie", &cookie, "--download"],
    )
    .await;
    let json = outcome("Uppy", &output);
    let url = json["url"].as_str().expect("url").to_owned();
    app.assert_object(&url, &bytes).await;
    let download = &json["download"];
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(download["status"], 200, "{json}");
    assert_eq!(download["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(download["sha256"].as_str(), Some(digest.as_str()));
    assert_eq!(download["anonymousStatus"], 401, "no cookie, no download");
    // The upload is the cookie's subject's: anyone else is told it does not exist.
    let bob = app
        .http
        .get(&url)
        .header("Authorization", signer.bearer("bob"))
        .send()
        .await;
    assert_eq!(bob.expect("GET").status(), reqwest::StatusCode::NOT_FOUND);
}
