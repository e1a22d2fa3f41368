//! Upload records, parts and tails in Redis (the key layout is in the
//! module above), each commit one Lua script.

use super::conn::RedisConn;
use super::{GONE_TTL_SECS, Keys, store_error};
use crate::upload::events::Event;
use crate::upload::model::{
    Concat, ETag, LockToken, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId, UploadInfo,
    UploadState, now_secs,
};
use crate::upload::ports::{Change, Commit, CommitError, StateStore, StoreError};
use async_trait::async_trait;
use bytes::Bytes;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The fields of a record that never change after creation.
#[derive(Debug, Serialize, Deserialize)]
struct Fixed {
    max_length: u64,
    part_size: u64,
    metadata: Option<String>,
    content_type: Option<String>,
    object_key: ObjectKey,
    multipart_id: Option<MultipartId>,
    created_at: u64,
    #[serde(default)]
    concat: Option<Concat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
}

/// Loads a script with the commit guard in front of its change.
macro_rules! commit_script {
    ($change:literal) => {
        LazyLock::new(|| {
            redis::Script::new(concat!(
                include_str!("lua/outbox.lua"),
                include_str!("lua/commit_guard.lua"),
                include_str!($change)
            ))
        })
    };
}

static COMMIT_APPEND: LazyLock<redis::Script> = commit_script!("lua/commit_append.lua");
static COMMIT_PART: LazyLock<redis::Script> = commit_script!("lua/commit_part.lua");
static COMMIT_FIELD: LazyLock<redis::Script> = commit_script!("lua/commit_field.lua");
static CREATE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("lua/outbox.lua"),
        include_str!("lua/create.lua")
    ))
});
static REMOVE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        include_str!("lua/outbox.lua"),
        include_str!("lua/remove.lua")
    ))
});
static EXPIRES_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/expires.lua")));

/// The script of a commit: the guard's arguments, then the change's own,
/// then the events, which it writes to `events`.
fn commit_call(
    keys: &Keys,
    events: &str,
    token: &LockToken,
    commit: &Commit,
) -> Result<redis::ScriptInvocation<'static>, StoreError> {
    let script: &'static redis::Script = match &commit.change {
        Change::AppendTail(_) => &COMMIT_APPEND,
        Change::Part { .. } => &COMMIT_PART,
        Change::SetLength(_) | Change::SetState(_) | Change::SetMultipart(_) => &COMMIT_FIELD,
    };
    let mut call = script.prepare_invoke();
    call.key(&keys.info)
        .key(&keys.tail)
        .key(&keys.lock)
        .key(events)
        .arg(token.as_str())
        .arg(commit.expected_offset.to_string())
        .arg(commit.expected_tail_len.to_string())
        .arg(commit.new_offset.to_string());
    match &commit.change {
        Change::AppendTail(data) => call.arg(data.as_ref()),
        Change::Part {
            record,
            consumes_tail,
        } => call
            .arg(record.number.get())
            .arg(format!("{} {}", record.size, record.etag))
            .arg(if *consumes_tail { "1" } else { "0" }),
        Change::SetLength(length) => call.arg("length").arg(length.to_string()),
        Change::SetState(state) => call.arg("state").arg(state.as_str()),
        Change::SetMultipart(mp) => call.arg("mp").arg(mp.as_str()),
    };
    event_args(&mut call, &commit.events)?;
    Ok(call)
}

/// Adds `events` to a script's arguments, four per event (see outbox.lua).
pub(super) fn event_args(
    call: &mut redis::ScriptInvocation<'_>,
    events: &[Event],
) -> Result<(), StoreError> {
    for event in events {
        let body = serde_json::to_string(event).map_err(|e| StoreError::Other(e.to_string()))?;
        call.arg(&event.id)
            .arg(event.kind.as_str())
            .arg(&event.body.upload.id)
            .arg(body);
    }
    Ok(())
}

/// A committed part as stored: field `p:<n>`, value `<size> <etag>`.
fn decode_part(id: &UploadId, field: &str, value: &str) -> Result<PartRecord, StoreError> {
    let bad = || StoreError::Other(format!("corrupt record {id}: part field {field:?}"));
    let number = field
        .strip_prefix("p:")
        .and_then(|n| n.parse().ok())
        .and_then(PartNumber::new)
        .ok_or_else(bad)?;
    let (size, etag) = value.split_once(' ').ok_or_else(bad)?;
    Ok(PartRecord {
        number,
        etag: ETag::new(etag),
        size: size.parse().map_err(|_| bad())?,
    })
}

