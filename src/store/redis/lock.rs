//! The per-upload lock in Redis, with takeover.
//!
//! `SET <prefix>{<id>}:lock <token> NX PX <ttl>` takes it; a background task
//! renews the TTL while the holder works (compare-and-pexpire); release is a
//! compare-and-delete, so nobody frees a lock they no longer own. Every commit
//! also checks the token (see `state`), which fences out a holder whose
//! lock expired.
//!
//! A request that finds the lock taken publishes the upload id on
//! `<prefix>release`. Every instance listens there; the one holding that
//! upload cancels its guard's stop signal, and its PATCH stops reading,
//! commits and unlocks, so a client that reconnects resumes at once instead
//! of waiting out a TTL. A dead holder's lock simply expires.

use super::conn::RedisConn;
use super::{Keys, store_error};
use crate::upload::model::{LockToken, UploadId};
use crate::upload::ports::{LockError, LockGuard, LockRelease, Locker};
use async_trait::async_trait;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

static RENEW_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/lock_renew.lua")));
static RELEASE_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(include_str!("lua/lock_release.lua")));

/// Stop signals of the locks this process holds, by upload id.
type Holders = Arc<Mutex<HashMap<UploadId, CancellationToken>>>;

/// Locks in Redis, shared by every partway instance.
#[derive(Clone)]
pub struct RedisLocker {
    conn: RedisConn,
    prefix: String,
    ttl: Duration,
    holders: Holders,
    /// Stops the release-request listener when the locker is dropped.
    _listener: Arc<ListenerGuard>,
}

struct ListenerGuard(CancellationToken);

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

impl RedisLocker {
    /// A locker on `conn` whose locks expire `ttl` after their last renewal.
    /// `client` opens the pub/sub connection for release requests.
    pub fn new(
        client: redis::Client,
        conn: RedisConn,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let prefix = prefix.into();
        let holders: Holders = Arc::default();
        let stop = CancellationToken::new();
        tokio::spawn(listen(
            client,
            format!("{prefix}release"),
            holders.clone(),
            stop.clone(),
        ));
        Self {
            conn,
            prefix,
            ttl,
            holders,
            _listener: Arc::new(ListenerGuard(stop)),
        }
    }

    fn ttl_ms(&self) -> u64 {
        u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX)
    }

    async fn try_set(&self, id: &UploadId) -> Result<Option<LockGuard>, LockError> {
        let key = Keys::new(&self.prefix, id).lock;
        let token = LockToken::random();
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(token.as_str())
            .arg("NX")
            .arg("PX")
            .arg(self.ttl_ms())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(store_error)?;
        if set.is_none() {
            return Ok(None);
        }
        let stop = CancellationToken::new();
        let done = CancellationToken::new();
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.clone(), stop.clone());
        tokio::spawn(renew(
            self.conn.clone(),
            key.clone(),
            token.clone(),
            self.ttl,
            stop.clone(),
            done.clone(),
        ));
        let release = Box::new(Release {
            conn: self.conn.clone(),
            key,
            token: token.clone(),
            done,
            holders: self.holders.clone(),
            id: id.clone(),
        });
        Ok(Some(LockGuard::new(token, stop, release)))
    }

    async fn request_release(&self, id: &UploadId) {
        let published: Result<i64, _> = redis::cmd("PUBLISH")
            .arg(format!("{}release", self.prefix))
            .arg(id.as_str())
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = published {
            tracing::warn!(upload = %id, error = %e, "could not publish a release request");
        }
    }
}

/// Keeps the lock alive until released; cancels `stop` if it is lost.
async fn renew(
    mut conn: RedisConn,
    key: String,
    token: LockToken,
    ttl: Duration,
    stop: CancellationToken,
    done: CancellationToken,
) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep(ttl / 3) => {}
        }
        let renewed: Result<i64, _> = RENEW_SCRIPT
            .key(&key)
            .arg(token.as_str())
            .arg(ttl_ms)
            .invoke_async(&mut conn)
            .await;
        match renewed {
            Ok(1) => last_renewed = Instant::now(),
            Ok(_) => {
                tracing::warn!(%key, "lock lost: another owner or expired");
                stop.cancel();
                return;
            }
            Err(e) if last_renewed.elapsed() >= ttl => {
                tracing::warn!(%key, error = %e, "lock expired: could not renew it");
                stop.cancel();
                return;
            }
            Err(e) => tracing::debug!(%key, error = %e, "lock renewal failed; retrying"),
        }
    }
}

/// Listens for release requests until `stop`, reconnecting after failures.
async fn listen(client: redis::Client, channel: String, holders: Holders, stop: CancellationToken) {
    while !stop.is_cancelled() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            () = stop.cancelled() => return,
            s = subscribed => s,
        };
        match pubsub {
            Ok(pubsub) => {
                let mut messages = pubsub.into_on_message();
                loop {
                    let msg = tokio::select! {
                        () = stop.cancelled() => return,
                        m = messages.next() => m,
                    };
                    let Some(msg) = msg else { break };
                    let wanted = std::str::from_utf8(msg.get_payload_bytes())
                        .ok()
                        .and_then(UploadId::parse);
                    if let Some(id) = wanted {
                        let holders = holders.lock().unwrap_or_else(PoisonError::into_inner);
                        if let Some(token) = holders.get(&id) {
                            tracing::debug!(upload = %id, "release requested");
                            token.cancel();
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "release-request listener cannot subscribe"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

struct Release {
    conn: RedisConn,
    key: String,
    token: LockToken,
    done: CancellationToken,
    holders: Holders,
    id: UploadId,
}

#[async_trait]
impl LockRelease for Release {
    async fn release(self: Box<Self>) {
        self.done.cancel();
        self.holders
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        let released: Result<i64, _> = RELEASE_SCRIPT
            .key(&self.key)
            .arg(self.token.as_str())
            .invoke_async(&mut self.conn.clone())
            .await;
        if let Err(e) = released {
            tracing::warn!(key = %self.key, error = %e, "lock release failed; its TTL will free it");
        }
    }
}

#[async_trait]
impl Locker for RedisLocker {
    async fn acquire(&self, id: &UploadId, wait: Duration) -> Result<LockGuard, LockError> {
        let deadline = Instant::now() + wait;
        let mut asked = false;
        let mut delay = Duration::from_millis(20);
        loop {
            if let Some(guard) = self.try_set(id).await? {
                return Ok(guard);
            }
            if !asked {
                self.request_release(id).await;
                asked = true;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LockError::Busy);
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_millis(200));
        }
    }

    async fn try_acquire(&self, id: &UploadId) -> Result<Option<LockGuard>, LockError> {
        self.try_set(id).await
    }
}
