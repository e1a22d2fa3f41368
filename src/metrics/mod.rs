//! What an operator sees at `/metrics`, in the Prometheus text format:
//! every metric tusd exposes, as `partway_*` with the same type and labels,
//! plus store latencies, locks, the buffer budget, admission and
//! authorization refusals.
//!
//! Counts come from three places: the upload core's own [`Counters`], the
//! HTTP layer ([`layer`]: requests, errors, open connections), and the
//! store adapters wrapped by [`metered`] (S3 and Redis latencies, lock
//! waits). [`Metrics::render`] reads them all at scrape time.
//!
//! [`Counters`]: crate::upload::Counters

mod family;
pub mod layer;
pub mod metered;

use crate::upload::events::HookKind;
use crate::upload::{Counters as CoreCounters, UploadService};
use family::{Counters, Histograms, Meta, single};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The hook types tusd counts (its counters start at 0 for each), and the
/// access hook's.
fn hook_types() -> impl Iterator<Item = &'static str> {
    HookKind::ALL
        .into_iter()
        .map(HookKind::as_str)
        .chain(["pre-access"])
}

/// The registry of one partway.
pub struct Metrics {
    requests: Counters,
    errors: Counters,
    hook_invocations: Counters,
    hook_errors: Counters,
    auth_refusals: Counters,
    s3: Histograms,
    redis: Histograms,
    lock_waits: Histograms,
    /// Connections being served now.
    pub(crate) connections: Arc<AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let hooks = |name, help| {
            let family = Counters::new(Meta {
                name,
                help,
                labels: &["hooktype"],
            });
            for hook in hook_types() {
                family.add(&[hook], 0);
            }
            family
        };
        Self {
            requests: counters(
                "partway_requests_total",
                "Requests received, by method.",
                &["method"],
            ),
            errors: counters(
                "partway_errors_total",
                "Requests refused or failed, by status and error code.",
                &["status", "code"],
            ),
            hook_invocations: hooks("partway_hook_invocations_total", "Hooks called, by type."),
            hook_errors: hooks("partway_hook_errors_total", "Hooks that failed, by type."),
            auth_refusals: counters(
                "partway_auth_refusals_total",
                "Requests refused by authorization, by reason.",
                &["reason"],
            ),
            s3: histograms(
                "partway_s3_request_duration_seconds",
                "S3 requests, by operation and outcome.",
            ),
            redis: histograms(
                "partway_redis_request_duration_seconds",
                "Redis round trips, by operation and outcome.",
            ),
            lock_waits: Histograms::new(Meta {
                name: "partway_lock_wait_seconds",
                help: "Time to get an upload's lock, by outcome.",
                labels: &["outcome"],
            }),
            connections: Arc::new(AtomicI64::new(0)),
        }
    }

    /// Counts a request by its method.
    pub fn request(&self, method: &str) {
        self.requests.add(&[method], 1);
    }

    /// Counts a refusal or failure by status and code.
    pub fn error(&self, status: u16, code: &str) {
        self.errors.add(&[&status.to_string(), code], 1);
    }

    /// Counts a hook call, and whether it failed.
    pub fn hook(&self, hooktype: &str, failed: bool) {
        self.hook_invocations.add(&[hooktype], 1);
        if failed {
            self.hook_errors.add(&[hooktype], 1);
        }
    }

    /// Counts an authorization refusal.
    pub fn auth_refusal(&self, reason: &str) {
        self.auth_refusals.add(&[reason], 1);
    }

    /// The whole registry, with the core's counts, as Prometheus text.
    pub fn render(&self, service: &UploadService) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.requests.render(&mut out);
        self.errors.render(&mut out);
        self.hook_invocations.render(&mut out);
        self.hook_errors.render(&mut out);
        let open = self.connections.load(Ordering::Relaxed);
        single(
            &mut out,
            &meta("partway_connections_open", "Connections open now."),
            "gauge",
            open as f64,
        );
        core(&mut out, service);
        // Refusals for another subject's upload are counted by the core.
        let not_owner = service.counters().refused_not_owner.load(Ordering::Relaxed);
        self.auth_refusals.set(&["not_owner"], not_owner);
        self.auth_refusals.render(&mut out);
        self.s3.render(&mut out);
        self.redis.render(&mut out);
        self.lock_waits.render(&mut out);
        out
    }
}

fn meta(name: &'static str, help: &'static str) -> Meta {
    Meta {
        name,
        help,
        labels: &[],
    }
}

fn counters(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Counters {
    Counters::new(Meta { name, help, labels })
}

fn histograms(name: &'static str, help: &'static str) -> Histograms {
    Histograms::new(Meta {
        name,
        help,
        labels: &["operation", "outcome"],
    })
}

/// Where the core keeps a count.
type Count = fn(&CoreCounters) -> &AtomicU64;

/// The upload core's counters: name, help, and where the count is kept.
const CORE_COUNTERS: &[(&str, &str, Count)] = &[
    (
        "partway_bytes_received",
        "Body bytes received from clients.",
        |c| &c.bytes_received,
    ),
    ("partway_uploads_created", "Uploads created.", |c| {
        &c.uploads_created
    }),
    (
        "partway_uploads_finished",
        "Uploads finished: their object exists.",
        |c| &c.uploads_finished,
    ),
    ("partway_uploads_terminated", "Uploads terminated.", |c| {
        &c.uploads_terminated
    }),
    (
        "partway_lock_takeovers_total",
        "PATCHes that let go of an upload another request asked for.",
        |c| &c.takeovers,
    ),
    (
        "partway_refused_active_total",
        "Requests refused with 429: too many uploads being written.",
        |c| &c.refused_active,
    ),
    (
        "partway_refused_budget_total",
        "PATCHes stopped with 503: the buffer budget stayed full.",
        |c| &c.refused_budget,
    ),
    (
        "partway_buffer_waits_total",
        "Times a PATCH waited for room in the buffer budget.",
        |c| &c.budget_waits,
    ),
    (
        "partway_outbox_delivered_total",
        "Durable events (post-create, post-finish, post-terminate) delivered.",
        |c| &c.outbox_delivered,
    ),
    (
        "partway_outbox_dead_lettered_total",
        "Durable events given up on after --hooks-retry-for.",
        |c| &c.outbox_dead_lettered,
    ),
];

/// The upload core's counts and gauges.
fn core(out: &mut String, service: &UploadService) {
    for (name, help, count) in CORE_COUNTERS {
        let value = count(service.counters()).load(Ordering::Relaxed);
        single(out, &meta(name, help), "counter", value as f64);
    }
    let kib = |k: u64| k as f64 * 1024.0;
    let gauges = [
        (
            "partway_uploads_active",
            "Uploads being written now.",
            service.active_appends() as f64,
        ),
        (
            "partway_buffer_bytes_in_use",
            "Bytes of the buffer budget held now.",
            kib(service.buffer_in_use_kib()),
        ),
        (
            "partway_buffer_bytes_limit",
            "The buffer budget (--max-buffer).",
            kib(u64::from(service.limits().buffer_budget_kib)),
        ),
        (
            "partway_outbox_backlog",
            "Durable events not yet delivered.",
            service.counters().outbox_backlog.load(Ordering::Relaxed) as f64,
        ),
        (
            "partway_outbox_oldest_age_seconds",
            "Age of the oldest undelivered durable event.",
            service
                .counters()
                .outbox_oldest_age_ms
                .load(Ordering::Relaxed) as f64
                / 1000.0,
        ),
    ];
    for (name, help, value) in gauges {
        single(out, &meta(name, help), "gauge", value);
    }
}
