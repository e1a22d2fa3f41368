//! The embedded state store: upload records, parts and tails as local files.
//!
//! Used with [`super::LocalObjects`] when no Redis is configured. State
//! survives a restart; it serves one partway process only, whose
//! [`super::LocalLocker`] fences every commit: only the holder of an
//! upload's lock moves it. Per upload, under
//! `state/`: `<id>.json` (the record, replaced atomically), `<id>.parts`
//! (one JSON line per committed part; a later line for the same number wins)
//! and `<id>.tail`. Under `once/`, one file per redeemed single-use
//! credential (named by a digest of it) holds until when it is remembered.
//!
//! Crash safety comes from ordering: a part line is written before the record
//! moves the offset, and the tail is only cut after it. A tail longer than a
//! commit expects holds unacknowledged bytes from an interrupted write and is
//! truncated; a shorter one is a conflict.

use super::lock::LocalLocker;
use super::objects::write_atomic;
use crate::upload::events::Event;
use crate::upload::model::{LockToken, PartRecord, UploadId, UploadInfo, UploadState, now_secs};
use crate::upload::ports::{Change, Commit, CommitError, StateStore, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::PathBuf;
use tokio::fs;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

/// Upload state under one directory.
#[derive(Debug)]
pub struct LocalState {
    root: PathBuf,
    /// The locks whose holders alone may commit.
    locks: LocalLocker,
    /// Serialises commits; one process owns the directory.
    write: Mutex<()>,
}

fn other(context: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("{context}: {e}"))
}

impl LocalState {
    /// State under `root`, its commits fenced by the locks of `locks`.
    pub fn new(root: impl Into<PathBuf>, locks: &LocalLocker) -> Self {
        Self {
            root: root.into(),
            locks: locks.clone(),
            write: Mutex::new(()),
        }
    }

    pub(super) fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub(super) async fn write_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.write.lock().await
    }

    fn path(&self, id: &UploadId, ext: &str) -> PathBuf {
        self.root.join("state").join(format!("{id}.{ext}"))
    }

    async fn tail_len(&self, id: &UploadId) -> Result<u64, StoreError> {
        match fs::metadata(self.path(id, "tail")).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(0),
            Err(e) => Err(other("tail", e)),
        }
    }

    async fn set_tail_len(&self, id: &UploadId, len: u64) -> Result<(), StoreError> {
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.path(id, "tail"))
            .await
            .map_err(|e| other("tail", e))?;
        file.set_len(len).await.map_err(|e| other("tail", e))?;
        file.sync_data().await.map_err(|e| other("tail", e))
    }

    async fn append(&self, id: &UploadId, ext: &str, data: &[u8]) -> Result<(), StoreError> {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.path(id, ext))
            .await
            .map_err(|e| other("append", e))?;
        file.write_all(data).await.map_err(|e| other("append", e))?;
        file.sync_data().await.map_err(|e| other("append", e))
    }

    async fn write_record(&self, info: &UploadInfo) -> Result<(), StoreError> {
        let json = serde_json::to_vec(info).map_err(|e| other("encode", e))?;
        write_atomic(&self.path(&info.id, "json"), &json)
            .await
            .map_err(|e| other("write record", e))
    }
}

