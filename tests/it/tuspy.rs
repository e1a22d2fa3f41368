//! The real tuspy (PyPI `tuspy`, the tus-py-client) uploads through partway
//! into S3: whole files, chunked uploads with an sha1 `Upload-Checksum` on
//! every PATCH, and the resume of a stopped upload by a new client that finds
//! the upload URL in tuspy's FileStorage.

use crate::clients::{outcome, run_client};
use crate::helpers::{MIB, TestApp, data};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `tests/py/tuspy_upload.py` reports.
struct Outcome {
    url: String,
    resumed_from: Option<u64>,
}

/// The venv python that has tuspy, and the script.
fn python_and_script() -> (PathBuf, PathBuf) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("target/test-env/venv/bin/python");
    let has_tuspy = Command::new(&python)
        .args(["-c", "import tusclient"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_tuspy,
        "tuspy is not installed in target/test-env/venv: run tests/run.sh"
    );
    (python, root.join("tests/py/tuspy_upload.py"))
}

async fn run_py(app: &TestApp, bytes: &[u8], args: &[&str]) -> Outcome {
    let (python, script) = python_and_script();
    let output = run_client(python, &script, app, bytes, Some("urls.json"), args).await;
    let json = outcome("tuspy", &output);
    assert_eq!(json["size"].as_u64(), Some(bytes.len() as u64), "{json}");
    Outcome {
        url: json["url"].as_str().expect("url").to_owned(),
        resumed_from: json["resumedFrom"].as_u64(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_whole_and_chunked_files() {
    let app = TestApp::spawn().await;
    for (size, args) in [
        (0, &[][..]),
        (1, &[]),
        (12 * MIB + 7, &[]),
        (11 * MIB + 1, &["--chunk-size", "1048576"]),
    ] {
        let bytes = data(size, 90 + size as u64);
        let outcome = run_py(&app, &bytes, args).await;
        app.assert_object(&outcome.url, &bytes).await;
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_uploads_with_sha1_checksums() {
    let app = TestApp::spawn().await;
    // Every PATCH carries `Upload-Checksum: sha1 ...`; the script checks that the
    // server offers checksum with sha1 and that each checksummed PATCH succeeded.
    for (size, chunk) in [
        (1, "1048576"),
        (11 * MIB + 1, "1048576"),
        (13 * MIB, "6291456"),
    ] {
        let bytes = data(size, 100 + size as u64);
        let outcome = run_py(&app, &bytes, &["--checksum", "--chunk-size", chunk]).await;
        app.assert_object(&outcome.url, &bytes).await;
    }
    assert_eq!(app.open_multipart_uploads().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tuspy_resumes_from_its_url_storage() {
    let app = TestApp::spawn().await;
    // Stopped between chunks, mid-chunk, and after one unchunked PATCH; with
    // checksums on one of them.
    for args in [
        &[
            "--resume",
            "--chunk-size",
            "1048576",
            "--stop-at",
            "7340032",
        ][..],
        &["--resume", "--chunk-size", "1048576", "--checksum"],
        &["--resume"],
    ] {
        let bytes = data(20 * MIB + 9, 110);
        let outcome = run_py(&app, &bytes, args).await;
        let resumed = outcome
            .resumed_from
            .expect("a resumed upload reports its offset");
        assert!(resumed > 0, "resumed from {resumed}, not restarted");
        app.assert_object(&outcome.url, &bytes).await;
    }
}
