//! Assembles a running partway: the stores behind the core's ports, the
//! upload core, its router, and serving with graceful shutdown.
//!
//! The binary builds a [`Partway`] from flags ([`Partway::from_settings`]); an
//! embedder uses [`Partway::builder`] without argv. Either way,
//! [`Partway::serve`] runs it: it owns the expiry reaper and the graceful
//! shutdown.

use crate::auth;
use crate::config::{
    Backend, MetricsAt, Serving, Settings, collection_path, defaults, redis_nodes,
};
use crate::http::{self, HttpConfig};
use crate::metrics::{self, Metrics};
use crate::server;
use crate::store::local::{LocalLocker, LocalObjects, LocalState};
use crate::store::redis::{
    RedisConn, RedisLocker, RedisState, connect, connect_cluster, store_error,
};
use crate::store::s3::S3Objects;
use crate::upload::access::{AllOf, Authorizer};
use crate::upload::deliver::{Deliverer, DeliveryConfig};
use crate::upload::events::Application;
use crate::upload::plan::PartLimits;
use crate::upload::ports::{Locker, ObjectStore, Outbox, StateStore};
use crate::upload::{Limits, UploadService};
use axum::Router;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;
use tokio::net::TcpListener;

/// partway could not start: a store unreachable, or a setting refused.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct StartError(String);

impl From<String> for StartError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// Wraps the whole router in the embedding application's layers.
type Wrap = Arc<dyn Fn(Router) -> Router + Send + Sync>;

/// A configured partway: the upload core, its HTTP settings and what the
/// embedding application serves with it.
#[derive(Clone)]
pub struct Partway {
    service: Arc<UploadService>,
    http: HttpConfig,
    routes: Router,
    wrap: Option<Wrap>,
    serving: Serving,
    /// Accepts TLS on the listener, when HTTPS is configured.
    tls: Option<tokio_rustls::TlsAcceptor>,
    /// Whether an authorizer stands between clients and uploads.
    secured: bool,
    /// The metrics registry, and where `/metrics` is served.
    metrics: Option<Arc<Metrics>>,
    metrics_at: MetricsAt,
    /// The events state changes wrote for the application.
    outbox: Option<Arc<dyn Outbox>>,
    /// How the outbox is delivered, when partway delivers it.
    delivery: Option<DeliveryConfig>,
}

impl Partway {
    /// A builder that starts from every default: the embedded store in
    /// `./data`, the collection at `/files/`.
    pub fn builder() -> Builder {
        Builder {
            settings: Settings::default(),
            routes: Router::new(),
            wrap: None,
            authorizer: None,
            app: None,
        }
    }

    /// Connects the stores `settings` name.
    ///
    /// # Errors
    /// A setting refused, or a store that cannot be reached or prepared.
    pub async fn from_settings(settings: &Settings) -> Result<Self, StartError> {
        Self::builder().settings(settings.clone()).build().await
    }

    /// Wraps an upload service built by hand (tests build their own).
    #[cfg(any(test, feature = "test-util"))]
    pub fn new(service: Arc<UploadService>, http: HttpConfig) -> Self {
        Self {
            service,
            http,
            routes: Router::new(),
            wrap: None,
            serving: Serving::default(),
            tls: None,
            secured: false,
            metrics: None,
            metrics_at: MetricsAt::Off,
            outbox: None,
            delivery: None,
        }
    }

    /// The upload core: its limits, counters and reaper.
    pub fn service(&self) -> &Arc<UploadService> {
        &self.service
    }

    /// Moves every dead-lettered event back into the outbox, to be
    /// delivered again; returns how many.
    ///
    /// # Errors
    /// The store failed.
    pub async fn replay_dead_letters(&self) -> Result<u64, StartError> {
        let outbox = self
            .outbox
            .as_ref()
            .ok_or("this store has no outbox".to_owned())?;
        outbox
            .replay_dead()
            .await
            .map_err(|e| StartError(format!("replaying dead letters: {e}")))
    }