#[async_trait]
impl StateStore for LocalState {
    async fn create(&self, info: &UploadInfo, events: &[Event]) -> Result<(), StoreError> {
        let _w = self.write.lock().await;
        if self.get(&info.id).await?.is_some() {
            return Err(StoreError::Exists(format!("upload {}", info.id)));
        }
        let logged = self.log_events(events).await?;
        let written = self.write_record(info).await;
        if written.is_err() {
            self.cancel_events(&logged).await;
        }
        written
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadInfo>, StoreError> {
        match fs::read(self.path(id, "json")).await {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(|e| other("decode record", e)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(other("read record", e)),
        }
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>, StoreError> {
        let text = match fs::read_to_string(self.path(id, "parts")).await {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other("read parts", e)),
        };
        let mut parts = BTreeMap::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            let part: PartRecord = serde_json::from_str(line).map_err(|e| other("parts", e))?;
            parts.insert(part.number, part);
        }
        // Only parts the offset covers count: a line written just before a
        // crash, for bytes never acknowledged, must not be completed.
        let Some(info) = self.get(id).await? else {
            return Ok(Vec::new());
        };
        let mut covered = 0;
        Ok(parts
            .into_values()
            .take_while(|p| {
                covered += p.size;
                covered <= info.offset
            })
            .collect())
    }

    async fn read_tail(&self, id: &UploadId, len: u64) -> Result<Bytes, StoreError> {
        let mut data = match fs::read(self.path(id, "tail")).await {
            Ok(data) => data,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(other("read tail", e)),
        };
        // Bytes past the acknowledged tail are debris of an interrupted write.
        if (data.len() as u64) < len {
            return Err(StoreError::Other(format!(
                "tail of {id} holds {} bytes, {len} expected",
                data.len()
            )));
        }
        data.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        Ok(Bytes::from(data))
    }

    async fn commit(
        &self,
        id: &UploadId,
        lock_token: &LockToken,
        commit: Commit,
    ) -> Result<(), CommitError> {
        let _w = self.write.lock().await;
        if !self.locks.holds(id, lock_token) {
            return Err(CommitError::LockLost);
        }
        let mut info = self.get(id).await?.ok_or(CommitError::NotFound)?;
        if info.offset != commit.expected_offset {
            return Err(CommitError::Conflict);
        }
        let tail = self.tail_len(id).await?;
        if tail < commit.expected_tail_len {
            return Err(CommitError::Conflict);
        }
        if tail > commit.expected_tail_len {
            self.set_tail_len(id, commit.expected_tail_len).await?;
        }
        info.offset = commit.new_offset;
        let logged = self.log_events(&commit.events).await?;
        let changed = self.apply(id, info, commit.change).await;
        if changed.is_err() {
            self.cancel_events(&logged).await;
        }
        Ok(changed?)
    }

    async fn remove(&self, id: &UploadId, events: &[Event]) -> Result<(), StoreError> {
        let _w = self.write.lock().await;
        let logged = self.log_events(events).await?;
        for ext in ["json", "parts", "tail"] {
            match fs::remove_file(self.path(id, ext)).await {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => {
                    self.cancel_events(&logged).await;
                    return Err(other("remove", e));
                }
            }
        }
        Ok(())
    }

    async fn set_expiry(&self, id: &UploadId, expires_at: Option<u64>) -> Result<(), StoreError> {
        let _w = self.write.lock().await;
        if let Some(mut info) = self.get(id).await? {
            info.expires_at = expires_at;
            self.write_record(&info).await?;
        }
        Ok(())
    }

    /// The embedded store has no separate index: it scans the records.
    async fn expired(&self, now: u64, limit: usize) -> Result<Vec<UploadId>, StoreError> {
        let mut dir = match fs::read_dir(self.root.join("state")).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other("scan", e)),
        };
        let mut ids = Vec::new();
        while ids.len() < limit {
            let Some(entry) = dir.next_entry().await.map_err(|e| other("scan", e))? else {
                break;
            };
            let name = entry.file_name();
            let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(UploadId::parse)
            else {
                continue;
            };
            if self.get(&id).await?.is_some_and(|info| info.expired(now)) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    async fn unindex(&self, _id: &UploadId) -> Result<(), StoreError> {
        Ok(())
    }

    async fn mark_gone(&self, id: &UploadId) -> Result<(), StoreError> {
        write_atomic(&self.path(id, "gone"), b"")
            .await
            .map_err(|e| other("mark gone", e))
    }

    async fn is_gone(&self, id: &UploadId) -> Result<bool, StoreError> {
        Ok(fs::metadata(self.path(id, "gone")).await.is_ok())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        fs::metadata(&self.root)
            .await
            .map(|_| ())
            .map_err(|e| other("data directory", e))
    }

    async fn redeem(&self, key: &str, until: u64) -> Result<bool, StoreError> {
        let path = self.root.join("once").join(crate::store::once_name(key));
        let _write = self.write.lock().await;
        let remembered = match fs::read_to_string(&path).await {
            Ok(text) => text.trim().parse::<u64>().unwrap_or(u64::MAX),
            Err(e) if e.kind() == ErrorKind::NotFound => 0,
            Err(e) => return Err(other("redeem", e)),
        };
        if remembered > now_secs() {
            return Ok(false);
        }
        write_atomic(&path, until.to_string().as_bytes())
            .await
            .map_err(|e| other("redeem", e))?;
        // Now and then, forget the credentials that can no longer be shown.
        if rand::random::<u8>() == 0 {
            forget_redeemed(&self.root.join("once")).await;
        }
        Ok(true)
    }
}

impl LocalState {
    /// Applies a commit's change, its guards passed; the write lock is held.
    async fn apply(
        &self,
        id: &UploadId,
        mut info: UploadInfo,
        change: Change,
    ) -> Result<(), StoreError> {
        match change {
            Change::AppendTail(data) => {
                self.append(id, "tail", &data).await?;
                self.write_record(&info).await?;
            }
            Change::Part {
                record,
                consumes_tail,
            } => {
                let mut line = serde_json::to_vec(&record).map_err(|e| other("encode", e))?;
                line.push(b'\n');
                self.append(id, "parts", &line).await?;
                self.write_record(&info).await?;
                if consumes_tail {
                    self.set_tail_len(id, 0).await?;
                }
            }
            Change::SetLength(length) => {
                info.length = Some(length);
                self.write_record(&info).await?;
            }
            Change::SetState(state) => {
                info.state = state;
                self.write_record(&info).await?;
                if state == UploadState::Completed {
                    self.set_tail_len(id, 0).await?;
                }
            }
            Change::SetMultipart(mp) => {
                info.multipart_id = Some(mp);
                self.write_record(&info).await?;
            }
        }
        Ok(())
    }
}

/// Removes the redemptions in `dir` whose credentials have expired.
async fn forget_redeemed(dir: &std::path::Path) {
    let Ok(mut entries) = fs::read_dir(dir).await else {
        return;
    };
    let now = now_secs();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let until = fs::read_to_string(entry.path()).await.ok();
        if until
            .and_then(|u| u.trim().parse::<u64>().ok())
            .is_some_and(|u| u <= now)
        {
            let _ = fs::remove_file(entry.path()).await;
        }
    }
}
