//! `--hooks-dir`: an executable per hook, named as the hook
//! (`pre-create`, `post-finish`, ...), as tusd's file hooks. It reads the
//! hook request's JSON on stdin, with `TUS_ID`, `TUS_SIZE`, `TUS_OFFSET`
//! and `HOOK_ID` in its environment, and may write an answer's JSON on
//! stdout (nothing means `{}`). A non-zero exit, a timeout or bad JSON is a
//! failure. A hook without an executable is not sent.

use super::client::HookAnswer;
use super::verdict;
use crate::upload::events::{Application, Event, HookFailure, HookKind, Verdict};
use async_trait::async_trait;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The largest answer read from a hook.
const MAX_ANSWER: usize = 64 * 1024;

/// Hooks run from one directory.
pub struct DirHooks {
    dir: PathBuf,
    timeout: Duration,
}

impl DirHooks {
    /// Hooks in `dir`, each given `timeout` to finish.
    pub fn new(dir: PathBuf, timeout: Duration) -> Self {
        Self { dir, timeout }
    }

    fn path(&self, kind: HookKind) -> PathBuf {
        self.dir.join(kind.as_str())
    }

    async fn run(&self, event: &Event) -> Result<HookAnswer, HookFailure> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            HookFailure(format!("hook {}: {what}: {e}", event.kind))
        };
        let body = serde_json::to_vec(event).map_err(|e| fail("encode", &e))?;
        let upload = &event.body.upload;
        let mut child = tokio::process::Command::new(self.path(event.kind))
            .env("TUS_ID", &upload.id)
            .env("TUS_SIZE", upload.size.to_string())
            .env("TUS_OFFSET", upload.offset.to_string())
            .env("HOOK_ID", &event.id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail("start", &e))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that does not read its input is free to.
            let _ = stdin.write_all(&body).await;
        }
        let output = tokio::time::timeout(self.timeout, child.wait_with_output())
            .await
            .map_err(|_| fail("timed out after", &format!("{:?}", self.timeout)))?
            .map_err(|e| fail("wait", &e))?;
        if !output.status.success() {
            return Err(fail("exited with", &output.status));
        }
        let out = output.stdout.trim_ascii();
        if out.is_empty() {
            return Ok(HookAnswer::default());
        }
        if out.len() > MAX_ANSWER {
            return Err(fail("answer", &format!("longer than {MAX_ANSWER} bytes")));
        }
        match serde_json::from_slice(out) {
            Ok(serde_json::Value::Object(map)) => Ok(HookAnswer::from(map)),
            Ok(_) => Err(fail("answer", &"not a JSON object")),
            Err(e) => Err(fail("answer", &e)),
        }
    }
}

#[async_trait]
impl Application for DirHooks {
    fn wants(&self, kind: HookKind) -> bool {
        self.path(kind).is_file()
    }

    async fn send(&self, event: &Event) -> Result<Verdict, HookFailure> {
        Ok(verdict::read(&self.run(event).await?))
    }
}
