//! Command-line and environment configuration, validated once at start.
//!
//! Every flag has a `PARTWAY_*` environment variable. [`Config::validate`]
//! turns the raw strings into typed [`Settings`] or a plain message naming the
//! flag at fault; nothing else in partway reads the environment (AWS
//! credentials excepted, which come from the standard AWS chain).

use crate::http::HttpConfig;
use crate::store::s3::S3Settings;
use crate::upload::plan::{MIB, PartLimits};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// partway: a tus 1.0 resumable-upload server that streams uploads into S3.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "PARTWAY_LISTEN", default_value = "127.0.0.1:1080")]
    pub listen: String,
    /// URL path of the upload collection.
    #[arg(long, env = "PARTWAY_BASE_PATH", default_value = "/files/")]
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
    /// Prefix of every object key; the key is <prefix><upload id>.
    #[arg(long, env = "PARTWAY_S3_PREFIX", default_value = "")]
    pub s3_prefix: String,
    /// Use path-style addressing (most S3-compatible stores need it).
    #[arg(long, env = "PARTWAY_S3_FORCE_PATH_STYLE")]
    pub s3_force_path_style: bool,
    /// What S3 checks each part against besides the SHA-256 of its SigV4
    /// signature: none, or md5 (Content-MD5 on every UploadPart, for stores
    /// that do not verify the signed payload hash; about 1.7 CPU s per GiB).
    #[arg(long, env = "PARTWAY_S3_PART_CHECKSUM", default_value = "none")]
    pub s3_part_checksum: String,
    /// Redis URL for upload state and locks, e.g. redis://127.0.0.1:6379.
    #[arg(long, env = "PARTWAY_REDIS_URL")]
    pub redis_url: Option<String>,
    /// --redis-url names nodes of a Redis Cluster (comma-separated seeds).
    #[arg(long, env = "PARTWAY_REDIS_CLUSTER")]
    pub redis_cluster: bool,
    /// Prefix of every Redis key.
    #[arg(long, env = "PARTWAY_REDIS_PREFIX", default_value = "partway:")]
    pub redis_prefix: String,
    /// Preferred S3 part size (at least 5MiB, a multiple of 1MiB).
    #[arg(long, env = "PARTWAY_PART_SIZE", default_value = "8MiB")]
    pub part_size: String,
    /// Largest upload accepted, e.g. 10GiB (default: S3's 5TiB for known
    /// lengths; 10,000 parts for deferred ones).
    #[arg(long, env = "PARTWAY_MAX_SIZE")]
    pub max_size: Option<String>,
    /// Bytes of request bodies buffered across all uploads; past it, a
    /// PATCH waits up to 5 s, then keeps what it has and gets 503.
    #[arg(long, env = "PARTWAY_MAX_BUFFER", default_value = "1GiB")]
    pub max_buffer: String,
    /// Uploads written at once (PATCHes, POSTs with a body); past it, 429
    /// with Retry-After.
    #[arg(long, env = "PARTWAY_MAX_ACTIVE_UPLOADS", default_value = "1024")]
    pub max_active_uploads: usize,
    /// Comma-separated origins allowed by CORS, or * for any.
    #[arg(long, env = "PARTWAY_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,
    /// Send Access-Control-Allow-Credentials, echoing the origin (needs an
    /// explicit --cors-origins list).
    #[arg(long, env = "PARTWAY_CORS_ALLOW_CREDENTIALS")]
    pub cors_allow_credentials: bool,
    /// Unfinished uploads expire this long after their last PATCH, e.g.
    /// 30m, 24h, 7d; 0 never.
    #[arg(long, env = "PARTWAY_EXPIRE_AFTER", default_value = "24h")]
    pub expire_after: String,
    /// Status for an expired upload: 404 (tus-java-client re-creates only
    /// on 404) or 410.
    #[arg(long, env = "PARTWAY_EXPIRED_STATUS", default_value = "404")]
    pub expired_status: u16,
    /// Give Location as a path (/files/<id>) instead of an absolute URL.
    #[arg(long, env = "PARTWAY_RELATIVE_LOCATION")]
    pub relative_location: bool,
    /// Comma-separated addresses or CIDRs of reverse proxies whose Forwarded
    /// and X-Forwarded-Proto/-Host headers are believed for Location.
    #[arg(long, env = "PARTWAY_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: String,
    /// Directory of the embedded store, used when no S3 bucket is set.
    #[arg(long, env = "PARTWAY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Where uploads and their state live.
