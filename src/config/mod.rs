//! Command-line and environment configuration, typed at the edge.
//!
//! Every flag has a `PARTWAY_*` environment variable. Sizes, durations and
//! choices are parsed by clap into types ([`ByteSize`], [`Span`],
//! [`PartChecksum`], [`ExpiredStatus`]), so a bad value is refused with the
//! flag's name before anything starts; [`Config::validate`] then checks the
//! rules that tie flags together and yields [`Settings`]. Each default is
//! written once, in [`defaults`]. Nothing else in partway reads the
//! environment (AWS credentials excepted, which come from the standard AWS
//! chain).

mod auth;
mod hooks;

pub use auth::AuthFlags;
pub use hooks::HookFlags;

use crate::auth::AuthSettings;
use crate::hook::HookSettings;
use crate::http::HttpConfig;
use crate::store::s3::{PartCheck, S3Settings};
use crate::tls::TlsFiles;
use crate::upload::plan::{MIB, PartLimits};
use clap::{Parser, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// The defaults of every flag, each written once: the core's and the HTTP
/// layer's are theirs, named here.
pub mod defaults {
    use crate::upload::Limits;
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
    use std::time::Duration;

    /// Where the binary listens.
    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 1080));
    /// The path of the upload collection.
    pub const BASE_PATH: &str = crate::http::DEFAULT_BASE_PATH;
    /// The preferred part size.
    pub const PART_SIZE: u64 = Limits::DEFAULT_PART_SIZE;
    /// Bytes of request bodies buffered across all uploads.
    pub const MAX_BUFFER: u64 = Limits::DEFAULT_BUFFER_BUDGET;
    /// Uploads written at once.
    pub const MAX_ACTIVE_UPLOADS: usize = Limits::DEFAULT_MAX_ACTIVE_APPENDS;
    /// Parts uploaded at once per PATCH.
    pub const PARTS_IN_FLIGHT: usize = Limits::DEFAULT_PARTS_IN_FLIGHT;
    /// Parts uploaded at once across all PATCHes.
    pub const PARTS_IN_FLIGHT_TOTAL: usize = Limits::DEFAULT_PARTS_IN_FLIGHT_TOTAL;
    /// How long an unfinished upload lives after its last PATCH.
    pub const EXPIRE_AFTER: Duration = Limits::DEFAULT_EXPIRE_AFTER;
    /// The prefix of every Redis key.
    pub const REDIS_PREFIX: &str = "partway:";
    /// The directory of the embedded store.
    pub const DATA_DIR: &str = "./data";
    /// How long a Redis lock lives without renewal: the wait after its
    /// holder dies.
    pub const LOCK_TTL: Duration = Duration::from_secs(10);
    /// How long in-flight requests get to commit and answer at shutdown.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
    /// How long a client gets to send a request's headers.
    pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// Authorization flags.
    pub use super::auth::defaults as auth;
}

