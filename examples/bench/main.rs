//! Benchmark: 1 GiB through partway, and the same bytes straight to the same
//! S3 server, with the same part size and concurrency.
//!
//! ```text
//! cargo build --release && cargo run --release --example bench [-- SIZE_MIB ROUNDS]
//! ```
//!
//! It starts its own S3 server on loopback (Garage if `garage` is installed,
//! with compression off; else moto from `tests/run.sh`), its own
//! redis-server, and the release `partway` binary as a child process, so the
//! peak RSS and CPU time it reports are partway's alone. The tus client sends
//! each upload as one PATCH, streamed from a 64 MiB random block repeated.
//! Throughput is MB/s (10^6 bytes/s) from creation to the final response.
//! With `BENCH_FLOOD=N`, it then runs the flood phase ([`flood`]); with
//! `BENCH_SMALL=N`, the small-upload phase ([`small`]). With
//! `BENCH_AUTH=1`, partway requires bearer tokens and every request of the
//! benchmark carries one.

mod flood;
mod small;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
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

/// Peak RSS (MiB) and CPU seconds of a process, from /proc.
fn usage(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    (hwm / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

/// The payload: a random block repeated, as a stream of 1 MiB chunks.
fn payload(
    block: &Bytes,
    size: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let block = block.clone();
    let chunks = size.div_ceil(MIB);
    futures_util::stream::iter(0..chunks).map(move |i| {
        let start = usize::try_from((i * MIB) % block.len() as u64).unwrap_or(0);
        let len = usize::try_from(MIB.min(size - i * MIB)).unwrap_or(0);
        Ok(block.slice(start..start + len))
    })
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

/// Uploads through partway; returns the time taken and the upload URL.
async fn via_partway(
    endpoint: &str,
    block: &Bytes,
    size: u64,
) -> Result<(Duration, String), BoxError> {
    let client = client()?;
    let start = Instant::now();
    let url = create(&client, endpoint, size).await?;
    let patched = client
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 0)
        .header("Content-Length", size)
        .body(reqwest::Body::wrap_stream(payload(block, size)))
        .send()
        .await?;
    if patched.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(format!("PATCH: {}", patched.status()).into());
    }
    Ok((start.elapsed(), url))
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

async fn direct(
    s3: &aws_sdk_s3::Client,
    block: &Bytes,
    size: u64,
    round: u32,
) -> Result<Duration, BoxError> {
    let key = format!("direct-{round}");
    let start = Instant::now();
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .send()
        .await?;
    let upload_id = created.upload_id().ok_or("no upload id")?.to_owned();
    // Parts cut like partway's grid, two in flight, as partway uploads them.
    let parts = (0..size.div_ceil(PART)).map(|n| {
        let (s3, key, upload_id) = (s3.clone(), key.clone(), upload_id.clone());
        let len = PART.min(size - n * PART);
        // The block is a whole number of parts, so a part never wraps it.
        let start = usize::try_from((n * PART) % block.len() as u64).unwrap_or(0);
        let body = block.slice(start..start + usize::try_from(len).unwrap_or(0));
        async move {
            let out = s3
                .upload_part()
                .bucket(BUCKET)
                .key(&key)
                .upload_id(&upload_id)
                .part_number(i32::try_from(n + 1).unwrap_or(i32::MAX))
                .body(ByteStream::from(body))
                .send()
                .await?;
            Ok::<_, BoxError>(
                CompletedPart::builder()
                    .part_number(i32::try_from(n + 1).unwrap_or(i32::MAX))
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            )
        }
    });
    let completed: Vec<CompletedPart> = futures_util::stream::iter(parts)
        .buffered(2)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(&key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await?;
    Ok(start.elapsed())
}

fn mbps(size: u64, took: Duration) -> f64 {
    size as f64 / took.as_secs_f64() / 1e6
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let size_mib: u64 = args.next().map_or(Ok(1024), |a| a.parse())?;
    let rounds: u32 = args.next().map_or(Ok(2), |a| a.parse())?;
    let size = size_mib * MIB;
    let exe = std::env::current_exe()?;
    let partway_bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("partway"))
        .filter(|p| p.exists())
        .ok_or("build the server first: cargo build --release")?;

    let dir = tempfile::tempdir()?;
    let mut children = Children(Vec::new());
    let (endpoint, key, secret, server) = start_s3(dir.path(), &mut children)?;
    let redis_port = free_port()?;
    children.0.push(
        Command::new("redis-server")
            .args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .spawn()?,
    );
    wait_for_port(redis_port, "redis-server")?;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(Credentials::new(&key, &secret, None, None, "bench"))
            .region(Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .build(),
    );
    let _ = s3.create_bucket().bucket(BUCKET).send().await;

    let port = free_port()?;
    let partway = Command::new(&partway_bin)
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--s3-bucket",
            BUCKET,
        ])
        .args([
            "--s3-endpoint",
            &endpoint,
            "--s3-region",
            "us-east-1",
            "--s3-force-path-style",
        ])
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
        // Extra server flags to compare, e.g. "--s3-part-checksum none".
        .args(
            std::env::var("BENCH_PARTWAY_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .args(if std::env::var_os("BENCH_AUTH").is_some() {
            require_tokens(dir.path())?
        } else {
            Vec::new()
        })
        .env("AWS_ACCESS_KEY_ID", &key)
        .env("AWS_SECRET_ACCESS_KEY", &secret)
        .env("RUST_LOG", "warn")
        .spawn()?;
    let pid = partway.id();
    children.0.push(partway);
    wait_for_port(port, "partway")?;
    let endpoint_tus = format!("http://127.0.0.1:{port}/files/");

    let block = Bytes::from(
        (0..64 * MIB)
            .map(|_| rand::random::<u8>())
            .collect::<Vec<_>>(),
    );
    println!("S3 server: {server}; {size_mib} MiB per upload; part size 8 MiB; {rounds} rounds");
    let (mut best_direct, mut best_partway) = (0f64, 0f64);
    let mut cpu_before = usage(pid).1;
    let mut cpu_per_gib = Vec::new();
    let mut last_url = None;
    for round in 0..rounds {
        let d = mbps(size, direct(&s3, &block, size, round).await?);
        let (took, url) = via_partway(&endpoint_tus, &block, size).await?;
        last_url = Some(url);
        let p = mbps(size, took);
        let cpu = usage(pid).1;
        cpu_per_gib.push((cpu - cpu_before) / (size as f64 / (1024.0 * MIB as f64)));
        cpu_before = cpu;
        println!("round {round}: direct {d:.0} MB/s, via partway {p:.0} MB/s");
        best_direct = best_direct.max(d);
        best_partway = best_partway.max(p);
    }
    if let Some(count) = std::env::var("BENCH_FLOOD")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        flood::flood(&endpoint_tus, pid, count, 16 << 20).await?;
    }
    if let Some(count) = std::env::var("BENCH_SMALL")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        let metrics = format!("http://127.0.0.1:{port}/metrics");
        small::small(&endpoint_tus, &metrics, &s3, BUCKET, count).await?;
    }
    let (rss, _) = usage(pid);
    let url = last_url.ok_or("no rounds")?;
    let get = mbps(size, download(&url, size).await?);
    let (rss_after_get, _) = usage(pid);
    println!("direct to S3 (best):   {best_direct:.0} MB/s");
    println!("through partway (best): {best_partway:.0} MB/s");
    println!("ratio partway/direct:   {:.2}", best_partway / best_direct);
    println!("partway peak RSS:       {rss:.1} MiB");
    println!("GET through partway:    {get:.0} MB/s, peak RSS after it {rss_after_get:.1} MiB");
    println!(
        "partway CPU per GiB:    {:?} s",
        cpu_per_gib
            .iter()
            .map(|c| format!("{c:.2}"))
            .collect::<Vec<_>>()
    );
    Ok(())
}
