//! The outbox on Redis: a Stream `<prefix>events` that the state scripts
//! write (see `lua/outbox.lua`), one entry per event with the fields `id`,
//! `type`, `upload` and `event` (the hook request's JSON); dead letters in
//! `<prefix>events:dead` with a `reason` more; and the delivery lease in
//! `<prefix>events:lease`. A delivered entry is deleted, so the stream's
//! length is the backlog.

use super::state::RedisState;
use super::store_error;
use crate::upload::events::Event;
use crate::upload::ports::{Backlog, Outbox, Pending, StoreError};
use async_trait::async_trait;
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
