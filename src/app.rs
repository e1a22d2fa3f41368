//! Assembles a running partway from validated [`Settings`]: the stores behind
//! the seams, the upload core and its router.

use crate::config::{Backend, Settings, redis_nodes};
use crate::http::{self, HttpConfig};
use crate::store::local::LocalObjects;
use crate::store::local_lock::LocalLocker;
use crate::store::local_state::LocalState;
use crate::store::redis::{RedisState, store_error};
use crate::store::redis_conn::{connect, connect_cluster};
use crate::store::redis_lock::RedisLocker;
use crate::store::s3::S3Objects;
use crate::upload::plan::PartLimits;
use crate::upload::{Limits, UploadService};
use axum::Router;
use std::sync::Arc;
use std::time::Duration;

/// How long a Redis lock lives without renewal: the wait after a holder dies.
pub const LOCK_TTL: Duration = Duration::from_secs(10);

/// A configured partway: the upload core plus its HTTP settings.
#[derive(Clone)]
pub struct Partway {
    service: Arc<UploadService>,
    http: HttpConfig,
}

impl Partway {
    /// Wraps an upload service (tests and embedders build their own).
    pub fn new(service: Arc<UploadService>, http: HttpConfig) -> Self {
        Self { service, http }
    }

    /// Connects the configured stores.
    ///
    /// # Errors
    /// A message when a store cannot be reached or prepared.
    pub async fn from_settings(settings: &Settings) -> Result<Self, String> {
        let limits = Limits {
            expire_after: settings.expire_after,
            expired_gone: settings.expired_gone,
            buffer_budget_kib: u32::try_from(settings.max_buffer / 1024).unwrap_or(u32::MAX),
            max_active_appends: settings.max_active_uploads,
            ..Limits::new(settings.part_size, settings.max_size)
        };
        let service = match &settings.backend {
            Backend::Local { data_dir } => {
                tokio::fs::create_dir_all(data_dir)
                    .await
                    .map_err(|e| format!("--data-dir {}: {e}", data_dir.display()))?;
                UploadService::new(
                    Arc::new(LocalObjects::new(data_dir, PartLimits::S3)),
                    Arc::new(LocalState::new(data_dir)),
                    Arc::new(LocalLocker::new()),
                    limits,
                    "",
                )
            }
            Backend::S3 {
                s3,
                key_prefix,
                redis_url,
                redis_prefix,
                redis_cluster,
            } => {
                let nodes: Vec<String> = redis_nodes(redis_url).map(str::to_owned).collect();
                let first = nodes.first().ok_or("--redis-url is empty")?;
                // Release requests are pub/sub on one node; a cluster
                // broadcasts PUBLISH to every node.
                let client =
                    redis::Client::open(first.as_str()).map_err(|e| format!("--redis-url: {e}"))?;
                let conn = if *redis_cluster {
                    connect_cluster(&nodes).await
                } else {
                    connect(&client).await
                }
                .map_err(|e| format!("cannot reach Redis at --redis-url: {e}"))?;
                let mut ping = conn.clone();
                let _: String = redis::cmd("PING")
                    .query_async(&mut ping)
                    .await
                    .map_err(|e| format!("Redis does not answer PING: {}", store_error(e)))?;
                UploadService::new(
                    Arc::new(S3Objects::connect(s3).await),
                    Arc::new(RedisState::new(conn.clone(), redis_prefix.clone())),
                    Arc::new(RedisLocker::new(
                        client,
                        conn,
                        redis_prefix.clone(),
                        LOCK_TTL,
                    )),
                    limits,
                    key_prefix.clone(),
                )
            }
        };
        Ok(Self::new(Arc::new(service), settings.http.clone()))
    }

    /// The upload core.
    pub fn service(&self) -> &Arc<UploadService> {
        &self.service
    }

    /// The tus router, ready to serve or to merge into another axum app.
    pub fn router(&self) -> Router {
        http::router(self.service.clone(), &self.http)
    }
}
