//! Resumable Uploads for HTTP (the IETF draft) beside tus 1.0 on the same
//! URLs: tus-js-client's two draft modes (interop 5 and 6) upload whole,
//! in chunks and resumed after a cut, byte for byte into S3; an upload made
//! by one protocol is read with the other; a cut completing request does
//! not complete; digests are checked. The table of the draft's MUSTs is in
//! `tests/conformance/cases_draft.py`, run by the conformance test.

use crate::clients::{outcome, run_client};
use crate::helpers::{MIB, TestApp, data, header_str, id_of, location};
use reqwest::StatusCode;
use std::path::Path;

/// tus-js-client with `protocol` and `args`; returns the upload's URL and
/// the offset it resumed from, if it did.
async fn js(app: &TestApp, bytes: &[u8], protocol: &str, args: &[&str]) -> (String, Option<u64>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/upload.mjs");
    let mut all = vec!["--protocol", protocol];
    all.extend_from_slice(args);
    let output = run_client("node", &script, app, bytes, Some("fingerprints.json"), &all).await;
    let json = outcome("tus-js-client", &output);
    (
        json["url"].as_str().expect("url").to_owned(),
        json["resumedFrom"].as_u64(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_js_client_uploads_with_both_draft_modes() {
    let app = TestApp::spawn().await;
    for protocol in ["ietf-draft-03", "ietf-draft-05"] {
        let runs: [(usize, &[&str]); 6] = [
            (0, &[]),
            (1, &[]),
            (5 * MIB + 1, &[]),
            (64 * MIB, &[]),
            (11 * MIB + 5, &["--chunk-size", "1048576"]),
            (17 * MIB + 3, &["--chunk-size", "6291456"]),
        ];
        for (size, args) in runs {
            let bytes = data(size, size as u64 + 7);
            let (url, _) = js(&app, &bytes, protocol, args).await;
            app.assert_object(&url, &bytes).await;
        }
        // Cut after 40% and resumed from the stored URL, as one PATCH and in
        // chunks. tus-js-client reports progress at most every 100 ms, so one
        // PATCH is large enough that a report falls before its end.
        let resumes: [(&[&str], usize); 2] = [
            (&["--resume"], 96 * MIB),
            (&["--resume", "--chunk-size", "1048576"], 30 * MIB),
        ];
        for (args, size) in resumes {
            let bytes = data(size, 33);
            let (url, resumed) = js(&app, &bytes, protocol, args).await;
            assert!(
                resumed.is_some_and(|r| r > 0),
                "{protocol} {args:?}: resumed from {resumed:?}"
            );
            app.assert_object(&url, &bytes).await;
        }
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}

/// A draft request to `url` with `method`, interop `v`, `headers` and `body`.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    url: &str,
    v: u8,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> reqwest::Response {
    let mut request = app
        .http
        .request(method, url)
        .header("Upload-Draft-Interop-Version", v.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(body).send().await.expect("request")
}

fn header(response: &reqwest::Response, name: &str) -> String {
    header_str(response, name).unwrap_or("").to_owned()
}

/// An append (interop `v`, the draft's media type) at `offset`.
async fn append(
    app: &TestApp,
    url: &str,
    v: u8,
    offset: u64,
    complete: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let offset = offset.to_string();
    let headers = [
        ("Content-Type", "application/partial-upload"),
        ("Upload-Offset", offset.as_str()),
        ("Upload-Complete", complete),
    ];
    send(app, reqwest::Method::PATCH, url, v, &headers, body).await
}

/// One upload, both protocols: created by tus, resumed and finished by the
/// draft, read back by tus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_made_by_one_protocol_is_read_by_the_other() {
    let app = TestApp::spawn().await;
    let url = app.create(Some(10)).await;
    assert_eq!(
        app.patch(&url, 0, b"01234".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    let head = send(&app, reqwest::Method::HEAD, &url, 6, &[], vec![]).await;
    assert_eq!(header(&head, "upload-offset"), "5");
    let done = send(
        &app,
        reqwest::Method::PATCH,
        &url,
        6,
        &[
            ("Content-Type", "application/partial-upload"),
            ("Upload-Offset", "5"),
            ("Upload-Complete", "?1"),
        ],
        b"56789".to_vec(),
    )
    .await;
    assert_eq!(done.status(), StatusCode::CREATED);
    let tus = app.head(&url).await;
    assert_eq!(
        crate::helpers::header_u64(tus.headers(), "upload-offset"),
        Some(10)
    );
    app.assert_object(&url, b"0123456789").await;
    assert!(!id_of(&url).is_empty());
}

/// A request that would complete the upload, cut before its end, keeps
/// what arrived and does not complete it (a body of unknown length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_completing_request_does_not_complete() {
    use tokio::io::AsyncWriteExt;
    let app = TestApp::spawn().await;
    let created = send(
        &app,
        reqwest::Method::POST,
        &app.endpoint(),
        9,
        &[("Upload-Complete", "?0")],
        vec![],
    )
    .await;
    let url = location(&created);
    let request = format!(
        "PATCH /files/{} HTTP/1.1\r\nHost: {}\r\nUpload-Draft-Interop-Version: 9\r\n\
         Content-Type: application/partial-upload\r\nUpload-Offset: 0\r\nUpload-Complete: ?1\r\n\
         Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        id_of(&url),
        app.addr
    );
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    socket.write_all(request.as_bytes()).await.expect("send");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    drop(socket);
    // The cut request keeps what arrived.
    let start = std::time::Instant::now();
    while app.offset(&url).await < 3 {
        assert!(
            start.elapsed().as_secs() < 10,
            "the first bytes were not kept"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let head = send(&app, reqwest::Method::HEAD, &url, 9, &[], vec![]).await;
    assert_eq!(
        header(&head, "upload-complete"),
        "?0",
        "a cut request completed the upload"
    );
    assert_eq!(header(&head, "upload-offset"), "3");
    let done = append(&app, &url, 9, 3, "?1", b"def".to_vec()).await;
    assert_eq!(header(&done, "upload-complete"), "?1");
    app.assert_object(&url, b"abcdef").await;
}

/// `Content-Digest` (RFC 9530) on an append: a content that does not match
/// is not kept; one that matches is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_digests_are_checked() {
    use base64::Engine;
    use sha2::Digest;
    let app = TestApp::spawn().await;
    let created = send(
        &app,
        reqwest::Method::POST,
        &app.endpoint(),
        6,
        &[("Upload-Complete", "?0"), ("Upload-Length", "6")],
        vec![],
    )
    .await;
    let url = location(&created);
    let digest = |algorithm: &str, body: &[u8]| {
        let bytes = match algorithm {
            "sha-256" => sha2::Sha256::digest(body).to_vec(),
            _ => sha2::Sha512::digest(body).to_vec(),
        };
        format!(
            "{algorithm}=:{}:",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    };
    let patch = |digest: String, body: &'static [u8]| {
        let headers = [
            (
                "Content-Type".to_owned(),
                "application/partial-upload".to_owned(),
            ),
            ("Upload-Offset".to_owned(), "0".to_owned()),
            ("Upload-Complete".to_owned(), "?1".to_owned()),
            ("Content-Digest".to_owned(), digest),
        ];
        let mut request = app
            .http
            .patch(&url)
            .header("Upload-Draft-Interop-Version", "6");
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body).send()
    };
    let wrong = patch(digest("sha-256", b"other!"), b"abcdef")
        .await
        .expect("PATCH");
    assert!(
        wrong.status().is_client_error(),
        "a wrong digest: {}",
        wrong.status()
    );
    assert_eq!(app.offset(&url).await, 0, "nothing of it kept");
    let right = patch(digest("sha-512", b"abcdef"), b"abcdef")
        .await
        .expect("PATCH");
    assert_eq!(right.status(), StatusCode::CREATED);
    app.assert_object(&url, b"abcdef").await;
}

/// The application is told of draft uploads as of tus ones, and the
/// caller's token is checked the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_and_authorization_apply_to_the_draft() {
    let (receiver, hook_url) = crate::receiver::Receiver::start().await;
    let signer = crate::tokens::Signer::new();
    let auth = signer.settings();
    let app = TestApp::spawn_with(move |s| {
        s.hooks.http = Some(hook_url);
        s.auth = auth;
    })
    .await;
    let anonymous = send(
        &app,
        reqwest::Method::POST,
        &app.endpoint(),
        9,
        &[("Upload-Complete", "?1")],
        b"x".to_vec(),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let bearer = format!(
        "Bearer {}",
        signer.token("alice", 600, serde_json::json!({}))
    );
    let headers = [
        ("Upload-Complete", "?1"),
        ("Authorization", bearer.as_str()),
    ];
    let created = send(
        &app,
        reqwest::Method::POST,
        &app.endpoint(),
        9,
        &headers,
        b"hello".to_vec(),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = id_of(&location(&created)).to_owned();
    receiver
        .wait_for(20, |r| {
            ["post-create", "post-finish"]
                .iter()
                .all(|k| r.iter().any(|e| e.kind == *k && e.upload == id))
        })
        .await;
    assert_eq!(receiver.problems(), Vec::<String>::new());
}