    /// The tus router alone, to merge into another axum application:
    /// with `/metrics` when it is served on the main listener, and the
    /// requests counted when metrics are on.
    pub fn router(&self) -> Router {
        let mut router = http::router(self.service.clone(), &self.http);
        if let Some(metrics) = &self.metrics {
            if self.metrics_at == MetricsAt::Main {
                router = router.merge(metrics_routes(metrics.clone(), self.service.clone()));
            }
            let count =
                axum::middleware::from_fn_with_state(metrics.clone(), metrics::layer::count);
            router = router.layer(count);
        }
        router
    }

    /// Serves partway (with the routes and layers given to
    /// [`Builder::routes`] and [`Builder::wrap`]) on `listener` until
    /// `shutdown` resolves, with the expiry reaper running.
    ///
    /// On shutdown, new connections stop, every PATCH in flight stops
    /// reading and commits what it has, and requests get
    /// [`defaults::SHUTDOWN_GRACE`] to answer.
    ///
    /// # Errors
    /// I/O errors of the listener.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        if let Ok(addr) = listener.local_addr()
            && !addr.ip().is_loopback()
            && !self.secured
        {
            tracing::warn!(
                %addr,
                "no authorization is configured (--auth-*, --access-hook-url): anyone who can \
                 reach this address can upload and download"
            );
        }
        // The reaper stops by itself once the service begins shutting down;
        // the deliverer when `stop_delivery` is cancelled.
        self.service.spawn_reaper();
        let stop_delivery = tokio_util::sync::CancellationToken::new();
        if let (Some(outbox), Some(config)) = (&self.outbox, &self.delivery) {
            let deliverer = Deliverer::new(self.service.clone(), outbox.clone(), config.clone());
            tokio::spawn(deliverer.run(stop_delivery.clone()));
        }
        let mut router = self.router().merge(self.routes.clone());
        if let Some(wrap) = &self.wrap {
            router = wrap(router);
        }
        let metrics_server = self.serve_metrics().await?;
        let service = self.service.clone();
        let open = self
            .metrics
            .as_ref()
            .map_or_else(Default::default, |m| m.connections.clone());
        let serving = (self.serving, self.tls, open);
        let served = server::run(listener, router, serving, shutdown, move || {
            service.begin_shutdown();
            stop_delivery.cancel();
        });
        let result = served.await;
        if let Some(stop) = metrics_server {
            let _ = stop.send(());
        }
        result
    }

    /// Serves `/metrics` on its own listener, if so configured, until the
    /// returned sender sends or is dropped.
    async fn serve_metrics(&self) -> std::io::Result<Option<tokio::sync::oneshot::Sender<()>>> {
        let (MetricsAt::Listen(addr), Some(metrics)) = (self.metrics_at, &self.metrics) else {
            return Ok(None);
        };
        let listener = TcpListener::bind(addr).await?;
        let routes = metrics_routes(metrics.clone(), self.service.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let until = async move {
                let _ = stopped.await;
            };
            if let Err(e) = axum::serve(listener, routes)
                .with_graceful_shutdown(until)
                .await
            {
                tracing::warn!(error = %e, "the metrics listener failed");
            }
        });
        Ok(Some(stop))
    }
}

/// Builds a [`Partway`] in code, without flags.
pub struct Builder {
    settings: Settings,
    routes: Router,
    wrap: Option<Wrap>,
    authorizer: Option<Arc<dyn Authorizer>>,
    app: Option<Arc<dyn Application>>,
}

impl Builder {
    /// Replaces every setting at once (the binary passes its flags here).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Adjusts the settings in place.
    pub fn configure(mut self, adjust: impl FnOnce(&mut Settings)) -> Self {
        adjust(&mut self.settings);
        self
    }

    /// The URL path of the upload collection, e.g. `/uploads/`.
    pub fn base_path(mut self, path: &str) -> Self {
        self.settings.http.base_path = collection_path(path);
        self
    }

