//! Benchmark: partway's workloads beside the limit of the same S3 server.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench [-- SIZE_MIB ROUNDS]
//! ```
//!
//! It starts its own S3 server on loopback (Garage if `garage` is installed,
//! with compression off; else moto from `tests/run.sh`), its own
//! redis-server, and the release `partway` binary as a child process, so the
//! peak RSS and CPU time it reports are partway's alone. Each round (3 by
//! default) runs, for SIZE_MIB (1024 by default):
//! - the limit: one multipart upload straight into the S3 server, 8 MiB parts
//!   four at a time, unsigned payload ([`large`]);
//! - through partway: one PATCH; PATCHes of 5 MiB; PATCHes of 500 KiB;
//!   16 uploads of a sixteenth at once; every object is then read back from
//!   the S3 server and compared byte for byte;
//! - the small-upload phase ([`small`]; `BENCH_SMALL=N` uploads, 2,000 by
//!   default, 0 skips it) and its limit, and 5,000 HEADs.
//!
//! It prints the median of the rounds beside the limit, with partway's and
//! the S3 server's CPU per GiB and partway's peak RSS ([`report`]). Payloads
//! stream from a 64 MiB random block repeated. partway runs with
//! `BENCH_PARTWAY_ARGS` (by default `--s3-payload unsigned`: the S3 server
//! is on loopback). With `BENCH_FLOOD=N`, it then runs the flood phase
//! ([`flood`]). `BENCH_PARTWAY_BIN` runs another build of partway, and
//! `BENCH_TUS_CMD` another tus server in its place ([`start_peer`]);
//! `BENCH_ONLY=16,limit` runs only the large rows whose names contain those
//! words. With
//! `BENCH_AUTH=1`, partway requires bearer tokens and every
//! request of the benchmark carries one.

mod flood;
mod large;
mod report;
mod small;

use report::{Figure, Procs, Table, Units, measure};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use bytes::Bytes;
use futures_util::StreamExt;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const MIB: u64 = 1 << 20;
const PART: u64 = 8 * MIB;
const BUCKET: &str = "bench";

/// Child processes, killed when the benchmark ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, what: &str) -> Result<(), BoxError> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(30) {
            return Err(format!("{what} did not start").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn find(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|p| p.exists())
}

fn hex(bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// Starts an S3 server; returns (endpoint, access key, secret, server name).
fn start_s3(
    dir: &Path,
    children: &mut Children,
) -> Result<(String, String, String, String), BoxError> {
    let port = free_port()?;
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    if let Some(garage) = find("garage", &[home.join(".cargo/bin")]) {
        let rpc = free_port()?;
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"sqlite\"\n\
                 replication_factor = 1\ncompression_level = \"none\"\n\
                 rpc_bind_addr = \"127.0.0.1:{rpc}\"\nrpc_public_addr = \"127.0.0.1:{rpc}\"\n\
                 rpc_secret = \"{secret}\"\n[s3_api]\ns3_region = \"us-east-1\"\n\
                 api_bind_addr = \"127.0.0.1:{port}\"\n",
                d = dir.display(),
                secret = hex(32)
            ),
        )?;
        let (key, secret) = (format!("GK{}", hex(12)), hex(32));
        let child = Command::new(&garage)
            .arg("-c")
            .arg(&config)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &secret)
            .env("GARAGE_DEFAULT_BUCKET", BUCKET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        children.0.push(child);
        wait_for_port(port, "garage")?;
        let version = Command::new(&garage).arg("--version").output()?;
        let name = String::from_utf8_lossy(&version.stdout).trim().to_owned();
        return Ok((format!("http://127.0.0.1:{port}"), key, secret, name));
    }
    let moto = find("moto_server", &[PathBuf::from("target/test-env/bin")]).ok_or(
        "no S3 server: install garage (cargo install garage --locked) or run tests/run.sh",
    )?;
    let child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    children.0.push(child);
    wait_for_port(port, "moto")?;
    Ok((
        format!("http://127.0.0.1:{port}"),
        "bench".into(),
        "bench".into(),
        "moto".into(),
    ))
}

