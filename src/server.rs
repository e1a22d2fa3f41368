//! Serving a router on a listener, with graceful shutdown; reached through
//! [`crate::Partway::serve`].

use crate::config::Serving;
use crate::config::defaults::SHUTDOWN_GRACE;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// The most a connection buffers of a request it has not yet been asked to
/// read: bodies are pulled by the upload core as it has room for them, so a
/// larger read-ahead per connection only adds memory for every idle or
/// waiting client (hyper's default is about 400 KiB).
const READ_BUFFER: usize = 64 * 1024;

/// The most connections served at once unless configured otherwise.
const MAX_CONNECTIONS: usize = 10_000;

/// What a connection past `--max-connections` is told before it is closed.
const TOO_MANY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Connection: close\r\nContent-Type: text/plain\r\nContent-Length: 35\r\n\r\n\
too many connections; retry shortly";

/// Connections served at once: as configured, or three quarters of the
/// open-files limit (the rest is for the stores and files), at most
/// [`MAX_CONNECTIONS`]. Each idle connection costs a few tens of KiB.
fn connection_limit(configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| {
        let soft = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                line.split_whitespace().nth(3)?.parse::<usize>().ok()
            })
            .unwrap_or(1024);
        (soft / 4 * 3).clamp(64, MAX_CONNECTIONS)
    })
}

/// Serves `router` until `shutdown` resolves.
///
/// On shutdown, new connections stop, `on_stop` tells the upload core to
/// have every PATCH in flight stop reading and commit what it has, and the
/// server waits up to [`SHUTDOWN_GRACE`] for requests to answer before
/// returning. Each request carries the peer's address
/// (`ConnectInfo<SocketAddr>`), for trusted proxies. A client gets
/// `serving.header_read_timeout` to send each request's headers; past the
/// connection limit, a new connection is answered 503 and closed.
///
/// # Errors
/// I/O errors of the listener.
pub(crate) async fn run(
    listener: TcpListener,
    router: Router,
    (serving, tls, open): (Serving, Option<TlsAcceptor>, Arc<AtomicI64>),
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_stop: impl FnOnce(),
) -> std::io::Result<()> {
    let each = Each {
        builder: builder(&serving),
        router,
        tls,
        handshake_within: serving.header_read_timeout,
        open,
    };
    let limit = connection_limit(serving.max_connections);
    let slots = Arc::new(Semaphore::new(limit));
    tracing::debug!(limit, "connection limit");
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        match slots.clone().try_acquire_owned() {
            Ok(slot) => each.spawn(graceful.watcher(), accepted, slot),
            Err(_) => turn_away(accepted.0, limit),
        }
    }
    drop(listener);
    tracing::info!("shutting down: committing in-flight uploads");
    on_stop();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("shutdown grace period over; closing remaining connections");
        }
    }
    Ok(())
}

/// HTTP/1.1 and HTTP/2 (by ALPN over TLS, by preface without), with a
/// deadline for request headers and keep-alive pings.
fn builder(serving: &Serving) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .max_buf_size(READ_BUFFER)
        .timer(TokioTimer::new())
        .header_read_timeout(serving.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(serving.header_read_timeout))
        .keep_alive_timeout(serving.header_read_timeout);
    builder
}

/// What every connection is served with.
#[derive(Clone)]
struct Each {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    tls: Option<TlsAcceptor>,
    /// How long a client gets to finish its TLS handshake.
    handshake_within: Duration,
    /// Connections being served now.
    open: Arc<AtomicI64>,
}

/// Counts a connection as open while it lives.
struct Open(Arc<AtomicI64>);

impl Open {
    fn new(open: &Arc<AtomicI64>) -> Self {
        open.fetch_add(1, Ordering::Relaxed);
        Self(open.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Each {
    /// Serves one connection in its own task, watched for graceful
    /// shutdown; over TLS, after the handshake.
    fn spawn(
        &self,
        watcher: Watcher,
        (stream, peer): (TcpStream, SocketAddr),
        slot: OwnedSemaphorePermit,
    ) {
        let _ = stream.set_nodelay(true);
        let each = self.clone();
        let open = Open::new(&self.open);
        tokio::spawn(async move {
            let _held = (slot, open);
            let served = match &each.tls {
                None => each.serve(watcher, stream, peer).await,
                Some(tls) => {
                    match tokio::time::timeout(each.handshake_within, tls.accept(stream)).await {
                        Ok(Ok(stream)) => each.serve(watcher, stream, peer).await,
                        Ok(Err(e)) => Err(format!("TLS handshake failed: {e}").into()),
                        Err(_) => Err("TLS handshake timed out".into()),
                    }
                }
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }

    async fn serve<I>(&self, watcher: Watcher, io: I, peer: SocketAddr) -> Result<(), BoxError>
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let app = self
            .router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let connection = self
            .builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
            .into_owned();
        watcher.watch(connection).await
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Answers a connection past the limit with 503, without reading it, and
/// closes it.
fn turn_away(stream: TcpStream, limit: usize) {
    // Logged at most once a second: a flood must not flood the log too.
    static LOGGED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = crate::upload::model::now_secs();
    if LOGGED.swap(now, std::sync::atomic::Ordering::Relaxed) != now {
        tracing::warn!(limit, "connection limit reached; turning connections away");
    }
    // Whatever fits in the socket buffer now; the connection closes anyway.
    let _ = stream.try_write(TOO_MANY);
    drop(stream);
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