/// partway: a tus 1.0 resumable-upload server that streams uploads into S3.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PARTWAY_LISTEN", default_value_t = defaults::LISTEN)]
    pub listen: SocketAddr,
    /// URL path of the upload collection.
    #[arg(long, env = "PARTWAY_BASE_PATH", default_value = defaults::BASE_PATH)]
    pub base_path: String,
    /// S3 bucket for uploads. Without it, uploads go to --data-dir.
    #[arg(long, env = "PARTWAY_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// S3 endpoint URL, for S3-compatible stores (MinIO, R2, Ceph, Garage).
    #[arg(long, env = "PARTWAY_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// S3 region; defaults to the AWS configuration chain.
    #[arg(long, env = "PARTWAY_S3_REGION")]
    pub s3_region: Option<String>,
    /// Prefix of every object key; the key is `<prefix><upload id>`.
    #[arg(long, env = "PARTWAY_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Use path-style addressing (most S3-compatible stores need it).
    #[arg(long, env = "PARTWAY_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,
    /// The digest S3 checks each part (and small object) against before it
    /// stores it: crc32c (x-amz-checksum-crc32c, nearly free), md5
    /// (Content-MD5, for stores without CRC32C; about 1.7 CPU-s per GiB), or
    /// none (only a signed payload's SHA-256).
    #[arg(long, env = "PARTWAY_S3_PART_CHECKSUM", value_enum, default_value_t)]
    pub s3_part_checksum: PartChecksum,
    /// How bodies are signed: auto (unsigned over HTTPS, SHA-256 over plain
    /// HTTP), unsigned (UNSIGNED-PAYLOAD, relying on the part checksum: for
    /// plain-HTTP endpoints you trust, such as loopback), or signed.
    #[arg(long, env = "PARTWAY_S3_PAYLOAD", value_enum, default_value_t)]
    pub s3_payload: PayloadSigning,
    /// Parts uploaded at once per PATCH while more of its body is read; each
    /// holds a part's buffer, within --max-buffer.
    #[arg(long, env = "PARTWAY_S3_PARTS_IN_FLIGHT",
          default_value_t = defaults::PARTS_IN_FLIGHT,
          value_parser = parse_at_least_one)]
    pub s3_parts_in_flight: usize,
    /// Parts uploaded at once across all PATCHes. A PATCH with a full part
    /// and no free slot stops reading until one frees, and while slots are
    /// short it reads no part ahead of its share, which bounds memory to
    /// about one part per PATCH (or this many parts, if more).
    #[arg(long, env = "PARTWAY_S3_PARTS_IN_FLIGHT_TOTAL",
          default_value_t = defaults::PARTS_IN_FLIGHT_TOTAL,
          value_parser = parse_at_least_one)]
    pub s3_parts_in_flight_total: usize,
    /// Redis URL for upload state and locks, e.g. redis://127.0.0.1:6379,
    /// or rediss://host:6380 for TLS.
    #[arg(long, env = "PARTWAY_REDIS_URL")]
    pub redis_url: Option<String>,
    /// PEM CA certificates that a rediss:// server's certificate must chain
    /// to, instead of the system's roots.
    #[arg(long, env = "PARTWAY_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
    /// --redis-url names nodes of a Redis Cluster (comma-separated seeds).
    #[arg(long, env = "PARTWAY_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Prefix of every Redis key.
    #[arg(long, env = "PARTWAY_REDIS_PREFIX", default_value = defaults::REDIS_PREFIX)]
    pub redis_prefix: String,
    /// Preferred S3 part size (at least 5MiB, a multiple of 1MiB).
    #[arg(long, env = "PARTWAY_PART_SIZE", default_value_t = ByteSize(defaults::PART_SIZE))]
    pub part_size: ByteSize,
    /// Largest upload accepted, e.g. 10GiB (default: S3's 5TiB for known
    /// lengths; 10,000 parts for deferred ones).
    #[arg(long, env = "PARTWAY_MAX_SIZE")]
    pub max_size: Option<ByteSize>,
    /// Bytes of request bodies buffered across all uploads; past it, a
    /// PATCH waits up to 5 s, then keeps what it has and gets 503.
    #[arg(long, env = "PARTWAY_MAX_BUFFER", default_value_t = ByteSize(defaults::MAX_BUFFER))]
    pub max_buffer: ByteSize,
    /// Uploads written at once (PATCHes, POSTs with a body); past it, 429
    /// with Retry-After.
    #[arg(long, env = "PARTWAY_MAX_ACTIVE_UPLOADS",
          default_value_t = defaults::MAX_ACTIVE_UPLOADS,
          value_parser = parse_at_least_one)]
    pub max_active_uploads: usize,
    /// Comma-separated origins allowed by CORS, or * for any.
    #[arg(
        long,
        env = "PARTWAY_CORS_ORIGINS",
        default_value = "*",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Send Access-Control-Allow-Credentials, echoing the origin (needs an
    /// explicit --cors-origins list).
    #[arg(long, env = "PARTWAY_CORS_ALLOW_CREDENTIALS")]
    pub cors_allow_credentials: bool,
    /// Unfinished uploads expire this long after their last PATCH, e.g.
    /// 30m, 24h, 7d; 0 never.
    #[arg(long, env = "PARTWAY_EXPIRE_AFTER", default_value_t = Span(defaults::EXPIRE_AFTER))]
    pub expire_after: Span,
    /// Status for an expired upload: 404 (tus-java-client re-creates only
    /// on 404) or 410.
    #[arg(long, env = "PARTWAY_EXPIRED_STATUS", value_enum, default_value_t)]
    pub expired_status: ExpiredStatus,
    /// Give Location as a path (`/files/<id>`) instead of an absolute URL.
    #[arg(long, env = "PARTWAY_RELATIVE_LOCATION")]
    pub relative_location: bool,
    /// Comma-separated addresses or CIDRs of reverse proxies whose Forwarded
    /// and X-Forwarded-Proto/-Host headers are believed for Location.
    #[arg(long, env = "PARTWAY_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Directory of the embedded store, used when no S3 bucket is set.
    #[arg(long, env = "PARTWAY_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// How long a client gets to send a request's headers before its
    /// connection is closed.
    #[arg(long, env = "PARTWAY_HEADER_READ_TIMEOUT",
          default_value_t = Span(defaults::HEADER_READ_TIMEOUT))]
    pub header_read_timeout: Span,
    /// Connections served at once; past it, new ones get 503 and are
    /// closed [default: from the open-files limit, at most 10000].
    #[arg(long, env = "PARTWAY_MAX_CONNECTIONS", value_parser = parse_at_least_one)]
    pub max_connections: Option<usize>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this PEM certificate
    /// chain; needs --tls-key.
    #[arg(long, env = "PARTWAY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "PARTWAY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve Prometheus metrics at /metrics (--metrics=false turns it off).
    #[arg(long, env = "PARTWAY_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Serve /metrics on this address instead of the main listener.
    #[arg(long, env = "PARTWAY_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log lines as text or JSON (one object per line); the level comes
    /// from RUST_LOG (default info).
    #[arg(long, env = "PARTWAY_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: LogFormat,
    #[command(flatten)]
    pub auth: AuthFlags,
    #[command(flatten)]
    pub hooks: HookFlags,
}

