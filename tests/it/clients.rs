//! Running the real tus clients of the suite (Node and Python scripts under
//! `tests/js` and `tests/py`): each takes `--endpoint` and `--file` and
//! prints one JSON line on success.

use crate::helpers::TestApp;
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

/// Runs `command` off the async runtime and returns what it printed.
pub async fn output_of(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("join")
        .expect("the client program runs")
}

/// Runs `program script --endpoint <app> --file <a file of bytes>`, then
/// `--store <file>` when `store` names one (in the same temporary folder),
/// then `args`.
pub async fn run_client(
    program: impl AsRef<OsStr>,
    script: &Path,
    app: &TestApp,
    bytes: &[u8],
    store: Option<&str>,
    args: &[&str],
) -> Output {
    let endpoint = app.endpoint();
    run_client_at(program, script, &endpoint, bytes, store, args, &[]).await
}

/// Like [`run_client`], against `endpoint`, with extra environment `env`.
pub async fn run_client_at(
    program: impl AsRef<OsStr>,
    script: &Path,
    endpoint: &str,
    bytes: &[u8],
    store: Option<&str>,
    args: &[&str],
    env: &[(&str, &OsStr)],
) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("upload.bin");
    std::fs::write(&file, bytes).expect("write source file");
    let mut command = Command::new(program);
    command
        .arg(script)
        .arg("--endpoint")
        .arg(endpoint)
        .arg("--file")
        .arg(&file);
    if let Some(store) = store {
        command.arg("--store").arg(dir.path().join(store));
    }
    command.args(args);
    command.envs(env.iter().copied());
    output_of(command).await
}

/// The JSON line a client printed last, after checking that `name` succeeded.
pub fn outcome(name: &str, output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{name} failed: {stderr}\n{stdout}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{name}: not a JSON outcome ({e}): {line}"))
}
