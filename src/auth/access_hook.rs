//! The `pre-access` hook: the application decides, per request, whether a
//! caller may read or change an upload (names and shape from tusd's
//! access-hook proposal, tusd PR#1077).
//!
//! Asked before HEAD, PATCH, DELETE, GET and concatenation with
//! `Event.Access = {Mode: "read"|"write", Uploads: [FileInfo...]}` and the
//! request's headers, cookies and `Authorization` included, so an
//! application without JWTs can keep its own sessions. `RejectAccess: true`
//! refuses (403, or the answer's `HTTPResponse`); a hook that is down, slow
//! or answers nonsense refuses too, with 503: never an open door. A
//! decision may be cached per (credential, uploads, mode) for a while, so
//! a revocation takes effect on the next request, or within that while.

use crate::hook::HookClient;
use crate::metrics::Metrics;
use crate::upload::access::{AccessRequest, Action, Authorizer, Denial, Grant, Mode};
use crate::upload::events::{FileInfo, HttpRequest};
use async_trait::async_trait;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Decisions remembered at most, before old ones are dropped.
const CACHE_CAPACITY: usize = 100_000;

/// A decision, and when it was made.
type Remembered = (Instant, Result<(), Denial>);

/// Asks the application's `pre-access` hook.
pub struct AccessHook {
    client: HookClient,
    metrics: Option<Arc<Metrics>>,
    cache_for: Duration,
    cache: Mutex<HashMap<[u8; 32], Remembered>>,
}

impl AccessHook {
    /// Asks `client`; caches each decision for `cache_for` (zero: never);
    /// counts its calls in `metrics`.
    pub fn new(client: HookClient, cache_for: Duration, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            client,
            metrics,
            cache_for,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Result<(), Denial>> {
        if self.cache_for.is_zero() {
            return None;
        }
        let cache = self.cache.lock().ok()?;
        let (at, decision) = cache.get(key)?;
        (at.elapsed() < self.cache_for).then(|| decision.clone())
    }

    fn remember(&self, key: [u8; 32], decision: &Result<(), Denial>) {
        if self.cache_for.is_zero() || matches!(decision, Err(Denial::Unavailable(_))) {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_CAPACITY {
            let ttl = self.cache_for;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (Instant::now(), decision.clone()));
    }

    async fn ask(&self, request: &AccessRequest<'_>) -> Result<(), Denial> {
        let mode = match request.action.mode() {
            Mode::Read => "read",
            Mode::Write => "write",
        };
        let storage = std::collections::BTreeMap::new();
        let uploads: Vec<FileInfo> = request
            .uploads
            .iter()
            .map(|info| FileInfo::of(info, &storage))
            .collect();
        let event = json!({
            "Upload": uploads.first(),
            "Access": { "Mode": mode, "Uploads": uploads },
            "HTTPRequest": HttpRequest::of(request.caller),
        });
        let answer = self.client.call("pre-access", event).await;
        if let Some(metrics) = &self.metrics {
            metrics.hook("pre-access", answer.is_err());
        }
        let answer = answer.map_err(|e| {
            tracing::warn!(error = %e, "the pre-access hook gave no answer");
            Denial::Unavailable("the access check is unavailable; retry shortly".into())
        })?;
        if answer.flag("RejectAccess") {
            return Err(Denial::Rejected(answer.http_response().unwrap_or_default()));
        }
        Ok(())
    }
}

/// The cache key of an access: who asks (a digest of the credentials), for
/// what and on which uploads.
fn cache_key(request: &AccessRequest<'_>) -> [u8; 32] {
    let mut digest = Sha256::new();
    for name in [http::header::AUTHORIZATION, http::header::COOKIE] {
        for value in request.caller.headers().get_all(name) {
            digest.update(value.as_bytes());
            digest.update([0]);
        }
        digest.update([1]);
    }
    digest.update([u8::from(request.action.mode() == Mode::Write)]);
    for info in request.uploads {
        digest.update(info.id.as_str().as_bytes());
    }
    digest.finalize().into()
}

#[async_trait]
impl Authorizer for AccessHook {
    async fn authorize(&self, request: &AccessRequest<'_>) -> Result<Grant, Denial> {
        // Creation is the pre-create hook's; an upload that does not exist
        // is refused as such without asking.
        if request.action == Action::Create || request.uploads.is_empty() {
            return Ok(Grant::default());
        }
        let key = cache_key(request);
        let decision = match self.cached(&key) {
            Some(decision) => decision,
            None => {
                let decision = self.ask(request).await;
                self.remember(key, &decision);
                decision
            }
        };
        decision.map(|()| Grant::default())
    }
}