/// A size in bytes, written as `8MiB`, `5 GiB`, `1T` or plain bytes
/// (binary units).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        parse_size(text).map(Self)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
        match units
            .iter()
            .find(|(shift, _)| self.0 != 0 && self.0.is_multiple_of(1 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", self.0 >> shift),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A duration, written as `30s`, `15m`, `24h`, `7d` or plain seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        parse_duration(text).map(Self)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs();
        let units = [(86_400, "d"), (3600, "h"), (60, "m")];
        match units
            .iter()
            .find(|(n, _)| secs != 0 && secs.is_multiple_of(*n))
        {
            Some((n, unit)) => write!(f, "{}{unit}", secs / n),
            None => write!(f, "{secs}s"),
        }
    }
}

/// The digest S3 checks each part against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PartChecksum {
    None,
    #[default]
    Crc32c,
    Md5,
}

impl From<PartChecksum> for PartCheck {
    fn from(checksum: PartChecksum) -> Self {
        match checksum {
            PartChecksum::None => Self::None,
            PartChecksum::Crc32c => Self::Crc32c,
            PartChecksum::Md5 => Self::Md5,
        }
    }
}

/// How request bodies to S3 are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum PayloadSigning {
    /// Unsigned over HTTPS (TLS and the part checksum guard the bytes),
    /// signed over plain HTTP; signed when there is no part checksum.
    #[default]
    Auto,
    Signed,
    Unsigned,
}

impl PayloadSigning {
    /// Whether bodies go as `UNSIGNED-PAYLOAD` to `endpoint` (`None` is AWS,
    /// over HTTPS).
    fn unsigned(self, endpoint: Option<&str>, check: PartChecksum) -> bool {
        match self {
            Self::Signed => false,
            Self::Unsigned => true,
            Self::Auto => {
                check != PartChecksum::None
                    && endpoint.is_none_or(|e| e.to_ascii_lowercase().starts_with("https://"))
            }
        }
    }
}

/// How an expired upload is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ExpiredStatus {
    /// 404 Not Found, as for an upload that never existed.
    #[default]
    #[value(name = "404")]
    NotFound,
    /// 410 Gone, remembered for a week after the upload is reaped.
    #[value(name = "410")]
    Gone,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// One line of text per event, without colour unless stdout is a terminal.
    #[default]
    Text,
    /// One JSON object per line, with the request's span fields.
    Json,
}

