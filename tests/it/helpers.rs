//! A partway per test, on its own loopback port and key prefixes, plus a
//! minimal tus client and S3 read-back helpers.

use crate::servers::servers;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use partway::Partway;
use partway::config::{Backend, Settings};
use partway::http::HttpConfig;
use partway::store::s3::{PartCheck, S3Settings};
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const MIB: usize = 1 << 20;
pub const KIB: usize = 1 << 10;

/// Deterministic pseudo-random bytes, different for each seed.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn unique(tag: &str) -> String {
    format!("{tag}-{:016x}", rand::random::<u64>())
}

/// One running partway against the shared Redis and S3 servers.
pub struct TestApp {
    pub addr: SocketAddr,
    pub settings: Settings,
    pub s3: aws_sdk_s3::Client,
    pub bucket: String,
    pub key_prefix: String,
    pub http: reqwest::Client,
    partway: Option<Partway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestApp {
    /// A fresh partway with 5 MiB parts and unique key prefixes.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the settings adjusted by `adjust`.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "partway=warn".into()))
            .try_init();
        let servers = servers();
        let key_prefix = format!("{}/", unique("it"));
        let creds = ("test-access-key".to_owned(), "test-secret-key".to_owned());
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("addr"),
            http: HttpConfig::default(),
            backend: Backend::S3 {
                s3: S3Settings {
                    bucket: servers.bucket.clone(),
                    endpoint: Some(servers.s3_endpoint.clone()),
                    region: Some("us-east-1".into()),
                    force_path_style: true,
                    credentials: Some(creds.clone()),
                    part_check: PartCheck::Crc32c,
                    unsigned_payload: true,
                    read_timeout: None,
                },
                key_prefix: key_prefix.clone(),
                redis_url: servers.redis_url.clone(),
                redis_prefix: format!("{}:", unique("it")),
                redis_cluster: false,
                redis_ca_file: None,
            },
            part_size: 5 * MIB as u64,
            max_size: None,
            expire_after: Some(std::time::Duration::from_secs(24 * 3600)),
            expired_gone: false,
            max_buffer: 1 << 30,
            max_active_uploads: 1024,
            ..Settings::default()
        };
        let mut settings = settings;
        adjust(&mut settings);
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(creds.0, creds.1, None, None, "test"))
                .region(Region::new("us-east-1"))
                .endpoint_url(&servers.s3_endpoint)
                .force_path_style(true)
                .build(),
        );
        // Every test tries; the first creates it, the rest are told it exists.
        let _ = s3.create_bucket().bucket(&servers.bucket).send().await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .expect("http client");
        let mut app = Self {
            addr: settings.listen,
            settings,
            s3,
            bucket: servers.bucket.clone(),
            key_prefix,
            http,
            partway: None,
            shutdown: None,
            task: None,
        };
        app.start().await;
        app
    }

    async fn start(&mut self) {
        let partway = Partway::from_settings(&self.settings)
            .await
            .expect("partway starts");
        let listener = TcpListener::bind(self.addr).await.expect("bind");
        self.addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let serving = partway.clone();
        self.task = Some(tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            serving.serve(listener, stop).await.expect("serve");
        }));
        self.shutdown = Some(tx);
        self.partway = Some(partway);
    }

    /// Stops this partway gracefully and starts a new one on the same port
    /// and the same stores, as a process restart would.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.partway = None;
        self.start().await;
    }

    /// A connection to this app's Redis, and its key prefix.
    pub async fn redis(&self) -> (redis::aio::MultiplexedConnection, String) {
        let partway::config::Backend::S3 {
            redis_url,
            redis_prefix,
            ..
        } = &self.settings.backend
        else {
            panic!("not a Redis-backed app");
        };
        let client = redis::Client::open(redis_url.as_str()).expect("redis client");
        let conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis");
        (conn, redis_prefix.clone())
    }

    /// The keys under this app's Redis prefix.
    pub async fn redis_keys(&self) -> Vec<String> {
        let (mut conn, prefix) = self.redis().await;
        redis::cmd("KEYS")
            .arg(format!("{prefix}*"))
            .query_async(&mut conn)
            .await
            .expect("KEYS")
    }

    /// Waits until some request holds the upload's lock in Redis.
    pub async fn await_locked(&self, url: &str) {
        let (mut conn, redis_prefix) = self.redis().await;
        let key = format!("{redis_prefix}{{{}}}:lock", id_of(url));
        let start = std::time::Instant::now();
        loop {
            let held: bool = redis::cmd("EXISTS")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .expect("EXISTS");
            if held {
                return;
            }
            assert!(start.elapsed().as_secs() < 10, "nobody took the lock");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Runs one reaper pass on each of `count` new instances on this app's
    /// stores, all at once; returns how many uploads they reaped in all.
    pub async fn reap_with_instances(&self, count: usize) -> usize {
        let mut instances = Vec::new();
        for _ in 0..count {
            instances.push(
                Partway::from_settings(&self.settings)
                    .await
                    .expect("partway"),
            );
        }
        let passes =
            futures_util::future::join_all(instances.iter().map(|p| p.service().reap_now())).await;
        passes.into_iter().map(|r| r.expect("reaper pass")).sum()
    }

    /// The running instance's upload core (its counters, say).
    pub fn service(&self) -> std::sync::Arc<partway::upload::UploadService> {
        self.partway.as_ref().expect("running").service().clone()
    }

    /// The collection URL.
    pub fn endpoint(&self) -> String {
        format!("http://{}/files/", self.addr)
    }

    /// POSTs a new upload and returns its URL.
    pub async fn create(&self, length: Option<u64>) -> String {
        let response = self.post(length, &[]).await;
        assert_eq!(response.status(), StatusCode::CREATED, "create upload");
        location(&response)
    }

    /// POSTs with the given extra headers.
    pub async fn post(&self, length: Option<u64>, extra: &[(&str, &str)]) -> Response {
        let mut request = self
            .http
            .post(self.endpoint())
            .header("Tus-Resumable", "1.0.0");
        request = match length {
            Some(l) => request.header("Upload-Length", l.to_string()),
            None => request.header("Upload-Defer-Length", "1"),
        };
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        request.send().await.expect("POST")
    }

    pub async fn head(&self, url: &str) -> Response {
        self.http
            .head(url)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await
            .expect("HEAD")
    }

    /// The offset HEAD reports.
    pub async fn offset(&self, url: &str) -> u64 {
        let response = self.head(url).await;
        assert_eq!(response.status(), StatusCode::OK, "HEAD {url}");
        header_u64(response.headers(), "upload-offset").expect("Upload-Offset")
    }

    /// PATCHes `body` with a Content-Length.
    pub async fn patch(&self, url: &str, offset: u64, body: Vec<u8>) -> Response {
        self.patch_with(url, offset, reqwest::Body::from(body), &[])
            .await
    }

    /// PATCHes `body` with chunked transfer encoding, in chunks of `chunk` bytes.
    pub async fn patch_chunked(
        &self,
        url: &str,
        offset: u64,
        body: Vec<u8>,
        chunk: usize,
    ) -> Response {
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            body.chunks(chunk.max(1)).map(|c| Ok(c.to_vec())).collect();
        let stream = futures_util::stream::iter(chunks);
        self.patch_with(url, offset, reqwest::Body::wrap_stream(stream), &[])
            .await
    }

    pub async fn patch_with(
        &self,
        url: &str,
        offset: u64,
        body: reqwest::Body,
        extra: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .http
            .patch(url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset.to_string());
        for (k, v) in extra {
            request = request.header(*k, *v);
        }
        request.body(body).send().await.expect("PATCH")
    }

    /// The object key of an upload URL.
    pub fn key_of(&self, url: &str) -> String {
        format!("{}{}", self.key_prefix, id_of(url))
    }

    /// The stored object of an upload, read back from S3.
    pub async fn object(&self, url: &str) -> Vec<u8> {
        let out = self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(self.key_of(url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("object of {url}: {e:?}"));
        out.body
            .collect()
            .await
            .expect("object body")
            .into_bytes()
            .to_vec()
    }

    /// Whether any S3 object exists for the upload.
    pub async fn object_exists(&self, url: &str) -> bool {
        self.s3
            .head_object()
            .bucket(&self.bucket)
            .key(self.key_of(url))
            .send()
            .await
            .is_ok()
    }

    /// Multipart uploads still open under this app's key prefix.
    pub async fn open_multipart_uploads(&self) -> usize {
        let listed = self
            .s3
            .list_multipart_uploads()
            .bucket(&self.bucket)
            .prefix(&self.key_prefix)
            .send()
            .await
            .expect("ListMultipartUploads");
        listed.uploads().len()
    }

    /// Asserts the stored object equals `expected` byte for byte.
    pub async fn assert_object(&self, url: &str, expected: &[u8]) {
        let stored = self.object(url).await;
        assert_eq!(stored.len(), expected.len(), "object size of {url}");
        assert!(stored == expected, "object bytes of {url} differ");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A PATCH at offset 0 that sends `first`, then stalls with its connection
/// open until the returned sender sends more or is dropped.
pub async fn stalled_patch(
    http: &reqwest::Client,
    url: &str,
    first: Vec<u8>,
) -> (
    tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    JoinHandle<reqwest::Result<Response>>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tx.send(Ok(first)).await.expect("first bytes");
    let body = reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let request = http
        .patch(url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body(body);
    (tx, tokio::spawn(request.send()))
}

/// The last path segment of an upload URL.
pub fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or(url)
}

pub fn location(response: &Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("Location header")
        .to_owned()
}

pub fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

pub fn header_str<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers().get(name)?.to_str().ok()
}

/// Serves `router` on an ephemeral loopback port, as an application the
/// test plays (a hook receiver, a token endpoint, a JWKS server); returns
/// `http://<addr><path>`.
pub async fn serve_app(router: axum::Router, path: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}{path}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}
