//! The production state store: one Redis hash per upload, plus its tail.
//!
//! Keys, with the configured prefix and the upload id as a hash tag so that
//! every key of an upload lives on one Redis Cluster slot and one Lua script
//! can touch them all:
//! - `<prefix>{<id>}:info`: hash with `info` (the fixed fields as JSON),
//!   `offset`, `length` (empty while deferred), `state`, and one `p:<n>` field
//!   per committed part (`<size> <etag>`);
//! - `<prefix>{<id>}:tail`: the bytes past the last full part (decisions.md 3);
//! - `<prefix>{<id>}:lock`: the owner token of the upload's lock;
//! - `<prefix>expiry`: a sorted set of upload ids by expiry time, read by the
//!   reaper. It is written in its own commands, never inside a per-upload
//!   script, so the scripts stay on one Cluster slot. It is written before
//!   the record it indexes, so a crash leaves at most an entry the reaper
//!   finds without a record and drops.
//!
//! HEAD is one HMGET. Every commit is one Lua script that checks the lock
//! owner, the offset and the tail length before it changes anything.

use super::redis_conn::RedisConn;
use super::{Change, Commit, CommitError, StateStore, StoreError};
use crate::upload::model::{Concat, PartRecord, UploadId, UploadInfo, UploadState};
use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Keys of one upload.
#[derive(Debug, Clone)]
pub struct Keys {
    pub info: String,
    pub tail: String,
    pub lock: String,
    /// Set for a while after the reaper removed an expired upload.
    pub gone: String,
}

/// How long an expired upload is remembered, to answer 410 Gone.
const GONE_TTL_SECS: u64 = 7 * 24 * 3600;

impl Keys {
    /// The keys of upload `id` under `prefix`.
    pub fn new(prefix: &str, id: &UploadId) -> Self {
        Self {
            info: format!("{prefix}{{{id}}}:info"),
            tail: format!("{prefix}{{{id}}}:tail"),
            lock: format!("{prefix}{{{id}}}:lock"),
            gone: format!("{prefix}{{{id}}}:gone"),
        }
    }
}

/// Maps a Redis failure: connection trouble is retryable, the rest is not.
pub fn store_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Other(format!("redis: {e}"))
    }
}

/// The fields of a record that never change after creation.
#[derive(Debug, Serialize, Deserialize)]
struct Fixed {
    max_length: u64,
    part_size: u64,
    metadata: Option<String>,
    content_type: Option<String>,
    object_key: String,
    multipart_id: Option<String>,
    created_at: u64,
    #[serde(default)]
    concat: Option<Concat>,
}

const COMMIT: &str = r"
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 'LOCK' end
local offset = redis.call('HGET', KEYS[1], 'offset')
if not offset then return 'GONE' end
if offset ~= ARGV[2] then return 'CONFLICT' end
if redis.call('STRLEN', KEYS[2]) ~= tonumber(ARGV[3]) then return 'CONFLICT' end
local kind = ARGV[5]
if kind == 'append' then
  redis.call('APPEND', KEYS[2], ARGV[6])
elseif kind == 'part' then
  redis.call('HSET', KEYS[1], 'p:' .. ARGV[6], ARGV[7])
  if ARGV[8] == '1' then redis.call('DEL', KEYS[2]) end
elseif kind == 'length' then
  redis.call('HSET', KEYS[1], 'length', ARGV[6])
elseif kind == 'state' then
  redis.call('HSET', KEYS[1], 'state', ARGV[6])
else
  return redis.error_reply('unknown change ' .. kind)
end
redis.call('HSET', KEYS[1], 'offset', ARGV[4])
return 'OK'
";

static COMMIT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COMMIT));

/// Writes a new record in one step, or nothing if the id exists.
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
";

static CREATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(CREATE));

/// Sets the `expires` field of a record that still exists.
const EXPIRES: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'expires', ARGV[1])
return 1
";

static EXPIRES_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(EXPIRES));

/// Upload state in Redis.
#[derive(Clone)]
pub struct RedisState {
    conn: RedisConn,
    prefix: String,
}

impl RedisState {
    /// State under `prefix` on `conn`.
    pub fn new(conn: RedisConn, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    fn keys(&self, id: &UploadId) -> Keys {
        Keys::new(&self.prefix, id)
    }

    fn index(&self) -> String {
        format!("{}expiry", self.prefix)
    }

    async fn index_add(&self, id: &UploadId, at: u64) -> Result<(), StoreError> {
        let () = self
            .conn
            .clone()
            .zadd(self.index(), id.as_str(), at)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

fn decode(id: &UploadId, fields: Vec<Option<String>>) -> Result<Option<UploadInfo>, StoreError> {
    let bad = |what: &str| StoreError::Other(format!("corrupt record {id}: {what}"));
    let [fixed, offset, length, state, expires] =
        <[Option<String>; 5]>::try_from(fields).map_err(|_| bad("field count"))?;
    let (Some(fixed), Some(offset), Some(state)) = (fixed, offset, state) else {
        return Ok(None);
    };
    let fixed: Fixed = serde_json::from_str(&fixed).map_err(|_| bad("info"))?;
    let length = match length.as_deref() {
        None | Some("") => None,
        Some(l) => Some(l.parse().map_err(|_| bad("length"))?),
    };
    Ok(Some(UploadInfo {
        id: id.clone(),
        length,
        max_length: fixed.max_length,
        offset: offset.parse().map_err(|_| bad("offset"))?,
        part_size: fixed.part_size,
        metadata: fixed.metadata,
        content_type: fixed.content_type,
        object_key: fixed.object_key,
        multipart_id: fixed.multipart_id,
        state: UploadState::parse(&state).ok_or_else(|| bad("state"))?,
        created_at: fixed.created_at,
        concat: fixed.concat,
        expires_at: match expires.as_deref() {
            None | Some("") => None,
            Some(e) => Some(e.parse().map_err(|_| bad("expires"))?),
        },
    }))
}

#[async_trait]
impl StateStore for RedisState {
    async fn create(&self, info: &UploadInfo) -> Result<(), StoreError> {
        let fixed = Fixed {
            max_length: info.max_length,
            part_size: info.part_size,
            metadata: info.metadata.clone(),
            content_type: info.content_type.clone(),
            object_key: info.object_key.clone(),
            multipart_id: info.multipart_id.clone(),
            created_at: info.created_at,
            concat: info.concat.clone(),
        };
        let fixed = serde_json::to_string(&fixed).map_err(|e| StoreError::Other(e.to_string()))?;
        let length = info.length.map(|l| l.to_string()).unwrap_or_default();
        let fields = [
            ("info", fixed),
            ("offset", info.offset.to_string()),
            ("length", length),
            ("state", info.state.as_str().to_owned()),
            (
                "expires",
                info.expires_at.map(|e| e.to_string()).unwrap_or_default(),
            ),
        ];
        if let Some(at) = info.expires_at {
            self.index_add(&info.id, at).await?;
        }
        let mut call = CREATE_SCRIPT.key(self.keys(&info.id).info);
        for (field, value) in &fields {
            call.arg(*field).arg(value);
        }
        let created: bool = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Other(format!("upload {} exists", info.id)))
        }
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadInfo>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.keys(id).info)
            .arg(&["info", "offset", "length", "state", "expires"])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        decode(id, fields)
    }