/// Where uploads and their state live.
#[derive(Clone)]
// Made once at start; boxing the larger variant would only add noise to
// every match on it.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    /// The embedded default: everything under one local directory.
    Local { data_dir: PathBuf },
    /// Production: objects in S3, state and locks in Redis.
    S3 {
        s3: S3Settings,
        key_prefix: String,
        redis_url: String,
        redis_prefix: String,
        /// `redis_url` lists seed nodes of a Redis Cluster.
        redis_cluster: bool,
        /// CA certificates for `rediss://`, instead of the system's roots.
        redis_ca_file: Option<PathBuf>,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Backend {
    /// A one-line description for logs, with secrets left out.
    pub fn describe(&self) -> String {
        match self {
            Backend::Local { data_dir } => format!("embedded store in {}", data_dir.display()),
            Backend::S3 {
                s3,
                key_prefix,
                redis_url,
                redis_prefix,
                redis_cluster,
                ..
            } => format!(
                "S3 bucket {} at {} (key prefix {key_prefix:?}), Redis{} {} (key prefix {redis_prefix:?})",
                s3.bucket,
                s3.endpoint.as_deref().unwrap_or("AWS"),
                if *redis_cluster { " Cluster" } else { "" },
                redis_nodes(redis_url)
                    .map(redact_url)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// The Redis URLs in `--redis-url`: one server, or a Redis Cluster's seed
/// nodes, comma-separated.
pub fn redis_nodes(redis_url: &str) -> impl Iterator<Item = &str> {
    redis_url
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}")
        }
        None => url.to_owned(),
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub http: HttpConfig,
    pub backend: Backend,
    pub part_size: u64,
    pub max_size: Option<u64>,
    /// How long an unfinished upload lives after its last PATCH.
    pub expire_after: Option<Duration>,
    /// Answer 410 instead of 404 for expired uploads.
    pub expired_gone: bool,
    /// The global buffer budget, in bytes.
    pub max_buffer: u64,
    /// Uploads written at once.
    pub max_active_uploads: usize,
    /// Parts uploaded at once per PATCH.
    pub parts_in_flight: usize,
    /// Parts uploaded at once across all PATCHes.
    pub parts_in_flight_total: usize,
    /// How connections are accepted and timed.
    pub serving: Serving,
    /// Who may do what.
    pub auth: AuthSettings,
    /// Where `/metrics` is served, if it is.
    pub metrics: MetricsAt,
    /// How the application is told.
    pub hooks: HookSettings,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetricsAt {
    /// On the main listener, beside the uploads.
    #[default]
    Main,
    /// On its own listener (for a port only the monitoring network reaches).
    Listen(SocketAddr),
    /// Nowhere.
    Off,
}

/// How connections are accepted, secured and timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serving {
    /// How long a client gets to send a request's headers.
    pub header_read_timeout: Duration,
    /// Connections served at once; `None` sizes it from the open-files limit.
    pub max_connections: Option<usize>,
    /// Serve HTTPS with these files; `None` serves plain HTTP.
    pub tls: Option<TlsFiles>,
}

impl Default for Serving {
    fn default() -> Self {
        Self {
            header_read_timeout: defaults::HEADER_READ_TIMEOUT,
            max_connections: None,
            tls: None,
        }
    }
}

impl Default for Settings {
    /// The embedded store in [`defaults::DATA_DIR`], with every default.
    fn default() -> Self {
        Self {
            listen: defaults::LISTEN,
            http: HttpConfig::default(),
            backend: Backend::Local {
                data_dir: PathBuf::from(defaults::DATA_DIR),
            },
            part_size: defaults::PART_SIZE,
            max_size: None,
            expire_after: Some(defaults::EXPIRE_AFTER),
            expired_gone: false,
            max_buffer: defaults::MAX_BUFFER,
            max_active_uploads: defaults::MAX_ACTIVE_UPLOADS,
            parts_in_flight: defaults::PARTS_IN_FLIGHT,
            parts_in_flight_total: defaults::PARTS_IN_FLIGHT_TOTAL,
            serving: Serving::default(),
            auth: AuthSettings::default(),
            metrics: MetricsAt::default(),
            hooks: HookSettings::default(),
        }
    }
}

impl Settings {
    /// Checks the sizes against each other and against S3's limits.
    ///
    /// # Errors
    /// A plain message naming the flag at fault.
    pub fn check(&self) -> Result<(), String> {
        let s3 = PartLimits::S3;
        let part_size = self.part_size;
        if part_size < s3.min_part_size
            || !part_size.is_multiple_of(MIB)
            || part_size > s3.max_part_size
        {
            return Err("--part-size must be a multiple of 1MiB between 5MiB and 5GiB".into());
        }
        if self.max_size.is_some_and(|m| m > s3.max_object_size) {
            return Err("--max-size cannot exceed S3's largest object, 5TiB".into());
        }
        if self.max_buffer < part_size * 2 {
            return Err("--max-buffer must hold at least two parts (--part-size)".into());
        }
        if self.max_active_uploads == 0 {
            return Err("--max-active-uploads must be at least 1".into());
        }
        if self.serving.header_read_timeout.is_zero() {
            return Err("--header-read-timeout must be more than 0".into());
        }
        if !self.http.base_path.starts_with('/') {
            return Err("--base-path must start with /".into());
        }
        Ok(())
    }
}

/// Splits `"8 MiB"` into the trimmed text, `8` and `"MiB"`.
fn number_and_unit<'a>(text: &'a str, what: &str) -> Result<(&'a str, u64, &'a str), String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a {what}"))?;
    Ok((text, n, unit.trim()))
}

/// Parses durations such as `30s`, `15m`, `24h`, `7d` or plain seconds.
///
/// # Errors
/// A message for anything else.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (text, n, unit) = number_and_unit(text, "duration")?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("unknown duration unit {other:?} in {text:?}")),
    };
    n.checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// Parses sizes such as `8MiB`, `5 GiB`, `1T` or plain bytes (binary units).