    /// Keeps uploads and their state in a local directory (the default).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.settings.backend = Backend::Local {
            data_dir: dir.into(),
        };
        self
    }

    /// Where uploads and their state live.
    pub fn backend(mut self, backend: Backend) -> Self {
        self.settings.backend = backend;
        self
    }

    /// Routes of the embedding application, served beside partway's.
    pub fn routes(mut self, routes: Router) -> Self {
        self.routes = self.routes.merge(routes);
        self
    }

    /// Wraps everything served, partway's routes and the application's, in
    /// layers (authentication, tracing, ...): `wrap(|r| r.layer(...))`.
    pub fn wrap(mut self, wrap: impl Fn(Router) -> Router + Send + Sync + 'static) -> Self {
        self.wrap = Some(Arc::new(wrap));
        self
    }

    /// Asks `authorizer` before every request, after the built-in ones the
    /// settings configure (JWT, the access hook), if any: all must agree.
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// Tells `app` of events and asks it at the blocking hooks, instead of
    /// the `--hooks-*` settings (see [`crate::hook::Callbacks`]). Durable
    /// events reach it from the outbox, at least once.
    pub fn hooks(mut self, app: Arc<dyn Application>) -> Self {
        self.app = Some(app);
        self
    }

    /// Checks the settings and connects the stores.
    ///
    /// # Errors
    /// A setting refused, or a store that cannot be reached or prepared.
    pub async fn build(self) -> Result<Partway, StartError> {
        let settings = &self.settings;
        settings.check()?;
        crate::tls::install_crypto_provider();
        let tls = settings
            .serving
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()?;
        let limits = limits(settings);
        let metrics = (settings.metrics != MetricsAt::Off).then(|| Arc::new(Metrics::new()));
        let built_in = auth::build(&settings.auth, metrics.clone()).await?;
        let authorizer = match (built_in, self.authorizer) {
            (Some(ours), Some(theirs)) => Some(Arc::new(AllOf(vec![ours, theirs])) as Arc<_>),
            (one, other) => one.or(other),
        };
        let (service, outbox) =
            backend_service(&settings.backend, limits, metrics.as_ref()).await?;
        let secured = authorizer.is_some();
        let mut service = match authorizer {
            Some(authorizer) => service.with_authorizer(authorizer),
            None => service,
        };
        let delivery = settings.hooks.sends() || self.app.is_some();
        let delivery = delivery.then(|| DeliveryConfig {
            retry_for: settings.hooks.retry_for,
            ..DeliveryConfig::default()
        });
        let app = match self.app {
            Some(app) => Some(app),
            None => crate::hook::build(&settings.hooks, metrics.clone())?,
        };
        if let Some(app) = app {
            service = service.with_application(app, storage_label(&settings.backend));
        }
        outbox
            .recover()
            .await
            .map_err(|e| format!("cannot recover the outbox: {e}"))?;
        Ok(Partway {
            service: Arc::new(service),
            http: HttpConfig {
                https: tls.is_some(),
                ..settings.http.clone()
            },
            routes: self.routes,
            wrap: self.wrap,
            serving: settings.serving.clone(),
            tls,
            secured,
            metrics,
            metrics_at: settings.metrics,
            outbox: Some(outbox),
            delivery,
        })
    }
}

