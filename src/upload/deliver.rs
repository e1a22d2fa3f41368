//! Delivering the outbox: every durable event reaches the application at
//! least once, in order per upload, never lost.
//!
//! One instance at a time delivers: the holder of the outbox's lease, which
//! it renews while it works; if it dies, another takes the lease over when
//! it lapses and delivers what was left, again from the oldest. Each round
//! reads the oldest undelivered events and sends, for each upload, only
//! the first of its events (so post-create always precedes post-finish),
//! several uploads at once. An event that fails is tried again with
//! exponential backoff; while all wait, the oldest probes the application
//! every few seconds, and as soon as any event is delivered again, the
//! others are tried at once. One still failing
//! [`DeliveryConfig::retry_for`] after it was written goes to the dead
//! letters, counted and logged.
//! A delivered event leaves the outbox.

use super::events::Event;
use super::model::now_millis;
use super::ports::{Outbox, Pending};
use super::{UploadService, bump};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How the outbox is delivered.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// How long an event is retried before it is dead-lettered.
    pub retry_for: Duration,
    /// How long the lease lasts unless renewed: the longest an outbox waits
    /// after its deliverer died.
    pub lease: Duration,
    /// How often an idle deliverer looks for new events.
    pub poll: Duration,
    /// Events read per round.
    pub batch: usize,
    /// Uploads whose events are sent at once.
    pub concurrency: usize,
    /// The longest wait between two tries of one event.
    pub max_backoff: Duration,
    /// While every event waits out a backoff, the oldest is tried this
    /// often anyway: when it is delivered, the rest follow at once.
    pub probe: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            retry_for: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(10),
            poll: Duration::from_millis(200),
            batch: 256,
            concurrency: 16,
            max_backoff: Duration::from_secs(300),
            probe: Duration::from_secs(5),
        }
    }
}

/// The tries of one event so far.
#[derive(Debug, Clone, Copy)]
struct Tries {
    count: u32,
    next: Instant,
}

/// The wait after `count` failed tries: 1 s, doubling, at most `max`.
fn backoff(count: u32, max: Duration) -> Duration {
    Duration::from_secs(1u64 << count.saturating_sub(1).min(20)).min(max)
}

/// For each upload, its oldest event, if its next try is due.
fn ready(pending: Vec<Pending>, tries: &HashMap<String, Tries>) -> Vec<Pending> {
    let mut seen = HashSet::new();
    let now = Instant::now();
    pending
        .into_iter()
        .filter(|p| seen.insert(p.event.body.upload.id.clone()))
        .filter(|p| tries.get(&p.key).is_none_or(|t| t.next <= now))
        .collect()
}

/// Delivers one outbox.
pub struct Deliverer {
    service: Arc<UploadService>,
    outbox: Arc<dyn Outbox>,
    config: DeliveryConfig,
    /// Who holds the lease: unique per process.
    holder: String,
    tries: HashMap<String, Tries>,
    /// When an event was last sent.
    last_probe: Instant,
}

impl Deliverer {
    /// A deliverer of `outbox` to `service`'s application.
    pub fn new(
        service: Arc<UploadService>,
        outbox: Arc<dyn Outbox>,
        config: DeliveryConfig,
    ) -> Self {
        Self {
            service,
            outbox,
            config,
            holder: super::events::new_event_id(),
            tries: HashMap::new(),
            last_probe: Instant::now(),
        }
    }

