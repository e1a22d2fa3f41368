//! Slow and idle clients cannot hold the server: the `partway` binary,
//! with tokens required, keeps answering while hundreds of connections send
//! half a request header; connections past `--max-connections` get 503 and
//! are closed; the half-open ones are closed after `--header-read-timeout`;
//! and the process's memory stays bounded throughout.

use crate::binary::{launch_with, ready, terminate};
use crate::servers::free_port;
use crate::tokens::Signer;
use reqwest::StatusCode;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Opens `count` connections that each send half a request header.
async fn half_open(port: u16, count: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream
            .write_all(b"PATCH /files/0123 HTTP/1.1\r\nHost: partway\r\nTus-Resu")
            .await
            .expect("write");
        held.push(stream);
    }
    held
}

/// What the server did with a connection within `wait`: the first bytes it
/// sent (empty when it closed without a word), or `None` if still open.
async fn outcome(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut buffer = vec![0; 64];
    match tokio::time::timeout(wait, stream.read(&mut buffer)).await {
        Err(_) => None,
        Ok(Ok(n)) => Some(buffer[..n].to_vec()),
        Ok(Err(_)) => Some(Vec::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_cannot_hold_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let signer = Signer::new();
    let port = free_port();
    let secret = signer.secret_file().display().to_string();
    let args = [
        "--max-connections",
        "500",
        "--header-read-timeout",
        "3s",
        "--auth-jwt-secret-file",
        &secret,
    ];
    let server = launch_with(dir.path(), port, args, "error", Stdio::null());
    ready(port).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let post = |auth: Option<String>| {
        let mut request = http
            .post(format!("http://127.0.0.1:{port}/files/"))
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", "3");
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        request.send()
    };
    let before = rss_kib(server.id());

    // 400 half-open connections: the server still answers everyone else.
    let mut held = half_open(port, 400).await;
    let answered = post(Some(signer.bearer("alice"))).await.expect("POST");
    assert_eq!(answered.status(), StatusCode::CREATED);
    assert_eq!(
        post(None).await.expect("POST").status(),
        StatusCode::UNAUTHORIZED
    );

    // 1000 more: past the limit, each is told 503 and closed at once.
    let mut excess = half_open(port, 1000).await;
    let mut turned_away = 0;
    for stream in &mut excess {
        if let Some(first) = outcome(stream, Duration::from_millis(200)).await {
            assert!(
                first.is_empty() || first.starts_with(b"HTTP/1.1 503"),
                "{first:?}"
            );
            turned_away += 1;
        }
    }
    assert!(turned_away >= 900, "only {turned_away} of 1000 turned away");
    let grown = rss_kib(server.id()).saturating_sub(before);
    assert!(grown < 64 * 1024, "RSS grew by {grown} KiB");

    // The half-open ones are closed once their header time is up.
    for stream in &mut held {
        let closed = outcome(stream, Duration::from_secs(10)).await;
        assert!(
            closed.is_some(),
            "a half-open connection outlived its header timeout"
        );
    }
    drop((held, excess));
    let again = post(Some(signer.bearer("alice"))).await.expect("POST");
    assert_eq!(again.status(), StatusCode::CREATED);
    terminate(server).await;
}