    async fn parts(&self, id: &UploadId) -> Result<Vec<PartRecord>, StoreError> {
        let all: HashMap<String, String> = self
            .conn
            .clone()
            .hgetall(&self.keys(id).info)
            .await
            .map_err(store_error)?;
        let mut parts = all
            .iter()
            .filter_map(|(field, value)| {
                let number = field.strip_prefix("p:")?.parse().ok()?;
                let (size, etag) = value.split_once(' ')?;
                Some(PartRecord {
                    number,
                    etag: etag.to_owned(),
                    size: size.parse().ok()?,
                })
            })
            .collect::<Vec<_>>();
        parts.sort_by_key(|p| p.number);
        Ok(parts)
    }

    async fn read_tail(&self, id: &UploadId, len: u64) -> Result<Bytes, StoreError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        let end = i64::try_from(len - 1).map_err(|_| StoreError::Other("tail length".into()))?;
        let data: Vec<u8> = self
            .conn
            .clone()
            .getrange(&self.keys(id).tail, 0, end as isize)
            .await
            .map_err(store_error)?;
        if data.len() as u64 != len {
            return Err(StoreError::Other(format!(
                "tail of {id} holds {} bytes, {len} expected",
                data.len()
            )));
        }
        Ok(Bytes::from(data))
    }

    async fn commit(
        &self,
        id: &UploadId,
        lock_token: &str,
        commit: Commit,
    ) -> Result<(), CommitError> {
        let keys = self.keys(id);
        let mut call = COMMIT_SCRIPT.prepare_invoke();
        call.key(&keys.info)
            .key(&keys.tail)
            .key(&keys.lock)
            .arg(lock_token)
            .arg(commit.expected_offset.to_string())
            .arg(commit.expected_tail_len.to_string())
            .arg(commit.new_offset.to_string());
        match &commit.change {
            Change::AppendTail(data) => call.arg("append").arg(data.as_ref()),
            Change::Part {
                record,
                consumes_tail,
            } => call
                .arg("part")
                .arg(record.number)
                .arg(format!("{} {}", record.size, record.etag))
                .arg(if *consumes_tail { "1" } else { "0" }),
            Change::SetLength(length) => call.arg("length").arg(length.to_string()),
            Change::SetState(state) => call.arg("state").arg(state.as_str()),
        };
        let outcome: String = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        match outcome.as_str() {
            "OK" => Ok(()),
            "LOCK" => Err(CommitError::LockLost),
            "GONE" => Err(CommitError::NotFound),
            _ => Err(CommitError::Conflict),
        }
    }

    async fn remove(&self, id: &UploadId) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let () = self
            .conn
            .clone()
            .del(&[keys.info, keys.tail])
            .await
            .map_err(store_error)?;
        self.unindex(id).await
    }

    async fn set_expiry(&self, id: &UploadId, expires_at: Option<u64>) -> Result<(), StoreError> {
        if let Some(at) = expires_at {
            self.index_add(id, at).await?;
        }
        let value = expires_at.map(|e| e.to_string()).unwrap_or_default();
        let _: i64 = EXPIRES_SCRIPT
            .key(self.keys(id).info)
            .arg(value)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        if expires_at.is_none() {
            self.unindex(id).await?;
        }
        Ok(())
    }

    async fn expired(&self, now: u64, limit: usize) -> Result<Vec<UploadId>, StoreError> {
        let ids: Vec<String> = redis::cmd("ZRANGEBYSCORE")
            .arg(self.index())
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(ids.iter().filter_map(|id| UploadId::parse(id)).collect())
    }

    async fn mark_gone(&self, id: &UploadId) -> Result<(), StoreError> {
        let () = self
            .conn
            .clone()
            .set_ex(self.keys(id).gone, 1, GONE_TTL_SECS)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn is_gone(&self, id: &UploadId) -> Result<bool, StoreError> {
        self.conn
            .clone()
            .exists(self.keys(id).gone)
            .await
            .map_err(store_error)
    }

    async fn unindex(&self, id: &UploadId) -> Result<(), StoreError> {
        let () = self
            .conn
            .clone()
            .zrem(self.index(), id.as_str())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
