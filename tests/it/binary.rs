//! The `partway` binary on its embedded default: SIGTERM during a PATCH
//! commits what arrived and exits promptly, and a restarted process picks the
//! upload up where it stood.

use crate::helpers::{MIB, TestApp, data, header_u64, location, stalled_patch};
use crate::servers::free_port;
use reqwest::StatusCode;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn launch(dir: &Path, port: u16) -> Child {
    launch_with(dir, port, NO_ARGS, "warn", Stdio::null())
}

/// No flags beyond the listener and the data directory.
pub const NO_ARGS: [&str; 0] = [];

/// Starts the binary on `port` with its embedded store in `dir` and the
/// flags `args`, logging at `rust_log` to `log` (its stdout).
pub fn launch_with(
    dir: &Path,
    port: u16,
    args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    rust_log: &str,
    log: Stdio,
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_partway"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", rust_log)
        .env_remove("NO_COLOR")
        .stdout(log)
        .stderr(Stdio::null())
        .spawn()
        .expect("partway starts")
}

/// Waits until something listens on `port`.
pub async fn ready(port: u16) {
    let start = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "partway did not listen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends SIGTERM, waits for a clean exit and returns how long it took.
pub async fn terminate(mut server: Child) -> Duration {
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "clean exit: {status}");
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_commits_in_flight_bytes_and_a_restart_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = launch(dir.path(), port);
    ready(port).await;
    let http = reqwest::Client::new();
    let bytes = data(10 * MIB, 40);
    let created = http
        .post(format!("http://127.0.0.1:{port}/files/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);

    // A PATCH sends 3 MiB, then stalls with its connection open.
    let (tx, patch) = stalled_patch(&http, &url, bytes[..3 * MIB].to_vec()).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = terminate(server).await;
    assert!(took < Duration::from_secs(10), "exited in {took:?}");
    drop(tx);
    let _ = patch.await;

    let mut server = launch(dir.path(), port);
    ready(port).await;
    let head = http
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await
        .expect("HEAD");
    // Everything sent sat below the first 8 MiB part: any offset above 0 was
    // committed by the shutdown.
    let kept = header_u64(head.headers(), "upload-offset").expect("Upload-Offset");
    assert!(kept > 0 && kept <= 3 * MIB as u64, "kept {kept} bytes");
    let rest = http
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", kept.to_string())
        .body(bytes[kept as usize..].to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(rest.status(), StatusCode::NO_CONTENT);
    let id = url.rsplit('/').next().expect("id");
    let stored = std::fs::read(dir.path().join("objects").join(id)).expect("object");
    assert!(stored == bytes, "object matches");
    let _ = server.kill();
    let _ = server.wait();
}

/// The `partway` binary against the same stores as `app`, listening on
/// `port`, with `args` more.
pub async fn launch_like(app: &TestApp, port: u16, args: &[&str]) -> std::process::Child {
    let partway::config::Backend::S3 {
        s3,
        key_prefix,
        redis_url,
        redis_prefix,
        ..
    } = &app.settings.backend
    else {
        panic!("not an S3 app");
    };
    let (key, secret) = s3.credentials.clone().expect("test credentials");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_partway"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--s3-bucket", &s3.bucket, "--s3-region", "us-east-1"])
        .args(["--s3-endpoint", s3.endpoint.as_deref().expect("endpoint")])
        .args(["--s3-force-path-style", "--s3-prefix", key_prefix])
        .args(["--redis-url", redis_url, "--redis-prefix", redis_prefix])
        .args(["--part-size", "5MiB"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("partway starts");
    crate::binary::ready(port).await;
    child
}