#[derive(Clone)]
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

/// Parses a comma-separated list of addresses or CIDRs.
fn parse_proxies(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("--trusted-proxies: {s:?} is not an address or CIDR"))
        })
        .collect()
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

fn given(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl Config {
    /// Checks the configuration and derives typed settings.
    ///
    /// # Errors
    /// A plain message naming the flag at fault.
    pub fn validate(&self) -> Result<Settings, String> {
        let listen = self.listen.parse().map_err(|_| {
            format!(
                "--listen {:?} is not an address like 127.0.0.1:1080",
                self.listen
            )
        })?;
        if !self.base_path.starts_with('/') {
            return Err("--base-path must start with /".into());
        }
        let part_size = parse_size(&self.part_size).map_err(|e| format!("--part-size: {e}"))?;
        let s3 = PartLimits::S3;
        if part_size < s3.min_part_size || part_size % MIB != 0 || part_size > s3.max_part_size {
            return Err("--part-size must be a multiple of 1MiB between 5MiB and 5GiB".into());
        }
        let max_size = self
            .max_size
            .as_deref()
            .map(|m| parse_size(m).map_err(|e| format!("--max-size: {e}")))
            .transpose()?;
        if max_size.is_some_and(|m| m > s3.max_object_size) {
            return Err("--max-size cannot exceed S3's largest object, 5TiB".into());
        }
        let backend = self.backend()?;
        let cors_origins: Vec<String> = self
            .cors_origins
            .split(',')
            .map(str::trim)
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
        let expire_after =
            parse_duration(&self.expire_after).map_err(|e| format!("--expire-after: {e}"))?;
        let max_buffer = parse_size(&self.max_buffer).map_err(|e| format!("--max-buffer: {e}"))?;
        if max_buffer < part_size * 2 {
            return Err("--max-buffer must hold at least two parts (--part-size)".into());
        }
        if self.max_active_uploads == 0 {
            return Err("--max-active-uploads must be at least 1".into());
        }
        let expired_gone = match self.expired_status {
            404 => false,
            410 => true,
            _ => return Err("--expired-status must be 404 or 410".into()),
        };
        Ok(Settings {
            listen,
            http: HttpConfig {
                base_path: format!("{}/", self.base_path.trim_end_matches('/')),
                cors_origins,
                cors_credentials: self.cors_allow_credentials,
                relative_location: self.relative_location,
                trusted_proxies: parse_proxies(&self.trusted_proxies)?,
            },
            backend,
            part_size,
            max_size,
            expire_after: (!expire_after.is_zero()).then_some(expire_after),
            expired_gone,
            max_buffer,
            max_active_uploads: self.max_active_uploads,
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
        Ok(Backend::S3 {
            s3: S3Settings {
                bucket,
                endpoint: given(&self.s3_endpoint),
                region: given(&self.s3_region),
                force_path_style: self.s3_force_path_style,
                credentials: None,
                read_timeout: None,
                part_md5: match self.s3_part_checksum.as_str() {
                    "md5" => true,
                    "none" => false,
                    _ => return Err("--s3-part-checksum must be md5 or none".into()),
                },
            },
            key_prefix: self.s3_prefix.clone(),
            redis_url,
            redis_prefix: self.redis_prefix.clone(),
            redis_cluster: self.redis_cluster,
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
        let err = |args: &[&str]| config(args).validate().expect_err("invalid");
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
