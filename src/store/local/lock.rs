//! An in-process lock per upload, for the embedded default.
//!
//! A request that wants a held upload asks the holder to let go (its guard's
//! stop signal is cancelled), then waits for the release; the holder commits
//! what it has and unlocks: the "release request" that lets a client that
//! reconnects resume at once, within one process.

use crate::upload::model::{LockToken, UploadId};
use crate::upload::ports::{LockError, LockGuard, LockRelease, Locker};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Held {
    token: LockToken,
    stop: CancellationToken,
    released: Arc<Notify>,
}

type Table = Arc<Mutex<HashMap<UploadId, Held>>>;

/// Locks held in this process.
#[derive(Debug, Default, Clone)]
pub struct LocalLocker {
    // A std mutex: it is never held across an await.
    held: Table,
}

impl LocalLocker {
    /// An empty lock table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `token` holds the lock on `id` right now.
    pub(crate) fn holds(&self, id: &UploadId, token: &LockToken) -> bool {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.get(id).is_some_and(|h| &h.token == token)
    }

    fn try_take(&self, id: &UploadId) -> Result<LockGuard, (CancellationToken, Arc<Notify>)> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = held.get(id) {
            return Err((h.stop.clone(), h.released.clone()));
        }
        let token = LockToken::random();
        let stop = CancellationToken::new();
        held.insert(
            id.clone(),
            Held {
                token: token.clone(),
                stop: stop.clone(),
                released: Arc::new(Notify::new()),
            },
        );
        let release = Box::new(Release {
            table: self.held.clone(),
            id: id.clone(),
            token: token.clone(),
        });
        Ok(LockGuard::new(token, stop, release))
    }
}

struct Release {
    table: Table,
    id: UploadId,
    token: LockToken,
}

#[async_trait]
impl LockRelease for Release {
    async fn release(self: Box<Self>) {
        let mut held = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(&self.id).is_some_and(|h| h.token == self.token)
            && let Some(h) = held.remove(&self.id)
        {
            h.released.notify_waiters();
        }
    }
}

#[async_trait]
impl Locker for LocalLocker {
    async fn acquire(&self, id: &UploadId, wait: Duration) -> Result<LockGuard, LockError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (stop, released) = match self.try_take(id) {
                Ok(guard) => return Ok(guard),
                Err(holder) => holder,
            };
            let notified = released.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Re-check after registering, so a release in between is not missed.
            if let Ok(guard) = self.try_take(id) {
                return Ok(guard);
            }
            stop.cancel();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(LockError::Busy);
            }
        }
    }

    async fn try_acquire(&self, id: &UploadId) -> Result<Option<LockGuard>, LockError> {
        Ok(self.try_take(id).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn second_acquirer_asks_the_holder_to_let_go() {
        let locker = LocalLocker::new();
        let id = UploadId::random();
        let first = locker
            .acquire(&id, Duration::ZERO)
            .await
            .expect("free lock");
        let stop = first.stop_signal().clone();
        let waiter = {
            let locker = locker.clone();
            let id = id.clone();
            tokio::spawn(async move { locker.acquire(&id, Duration::from_secs(5)).await })
        };
        stop.cancelled().await;
        assert!(locker.try_acquire(&id).await.expect("ok").is_none());
        first.release().await;
        let second = waiter.await.expect("join").expect("acquired after release");
        assert!(!second.stop_signal().is_cancelled());
    }

    #[tokio::test]
    async fn gives_up_when_the_holder_does_not_let_go() {
        let locker = LocalLocker::new();
        let id = UploadId::random();
        let _held = locker.acquire(&id, Duration::ZERO).await.expect("free");
        assert!(matches!(
            locker.acquire(&id, Duration::from_millis(50)).await,
            Err(LockError::Busy)
        ));
    }
}