///
/// # Errors
/// A message for anything else.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (text, n, unit) = number_and_unit(text, "size")?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        other => return Err(format!("unknown size unit {other:?} in {text:?}")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses one address or CIDR of `--trusted-proxies`.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or CIDR"))
}

/// A collection path as it is kept: with one trailing slash.
pub fn collection_path(text: &str) -> String {
    format!("{}/", text.trim_end_matches('/'))
}

fn parse_at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{text:?} is not a number")),
    }
}

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    /// Checks the rules that tie flags together and derives [`Settings`].
    ///
    /// # Errors
    /// A plain message naming the flag at fault.
    pub fn validate(&self) -> Result<Settings, String> {
        let expire_after = self.expire_after.0;
        let settings = Settings {
            listen: self.listen,
            http: self.http()?,
            backend: self.backend()?,
            part_size: self.part_size.0,
            max_size: self.max_size.map(|m| m.0),
            expire_after: (!expire_after.is_zero()).then_some(expire_after),
            expired_gone: self.expired_status == ExpiredStatus::Gone,
            max_buffer: self.max_buffer.0,
            max_active_uploads: self.max_active_uploads,
            parts_in_flight: self.s3_parts_in_flight,
            parts_in_flight_total: self.s3_parts_in_flight_total,
            serving: Serving {
                header_read_timeout: self.header_read_timeout.0,
                max_connections: self.max_connections,
                tls: self.tls()?,
            },
            auth: self.auth.settings()?,
            metrics: match (self.metrics, self.metrics_listen) {
                (false, _) => MetricsAt::Off,
                (true, Some(addr)) => MetricsAt::Listen(addr),
                (true, None) => MetricsAt::Main,
            },
            hooks: self.hooks.settings()?,
        };
        settings.check()?;
        Ok(settings)
    }

    fn tls(&self) -> Result<Option<TlsFiles>, String> {
        match (&self.tls_cert, &self.tls_key) {
            (None, None) => Ok(None),
            (Some(cert), Some(key)) => Ok(Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })),
            _ => Err("--tls-cert and --tls-key go together".into()),
        }
    }

    fn http(&self) -> Result<HttpConfig, String> {
        let cors_origins: Vec<String> = self
            .cors_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect();
        if self.cors_allow_credentials
            && (cors_origins.is_empty() || cors_origins.iter().any(|o| o == "*"))
        {
            return Err(
                "--cors-allow-credentials needs --cors-origins to list origins, not *".into(),
            );
        }
        Ok(HttpConfig {
            base_path: collection_path(&self.base_path),
            cors_origins,
            cors_credentials: self.cors_allow_credentials,
            relative_location: self.relative_location,
            https: self.tls_cert.is_some(),
            trusted_proxies: self.trusted_proxies.clone(),
        })
    }

    fn backend(&self) -> Result<Backend, String> {
        let bucket = given(&self.s3_bucket);
        let redis_url = given(&self.redis_url);
        let (bucket, redis_url) = match (bucket, redis_url) {
            (None, None) => {
                if given(&self.s3_endpoint).is_some() || given(&self.s3_region).is_some() {
                    return Err("--s3-endpoint and --s3-region need --s3-bucket".into());
                }
                return Ok(Backend::Local {
                    data_dir: self.data_dir.clone(),
                });
            }
            (Some(_), None) => return Err("--s3-bucket needs --redis-url".into()),
            (None, Some(_)) => return Err("--redis-url needs --s3-bucket".into()),
            (Some(b), Some(r)) => (b, r),
        };
        if self
            .s3_prefix
            .split('/')
            .any(|seg| seg == "." || seg == "..")
        {
            return Err("--s3-prefix must not contain . or .. segments".into());
        }
        if self.redis_prefix.contains(['{', '}']) {
            return Err("--redis-prefix must not contain { or }".into());
        }
        let endpoint = given(&self.s3_endpoint);
        let s3 = S3Settings {
            unsigned_payload: self
                .s3_payload
                .unsigned(endpoint.as_deref(), self.s3_part_checksum),
            bucket,
            endpoint,
            region: given(&self.s3_region),
            force_path_style: self.s3_force_path_style,
            credentials: None,
            read_timeout: None,
            part_check: self.s3_part_checksum.into(),
        };
        s3.validate()
            .map_err(|e| format!("--s3-payload unsigned with --s3-part-checksum none: {e}"))?;
        Ok(Backend::S3 {
            s3,
            key_prefix: self.s3_prefix.clone(),
            redis_url,
            redis_prefix: self.redis_prefix.clone(),
            redis_cluster: self.redis_cluster,
            redis_ca_file: self.redis_ca_file.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(args: &[&str]) -> Config {
        let mut argv = vec!["partway"];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).expect("parses")
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Ok(8 * MIB));
        assert_eq!(parse_size("5 GiB"), Ok(5 << 30));
        assert_eq!(parse_size("1t"), Ok(1 << 40));
        assert_eq!(parse_size("1024"), Ok(1024));
        assert!(parse_size("-1").is_err());
        assert!(parse_size("8XB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn defaults_to_the_embedded_store() {
        let s = config(&[]).validate().expect("valid");
        assert!(matches!(s.backend, Backend::Local { .. }));
        assert_eq!(s.listen.to_string(), "127.0.0.1:1080");
        assert_eq!(s.http.base_path, "/files/");
        assert_eq!(s.part_size, 8 * MIB);
    }

    #[test]
    fn plain_messages_for_bad_combinations() {
        // A bad value is refused by clap, a bad combination by validate;
        // either way the message names the flag.
        let err = |args: &[&str]| {
            let mut argv = vec!["partway"];
            argv.extend_from_slice(args);
            match Config::try_parse_from(argv) {
                Err(e) => e.to_string(),
                Ok(config) => config.validate().expect_err("invalid"),
            }
        };
        assert_eq!(err(&["--s3-bucket", "b"]), "--s3-bucket needs --redis-url");
        assert_eq!(
            err(&["--redis-url", "redis://x"]),
            "--redis-url needs --s3-bucket"
        );
        assert!(err(&["--part-size", "4MiB"]).contains("--part-size"));
        assert!(err(&["--part-size", "5000KiB"]).contains("--part-size"));
        assert!(err(&["--listen", "nowhere"]).contains("--listen"));
        assert!(err(&["--base-path", "files"]).contains("--base-path"));
        assert!(err(&["--max-size", "9T"]).contains("--max-size"));
        assert!(err(&["--expire-after", "soon"]).contains("--expire-after"));
        assert!(err(&["--expired-status", "500"]).contains("--expired-status"));
        assert!(err(&["--trusted-proxies", "10.0.0.0/99"]).contains("--trusted-proxies"));
        assert!(err(&["--cors-allow-credentials"]).contains("--cors-origins"));
        assert!(err(&["--max-active-uploads", "0"]).contains("--max-active-uploads"));
        assert!(err(&["--s3-part-checksum", "sha1"]).contains("--s3-part-checksum"));
        assert!(err(&["--s3-parts-in-flight", "0"]).contains("--s3-parts-in-flight"));
        let unchecked = [
            "--s3-bucket",
            "b",
            "--redis-url",
            "redis://x",
            "--s3-payload",
            "unsigned",
            "--s3-part-checksum",
            "none",
        ];
        assert!(err(&unchecked).contains("--s3-payload"));
        assert!(err(&["--auth-issuer", "me"]).contains("needs a key"));
        assert!(err(&["--auth-single-use-creation"]).contains("--auth-single-use-creation"));
        assert!(err(&["--access-hook-url", "ftp://x"]).contains("--access-hook-url"));
        assert!(err(&["--header-read-timeout", "0"]).contains("--header-read-timeout"));
        assert!(err(&["--max-connections", "0"]).contains("--max-connections"));
        assert!(err(&["--log-format", "xml"]).contains("--log-format"));
        assert!(err(&["--tls-cert", "c.pem"]).contains("--tls-key"));
        let hook = [
            "--access-hook-url",
            "http://h/",
            "--access-hook-timeout",
            "0",
        ];
        assert!(err(&hook).contains("--access-hook-timeout"));
    }

    #[test]
    fn bodies_go_unsigned_only_over_https_or_when_asked_and_always_checked() {
        let s3 = |args: &[&str]| {
            let mut argv = vec!["partway", "--s3-bucket", "b", "--redis-url", "redis://x"];
            argv.extend_from_slice(args);
            match config(&argv[1..]).validate().expect("valid").backend {
                Backend::S3 { s3, .. } => (s3.unsigned_payload, s3.part_check),
                Backend::Local { .. } => panic!("not S3"),
            }
        };
        assert_eq!(s3(&[]), (true, PartCheck::Crc32c));
        assert!(s3(&["--s3-endpoint", "https://s3.example"]).0);
        assert!(!s3(&["--s3-endpoint", "http://127.0.0.1:3900"]).0);
        let trusted = [
            "--s3-endpoint",
            "http://127.0.0.1:3900",
            "--s3-payload",
            "unsigned",
        ];
        assert!(s3(&trusted).0);
        assert!(!s3(&["--s3-payload", "signed"]).0);
        assert_eq!(
            s3(&["--s3-part-checksum", "none"]),
            (false, PartCheck::None)
        );
        assert_eq!(s3(&["--s3-part-checksum", "md5"]), (true, PartCheck::Md5));
    }

    #[test]
    fn authorization_flags_become_settings() {
        let config = Config::try_parse_from([
            "partway",
            "--auth-jwt-secret-file",
            "/a,/b",
            "--auth-jwks",
            "https://id.example/jwks.json",
            "--auth-admin-subjects",
            "backend,ops",
            "--auth-resume-grace",
            "2h",
            "--access-hook-url",
            "http://127.0.0.1:9/hook",
            "--access-hook-cache",
            "30s",
        ])
        .expect("parses");
        let settings = config.validate().expect("valid");
        let auth = &settings.auth;
        assert_eq!(auth.jwt_secret_files.len(), 2);
        assert_eq!(auth.rules.admin_subjects, ["backend", "ops"]);
        assert_eq!(auth.rules.leeway, defaults::auth::LEEWAY);
        assert_eq!(auth.resume_grace, Some(Duration::from_secs(7200)));
        assert_eq!(auth.access_hook_cache, Duration::from_secs(30));
        assert!(auth.jwt() && auth.any());
        let plain = Config::try_parse_from(["partway"]).expect("parses");
        assert!(!plain.validate().expect("valid").auth.any());
        assert_eq!(plain.log_format, LogFormat::Text);
        let settings = |args: &[&str]| {
            let argv = std::iter::once("partway").chain(args.iter().copied());
            Config::try_parse_from(argv)
                .expect("parses")
                .validate()
                .expect("valid")
        };
        assert_eq!(settings(&[]).metrics, MetricsAt::Main);
        assert_eq!(settings(&["--metrics=false"]).metrics, MetricsAt::Off);
        let apart = settings(&["--metrics-listen", "127.0.0.1:9100"]).metrics;
        assert_eq!(
            apart,
            MetricsAt::Listen("127.0.0.1:9100".parse().expect("addr"))
        );
        let tls = ["--tls-cert", "c.pem", "--tls-key", "k.pem"];
        assert!(settings(&tls).serving.tls.is_some() && settings(&tls).http.https);
    }

    #[test]
    fn defaults_print_as_they_parse() {
        for size in [0, 1000, 5 * MIB, 8 * MIB, 1 << 30, 3 << 40] {
            let shown = ByteSize(size).to_string();
            assert_eq!(shown.parse::<ByteSize>(), Ok(ByteSize(size)), "{shown}");
        }
        for secs in [0, 59, 60, 3600, 86_400, 90_000] {
            let span = Span(Duration::from_secs(secs));
            assert_eq!(span.to_string().parse::<Span>(), Ok(span), "{span}");
        }
        let s = config(&[]).validate().expect("valid");
        let d = Settings::default();
        assert_eq!(
            (
                s.part_size,
                s.max_buffer,
                s.expire_after,
                s.max_active_uploads
            ),
            (
                d.part_size,
                d.max_buffer,
                d.expire_after,
                d.max_active_uploads
            )
        );
        assert_eq!((s.listen, s.http.base_path), (d.listen, d.http.base_path));
        assert_eq!(s.serving, d.serving);
        let (a, b) = (&s.auth, &d.auth);
        assert_eq!(
            (a.jwks_refresh, a.rules.leeway, a.access_hook_timeout),
            (b.jwks_refresh, b.rules.leeway, b.access_hook_timeout)
        );
    }

    #[test]
    fn durations_and_proxies() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("-1s").is_err());
        let s = config(&[
            "--expire-after",
            "0",
            "--trusted-proxies",
            "10.0.0.0/8, 127.0.0.1",
            "--cors-origins",
            "https://app.example",
            "--cors-allow-credentials",
            "--expired-status",
            "410",
        ])
        .validate()
        .expect("valid");
        assert_eq!(s.expire_after, None);
        assert!(s.expired_gone && s.http.cors_credentials);
        assert_eq!(s.http.trusted_proxies.len(), 2);
        assert_eq!(
            config(&[]).validate().expect("valid").expire_after,
            Some(Duration::from_secs(86_400))
        );
    }

    #[test]
    fn logs_never_show_secrets() {
        assert_eq!(
            redact_url("redis://:hunter2@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redact_url("rediss://app:hunter2@cache/"),
            "rediss://app:***@cache/"
        );
        assert_eq!(redact_url("redis://cache:6379/"), "redis://cache:6379/");
        let s = config(&["--s3-bucket", "b", "--redis-url", "redis://:hunter2@cache/"])
            .validate()
            .expect("valid");
        assert!(!s.backend.describe().contains("hunter2"));
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn s3_backend() {
        let s = config(&[
            "--s3-bucket",
            "b",
            "--redis-url",
            "redis://127.0.0.1/",
            "--s3-force-path-style",
            "--base-path",
            "/up",
        ])
        .validate()
        .expect("valid");
        assert_eq!(s.http.base_path, "/up/");
        let Backend::S3 { s3, .. } = s.backend else {
            panic!("expected S3");
        };
        assert!(s3.force_path_style);
    }
}
