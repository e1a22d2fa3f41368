//! Whether this instance can serve requests now: its stores answer in time,
//! and it is not draining for shutdown.

use super::UploadService;
use std::time::Duration;
use thiserror::Error;

/// Why this instance is not ready.
#[derive(Debug, Error)]
pub enum Unready {
    #[error("shutting down")]
    Draining,
    /// A store did not answer, or failed; the detail is for the log.
    #[error("the {which} does not answer")]
    Store { which: &'static str, detail: String },
}

impl UploadService {
    /// Ready when neither store fails nor takes longer than `within`, and
    /// the service is not shutting down.
    ///
    /// # Errors
    /// [`Unready`] naming the first cause found.
    pub async fn readiness(&self, within: Duration) -> Result<(), Unready> {
        if self.stopping.is_cancelled() {
            return Err(Unready::Draining);
        }
        let (state, objects) = tokio::join!(
            tokio::time::timeout(within, self.state.ping()),
            tokio::time::timeout(within, self.objects.ping()),
        );
        for (which, answer) in [("state store", state), ("object store", objects)] {
            let detail = match answer {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {within:?}"),
            };
            return Err(Unready::Store { which, detail });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ready_until_it_drains() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (service, _) = crate::upload::tests::service(dir.path());
        let within = Duration::from_secs(1);
        assert!(service.readiness(within).await.is_ok());
        std::fs::remove_dir_all(dir.path()).expect("remove the data directory");
        let gone = service.readiness(within).await;
        assert!(matches!(gone, Err(Unready::Store { .. })), "{gone:?}");
        service.begin_shutdown();
        let draining = service.readiness(within).await;
        assert!(matches!(draining, Err(Unready::Draining)), "{draining:?}");
    }
}
