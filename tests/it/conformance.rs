//! The black-box tus 1.0.0 conformance suite (tests/conformance/, Python
//! stdlib only) run against a live partway on S3 + Redis, with a short
//! expiry so the expiration cases can wait one out: once as it is, and once
//! with bearer tokens required, every case sending one and the
//! authorization table run too.

use crate::helpers::TestApp;
use crate::tokens::Signer;
use std::path::Path;
use std::process::Command;

/// The `--expire-after` the suite is told about (`--expire-seconds`).
const EXPIRE_SECONDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_conformance_suite_passes() {
    let app = TestApp::spawn_with(|s| {
        s.expire_after = Some(std::time::Duration::from_secs(EXPIRE_SECONDS));
    })
    .await;
    run_suite(&app, &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tus_conformance_suite_passes_with_tokens_required() {
    let signer = Signer::new();
    let auth = signer.settings();
    let app = TestApp::spawn_with(|s| {
        s.expire_after = Some(std::time::Duration::from_secs(EXPIRE_SECONDS));
        s.auth = auth;
    })
    .await;
    let secret = signer.secret_file();
    let secret = secret.to_str().expect("a UTF-8 path");
    let args = [
        "--token-secret-file",
        secret,
        "--token-admin-subject",
        "backend",
    ];
    run_suite(&app, &args).await;
}

/// Runs the suite against `app` with `args`; every case must pass.
async fn run_suite(app: &TestApp, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/tus_conformance.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .arg("--endpoint")
        .arg(app.endpoint())
        .arg("--expire-seconds")
        .arg(EXPIRE_SECONDS.to_string())
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let output = crate::clients::output_of(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "tus conformance suite failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