    /// Delivers until `stop` is cancelled.
    pub async fn run(mut self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let worked = match self.round(&stop).await {
                Ok(worked) => worked,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox delivery failed; trying again");
                    false
                }
            };
            if !worked {
                tokio::select! {
                    () = stop.cancelled() => {}
                    () = tokio::time::sleep(self.config.poll) => {}
                }
            }
        }
    }

    /// One round; `true` if an event was sent.
    async fn round(&mut self, stop: &CancellationToken) -> Result<bool, super::ports::StoreError> {
        self.measure().await?;
        if !self.outbox.lease(&self.holder, self.config.lease).await? {
            // Another instance delivers; what this one tried is its business.
            self.tries.clear();
            return Ok(false);
        }
        let pending = self.outbox.pending(self.config.batch).await?;
        let oldest = pending.first().cloned();
        let mut batch = ready(pending, &self.tries);
        if batch.is_empty() && self.last_probe.elapsed() >= self.config.probe {
            // Everything waits out a backoff: the oldest event probes
            // whether the application answers again.
            batch.extend(oldest);
        }
        if batch.is_empty() {
            return Ok(false);
        }
        self.last_probe = Instant::now();
        let app = self.service.app.clone();
        let sends = futures_util::stream::iter(batch)
            .map(|p| {
                let app = app.clone();
                async move {
                    let result = app.deliver(&p.event).await;
                    (p, result)
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .collect::<Vec<_>>();
        let results = tokio::select! {
            results = sends => results,
            lost = self.keep_lease() => { lost?; return Ok(false) }
            () = stop.cancelled() => return Ok(false),
        };
        let mut any_delivered = false;
        for (pending, result) in results {
            match result {
                Ok(()) => {
                    self.delivered(&pending).await?;
                    any_delivered = true;
                }
                Err(e) => self.failed(&pending, &e.0).await?,
            }
        }
        if any_delivered {
            // The application answers again: what waits for its backoff
            // is tried at once, not minutes later.
            let now = Instant::now();
            self.tries
                .values_mut()
                .for_each(|t| t.next = t.next.min(now));
        }
        Ok(true)
    }

    /// Renews the lease while a round runs; returns when it is lost.
    async fn keep_lease(&self) -> Result<(), super::ports::StoreError> {
        loop {
            tokio::time::sleep(self.config.lease / 3).await;
            if !self.outbox.lease(&self.holder, self.config.lease).await? {
                tracing::warn!("lost the outbox lease mid-round; another instance delivers");
                return Ok(());
            }
        }
    }

    async fn delivered(&mut self, pending: &Pending) -> Result<(), super::ports::StoreError> {
        self.tries.remove(&pending.key);
        self.outbox.delivered(&pending.key).await?;
        bump(&self.service.counters.outbox_delivered);
        Ok(())
    }

    async fn failed(
        &mut self,
        pending: &Pending,
        error: &str,
    ) -> Result<(), super::ports::StoreError> {
        let age_ms = now_millis().saturating_sub(pending.written_ms);
        if Duration::from_millis(age_ms) >= self.config.retry_for {
            let event: &Event = &pending.event;
            tracing::error!(event = %event.id, hook = %event.kind, upload = %event.body.upload.id,
                %error, "giving up on an event: moved to the dead letters");
            self.tries.remove(&pending.key);
            self.outbox.dead_letter(pending, error).await?;
            bump(&self.service.counters.outbox_dead_lettered);
            return Ok(());
        }
        let count = self.tries.get(&pending.key).map_or(0, |t| t.count) + 1;
        let wait = backoff(count, self.config.max_backoff);
        tracing::warn!(event = %pending.event.id, hook = %pending.event.kind, tries = count,
            ?wait, %error, "event not delivered; will try again");
        self.tries.insert(
            pending.key.clone(),
            Tries {
                count,
                next: Instant::now() + wait,
            },
        );
        Ok(())
    }

    /// Keeps the backlog gauges current.
    async fn measure(&self) -> Result<(), super::ports::StoreError> {
        let backlog = self.outbox.backlog().await?;
        let counters = &self.service.counters;
        counters
            .outbox_backlog
            .store(backlog.count, Ordering::Relaxed);
        let age = backlog
            .oldest_ms
            .map_or(0, |ms| now_millis().saturating_sub(ms));
        counters.outbox_oldest_age_ms.store(age, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let max = Duration::from_secs(300);
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n, max).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    }
}
