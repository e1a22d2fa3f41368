//! Talking to the application: tusd-compatible hooks over HTTP or as
//! executables in a directory, or callbacks in process, all behind the
//! core's [`Application`] port.
//!
//! [`client`] posts a hook request with tusd's retry rules and reads the
//! answer the way Go's `encoding/json` would (keys in any case, unknown
//! keys ignored); [`http`] and [`dir`] are the two transports tusd has;
//! [`callbacks`] is the embedder's; [`verdict`] reads an answer into the
//! core's [`crate::upload::events::Verdict`].

pub mod callbacks;
pub mod client;
pub mod dir;
pub mod http;
pub mod verdict;

pub use callbacks::Callbacks;
pub use client::{HookAnswer, HookClient, HookError};

use crate::metrics::Metrics;
use crate::upload::events::{Application, Event, HookFailure, HookKind, Verdict};
use async_trait::async_trait;
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How partway tells the application, as the `--hooks-*` flags describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookSettings {
    /// `--hooks-http`: the receiver's URL.
    pub http: Option<String>,
    /// `--hooks-dir`: a directory of executables named by hook.
    pub dir: Option<PathBuf>,
    /// `--hooks-enabled-events`.
    pub enabled: Vec<HookKind>,
    /// `--hooks-http-forward-headers`: client headers copied onto each POST.
    pub forward_headers: Vec<String>,
    /// `--hooks-http-timeout`: one deadline over all tries of a call.
    pub timeout: Duration,
    /// `--hooks-http-retry`: tries in all, for blocking hooks.
    pub retry: u32,
    /// `--hooks-http-backoff`: the wait between two tries.
    pub backoff: Duration,
    /// `--hooks-retry-for`: how long a durable event is retried.
    pub retry_for: Duration,
    /// `--hooks-signing-secret`: the file whose bytes sign each request.
    pub signing_secret: Option<PathBuf>,
    /// `--hooks-outbox`: write durable events even with no transport, for
    /// applications that read the outbox themselves.
    pub outbox: bool,
    /// `--progress-hooks-interval`: at most one post-receive per PATCH in it.
    pub progress_interval: Duration,
}

impl HookSettings {
    /// tusd's default set of hooks: pre-finish and pre-terminate are opt-in.
    pub const DEFAULT_EVENTS: [HookKind; 5] = [
        HookKind::PreCreate,
        HookKind::PostCreate,
        HookKind::PostReceive,
        HookKind::PostTerminate,
        HookKind::PostFinish,
    ];

    /// Whether partway sends hooks itself (and so delivers its outbox).
    pub fn sends(&self) -> bool {
        self.http.is_some() || self.dir.is_some()
    }
}

impl Default for HookSettings {
    fn default() -> Self {
        Self {
            http: None,
            dir: None,
            enabled: Self::DEFAULT_EVENTS.to_vec(),
            forward_headers: Vec::new(),
            timeout: Duration::from_secs(15),
            retry: 3,
            backoff: Duration::from_secs(1),
            retry_for: Duration::from_secs(24 * 3600),
            signing_secret: None,
            outbox: false,
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// The application the settings describe, or `None` when there is none.
///
/// # Errors
/// A message naming the flag at fault (an unreadable secret file).
pub fn build(
    settings: &HookSettings,
    metrics: Option<Arc<Metrics>>,
) -> Result<Option<Arc<dyn Application>>, String> {
    let enabled: HashSet<HookKind> = settings.enabled.iter().copied().collect();
    let app: Arc<dyn Application> = if let Some(url) = &settings.http {
        let secret = match &settings.signing_secret {
            Some(path) => Some(
                crate::auth::read_secret(path)
                    .map_err(|e| format!("--hooks-signing-secret: {e}"))?,
            ),
            None => None,
        };
        Arc::new(http::HttpHooks::new(url, settings, secret))
    } else if let Some(dir) = &settings.dir {
        Arc::new(dir::DirHooks::new(dir.clone(), settings.timeout))
    } else if settings.outbox {
        Arc::new(PullOnly)
    } else {
        return Ok(None);
    };
    Ok(Some(Arc::new(Enabled {
        inner: app,
        enabled,
        metrics,
    })))
}

/// Sends only the hooks that are enabled, and counts each call.
struct Enabled {
    inner: Arc<dyn Application>,
    enabled: HashSet<HookKind>,
    metrics: Option<Arc<Metrics>>,
}

impl Enabled {
    fn count<T>(&self, kind: HookKind, result: &Result<T, HookFailure>) {
        if let Some(metrics) = &self.metrics {
            metrics.hook(kind.as_str(), result.is_err());
        }
    }
}

#[async_trait]
impl Application for Enabled {
    fn wants(&self, kind: HookKind) -> bool {
        self.enabled.contains(&kind) && self.inner.wants(kind)
    }

    async fn send(&self, event: &Event) -> Result<Verdict, HookFailure> {
        let result = self.inner.send(event).await;
        self.count(event.kind, &result);
        result
    }

    async fn deliver(&self, event: &Event) -> Result<(), HookFailure> {
        let result = self.inner.deliver(event).await;
        self.count(event.kind, &result);
        result
    }
}

/// `--hooks-outbox` alone: durable events are written for the application
/// to read; nothing is sent.
struct PullOnly;

#[async_trait]
impl Application for PullOnly {
    fn wants(&self, kind: HookKind) -> bool {
        kind.is_durable()
    }

    async fn send(&self, _event: &Event) -> Result<Verdict, HookFailure> {
        Ok(Verdict::default())
    }
}
