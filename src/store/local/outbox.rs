//! The outbox of the embedded store: append-only files under `events/`.
//!
//! - `log`: one JSON line per event, `{"key", "ms", "event"}`, written (and synced)
//!   under the store's write lock just before the state change it reports;
//! - `done`: the key of each line delivered, dead-lettered or cancelled;
//! - `dead`: one JSON line per dead letter, with a `reason` more.
//!
//! An event is logged before its change, so a crash between the two leaves
//! the last logged event without its fact; [`Outbox::recover`] checks that
//! one line against the records before anything is served, and drops it if
//! its change never happened. Once every logged event is done, both files
//! are removed.

use super::state::LocalState;
use crate::upload::events::{Event, HookKind};
use crate::upload::model::{UploadId, UploadState, now_millis};
use crate::upload::ports::{Backlog, Outbox, Pending, StateStore, StoreError};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::time::Duration;
use tokio::fs;
use tokio::io::AsyncWriteExt;

/// One line of `log` or `dead`.
#[derive(Debug, Serialize, Deserialize)]
struct Line {
    /// Unique per line: a replayed dead letter is logged again, same event.
    key: String,
    ms: u64,
    event: Event,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn other(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("outbox {context}: {e}"))
}

impl LocalState {
    fn events_path(&self, name: &str) -> PathBuf {
        self.root().join("events").join(name)
    }

    async fn append_lines(&self, name: &str, lines: &[String]) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        let path = self.events_path(name);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).await.map_err(|e| other("dir", e))?;
        }
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .await
            .map_err(|e| other(name, e))?;
        let mut text = lines.join("\n");
        text.push('\n');
        file.write_all(text.as_bytes())
            .await
            .map_err(|e| other(name, e))?;
        file.sync_data().await.map_err(|e| other(name, e))
    }

    /// Logs `events`, returning their keys; the caller holds the write lock
    /// and makes the change right after.
    pub(super) async fn log_events(&self, events: &[Event]) -> Result<Vec<String>, StoreError> {
        let keys: Vec<String> = events
            .iter()
            .map(|_| format!("{:016x}", rand::random::<u64>()))
            .collect();
        let lines = events
            .iter()
            .zip(&keys)
            .map(|(event, key)| {
                serde_json::to_string(&Line {
                    key: key.clone(),
                    ms: now_millis(),
                    event: event.clone(),
                    reason: None,
                })
                .map_err(|e| other("encode", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.append_lines("log", &lines).await?;
        Ok(keys)
    }

    /// Marks logged lines done without delivering them: their change failed.
    pub(super) async fn cancel_events(&self, keys: &[String]) {
        if let Err(e) = self.append_lines("done", keys).await {
            tracing::warn!(error = %e, "could not cancel the events of a failed change");
        }
    }

    async fn read_lines(&self, name: &str) -> Result<Vec<Line>, StoreError> {
        let text = match fs::read_to_string(self.events_path(name)).await {
            Ok(text) => text,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other(name, e)),
        };
        // A line cut by a crash mid-write is skipped: its change never ran.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    async fn done_ids(&self) -> Result<HashSet<String>, StoreError> {
        match fs::read_to_string(self.events_path("done")).await {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(HashSet::new()),
            Err(e) => Err(other("done", e)),
        }
    }

    async fn undelivered(&self) -> Result<Vec<Line>, StoreError> {
        let done = self.done_ids().await?;
        let mut lines = self.read_lines("log").await?;
        lines.retain(|l| !done.contains(&l.key));
        Ok(lines)
    }

    /// Whether the change `event` reports is in the records.
    async fn happened(&self, event: &Event) -> Result<bool, StoreError> {
        let Some(id) = UploadId::parse(&event.body.upload.id) else {
            return Ok(false);
        };
        let info = self.get(&id).await?;
        Ok(match event.kind {
            HookKind::PostFinish => info.is_some_and(|i| i.state == UploadState::Completed),
            HookKind::PostTerminate => info.is_none(),
            _ => info.is_some(),
        })
    }

    /// Removes both files once every logged event is done.
    async fn compact(&self) -> Result<(), StoreError> {
        let _w = self.write_lock().await;
        if !self.undelivered().await?.is_empty() {
            return Ok(());
        }
        for name in ["log", "done"] {
            match fs::remove_file(self.events_path(name)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(other(name, e)),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Outbox for LocalState {
    async fn recover(&self) -> Result<(), StoreError> {
        let _w = self.write_lock().await;
        let Some(last) = self.read_lines("log").await?.pop() else {
            return Ok(());
        };
        if self.done_ids().await?.contains(&last.key) || self.happened(&last.event).await? {
            return Ok(());
        }
        tracing::warn!(event = %last.event.id, kind = %last.event.kind,
            "dropping an event whose change a crash interrupted");
        self.append_lines("done", &[last.key]).await
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        let lines = self.undelivered().await?;
        if lines.is_empty() && fs::metadata(self.events_path("log")).await.is_ok() {
            self.compact().await?;
        }
        Ok(lines
            .into_iter()
            .take(limit)
            .map(|l| Pending {
                key: l.key,
                event: l.event,
                written_ms: l.ms,
            })
            .collect())
    }

    async fn delivered(&self, key: &str) -> Result<(), StoreError> {
        self.append_lines("done", &[key.to_owned()]).await
    }

    async fn dead_letter(&self, pending: &Pending, reason: &str) -> Result<(), StoreError> {
        let line = Line {
            key: pending.key.clone(),
            ms: pending.written_ms,
            event: pending.event.clone(),
            reason: Some(reason.to_owned()),
        };
        let line = serde_json::to_string(&line).map_err(|e| other("encode", e))?;
        self.append_lines("dead", &[line]).await?;
        self.delivered(&pending.key).await
    }

    async fn replay_dead(&self) -> Result<u64, StoreError> {
        let _w = self.write_lock().await;
        let dead = self.read_lines("dead").await?;
        let events: Vec<Event> = dead.into_iter().map(|l| l.event).collect();
        self.log_events(&events).await?;
        match fs::remove_file(self.events_path("dead")).await {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(other("dead", e)),
        }
        Ok(events.len() as u64)
    }

    async fn lease(&self, _holder: &str, _ttl: Duration) -> Result<bool, StoreError> {
        // One process owns the directory.
        Ok(true)
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let lines = self.undelivered().await?;
        Ok(Backlog {
            count: lines.len() as u64,
            oldest_ms: lines.first().map(|l| l.ms),
        })
    }
}
