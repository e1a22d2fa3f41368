//! tus 1.0.0 behaviour: status codes, headers, termination, deferred length,
//! metadata, method override, CORS. Each rejected request must leave the
//! upload untouched.

use crate::helpers::{MIB, TestApp, data, header_str, header_u64, location};
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn options_advertises_the_protocol_without_tus_resumable() {
    let app = TestApp::spawn().await;
    for version in [None, Some("0.0.1")] {
        let mut request = app.http.request(Method::OPTIONS, app.endpoint());
        if let Some(v) = version {
            request = request.header("Tus-Resumable", v);
        }
        let response = request.send().await.expect("OPTIONS");
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(header_str(&response, "tus-version"), Some("1.0.0"));
        assert_eq!(
            header_str(&response, "tus-extension"),
            Some(
                "creation,creation-with-upload,creation-defer-length,termination,\
                 expiration,checksum,checksum-trailer,concatenation"
            )
        );
        assert_eq!(
            header_str(&response, "tus-checksum-algorithm"),
            Some("sha1,md5,sha256,sha512,crc32,crc32c")
        );
        assert_eq!(
            header_u64(response.headers(), "tus-max-size"),
            Some(5 << 40)
        );
    }
}

#[tokio::test]
async fn unsupported_versions_get_412_with_tus_version() {
    let app = TestApp::spawn().await;
    let url = app.create(Some(10)).await;
    for version in [None, Some("0.2.2")] {
        let mut post = app.http.post(app.endpoint()).header("Upload-Length", "5");
        let mut patch = app
            .http
            .patch(&url)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", "0")
            .body("hello");
        if let Some(v) = version {
            post = post.header("Tus-Resumable", v);
            patch = patch.header("Tus-Resumable", v);
        }
        for response in [
            post.send().await.expect("POST"),
            patch.send().await.expect("PATCH"),
        ] {
            assert_eq!(response.status(), StatusCode::PRECONDITION_FAILED);
            assert_eq!(header_str(&response, "tus-version"), Some("1.0.0"));
            assert_eq!(header_str(&response, "tus-resumable"), Some("1.0.0"));
        }
    }
    assert_eq!(app.offset(&url).await, 0, "refused PATCH stored nothing");
}

