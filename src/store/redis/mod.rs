//! The production state store and lock: Redis, or a Redis Cluster.
//!
//! Keys, with the configured prefix and the upload id as a hash tag so that
//! every key of an upload lives on one Redis Cluster slot and one Lua script
//! can touch them all:
//! - `<prefix>{<id>}:info`: hash with `info` (the fixed fields as JSON),
//!   `offset`, `length` (empty while deferred), `state`, and one `p:<n>` field
//!   per committed part (`<size> <etag>`);
//! - `<prefix>{<id>}:tail`: the bytes past the last full part, so a client
//!   that sends small PATCHes never makes partway re-read its own bytes
//!   from S3 (at most one part size per paused upload);
//! - `<prefix>{<id>}:lock`: the owner token of the upload's lock;
//! - `<prefix>expiry`: a sorted set of upload ids by expiry time, read by the
//!   reaper. It is written in its own commands, never inside a per-upload
//!   script, so the scripts stay on one Cluster slot. It is written before
//!   the record it indexes, so a crash leaves at most an entry the reaper
//!   finds without a record and drops.
//!
//! - `<prefix>events`, `<prefix>events:dead`, `<prefix>events:lease`: the
//!   outbox of events for the application; on a Cluster also
//!   `<prefix>{<id>}:pending` and `<prefix>relay` (see `outbox`).
//!
//! HEAD is one HMGET. Every commit is one Lua script that checks the lock
//! owner, the offset and the tail length before it changes anything.
//! The Lua scripts live in `lua/`, each with a header naming its KEYS, ARGV
//! and replies; a reply the adapter does not expect is an error.

mod conn;
mod lock;
mod outbox;
mod state;

pub use conn::{RedisConn, connect, connect_cluster};
pub use lock::RedisLocker;
pub use state::RedisState;

use crate::upload::model::UploadId;
use crate::upload::ports::StoreError;

/// Keys of one upload.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    pub info: String,
    pub tail: String,
    pub lock: String,
    /// Set for a while after the reaper removed an expired upload.
    pub gone: String,
    /// On a Cluster, the upload's events on their way to the outbox.
    pub pending: String,
}

/// How long an expired upload is remembered, to tell it from an unknown one.
const GONE_TTL_SECS: u64 = 7 * 24 * 3600;

impl Keys {
    /// The keys of upload `id` under `prefix`.
    pub(crate) fn new(prefix: &str, id: &UploadId) -> Self {
        Self {
            info: format!("{prefix}{{{id}}}:info"),
            tail: format!("{prefix}{{{id}}}:tail"),
            lock: format!("{prefix}{{{id}}}:lock"),
            gone: format!("{prefix}{{{id}}}:gone"),
            pending: format!("{prefix}{{{id}}}:pending"),
        }
    }
}

/// Maps a Redis failure: connection trouble is retryable, the rest is not.
pub(crate) fn store_error(e: redis::RedisError) -> StoreError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        StoreError::Unavailable(format!("redis: {e}"))
    } else {
        StoreError::Other(format!("redis: {e}"))
    }
}