/// Where objects live, as events name it: tusd's `s3store` with the bucket
/// on S3.
fn storage_label(backend: &Backend) -> std::collections::BTreeMap<String, String> {
    let pairs: Vec<(&str, String)> = match backend {
        Backend::S3 { s3, .. } => vec![("Type", "s3store".into()), ("Bucket", s3.bucket.clone())],
        Backend::Local { .. } => vec![("Type", "partway-local".into())],
    };
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// `/metrics` for `service`.
fn metrics_routes(metrics: Arc<Metrics>, service: Arc<UploadService>) -> Router {
    metrics::layer::routes(metrics, service)
}

/// The upload core over the stores `backend` names.
async fn backend_service(
    backend: &Backend,
    limits: Limits,
    metrics: Option<&Arc<Metrics>>,
) -> Result<(UploadService, Arc<dyn Outbox>), StartError> {
    match backend {
        Backend::Local { data_dir } => local_service(data_dir, limits).await,
        Backend::S3 {
            s3,
            key_prefix,
            redis_url,
            redis_prefix,
            redis_cluster,
            redis_ca_file,
        } => {
            let redis = (redis_url.as_str(), *redis_cluster, redis_ca_file.as_deref());
            let (client, conn) = connect_redis(redis).await?;
            let state = Arc::new(RedisState::new(conn.clone(), redis_prefix.clone()));
            let locker = RedisLocker::new(client, conn, redis_prefix, defaults::LOCK_TTL);
            let objects = S3Objects::connect(s3).await;
            let ports = metered(
                (Arc::new(objects), state.clone(), Arc::new(locker)),
                metrics,
            );
            let service = UploadService::new(ports.0, ports.1, ports.2, limits, key_prefix);
            Ok((service, state))
        }
    }
}

/// The ports of the S3 and Redis adapters, as the core gets them.
type Ports = (Arc<dyn ObjectStore>, Arc<dyn StateStore>, Arc<dyn Locker>);

/// The production ports, timed when metrics are on.
fn metered((objects, state, locker): Ports, metrics: Option<&Arc<Metrics>>) -> Ports {
    use metrics::metered::{MeteredLocker, MeteredObjects, MeteredState};
    let Some(metrics) = metrics else {
        return (objects, state, locker);
    };
    let objects = MeteredObjects {
        inner: objects,
        metrics: metrics.clone(),
    };
    let state = MeteredState {
        inner: state,
        metrics: metrics.clone(),
    };
    let locker = MeteredLocker {
        inner: locker,
        metrics: metrics.clone(),
    };
    (Arc::new(objects), Arc::new(state), Arc::new(locker))
}

/// The TLS roots for `rediss://`: the file's, or the system's (`None`).
fn redis_tls(ca_file: Option<&Path>) -> Result<Option<redis::TlsCertificates>, StartError> {
    let Some(path) = ca_file else {
        return Ok(None);
    };
    let pem =
        std::fs::read(path).map_err(|e| format!("--redis-ca-file {}: {e}", path.display()))?;
    Ok(Some(redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    }))
}

/// The core's limits, as the settings give them.
fn limits(settings: &Settings) -> Limits {
    Limits {
        expire_after: settings.expire_after,
        expired_gone: settings.expired_gone,
        buffer_budget_kib: Limits::budget_kib(settings.max_buffer),
        max_active_appends: settings.max_active_uploads,
        parts_in_flight: settings.parts_in_flight,
        parts_in_flight_total: settings.parts_in_flight_total,
        resume_grace: resume_grace(settings),
        progress_interval: settings.hooks.progress_interval,
        ..Limits::new(settings.part_size, settings.max_size)
    }
}

/// How long past its expiry a token may resume its own upload: as set, or
/// as long as an unfinished upload lives.
fn resume_grace(settings: &Settings) -> std::time::Duration {
    settings
        .auth
        .resume_grace
        .or(settings.expire_after)
        .unwrap_or(std::time::Duration::MAX)
}

/// The embedded default: everything under `data_dir`.
async fn local_service(
    data_dir: &Path,
    limits: Limits,
) -> Result<(UploadService, Arc<dyn Outbox>), StartError> {
    tokio::fs::create_dir_all(data_dir)
        .await
        .map_err(|e| format!("--data-dir {}: {e}", data_dir.display()))?;
    let locker = LocalLocker::new();
    let state = Arc::new(LocalState::new(data_dir, &locker));
    let service = UploadService::new(
        Arc::new(LocalObjects::new(data_dir, PartLimits::S3)),
        state.clone(),
        Arc::new(locker),
        limits,
        "",
    );
    Ok((service, state))
}

