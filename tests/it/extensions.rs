//! The extensions on the S3 + Redis path, where they meet S3's rules:
//! concatenation with UploadPartCopy ranges, checksums over bodies whose
//! parts already reached S3, downloads across part boundaries, expiry reaped
//! once by several instances, and Location behind a proxy.

use crate::helpers::{MIB, TestApp, data, header_str, id_of, location};
use base64::Engine;
use reqwest::StatusCode;
use sha2::Digest;

async fn partial(app: &TestApp, bytes: &[u8]) -> String {
    let response = app
        .post(Some(bytes.len() as u64), &[("Upload-Concat", "partial")])
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let url = location(&response);
    if !bytes.is_empty() {
        let patched = app.patch(&url, 0, bytes.to_vec()).await;
        assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    }
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finals_copy_large_partials_and_read_small_ones_on_s3() {
    let app = TestApp::spawn().await;
    let pieces = [
        data(1, 1),
        data(5 * MIB + 3, 2),
        data(3 * MIB, 3),
        data(6 * MIB + 1, 4),
        data(0, 5),
        data(2 * MIB + 7, 6),
    ];
    let mut urls = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let url = partial(&app, piece).await;
        // Absolute and relative URLs may be mixed.
        urls.push(if i % 2 == 0 {
            url
        } else {
            format!("/files/{}", id_of(&url))
        });
    }
    let concat = format!("final;{}", urls.join(" "));
    let response = app
        .http
        .post(app.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Concat", &concat)
        .send()
        .await
        .expect("POST final");
    assert_eq!(response.status(), StatusCode::CREATED);
    let url = location(&response);
    let expected = pieces.concat();
    app.assert_object(&url, &expected).await;
    let head = app.head(&url).await;
    assert_eq!(header_str(&head, "upload-concat"), Some(concat.as_str()));
    let length = expected.len().to_string();
    assert_eq!(header_str(&head, "upload-offset"), Some(length.as_str()));
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatched_checksum_keeps_nothing_though_its_parts_reached_s3() {
    let app = TestApp::spawn().await;
    let bytes = data(12 * MIB + 5, 9);
    let url = app.create(Some(bytes.len() as u64)).await;
    let sha256 = |b: &[u8]| {
        format!(
            "sha256 {}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b))
        )
    };
    let mut other = bytes.clone();
    other[12 * MIB] ^= 0xff;
    let wrong = app
        .patch_with(
            &url,
            0,
            bytes.clone().into(),
            &[("Upload-Checksum", &sha256(&other))],
        )
        .await;
    assert_eq!(wrong.status().as_u16(), 460);
    assert_eq!(app.offset(&url).await, 0);
    let right = app
        .patch_with(
            &url,
            0,
            bytes.clone().into(),
            &[("Upload-Checksum", &sha256(&bytes))],
        )
        .await;
    assert_eq!(right.status(), StatusCode::NO_CONTENT);
    app.assert_object(&url, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_serve_ranges_across_parts() {
    let app = TestApp::spawn().await;
    let bytes = data(12 * MIB + 5, 11);
    let url = app.create(Some(bytes.len() as u64)).await;
    let unfinished = app.http.get(&url).send().await.expect("GET");
    assert_eq!(unfinished.status(), StatusCode::CONFLICT);
    app.patch(&url, 0, bytes.clone()).await;
    let whole = app.http.get(&url).send().await.expect("GET");
    assert_eq!(whole.status(), StatusCode::OK);
    let etag = header_str(&whole, "etag").expect("ETag").to_owned();
    assert!(whole.bytes().await.expect("body") == bytes);
    let len = bytes.len();
    for (range, want) in [
        ("bytes=0-0", 0..1),
        ("bytes=5242879-5242881", 5 * MIB - 1..5 * MIB + 2),
        ("bytes=-7", len - 7..len),
        ("bytes=10485760-", 10 * MIB..len),
    ] {
        let part = app
            .http
            .get(&url)
            .header("Range", range)
            .send()
            .await
            .expect("GET range");
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT, "{range}");
        let content_range = format!("bytes {}-{}/{len}", want.start, want.end - 1);
        assert_eq!(
            header_str(&part, "content-range"),
            Some(content_range.as_str())
        );
        assert!(part.bytes().await.expect("body") == bytes[want], "{range}");
    }
    let past = app
        .http
        .get(&url)
        .header("Range", format!("bytes={len}-"))
        .send()
        .await
        .expect("GET");
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let cached = app
        .http
        .get(&url)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("GET");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_uploads_are_reaped_once_by_many_instances() {
    // No background reaper: only the three instances below reap.
    let app = TestApp::spawn_with(|s| s.expire_after = None).await;
    let mut urls = Vec::new();
    for i in 0..4 {
        let url = app.create(Some(20 * MIB as u64)).await;
        // A full part in S3 and a tail in Redis.
        app.patch(&url, 0, data(6 * MIB, i)).await;
        urls.push(url);
    }
    assert_eq!(app.open_multipart_uploads().await, 4);
    // Let the day pass: every upload's expiry moves into the past.
    let (mut conn, redis_prefix) = app.redis().await;
    for url in &urls {
        let id = id_of(url);
        let _: () = redis::pipe()
            .hset(format!("{redis_prefix}{{{id}}}:info"), "expires", 1)
            .zadd(format!("{redis_prefix}expiry"), id, 1)
            .query_async(&mut conn)
            .await
            .expect("expire");
    }
    assert_eq!(app.head(&urls[0]).await.status(), StatusCode::NOT_FOUND);
    // Three instances reap at once; each upload is reaped by exactly one.
    assert_eq!(app.reap_with_instances(3).await, 4);
    assert_eq!(app.open_multipart_uploads().await, 0);
    let left = app.redis_keys().await;
    assert!(left.is_empty(), "keys left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_follows_trusted_proxies_only() {
    let forwarded = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "up.example.com"),
    ];
    let trusting = TestApp::spawn_with(|s| {
        s.http.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await;
    let url = location(&trusting.post(Some(1), &forwarded).await);
    assert!(url.starts_with("https://up.example.com/files/"), "{url}");
    let url = location(
        &trusting
            .post(
                Some(1),
                &[("Forwarded", "for=10.0.0.1;proto=https;host=\"b.example\"")],
            )
            .await,
    );
    assert!(url.starts_with("https://b.example/files/"), "{url}");
    let untrusting = TestApp::spawn().await;
    let url = location(&untrusting.post(Some(1), &forwarded).await);
    assert_eq!(url, format!("{}{}", untrusting.endpoint(), id_of(&url)));
    let relative = TestApp::spawn_with(|s| s.http.relative_location = true).await;
    let url = location(&relative.post(Some(1), &forwarded).await);
    assert_eq!(url, format!("/files/{}", id_of(&url)));
}