#[tokio::test]
async fn bad_creation_requests_get_400_or_413() {
    let app = TestApp::spawn().await;
    let cases: &[(&[(&str, &str)], StatusCode)] = &[
        (&[], StatusCode::BAD_REQUEST),
        (&[("Upload-Length", "-1")], StatusCode::BAD_REQUEST),
        (&[("Upload-Length", "ten")], StatusCode::BAD_REQUEST),
        (
            &[("Upload-Length", "99999999999999999999999")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("Upload-Length", "5"), ("Upload-Defer-Length", "1")],
            StatusCode::BAD_REQUEST,
        ),
        (&[("Upload-Defer-Length", "0")], StatusCode::BAD_REQUEST),
        (
            &[
                ("Upload-Length", "5"),
                ("Upload-Metadata", "name !!notbase64"),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("Upload-Length", "5"), ("Upload-Metadata", "a YQ==,a YQ==")],
            StatusCode::BAD_REQUEST,
        ),
        (
            &[("Upload-Length", "6597069766657")],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (headers, want) in cases {
        let mut request = app
            .http
            .post(app.endpoint())
            .header("Tus-Resumable", "1.0.0");
        for (k, v) in *headers {
            request = request.header(*k, *v);
        }
        let response = request.send().await.expect("POST");
        assert_eq!(response.status(), *want, "{headers:?}");
        assert!(response.headers().get("location").is_none());
        let text = response.text().await.expect("body");
        assert!(!text.trim().is_empty(), "a message explains the refusal");
    }
}

#[tokio::test]
async fn head_reports_state_without_caching_and_echoes_metadata() {
    let app = TestApp::spawn().await;
    // A non-ASCII value, a key without a value, and a raw UTF-8 key.
    let metadata =
        "filename w5xuw69jw7hkw6kg5paH5Lu2LnR4dA==,is_confidential,filetype dGV4dC9wbGFpbg==,über";
    let response = app
        .http
        .post(app.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "11")
        .header(
            "Upload-Metadata",
            reqwest::header::HeaderValue::from_bytes(metadata.as_bytes()).expect("header"),
        )
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    let url = location(&response);
    let head = app.head(&url).await;
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(header_str(&head, "cache-control"), Some("no-store"));
    assert_eq!(header_u64(head.headers(), "upload-offset"), Some(0));
    assert_eq!(header_u64(head.headers(), "upload-length"), Some(11));
    let echoed = head.headers().get("upload-metadata").map(|v| v.as_bytes());
    assert_eq!(echoed, Some(metadata.as_bytes()), "echoed byte for byte");
    assert_eq!(
        app.patch(&url, 0, b"hello world".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    let stored = app
        .s3
        .head_object()
        .bucket(&app.bucket)
        .key(app.key_of(&url))
        .send()
        .await
        .expect("object");
    assert_eq!(
        stored.content_type(),
        Some("text/plain"),
        "Content-Type from filetype"
    );
}

#[tokio::test]
async fn unknown_uploads_are_404_without_upload_offset() {
    let app = TestApp::spawn().await;
    for path in [
        "00000000000000000000000000000000",
        "..%2F..%2Fetc%2Fpasswd",
        "not-an-id",
    ] {
        let url = format!("{}{path}", app.endpoint());
        let head = app.head(&url).await;
        assert_eq!(head.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(head.headers().get("upload-offset").is_none());
        assert_eq!(
            app.patch(&url, 0, b"x".to_vec()).await.status(),
            StatusCode::NOT_FOUND
        );
    }
}

#[tokio::test]
async fn bad_patches_are_refused_and_change_nothing() {
    let app = TestApp::spawn().await;
    let bytes = data(10, 1);
    let url = app.create(Some(10)).await;
    assert_eq!(
        app.patch(&url, 0, bytes[..4].to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    // Offset mismatch: 409, with the real offset.
    let stale = app.patch(&url, 0, bytes[..4].to_vec()).await;
    assert_eq!(stale.status(), StatusCode::CONFLICT);
    assert_eq!(header_u64(stale.headers(), "upload-offset"), Some(4));
    assert_eq!(
        app.patch(&url, 7, bytes[7..].to_vec()).await.status(),
        StatusCode::CONFLICT
    );
    // Wrong content type: 415.
    let wrong = app
        .http
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", "4")
        .body(bytes[4..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(wrong.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bad or missing Upload-Offset: 400.
    for offset in [Some("-4"), Some("four"), Some(""), Some("4, 5"), None] {
        let mut request = app
            .http
            .patch(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream");
        if let Some(offset) = offset {
            request = request.header("Upload-Offset", offset);
        }
        let response = request
            .body(bytes[4..].to_vec())
            .send()
            .await
            .expect("PATCH");
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "Upload-Offset {offset:?}"
        );
    }
    // Past Upload-Length: 413.
    let long = app.patch(&url, 4, data(7, 2)).await;
    assert_eq!(long.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.offset(&url).await, 4, "nothing refused was stored");
    assert_eq!(
        app.patch(&url, 4, bytes[4..].to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    app.assert_object(&url, &bytes).await;
}

#[tokio::test]
async fn chunked_bodies_past_the_length_are_refused() {
    let app = TestApp::spawn().await;
    let url = app.create(Some(100)).await;
    let response = app.patch_chunked(&url, 0, data(150, 3), 10).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.offset(&url).await <= 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn termination_aborts_the_multipart_upload_and_forgets_the_upload() {
    let app = TestApp::spawn().await;
    let url = app.create(Some(17 * MIB as u64)).await;
    assert_eq!(
        app.patch(&url, 0, data(6 * MIB, 4)).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.open_multipart_uploads().await, 1);
    let delete = |url: String| app.http.delete(url).header("Tus-Resumable", "1.0.0").send();
    assert_eq!(
        delete(url.clone()).await.expect("DELETE").status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.head(&url).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.patch(&url, 6 * MIB as u64, data(1, 4)).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        delete(url.clone()).await.expect("DELETE").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.open_multipart_uploads().await,
        0,
        "multipart upload aborted"
    );
    // A finished upload can be terminated too; its object goes with it.
    let done = app.create(Some(3)).await;
    assert_eq!(
        app.patch(&done, 0, b"abc".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(app.object_exists(&done).await);
    assert_eq!(
        delete(done.clone()).await.expect("DELETE").status(),
        StatusCode::NO_CONTENT
    );
    assert!(!app.object_exists(&done).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_length_is_settled_by_a_later_patch() {
    let app = TestApp::spawn().await;
    let bytes = data(13 * MIB + 5, 5);
    let url = app.create(None).await;
    let head = app.head(&url).await;
    assert_eq!(header_str(&head, "upload-defer-length"), Some("1"));
    assert!(head.headers().get("upload-length").is_none());
    let mut offset = 0;
    for piece in bytes.chunks(6 * MIB) {
        let last = offset + piece.len() == bytes.len();
        let length = bytes.len().to_string();
        let extra: &[(&str, &str)] = if last {
            &[("Upload-Length", &length)]
        } else {
            &[]
        };
        let response = app
            .patch_with(&url, offset as u64, piece.to_vec().into(), extra)
            .await;
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        offset += piece.len();
    }
    assert_eq!(
        header_u64(app.head(&url).await.headers(), "upload-length"),
        Some(bytes.len() as u64)
    );
    app.assert_object(&url, &bytes).await;
}

#[tokio::test]
async fn deferred_length_declared_after_the_bytes_on_an_empty_patch() {
    let app = TestApp::spawn().await;
    let bytes = data(MIB + 3, 6);
    let url = app.create(None).await;
    assert_eq!(
        app.patch(&url, 0, bytes.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    let length = bytes.len().to_string();
    let below = app
        .patch_with(
            &url,
            bytes.len() as u64,
            Vec::new().into(),
            &[("Upload-Length", "5")],
        )
        .await;
    assert_eq!(
        below.status(),
        StatusCode::BAD_REQUEST,
        "length below the offset"
    );
    let done = app
        .patch_with(
            &url,
            bytes.len() as u64,
            Vec::new().into(),
            &[("Upload-Length", &length)],
        )
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    app.assert_object(&url, &bytes).await;
    let change = app
        .patch_with(
            &url,
            bytes.len() as u64,
            Vec::new().into(),
            &[("Upload-Length", "9")],
        )
        .await;
    assert_eq!(
        change.status(),
        StatusCode::BAD_REQUEST,
        "a set length cannot change"
    );
    // An empty deferred upload.
    let empty = app.create(None).await;
    let done = app
        .patch_with(&empty, 0, Vec::new().into(), &[("Upload-Length", "0")])
        .await;
    assert_eq!(done.status(), StatusCode::NO_CONTENT);
    app.assert_object(&empty, &[]).await;
}

#[tokio::test]
async fn creation_with_upload_takes_the_first_bytes() {
    let app = TestApp::spawn().await;
    let response = app
        .http
        .post(app.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "11")
        .header("Content-Type", "application/offset+octet-stream")
        .body("hello")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header_u64(response.headers(), "upload-offset"), Some(5));
    let url = location(&response);
    assert_eq!(
        app.patch(&url, 5, b" world".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    app.assert_object(&url, b"hello world").await;
}

#[tokio::test]
async fn method_override_turns_a_post_into_patch_or_delete() {
    let app = TestApp::spawn().await;
    let url = app.create(Some(3)).await;
    let patch = app
        .http
        .post(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("X-HTTP-Method-Override", "PATCH")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body("abc")
        .send()
        .await
        .expect("POST as PATCH");
    assert_eq!(patch.status(), StatusCode::NO_CONTENT);
    assert_eq!(header_u64(patch.headers(), "upload-offset"), Some(3));
    let delete = app
        .http
        .post(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("X-HTTP-Method-Override", "DELETE")
        .send()
        .await
        .expect("POST as DELETE");
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.head(&url).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn cors_lets_browsers_read_tus_headers() {
    let app = TestApp::spawn().await;
    let preflight = app
        .http
        .request(Method::OPTIONS, app.endpoint())
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "tus-resumable,upload-length,upload-metadata",
        )
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success());
    assert_eq!(
        header_str(&preflight, "access-control-allow-origin"),
        Some("*")
    );
    let allowed = header_str(&preflight, "access-control-allow-headers").unwrap_or_default();
    assert!(allowed.contains("upload-metadata"), "{allowed}");
    let created = app
        .post(Some(1), &[("Origin", "https://app.example")])
        .await;
    let exposed = header_str(&created, "access-control-expose-headers").unwrap_or_default();
    for name in [
        "location",
        "upload-offset",
        "upload-length",
        "upload-metadata",
        "upload-expires",
        "tus-version",
    ] {
        assert!(exposed.contains(name), "{name} exposed in {exposed}");
    }
}