/// Connects to the Redis server, or the Cluster, that `redis_url` names:
/// the client for release requests and the connection for everything else.
async fn connect_redis(
    (redis_url, cluster, ca_file): (&str, bool, Option<&Path>),
) -> Result<(redis::Client, RedisConn), StartError> {
    let nodes: Vec<String> = redis_nodes(redis_url).map(str::to_owned).collect();
    let first = nodes.first().ok_or("--redis-url is empty".to_owned())?;
    let tls = redis_tls(ca_file)?;
    // Release requests are pub/sub on one node; a cluster broadcasts
    // PUBLISH to every node.
    let client = match tls.clone() {
        Some(certs) => redis::Client::build_with_tls(first.as_str(), certs),
        None => redis::Client::open(first.as_str()),
    }
    .map_err(|e| format!("--redis-url: {e}"))?;
    let conn = if cluster {
        connect_cluster(&nodes, tls).await
    } else {
        connect(&client).await
    }
    .map_err(|e| format!("cannot reach Redis at --redis-url: {e}"))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn.clone())
        .await
        .map_err(|e| format!("Redis does not answer PING: {}", store_error(e)))?;
    Ok((client, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_builder_checks_settings_before_it_connects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let small = Partway::builder()
            .data_dir(dir.path())
            .configure(|s| s.part_size = 1 << 20)
            .build()
            .await;
        let refused = small.err().map(|e| e.to_string());
        assert!(refused.is_some_and(|e| e.contains("--part-size")));
        let relative = Partway::builder()
            .data_dir(dir.path())
            .base_path("uploads")
            .build()
            .await;
        assert!(relative.is_err(), "a base path must start with /");
        let built = Partway::builder()
            .data_dir(dir.path().join("store"))
            .base_path("/uploads")
            .build()
            .await
            .expect("the embedded default builds");
        assert_eq!(built.http.base_path, "/uploads/");
        assert!(dir.path().join("store").is_dir(), "the data dir is made");
    }

    /// An embedder's authorizer that lets only `x-app-user: ada` create.
    struct AppSessions;

    #[async_trait::async_trait]
    impl Authorizer for AppSessions {
        async fn authorize(
            &self,
            request: &crate::upload::access::AccessRequest<'_>,
        ) -> Result<crate::upload::access::Grant, crate::upload::access::Denial> {
            match request.caller.headers().get("x-app-user") {
                Some(user) if user == "ada" => Ok(crate::upload::access::Grant {
                    subject: Some("ada".into()),
                    ..Default::default()
                }),
                _ => Err(crate::upload::access::Denial::Forbidden("not ada".into())),
            }
        }
    }

    #[tokio::test]
    async fn an_embedders_authorizer_decides() {
        use tower::ServiceExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let partway = Partway::builder()
            .data_dir(dir.path())
            .authorizer(Arc::new(AppSessions))
            .build()
            .await
            .expect("builds");
        assert!(partway.secured);
        let post = |user: &str| {
            axum::http::Request::post("/files/")
                .header("tus-resumable", "1.0.0")
                .header("upload-length", "3")
                .header("x-app-user", user)
                .body(axum::body::Body::empty())
                .expect("a request")
        };
        let refused = partway.router().oneshot(post("eve")).await.expect("answer");
        assert_eq!(refused.status(), axum::http::StatusCode::FORBIDDEN);
        let created = partway.router().oneshot(post("ada")).await.expect("answer");
        assert_eq!(created.status(), axum::http::StatusCode::CREATED);
    }

    #[tokio::test]
    async fn an_embedders_hooks_decide_and_are_told() {
        use crate::hook::Callbacks;
        use crate::upload::events::{HookKind, Verdict};
        let dir = tempfile::tempdir().expect("tempdir");
        let (told, mut events) = tokio::sync::mpsc::unbounded_channel();
        let hooks = Callbacks::new()
            .on(HookKind::PreCreate, |event| async move {
                let small = event.body.upload.size < 3;
                Ok(Verdict {
                    reject_upload: small,
                    ..Verdict::default()
                })
            })
            .subscribe(move |event| {
                let told = told.clone();
                async move {
                    let _ = told.send((event.kind, event.body.upload.id));
                    Ok(())
                }
            });
        let partway = Partway::builder()
            .data_dir(dir.path())
            .hooks(Arc::new(hooks))
            .build()
            .await
            .expect("builds");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/files/", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(partway.serve(listener, async move {
            let _ = stopped.await;
        }));
        let post = |length: &str| {
            reqwest::Client::new()
                .post(&url)
                .header("tus-resumable", "1.0.0")
                .header("upload-length", length)
                .send()
        };
        let refused = post("2").await.expect("POST");
        assert_eq!(refused.status(), reqwest::StatusCode::BAD_REQUEST);
        let created = post("3").await.expect("POST");
        assert_eq!(created.status(), reqwest::StatusCode::CREATED);
        let (kind, id) = events.recv().await.expect("an event");
        assert_eq!(kind, HookKind::PostCreate);
        let location = created.headers()["location"].to_str().expect("location");
        assert!(location.ends_with(&id), "{location} {id}");
        let _ = stop.send(());
        serving.await.expect("served").expect("serve");
    }
}