/// The bearer token every request carries, when `BENCH_AUTH` is set.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// An HTTP client that sends the benchmark's token, if it has one.
fn client() -> Result<reqwest::Client, BoxError> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = TOKEN.get() {
        headers.insert("authorization", format!("Bearer {token}").parse()?);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

/// Has partway require tokens: writes a secret to `dir`, keeps a token
/// signed with it, and returns the server flags.
fn require_tokens(dir: &Path) -> Result<Vec<String>, BoxError> {
    let secret = hex(32);
    let path = dir.join("jwt-secret");
    std::fs::write(&path, &secret)?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 24 * 3600;
    let claims = serde_json::json!({ "sub": "bench", "exp": exp });
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())?;
    let _ = TOKEN.set(jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &key,
    )?);
    Ok(vec![
        "--auth-jwt-secret-file".into(),
        path.display().to_string(),
    ])
}

/// Creates a tus upload of `size` bytes; returns its URL.
async fn create(client: &reqwest::Client, endpoint: &str, size: u64) -> Result<String, BoxError> {
    let created = client
        .post(endpoint)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", size)
        .send()
        .await?;
    Ok(created
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or("no Location")?
        .to_owned())
}

/// Downloads a finished upload through partway's GET, counting its bytes.
async fn download(url: &str, size: u64) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let response = client()?.get(url).send().await?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("GET: {}", response.status()).into());
    }
    let mut body = response.bytes_stream();
    let mut got = 0u64;
    while let Some(chunk) = body.next().await {
        got += chunk?.len() as u64;
    }
    if got != size {
        return Err(format!("GET returned {got} of {size} bytes").into());
    }
    Ok(start.elapsed())
}

/// The rows of the large workloads, each compared with the limit.
const LIMIT: &str = "limit: multipart straight, 8 MiB × 4";
const ONE_PATCH: &str = "one PATCH";
const PATCH_5M: &str = "PATCHes of 5 MiB";
const PATCH_500K: &str = "PATCHes of 500 KiB";
const SIXTEEN: &str = "16 uploads at once, one PATCH each";

/// The row each row's rate is compared with.
fn limit_of(workload: &str) -> Option<&'static str> {
    match workload {
        ONE_PATCH | PATCH_5M | PATCH_500K | SIXTEEN | LIMIT => Some(LIMIT),
        small::PARTWAY | small::DIRECT => Some(small::DIRECT),
        _ => None,
    }
}

/// Whether `BENCH_ONLY` (words separated by commas, each part of a row's
/// name) leaves `row` in; all rows without it.
fn wanted(row: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| {
        only.split(',').any(|word| row.contains(word.trim()))
    })
}

/// Where one round runs.
struct Bench<'a> {
    s3: &'a aws_sdk_s3::Client,
    tus: &'a str,
    metrics_url: &'a str,
    procs: Procs,
    block: &'a Bytes,
    size: u64,
}

