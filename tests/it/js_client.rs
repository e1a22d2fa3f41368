//! The real tus-js-client (npm) under Node uploads through partway into S3:
//! whole files from 0 B to 64 MiB with chunkSize unset, 1 MiB and 6 MiB,
//! `parallelUploads: 3` (partial uploads joined by a final concatenation),
//! the resume of an interrupted upload from its fingerprint store, and a
//! short-lived bearer token refreshed before every request.

use crate::clients::{outcome, run_client};
use crate::helpers::{KIB, MIB, TestApp, data, header_str, header_u64};
use std::path::{Path, PathBuf};

/// What `tests/js/upload.mjs` reports.
struct Outcome {
    url: String,
    resumed_from: Option<u64>,
}

fn script() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/tus-js-client").exists(),
        "tus-js-client is not installed: run tests/run.sh (or `npm ci` in tests/js)"
    );
    dir.join("upload.mjs")
}

async fn run_js(app: &TestApp, bytes: &[u8], args: &[&str]) -> Outcome {
    let output = run_client(
        "node",
        &script(),
        app,
        bytes,
        Some("fingerprints.json"),
        args,
    )
    .await;
    let json = outcome("tus-js-client", &output);
    Outcome {
        url: json["url"].as_str().expect("url").to_owned(),
        resumed_from: json["resumedFrom"].as_u64(),
    }
}

/// Uploads each size with `args` and checks every object byte for byte.
async fn upload_sizes(app: &TestApp, sizes: &[usize], args: &[&str]) {
    for &size in sizes {
        let bytes = data(size, 20 + size as u64);
        let outcome = run_js(app, &bytes, args).await;
        app.assert_object(&outcome.url, &bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_whole_files() {
    let app = TestApp::spawn().await;
    // chunkSize unset: one PATCH per file, across the 5 MiB part boundaries.
    let sizes = [0, 1, 5 * MIB - 1, 5 * MIB + 1, 20 * MIB + 17, 64 * MIB];
    upload_sizes(&app, &sizes, &[]).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_in_1_mib_chunks() {
    let app = TestApp::spawn().await;
    let sizes = [0, 1, MIB, 11 * MIB + 5];
    upload_sizes(&app, &sizes, &["--chunk-size", "1048576"]).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_in_6_mib_chunks() {
    let app = TestApp::spawn().await;
    // 6 MiB chunks straddle the 5 MiB part grid.
    let sizes = [1, 6 * MIB, 17 * MIB + 3, 64 * MIB];
    upload_sizes(&app, &sizes, &["--chunk-size", "6291456"]).await;
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_parallel_uploads_concatenate() {
    let app = TestApp::spawn().await;
    // Partials of ~6.7 MiB (off the part grid), of ~33 KiB (under the 5 MiB part
    // minimum), and of ~5.3 MiB sent in 1 MiB chunks.
    for (size, args) in [
        (20 * MIB + 5, &["--parallel", "3"][..]),
        (100 * KIB, &["--parallel", "3"]),
        (
            16 * MIB + 1,
            &["--parallel", "3", "--chunk-size", "1048576"],
        ),
    ] {
        let bytes = data(size, 40 + size as u64);
        let outcome = run_js(&app, &bytes, args).await;
        let head = app.head(&outcome.url).await;
        assert_eq!(head.status(), 200, "HEAD of the final upload");
        let concat = header_str(&head, "upload-concat").unwrap_or_default();
        assert!(
            concat.starts_with("final;"),
            "Upload-Concat of the final upload: {concat:?}"
        );
        assert_eq!(
            header_u64(head.headers(), "upload-length"),
            Some(size as u64)
        );
        assert_eq!(
            header_u64(head.headers(), "upload-offset"),
            Some(size as u64)
        );
        app.assert_object(&outcome.url, &bytes).await;
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_resumes_an_interrupted_upload() {
    let app = TestApp::spawn().await;
    // In chunks (the abort falls between PATCHes), then as one PATCH cut
    // mid-body: tus-js-client reports progress at most every 100 ms, so that
    // PATCH is large enough that a report falls before its end.
    let resumes: [(&[&str], usize); 2] = [
        (&["--resume", "--chunk-size", "1048576"], 30 * MIB),
        (&["--resume"], 96 * MIB),
    ];
    for (args, size) in resumes {
        let bytes = data(size, 31);
        let outcome = run_js(&app, &bytes, args).await;
        let resumed = outcome
            .resumed_from
            .expect("a resumed upload reports its offset");
        assert!(resumed > 0, "resumed from {resumed}, not restarted");
        app.assert_object(&outcome.url, &bytes).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_refreshes_its_token_before_every_request() {
    let signer = crate::tokens::Signer::new();
    let auth = signer.settings();
    let stale = signer.token("alice", -5, serde_json::json!({}));
    let app = TestApp::spawn_with(move |s| s.auth = auth).await;
    let (token_url, minted) = crate::tokens::token_endpoint(signer, "alice", 30).await;
    let bytes = data(12 * MIB + 3, 77);
    let args = [
        "--chunk-size",
        "1048576",
        "--token-url",
        &token_url,
        "--stale-token",
        &stale,
    ];
    let outcome = run_js(&app, &bytes, &args).await;
    app.assert_object(&outcome.url, &bytes).await;
    // One POST and 13 PATCHes, each with a token fetched just before it.
    let minted = minted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(minted >= 14, "{minted} tokens minted");
    // A resume after an interruption: HEAD and PATCHes get fresh tokens too.
    let resumed = run_js(
        &app,
        &bytes,
        &[
            "--resume",
            "--chunk-size",
            "1048576",
            "--token-url",
            &token_url,
        ],
    )
    .await;
    assert!(resumed.resumed_from.is_some_and(|offset| offset > 0));
    app.assert_object(&resumed.url, &bytes).await;
}
