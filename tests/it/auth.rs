//! Bearer-token authorization against real Redis and moto: every upload
//! answers its owner only, single-use creation tokens redeem once across
//! instances, limits carried by a token hold, and a token's expiry never
//! cuts a PATCH nor, within the grace, a resume.

use crate::helpers::{MIB, TestApp, data, header_str, header_u64, id_of, location};
use crate::tokens::Signer;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::json;
use std::time::Duration;

/// A tus request with `authorization`, if any.
fn request(
    app: &TestApp,
    method: Method,
    url: &str,
    authorization: Option<&str>,
) -> RequestBuilder {
    let mut request = app
        .http
        .request(method, url)
        .header("Tus-Resumable", "1.0.0");
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    request
}

async fn status(request: RequestBuilder) -> StatusCode {
    request.send().await.expect("request").status()
}

fn patch(app: &TestApp, url: &str, offset: u64, body: Vec<u8>, auth: &str) -> RequestBuilder {
    request(app, Method::PATCH, url, Some(auth))
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", offset.to_string())
        .body(body)
}

/// POSTs an upload of `bytes` as `auth` and sends them; returns its URL.
async fn upload(app: &TestApp, auth: &str, bytes: &[u8], extra: &[(&str, &str)]) -> String {
    let mut headers = vec![("Authorization", auth)];
    headers.extend_from_slice(extra);
    let created = app.post(Some(bytes.len() as u64), &headers).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    let sent = status(patch(app, &url, 0, bytes.to_vec(), auth)).await;
    assert_eq!(sent, StatusCode::NO_CONTENT);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_answers_its_owner_and_looks_missing_to_anyone_else() {
    let signer = Signer::new();
    let auth = signer.settings();
    let app = TestApp::spawn_with(move |s| s.auth = auth).await;
    let (alice, bob, admin) = (
        signer.bearer("alice"),
        signer.bearer("bob"),
        signer.bearer("backend"),
    );
    let options = request(&app, Method::OPTIONS, &app.endpoint(), None);
    assert_eq!(
        status(options).await,
        StatusCode::NO_CONTENT,
        "OPTIONS needs no token"
    );
    let missing = app.post(Some(3), &[]).await;
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    let challenge = header_str(&missing, "www-authenticate").expect("a challenge");
    assert!(challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_request\""));
    let bad = app
        .post(Some(3), &[("Authorization", "Bearer not.a.token")])
        .await;
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(header_str(&bad, "www-authenticate").is_some_and(|c| c.contains("invalid_token")));

    let partial = upload(&app, &alice, b"abc", &[("Upload-Concat", "partial")]).await;
    let created = app.post(Some(10), &[("Authorization", &alice)]).await;
    let unfinished = location(&created);
    let unknown = format!("{}{:032x}", app.endpoint(), rand::random::<u128>());
    for url in [&partial, &unfinished, &unknown] {
        let head = request(&app, Method::HEAD, url, Some(&bob));
        assert_eq!(status(head).await, StatusCode::NOT_FOUND, "HEAD {url}");
        assert_eq!(
            status(patch(&app, url, 0, b"x".to_vec(), &bob)).await,
            StatusCode::NOT_FOUND
        );
        let delete = request(&app, Method::DELETE, url, Some(&bob));
        assert_eq!(status(delete).await, StatusCode::NOT_FOUND, "DELETE {url}");
    }
    let get = |url: &str, auth: &str| app.http.get(url).header("Authorization", auth).send();
    let foreign = get(&partial, &bob).await.expect("GET");
    let nothing = get(&unknown, &bob).await.expect("GET");
    assert_eq!(foreign.status(), StatusCode::NOT_FOUND);
    let (foreign, nothing) = (
        foreign.text().await.expect("body"),
        nothing.text().await.expect("body"),
    );
    assert_eq!(
        foreign, nothing,
        "the same answer as for an upload that does not exist"
    );
    let concat = |auth: &str, url: &str| {
        request(&app, Method::POST, &app.endpoint(), Some(auth))
            .header("Upload-Concat", format!("final;{url}"))
    };
    assert_eq!(status(concat(&bob, &partial)).await, StatusCode::NOT_FOUND);
    assert_eq!(status(concat(&bob, &unknown)).await, StatusCode::NOT_FOUND);

    // The owner, and an admin subject, get through.
    let bytes = get(&partial, &admin)
        .await
        .expect("GET")
        .bytes()
        .await
        .expect("body");
    assert_eq!(&bytes[..], b"abc");
    assert_eq!(
        status(request(&app, Method::HEAD, &unfinished, Some(&admin))).await,
        StatusCode::OK
    );
    assert_eq!(status(concat(&alice, &partial)).await, StatusCode::CREATED);
    let delete = request(&app, Method::DELETE, &unfinished, Some(&alice));
    assert_eq!(status(delete).await, StatusCode::NO_CONTENT);
    // Each refusal is counted by its reason.
    let m = crate::metrics::Scrape::of(&format!("http://{}/metrics", app.addr)).await;
    let reason = |r| m.get("partway_auth_refusals_total", &[("reason", r)]);
    assert_eq!(reason("missing_token"), 1.0);
    assert_eq!(reason("invalid_token"), 1.0);
    assert!(
        reason("not_owner") >= 7.0,
        "HEAD, PATCH, DELETE x2, GET, the partial"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_use_creation_token_creates_once_on_any_instance() {
    let signer = Signer::new();
    let mut auth = signer.settings();
    auth.rules.single_use_creation = true;
    let shared = auth.clone();
    let first = TestApp::spawn_with(move |s| s.auth = auth).await;
    let backend = first.settings.backend.clone();
    let second = TestApp::spawn_with(move |s| {
        s.auth = shared;
        s.backend = backend;
    })
    .await;
    let token = format!(
        "Bearer {}",
        signer.token("alice", 600, json!({ "jti": "invite-1" }))
    );
    let with_token = [("Authorization", token.as_str())];
    let (a, b) = tokio::join!(
        first.post(Some(3), &with_token),
        second.post(Some(3), &with_token)
    );
    let mut statuses = [a.status(), b.status()];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::FORBIDDEN]);
    let winner = if a.status() == StatusCode::CREATED {
        a
    } else {
        b
    };
    let replay = first.post(Some(3), &[("Authorization", &token)]).await;
    assert_eq!(replay.status(), StatusCode::FORBIDDEN);
    let no_jti = first
        .post(Some(3), &[("Authorization", &signer.bearer("alice"))])
        .await;
    assert_eq!(
        no_jti.status(),
        StatusCode::UNAUTHORIZED,
        "a creation token must carry jti"
    );
    // The upload it created stays usable by its owner, with the same token.
    let url = location(&winner);
    assert_eq!(
        status(patch(&second, &url, 0, b"abc".to_vec(), &token)).await,
        StatusCode::NO_CONTENT
    );
    first.assert_object(&url, b"abc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_carried_by_a_token_hold() {
    let signer = Signer::new();
    let auth = signer.settings();
    let app = TestApp::spawn_with(move |s| s.auth = auth).await;
    let limited = |claim| {
        format!(
            "Bearer {}",
            signer.token("alice", 600, json!({ "partway": claim }))
        )
    };
    let small = limited(json!({ "max_size": 1000, "content_types": ["image/*"] }));
    let png = "filetype aW1hZ2UvcG5n"; // image/png
    let text = "filetype dGV4dC9wbGFpbg=="; // text/plain
    let over = app
        .post(
            Some(1001),
            &[("Authorization", &small), ("Upload-Metadata", png)],
        )
        .await;
    assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let typed = app
        .post(
            Some(10),
            &[("Authorization", &small), ("Upload-Metadata", text)],
        )
        .await;
    assert_eq!(typed.status(), StatusCode::FORBIDDEN);
    let deferred = app
        .post(None, &[("Authorization", &small), ("Upload-Metadata", png)])
        .await;
    assert_eq!(deferred.status(), StatusCode::CREATED);
    let grow = patch(&app, &location(&deferred), 0, b"abc".to_vec(), &small)
        .header("Upload-Length", "2000");
    assert_eq!(status(grow).await, StatusCode::PAYLOAD_TOO_LARGE);

    let reader = limited(json!({ "actions": ["read"] }));
    assert_eq!(
        app.post(Some(3), &[("Authorization", &reader)])
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
    // A share token reads one upload of another subject, and nothing else.
    let url = upload(&app, &signer.bearer("alice"), b"shared", &[]).await;
    let share = format!(
        "Bearer {}",
        signer.token(
            "carol",
            600,
            json!({ "partway": { "uploads": [id_of(&url)], "actions": ["read"] } })
        )
    );
    let got = app
        .http
        .get(&url)
        .header("Authorization", &share)
        .send()
        .await
        .expect("GET");
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(
        status(request(&app, Method::DELETE, &url, Some(&share))).await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_never_cuts_a_patch_and_resumes_within_the_grace() {
    let signer = Signer::new();
    let mut auth = signer.settings();
    auth.resume_grace = Some(Duration::from_secs(60));
    let app = TestApp::spawn_with(move |s| s.auth = auth).await;
    let bytes = data(6 * MIB, 90);
    let short = format!("Bearer {}", signer.token("alice", 2, json!({})));
    let created = app
        .post(Some(bytes.len() as u64), &[("Authorization", &short)])
        .await;
    let url = location(&created);

    // The token expires while the body streams; the PATCH goes on.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let body = reqwest::Body::wrap_stream(tokio_stream(rx));
    let sending = tokio::spawn(patch(&app, &url, 0, Vec::new(), &short).body(body).send());
    tx.send(Ok(bytes[..MIB].to_vec())).await.expect("send");
    tokio::time::sleep(Duration::from_secs(3)).await;
    tx.send(Ok(bytes[MIB..2 * MIB].to_vec()))
        .await
        .expect("send");
    drop(tx);
    let patched = sending.await.expect("join").expect("PATCH");
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_u64(patched.headers(), "upload-offset"),
        Some(2 * MIB as u64)
    );

    // Expired now, within the grace: HEAD and PATCH resume the upload.
    let head = request(&app, Method::HEAD, &url, Some(&short))
        .send()
        .await
        .expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    let long_gone = format!("Bearer {}", signer.token("alice", -120, json!({})));
    assert_eq!(
        status(request(&app, Method::HEAD, &url, Some(&long_gone))).await,
        StatusCode::UNAUTHORIZED
    );
    let rest = patch(
        &app,
        &url,
        2 * MIB as u64,
        bytes[2 * MIB..].to_vec(),
        &short,
    );
    assert_eq!(status(rest).await, StatusCode::NO_CONTENT);
    // A download always needs a token valid now.
    let get = app
        .http
        .get(&url)
        .header("Authorization", &short)
        .send()
        .await
        .expect("GET");
    assert_eq!(get.status(), StatusCode::UNAUTHORIZED);
    app.assert_object(&url, &bytes).await;
}

/// The items of a channel, as a stream.
fn tokio_stream<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