impl Bench<'_> {
    /// Measures `work`, which moves the round's size, then checks and
    /// deletes the objects it names.
    async fn run<F>(&self, table: &mut Table, row: &str, work: F) -> Result<Figure, BoxError>
    where
        F: std::future::Future<Output = Result<Vec<(String, u64)>, BoxError>>,
    {
        if !wanted(row) {
            return Ok(Figure::default());
        }
        let mut keys = Vec::new();
        let figure = measure(self.procs, Units::Bytes(self.size), async {
            keys = work.await?;
            Ok(())
        })
        .await?;
        for (key, size) in keys {
            large::check_and_delete(self.s3, self.block, &key, size).await?;
        }
        table.add(row, figure);
        Ok(figure)
    }

    /// One round of the large workloads.
    async fn round(&self, round: u32, table: &mut Table) -> Result<(), BoxError> {
        let (s3, block, size, tus) = (self.s3, self.block, self.size, self.tus);
        let key = format!("direct-{round}");
        let limit = self
            .run(table, LIMIT, async {
                large::direct(s3, block, &key, size).await?;
                Ok(vec![(key.clone(), size)])
            })
            .await?;
        let one = |chunk: u64| async move {
            let key = large::via_partway(tus, block, size, chunk).await?;
            Ok(vec![(key, size)])
        };
        let single = self.run(table, ONE_PATCH, one(size)).await?;
        self.run(table, PATCH_5M, one(5 * MIB)).await?;
        let before = small::Scrape::take(self.metrics_url).await?;
        self.run(table, PATCH_500K, one(500 * 1024)).await?;
        let patches = usize::try_from(size.div_ceil(500 * 1024)).unwrap_or(usize::MAX);
        if wanted(PATCH_500K) {
            let after = small::Scrape::take(self.metrics_url).await?;
            after.note_since(&before, "500 KiB PATCH", patches, table);
        }
        self.run(table, SIXTEEN, async {
            let keys = large::at_once(tus, block, 16, size / 16).await?;
            Ok(keys.into_iter().map(|k| (k, size / 16)).collect())
        })
        .await?;
        println!(
            "round {round}: limit {:.0} MB/s, one PATCH {:.0} MB/s",
            limit.rate, single.rate
        );
        Ok(())
    }
}

/// Starts redis-server on loopback; returns its port.
fn start_redis(children: &mut Children) -> Result<u16, BoxError> {
    let port = free_port()?;
    let redis = find("redis-server", &[])
        .ok_or("no redis-server: run tests/run.sh once (it installs redis-server and moto)")?;
    children.0.push(
        Command::new(redis)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_for_port(port, "redis-server")?;
    Ok(port)
}

/// A client straight to the S3 server, set up as the fastest direct client.
fn direct_client(endpoint: &str, key: &str, secret: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(key, secret, None, None, "bench"))
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            // Garage has been seen, rarely, never to answer one request on a
            // kept-alive connection; retried after this, as partway does.
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .read_timeout(Duration::from_secs(30))
                    .build(),
            )
            .build(),
    )
}

/// Starts the release `partway` binary on `port`; returns the child.
fn start_partway(
    dir: &Path,
    port: u16,
    redis_port: u16,
    (endpoint, key, secret): (&str, &str, &str),
) -> Result<Child, BoxError> {
    let exe = std::env::current_exe()?;
    // BENCH_PARTWAY_BIN measures another build, e.g. an older one.
    let partway_bin = std::env::var_os("BENCH_PARTWAY_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            exe.parent()
                .and_then(Path::parent)
                .map(|d| d.join("partway"))
        })
        .filter(|p| p.exists())
        .ok_or("build the server first: cargo build --release")?;
    let child = Command::new(&partway_bin)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--s3-bucket", BUCKET, "--s3-endpoint", endpoint])
        .args(["--s3-region", "us-east-1", "--s3-force-path-style"])
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
        // Extra server flags to compare, e.g. "--s3-payload signed".
        .args(
            std::env::var("BENCH_PARTWAY_ARGS")
                .unwrap_or_else(|_| "--s3-payload unsigned".into())
                .split_whitespace(),
        )
        .args(if std::env::var_os("BENCH_AUTH").is_some() {
            require_tokens(dir)?
        } else {
            Vec::new()
        })
        .env("AWS_ACCESS_KEY_ID", key)
        .env("AWS_SECRET_ACCESS_KEY", secret)
        .env("RUST_LOG", "warn")
        .spawn()?;
    wait_for_port(port, "partway")?;
    Ok(child)
}

