//! The outbox on Redis: a Stream `<prefix>events` that the state scripts
//! write (see `lua/outbox.lua`), one entry per event with the fields `id`,
//! `type`, `upload` and `event` (the hook request's JSON); dead letters in
//! `<prefix>events:dead` with a `reason` more; and the delivery lease in
//! `<prefix>events:lease`. A delivered entry is deleted, so the stream's
//! length is the backlog.
//!
//! On a Redis Cluster a script reaches one slot only, so it writes an
//! upload's events to the upload's own stream, `<prefix>{<id>}:pending`, and
//! the relay moves them to the outbox right after. So that a crash between
//! the two loses nothing, the upload is first indexed in the sorted set
//! `<prefix>relay` (scored by when); the delivering instance relays every
//! upload indexed for over [`RELAY_AFTER_MS`] that is still there. A relay
//! interrupted half-way sends an event twice, with its id, never loses one.

use super::state::RedisState;
use super::store_error;
use crate::upload::events::Event;
use crate::upload::model::{UploadId, now_millis};
use crate::upload::ports::{Backlog, Outbox, Pending, StoreError};
use async_trait::async_trait;
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

/// Takes the lease if it is free, or renews it if `holder` has it.
/// KEYS[1] the lease; ARGV[1] holder, ARGV[2] milliseconds. Replies 1 when
/// `holder` holds it now, else 0.
static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"local holder = redis.call('GET', KEYS[1])
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0",
    )
});

/// Unindexes an upload from the relay only if no later change indexed it
/// again. KEYS[1] the relay index; ARGV[1] the upload, ARGV[2] the score it
/// was relayed under. Replies 1 when removed.
static UNINDEX_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"if redis.call('ZSCORE', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('ZREM', KEYS[1], ARGV[1]) end
return 0",
    )
});

/// How long an upload stays indexed for the relay before the delivering
/// instance relays it itself: its writer crashed, or is slow.
pub const RELAY_AFTER_MS: u64 = 30_000;

/// One stream entry: its id and fields.
type Entry = (String, HashMap<String, String>);

/// The milliseconds part of a stream entry id (`<ms>-<seq>`).
fn entry_ms(key: &str) -> u64 {
    key.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

impl RedisState {
    pub(super) fn stream(&self) -> String {
        format!("{}events", self.prefix)
    }

    fn dead_stream(&self) -> String {
        format!("{}events:dead", self.prefix)
    }

    /// Appends `event` to `stream`, with `reason` when it is a dead letter.
    pub(super) async fn xadd(
        &self,
        stream: &str,
        event: &Event,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Other(e.to_string()))?;
        let mut cmd = redis::cmd("XADD");
        cmd.arg(stream)
            .arg("*")
            .arg("id")
            .arg(&event.id)
            .arg("type")
            .arg(event.kind.as_str())
            .arg("upload")
            .arg(&event.body.upload.id)
            .arg("event")
            .arg(body);
        if let Some(reason) = reason {
            cmd.arg("reason").arg(reason);
        }
        let _: String = cmd
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    fn relay_index(&self) -> String {
        format!("{}relay", self.prefix)
    }

    /// Indexes `id` for the relay, before a script writes its events;
    /// returns the score to unindex it with.
    pub(super) async fn mark_relay(&self, id: &UploadId) -> Result<u64, StoreError> {
        let score = now_millis();
        let () = self
            .conn
            .clone()
            .zadd(self.relay_index(), id.as_str(), score)
            .await
            .map_err(store_error)?;
        Ok(score)
    }

    /// Moves the pending events of `id` to the outbox, in order, and
    /// unindexes it if it is still indexed under `score`.
    pub(super) async fn relay(&self, id: &UploadId, score: u64) -> Result<(), StoreError> {
        let pending = self.keys(id).pending;
        let stream = self.stream();
        for entry in self.range(&pending, 1000).await? {
            let key = entry.0.clone();
            match decode(entry) {
                Some(moved) => self.xadd(&stream, &moved.event, None).await?,
                None => {
                    tracing::warn!(entry = %key, "dropping a pending entry that is not an event")
                }
            }
            self.xdel(&pending, &key).await?;
        }
        let _: i64 = UNINDEX_SCRIPT
            .key(self.relay_index())
            .arg(id.as_str())
            .arg(score)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    /// Relays the uploads whose writers did not, on a Cluster.
    async fn sweep_relay(&self) -> Result<(), StoreError> {
        if !self.conn.is_cluster() {
            return Ok(());
        }
        let before = now_millis().saturating_sub(RELAY_AFTER_MS);
        let stale: Vec<(String, u64)> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.relay_index())
            .arg("-inf")
            .arg(before)
            .arg("WITHSCORES")
            .arg("LIMIT")
            .arg(0)
            .arg(100)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        for (id, score) in stale {
            match UploadId::parse(&id) {
                Some(upload) => self.relay(&upload, score).await?,
                None => tracing::warn!(%id, "not an upload id in the relay index"),
            }
        }
        Ok(())
    }

    async fn range(&self, stream: &str, limit: usize) -> Result<Vec<Entry>, StoreError> {
        redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)
    }

    async fn xdel(&self, stream: &str, key: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("XDEL")
            .arg(stream)
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// Reads an entry's event; `None` if the entry is not one partway wrote.
fn decode((key, fields): Entry) -> Option<Pending> {
    let event: Event = serde_json::from_str(fields.get("event")?).ok()?;
    Some(Pending {
        written_ms: entry_ms(&key),
        key,
        event,
    })
}

#[async_trait]
impl Outbox for RedisState {
    async fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn pending(&self, limit: usize) -> Result<Vec<Pending>, StoreError> {
        self.sweep_relay().await?;
        let stream = self.stream();
        let mut out = Vec::new();
        for entry in self.range(&stream, limit).await? {
            let key = entry.0.clone();
            match decode(entry) {
                Some(pending) => out.push(pending),
                None => {
                    tracing::warn!(entry = %key, "dropping an outbox entry that is not an event");
                    self.xdel(&stream, &key).await?;
                }
            }
        }
        Ok(out)
    }

    async fn delivered(&self, key: &str) -> Result<(), StoreError> {
        self.xdel(&self.stream(), key).await
    }

    async fn dead_letter(&self, pending: &Pending, reason: &str) -> Result<(), StoreError> {
        self.xadd(&self.dead_stream(), &pending.event, Some(reason))
            .await?;
        self.xdel(&self.stream(), &pending.key).await
    }

    async fn replay_dead(&self) -> Result<u64, StoreError> {
        let (dead, stream) = (self.dead_stream(), self.stream());
        let mut moved = 0;
        loop {
            let entries = self.range(&dead, 100).await?;
            if entries.is_empty() {
                return Ok(moved);
            }
            for entry in entries {
                let key = entry.0.clone();
                if let Some(pending) = decode(entry) {
                    self.xadd(&stream, &pending.event, None).await?;
                    moved += 1;
                }
                self.xdel(&dead, &key).await?;
            }
        }
    }

    async fn lease(&self, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let held: i64 = LEASE_SCRIPT
            .key(format!("{}events:lease", self.prefix))
            .arg(holder)
            .arg(ms)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(held == 1)
    }

    async fn backlog(&self) -> Result<Backlog, StoreError> {
        let stream = self.stream();
        let count: u64 = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        let oldest = self.range(&stream, 1).await?;
        Ok(Backlog {
            count,
            oldest_ms: oldest.first().map(|(key, _)| entry_ms(key)),
        })
    }
}