/// Upload state in Redis.
#[derive(Clone)]
pub struct RedisState {
    pub(super) conn: RedisConn,
    pub(super) prefix: String,
}

impl RedisState {
    /// State under `prefix` on `conn`.
    pub fn new(conn: RedisConn, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
        }
    }

    pub(super) fn keys(&self, id: &UploadId) -> Keys {
        Keys::new(&self.prefix, id)
    }

    /// Where a script writes the events of `id`: the outbox stream, or on a
    /// Cluster, where the outbox lives on another slot, the upload's own
    /// pending stream, which the relay then moves to the outbox.
    fn event_key(&self, id: &UploadId) -> String {
        if self.conn.is_cluster() {
            self.keys(id).pending
        } else {
            self.stream()
        }
    }

    /// Runs `script` for `id`, which writes `events`; on a Cluster, the
    /// upload is indexed for the relay before, and relayed after.
    async fn with_events<T: redis::FromRedisValue>(
        &self,
        id: &UploadId,
        events: &[Event],
        script: redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let relay = self.conn.is_cluster() && !events.is_empty();
        let mark = if relay {
            Some(self.mark_relay(id).await?)
        } else {
            None
        };
        let outcome = script
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        if let Some(mark) = mark {
            self.relay(id, mark).await?;
        }
        Ok(outcome)
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
    let [fixed, offset, length, state, expires, mp] =
        <[Option<String>; 6]>::try_from(fields).map_err(|_| bad("field count"))?;
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
        multipart_id: fixed.multipart_id.or(mp.map(MultipartId::new)),
        state: UploadState::parse(&state).ok_or_else(|| bad("state"))?,
        created_at: fixed.created_at,
        concat: fixed.concat,
        owner: fixed.owner,
        expires_at: match expires.as_deref() {
            None | Some("") => None,
            Some(e) => Some(e.parse().map_err(|_| bad("expires"))?),
        },
    }))
}

#[async_trait]
impl StateStore for RedisState {
    async fn create(&self, info: &UploadInfo, events: &[Event]) -> Result<(), StoreError> {
        let fixed = Fixed {
            max_length: info.max_length,
            part_size: info.part_size,
            metadata: info.metadata.clone(),
            content_type: info.content_type.clone(),
            object_key: info.object_key.clone(),
            multipart_id: info.multipart_id.clone(),
            created_at: info.created_at,
            concat: info.concat.clone(),
            owner: info.owner.clone(),
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
        call.key(self.event_key(&info.id)).arg(fields.len() * 2);
        for (field, value) in &fields {
            call.arg(*field).arg(value);
        }
        event_args(&mut call, events)?;
        let created: bool = self.with_events(&info.id, events, call).await?;
        if created {
            Ok(())
        } else {
            Err(StoreError::Exists(format!("upload {}", info.id)))
        }
    }

    async fn get(&self, id: &UploadId) -> Result<Option<UploadInfo>, StoreError> {
        let fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.keys(id).info)
            .arg(&["info", "offset", "length", "state", "expires", "mp"])
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
            .filter(|(field, _)| field.starts_with("p:"))
            .map(|(field, value)| decode_part(id, field, value))
            .collect::<Result<Vec<_>, _>>()?;
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
        lock_token: &LockToken,
        commit: Commit,
    ) -> Result<(), CommitError> {
        let call = commit_call(&self.keys(id), &self.event_key(id), lock_token, &commit)?;
        let outcome: String = self.with_events(id, &commit.events, call).await?;
        match outcome.as_str() {
            "OK" => Ok(()),
            "LOCK" => Err(CommitError::LockLost),
            "GONE" => Err(CommitError::NotFound),
            "CONFLICT" => Err(CommitError::Conflict),
            other => Err(CommitError::Store(StoreError::Other(format!(
                "commit of {id}: unexpected reply {other:?}"
            )))),
        }
    }

    async fn remove(&self, id: &UploadId, events: &[Event]) -> Result<(), StoreError> {
        let keys = self.keys(id);
        let mut call = REMOVE_SCRIPT.key(keys.info);
        call.key(keys.tail).key(self.event_key(id));
        event_args(&mut call, events)?;
        let _: i64 = self.with_events(id, events, call).await?;
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

    async fn ping(&self) -> Result<(), StoreError> {
        let _: String = redis::cmd("PING")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn redeem(&self, key: &str, until: u64) -> Result<bool, StoreError> {
        let key = format!("{}once:{}", self.prefix, crate::store::once_name(key));
        let ttl = until.saturating_sub(now_secs()).max(1);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(until)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        Ok(set.is_some())
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
