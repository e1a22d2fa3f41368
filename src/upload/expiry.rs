//! The expiration extension: when uploads expire, and the reaper.
//!
//! An unfinished upload expires `expire_after` after its creation or its last
//! PATCH; a finished partial upload expires the same way, since it only waits
//! to be concatenated. A finished upload never expires. The state store keeps
//! an index of expiry times (a Redis sorted set), and every instance runs a
//! reaper over it. The reaper takes an upload's lock before it touches it and
//! re-reads the record under the lock, so with any number of instances each
//! expired upload is reaped once, and an upload that a PATCH has just
//! extended is left alone.

use super::model::{Concat, UploadId, UploadInfo, UploadState, now_secs};
use super::{Error, Result, UploadService};
use std::sync::Arc;
use std::time::Duration;

impl UploadService {
    /// When `info` should expire if it were touched now.
    pub(super) fn expiry_for(&self, info: &UploadInfo) -> Option<u64> {
        let lifetime = self.limits.expire_after?;
        let finished = info.state == UploadState::Completed;
        if finished && info.concat != Some(Concat::Partial) {
            return None;
        }
        Some(now_secs() + lifetime.as_secs().max(1))
    }

    /// Moves an upload's expiry after activity, if it changed.
    pub(super) async fn touch(&self, info: &mut UploadInfo) -> Result<()> {
        let expires_at = self.expiry_for(info);
        if expires_at != info.expires_at {
            self.state.set_expiry(&info.id, expires_at).await?;
            info.expires_at = expires_at;
        }
        Ok(())
    }

    /// The error for an expired upload: expired, or unknown if so configured.
    pub(super) fn expired_error(&self) -> Error {
        if self.limits.expired_gone {
            Error::Expired
        } else {
            Error::NotFound
        }
    }

    /// One reaper pass: removes up to a batch of expired uploads, returning
    /// how many this call removed.
    ///
    /// # Errors
    /// The state store could not list expired uploads.
    pub(crate) async fn reap_expired(&self) -> Result<usize> {
        let ids = self
            .state
            .expired(now_secs(), self.limits.reap_batch.max(1))
            .await?;
        let mut reaped = 0;
        for id in ids {
            match self.reap(&id).await {
                Ok(true) => reaped += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(upload = %id, error = %e, "could not reap"),
            }
        }
        Ok(reaped)
    }

    async fn reap(&self, id: &UploadId) -> Result<bool> {
        // A busy upload is in use, so not expired; skip it this time.
        let Some(guard) = self.locker.try_acquire(id).await? else {
            return Ok(false);
        };
        let outcome = async {
            match self.state.get(id).await? {
                None => {
                    // Reaped elsewhere, or an index entry a crash left behind.
                    self.state.unindex(id).await?;
                    Ok(false)
                }
                Some(info) if !info.expired(now_secs()) => Ok(false),
                Some(info) => {
                    self.remove_upload(&info, None).await?;
                    if self.limits.expired_gone {
                        self.state.mark_gone(id).await?;
                    }
                    tracing::info!(upload = %id, offset = info.offset, "expired upload reaped");
                    Ok(true)
                }
            }
        }
        .await;
        guard.release().await;
        outcome
    }

    /// One reaper pass now, for tests that drive the reaper by hand.
    ///
    /// # Errors
    /// The state store could not list expired uploads.
    #[cfg(any(test, feature = "test-util"))]
    pub async fn reap_now(&self) -> Result<usize> {
        self.reap_expired().await
    }

    /// Runs the reaper until shutdown, if uploads expire at all.
    pub(crate) fn spawn_reaper(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let lifetime = self.limits.expire_after?;
        let every = (lifetime / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let service = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = service.stopping.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                if let Err(e) = service.reap_expired().await {
                    tracing::warn!(error = %e, "reaper pass failed");
                }
            }
        }))
    }
}