/// Starts another tus server from `command` (split on spaces) in place of
/// partway, telling it where to listen and the S3 server in its environment:
/// `PEER_PORT`, `S3_ENDPOINT`, `S3_KEY`, `S3_SECRET`, `S3_BUCKET`. It must
/// serve uploads at `/files/` and store each under its id.
fn start_peer(
    command: &str,
    port: u16,
    (endpoint, key, secret): (&str, &str, &str),
) -> Result<Child, BoxError> {
    let mut words = command.split_whitespace();
    let program = words.next().ok_or("BENCH_TUS_CMD is empty")?;
    let child = Command::new(program)
        .args(words)
        .env("PEER_PORT", port.to_string())
        .env("S3_ENDPOINT", endpoint)
        .env("S3_KEY", key)
        .env("S3_SECRET", secret)
        .env("S3_BUCKET", BUCKET)
        .spawn()?;
    wait_for_port(port, "the tus server")?;
    Ok(child)
}

fn env_count(name: &str, default: usize) -> Result<usize, BoxError> {
    std::env::var(name).map_or(Ok(default), |v| Ok(v.parse()?))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let size_mib: u64 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(3), |a| a.parse())?;
    let size = size_mib * MIB;
    let dir = tempfile::tempdir()?;
    let mut children = Children(Vec::new());
    let (endpoint, key, secret, server) = start_s3(dir.path(), &mut children)?;
    let s3_pid = children.0.first().map(Child::id).ok_or("no S3 server")?;
    let redis_port = start_redis(&mut children)?;
    let redis_pid = children.0.last().map_or(0, Child::id);
    let s3 = direct_client(&endpoint, &key, &secret);
    let _ = s3.create_bucket().bucket(BUCKET).send().await;
    let port = free_port()?;
    let s3_at = (endpoint.as_str(), key.as_str(), secret.as_str());
    let partway = match std::env::var("BENCH_TUS_CMD") {
        Ok(command) => start_peer(&command, port, s3_at)?,
        Err(_) => start_partway(dir.path(), port, redis_port, s3_at)?,
    };
    let procs = Procs {
        partway: partway.id(),
        s3: s3_pid,
        redis: redis_pid,
        client: std::process::id(),
    };
    children.0.push(partway);
    let tus = format!("http://127.0.0.1:{port}/files/");
    let block = Bytes::from(
        (0..64 * MIB)
            .map(|_| rand::random::<u8>())
            .collect::<Vec<_>>(),
    );
    println!("S3 server: {server}; {size_mib} MiB per large workload; {rounds} rounds");
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let bench = Bench {
        s3: &s3,
        tus: &tus,
        metrics_url: &metrics_url,
        procs,
        block: &block,
        size,
    };
    let small = small::Small {
        endpoint: &tus,
        metrics_url: &metrics_url,
        s3: &s3,
        procs,
        count: env_count("BENCH_SMALL", 2000)?,
    };
    run(&bench, &small, rounds).await
}

/// Runs the rounds, then the flood phase if asked, prints the table, and
/// ends with one GET.
async fn run(bench: &Bench<'_>, small: &small::Small<'_>, rounds: u32) -> Result<(), BoxError> {
    let mut table = Table::default();
    for round in 0..rounds {
        bench.round(round, &mut table).await?;
        if small.count > 0 {
            small::small(small, round, &mut table).await?;
        }
    }
    if let Some(count) = std::env::var("BENCH_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        flood::flood(bench.tus, bench.procs.partway, count, 16 << 20).await?;
    }
    table.print(limit_of);
    get_through_partway(bench).await
}

/// One GET of a whole upload through partway.
async fn get_through_partway(bench: &Bench<'_>) -> Result<(), BoxError> {
    let key = large::via_partway(bench.tus, bench.block, bench.size, bench.size).await?;
    let url = format!("{}{key}", bench.tus);
    let took = download(&url, bench.size).await?;
    large::check_and_delete(bench.s3, bench.block, &key, bench.size).await?;
    println!(
        "GET through the tus server: {:.0} MB/s",
        bench.size as f64 / took.as_secs_f64() / 1e6
    );
    Ok(())
}
