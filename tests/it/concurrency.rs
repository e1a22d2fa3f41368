//! Two writers on one upload: the lock lets one in at a time, and bytes from
//! the two never interleave.

use crate::helpers::{MIB, TestApp, data, header_u64, stalled_patch};
use reqwest::StatusCode;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_patch_never_interleaves_with_the_first() {
    let app = TestApp::spawn().await;
    let first = data(12 * MIB, 10);
    let second = data(12 * MIB, 11);
    let url = app.create(Some(first.len() as u64)).await;

    // The first writer sends 1 MiB, then stalls with its request still open.
    let (tx, stalled) = stalled_patch(&app.http, &url, first[..MIB].to_vec()).await;
    app.await_locked(&url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The second writer asks for the upload. The first is told to let go and
    // keeps what it read, so the second's offset 0 is now stale.
    let response = app.patch(&url, 0, second.clone()).await;
    assert!(
        [StatusCode::CONFLICT, StatusCode::LOCKED].contains(&response.status()),
        "second writer got {}",
        response.status()
    );
    drop(tx);
    let _ = stalled.await;
    // All of it sat below the first part boundary: any offset above 0 was
    // committed by the release path, and the object check below shows that
    // nothing of the second writer got in.
    let offset = app.offset(&url).await;
    assert!(
        offset > 0 && offset <= MIB as u64,
        "kept {offset} bytes of the first writer"
    );
    let rest = app.patch(&url, offset, first[MIB..].to_vec()).await;
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        header_u64(rest.headers(), "upload-offset"),
        Some(first.len() as u64)
    );
    app.assert_object(&url, &first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instance_takes_over_a_stalled_upload_without_waiting_out_the_ttl() {
    let a = TestApp::spawn().await;
    let settings = a.settings.clone();
    // A second instance on the same Redis, bucket and prefixes.
    let b = TestApp::spawn_with(|s| *s = settings).await;
    let bytes = data(12 * MIB, 12);
    let url_a = a.create(Some(bytes.len() as u64)).await;
    let url_b = format!("{}{}", b.endpoint(), crate::helpers::id_of(&url_a));

    // The client's connection to instance A stalls after 1 MiB, holding the lock.
    let (tx, stalled) = stalled_patch(&a.http, &url_a, bytes[..MIB].to_vec()).await;
    a.await_locked(&url_a).await;

    // It reconnects through instance B and resumes as tus-js-client does:
    // HEAD, then PATCH from the offset HEAD reports, again on 409 or 423.
    let start = std::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(attempts < 50, "no takeover after {attempts} attempts");
        let head = b.head(&url_b).await;
        assert_eq!(
            head.status(),
            StatusCode::OK,
            "HEAD never fails on contention"
        );
        let offset = header_u64(head.headers(), "upload-offset").expect("offset");
        let start_at = usize::try_from(offset).expect("offset");
        let response = b.patch(&url_b, offset, bytes[start_at..].to_vec()).await;
        match response.status() {
            StatusCode::NO_CONTENT => break,
            StatusCode::CONFLICT | StatusCode::LOCKED => continue,
            other => panic!("PATCH through B got {other}"),
        }
    }
    let took = start.elapsed();
    eprintln!("takeover: {took:?} in {attempts} attempts");
    // A takeover, not the lock's TTL running out.
    assert!(took < partway::config::defaults::LOCK_TTL, "took {took:?}");
    drop(tx);
    let _ = stalled.await;
    // Same bucket and prefix: A's view of the object is B's.
    a.assert_object(&url_a, &bytes).await;
}

/// Starts a PATCH of `len` bytes at offset 0 over a raw HTTP/1.1
/// connection: its headers only. Returns both halves of the connection.
async fn raw_patch(
    app: &TestApp,
    url: &str,
    len: usize,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::net::tcp::OwnedWriteHalf,
) {
    use tokio::io::AsyncWriteExt;
    let path = format!("/files/{}", crate::helpers::id_of(url));
    let head = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: {len}\r\n\r\n",
        app.addr,
    );
    let socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let (read, mut write) = socket.into_split();
    write.write_all(head.as_bytes()).await.expect("headers");
    (read, write)
}

/// A connection's write half, and whether every byte given went out.
type Sent = (tokio::net::tcp::OwnedWriteHalf, bool);

/// Sends `bytes` on `write` from a task that keeps the connection open
/// (a half-close would end the exchange) until it is dropped.
fn send(
    mut write: tokio::net::tcp::OwnedWriteHalf,
    bytes: Vec<u8>,
) -> tokio::task::JoinHandle<Sent> {
    use tokio::io::AsyncWriteExt;
    tokio::spawn(async move {
        for chunk in bytes.chunks(256 * 1024) {
            if write.write_all(chunk).await.is_err() {
                return (write, false);
            }
        }
        (write, true)
    })
}

/// The status line of the answer on `read`, or what came instead.
async fn status_line(mut read: tokio::net::tcp::OwnedReadHalf) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let reading = async {
        while !got.windows(2).any(|w| w == b"\r\n") {
            match read.read(&mut buf).await {
                Ok(0) => return "end of stream".to_owned(),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return format!("error: {e}"),
            }
        }
        String::from_utf8_lossy(&got)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned()
    };
    tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .unwrap_or_else(|_| "no answer in 30 s".into())
}

/// Two PATCHes at once on one upload: the first, stalled after 1 MiB, is
/// taken over and keeps what it read; the second finds the offset moved.
/// Both clients are still sending their bodies when their answers are
/// decided, and each reads its answer after sending, instead of a reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_patches_at_once_each_read_their_answer() {
    let app = TestApp::spawn().await;
    let total = 16 * MIB;
    let url = app.create(Some(total as u64)).await;
    let first_bytes = data(total, 12);
    let (first, write) = raw_patch(&app, &url, total).await;
    let first_sent = send(write, first_bytes[..MIB].to_vec());
    app.await_locked(&url).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (second, write) = raw_patch(&app, &url, 4 * MIB).await;
    let second_sent = send(write, data(4 * MIB, 13));
    // The first client goes on sending the rest of its body. Each reads
    // its answer once it has sent its body, as HTTP/1.1 clients do.
    let (write, _) = first_sent.await.expect("first MiB");
    let first_sent = send(write, first_bytes[MIB..].to_vec());
    let answer = |read, sent: tokio::task::JoinHandle<Sent>| async move {
        let (write, whole) = sent.await.expect("sent");
        let line = status_line(read).await;
        drop(write);
        format!(
            "{line}{}",
            if whole {
                ""
            } else {
                " (the body could not be sent)"
            }
        )
    };
    let (first, second) = tokio::join!(answer(first, first_sent), answer(second, second_sent));
    assert_eq!(first, "HTTP/1.1 204 No Content", "the writer taken over");
    assert!(
        ["HTTP/1.1 409 Conflict", "HTTP/1.1 423 Locked"].contains(&second.as_str()),
        "the second writer: {second}"
    );
}
