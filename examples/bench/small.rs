//! The small-upload phase of the benchmark: `N` uploads of 10 KiB, 32 at a
//! time, each a POST then one PATCH, through partway; and the limit, `N`
//! PutObjects of 10 KiB straight into the same S3 server from 32 clients.
//! It also says where a small upload's time goes: the S3 requests and Redis
//! round trips partway made for each, read from its `/metrics` before and
//! after. Then 5,000 HEADs of those uploads, 32 at a time, with the Redis
//! round trips each cost.
//!
//! ```text
//! BENCH_SMALL=2000 cargo run --release --example bench -- 64 1
//! ```
//!
//! Its CPU figures are per 1,000 uploads (or HEADs).

use super::report::{Figure, Procs, Table, Units, measure};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SIZE: usize = 10 * 1024;
const AT_ONCE: usize = 32;

/// The `_count` of each `metric{operation="…"}` series, by operation.
async fn counts(metrics_url: &str, metric: &str) -> Result<BTreeMap<String, f64>, BoxError> {
    let text = reqwest::get(metrics_url).await?.text().await?;
    let prefix = format!("{metric}_count{{");
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        let Some((labels, value)) = line.split_once("} ") else {
            continue;
        };
        let operation = labels
            .split(',')
            .find_map(|l| {
                l.strip_prefix(&prefix)
                    .or(Some(l))
                    .and_then(|l| l.strip_prefix("operation=\""))
            })
            .map(|o| o.trim_end_matches('"').to_owned())
            .unwrap_or_default();
        *out.entry(operation).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(out)
}

/// One small upload through partway: POST, then one PATCH.
async fn through_partway(
    client: reqwest::Client,
    endpoint: String,
    body: Bytes,
    urls: Arc<Mutex<Vec<String>>>,
) -> Result<(), BoxError> {
    let url = super::create(&client, &endpoint, SIZE as u64).await?;
    let patched = client
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", 0)
        .body(body)
        .send()
        .await?;
    if patched.status() != reqwest::StatusCode::NO_CONTENT {
        return Err(format!("PATCH answered {}", patched.status()).into());
    }
    if let Ok(mut urls) = urls.lock() {
        urls.push(url);
    }
    Ok(())
}

/// One HEAD of `url`.
async fn head(client: reqwest::Client, url: String) -> Result<(), BoxError> {
    let answer = client
        .head(&url)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await?;
    if answer.status() != reqwest::StatusCode::OK {
        return Err(format!("HEAD answered {}", answer.status()).into());
    }
    Ok(())
}

/// partway's S3 requests and Redis round trips so far, by operation.
pub struct Scrape {
    s3: BTreeMap<String, f64>,
    redis: BTreeMap<String, f64>,
}

impl Scrape {
    pub async fn take(metrics_url: &str) -> Result<Self, BoxError> {
        Ok(Self {
            s3: counts(metrics_url, "partway_s3_request_duration_seconds").await?,
            redis: counts(metrics_url, "partway_redis_request_duration_seconds").await?,
        })
    }

    /// Notes in `table` what each of `count` requests (named `what`) cost
    /// between `before` and this scrape.
    pub fn note_since(&self, before: &Self, what: &str, count: usize, table: &mut Table) {
        let s3 = per_request(&before.s3, &self.s3, count);
        let redis = per_request(&before.redis, &self.redis, count);
        table.note(
            &format!("{what} S3"),
            format!("S3 requests per {what}: {s3}"),
        );
        table.note(
            &format!("{what} Redis"),
            format!("Redis round trips per {what}: {redis}"),
        );
    }
}

/// Round trips per operation between two scrapes, for `count` requests.
fn per_request(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    count: usize,
) -> String {
    let per: Vec<String> = after
        .iter()
        .map(|(op, n)| {
            (
                op,
                (n - before.get(op).copied().unwrap_or(0.0)) / count as f64,
            )
        })
        .filter(|(_, n)| *n > 0.0)
        .map(|(op, n)| format!("{op} {n:.2}"))
        .collect();
    let total: f64 = after.values().sum::<f64>() - before.values().sum::<f64>();
    format!("{:.2} ({})", total / count as f64, per.join(", "))
}

/// `count` runs of `one`, `AT_ONCE` at a time, measured.
async fn rate<F, Fut>(procs: Procs, count: usize, one: F) -> Result<Figure, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let work = async {
        let results: Vec<Result<(), BoxError>> = futures_util::stream::iter(0..count)
            .map(one)
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, _>>()
            .map(|_| ())
    };
    measure(procs, Units::Requests(count as u64), work).await
}

/// Where the phase runs, and where its figures go.
pub struct Small<'a> {
    pub endpoint: &'a str,
    pub metrics_url: &'a str,
    pub s3: &'a aws_sdk_s3::Client,
    pub procs: Procs,
    pub count: usize,
}

/// Runs the phase once and adds its figures to `table`.
pub async fn small(at: &Small<'_>, round: u32, table: &mut Table) -> Result<(), BoxError> {
    let (count, metrics_url) = (at.count, at.metrics_url);
    let body = Bytes::from(vec![7u8; SIZE]);
    let client = super::client()?;
    let before = Scrape::take(metrics_url).await?;
    let urls = Arc::new(Mutex::new(Vec::new()));
    let partway = rate(at.procs, count, |_| {
        through_partway(
            client.clone(),
            at.endpoint.to_owned(),
            body.clone(),
            urls.clone(),
        )
    })
    .await?;
    let after = Scrape::take(metrics_url).await?;
    let direct = rate(at.procs, count, |i| {
        let put = at
            .s3
            .put_object()
            .bucket(super::BUCKET)
            .key(format!("small/{round}/{i}"))
            .body(ByteStream::from(body.clone()))
            .send();
        async move { put.await.map(|_| ()).map_err(BoxError::from) }
    })
    .await?;
    table.add(PARTWAY, partway);
    table.add(DIRECT, direct);
    after.note_since(&before, "small upload", count, table);
    let urls = urls.lock().map(|u| u.clone()).unwrap_or_default();
    heads(at, &client, &urls, table).await
}

/// 5,000 HEADs of `urls`, `AT_ONCE` at a time.
async fn heads(
    at: &Small<'_>,
    client: &reqwest::Client,
    urls: &[String],
    table: &mut Table,
) -> Result<(), BoxError> {
    if urls.is_empty() {
        return Ok(());
    }
    let heads = 5000;
    let before = Scrape::take(at.metrics_url).await?;
    let figure = rate(at.procs, heads, |i| {
        head(client.clone(), urls[i % urls.len()].clone())
    })
    .await?;
    let after = Scrape::take(at.metrics_url).await?;
    table.add(HEADS, figure);
    after.note_since(&before, "HEAD", heads, table);
    Ok(())
}

/// The rows this phase adds.
pub const PARTWAY: &str = "10 KiB uploads, 32 at a time (uploads/s)";
pub const DIRECT: &str = "  limit: 10 KiB PutObjects, 32 clients";
pub const HEADS: &str = "HEADs, 32 at a time (requests/s)";
