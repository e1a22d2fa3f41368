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

use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// `count` runs of `one`, `AT_ONCE` at a time; returns uploads per second.
async fn rate<F, Fut>(count: usize, one: F) -> Result<f64, BoxError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<(), BoxError>>,
{
    let start = Instant::now();
    let results: Vec<Result<(), BoxError>> = futures_util::stream::iter(0..count)
        .map(one)
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let took: Duration = start.elapsed();
    results.into_iter().collect::<Result<Vec<()>, _>>()?;
    Ok(count as f64 / took.as_secs_f64())
}

/// Runs the phase and prints its figures.
pub async fn small(
    endpoint: &str,
    metrics_url: &str,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    count: usize,
) -> Result<(), BoxError> {
    let body = Bytes::from(vec![7u8; SIZE]);
    let client = super::client()?;
    let (s3_before, redis_before) = (
        counts(metrics_url, "partway_s3_request_duration_seconds").await?,
        counts(metrics_url, "partway_redis_request_duration_seconds").await?,
    );
    let urls = Arc::new(Mutex::new(Vec::new()));
    let partway = rate(count, |_| {
        through_partway(
            client.clone(),
            endpoint.to_owned(),
            body.clone(),
            urls.clone(),
        )
    })
    .await?;
    let s3_after = counts(metrics_url, "partway_s3_request_duration_seconds").await?;
    let redis_after = counts(metrics_url, "partway_redis_request_duration_seconds").await?;
    let direct = rate(count, |i| {
        let put = s3
            .put_object()
            .bucket(bucket)
            .key(format!("small/{i}"))
            .body(ByteStream::from(body.clone()))
            .send();
        async move { put.await.map(|_| ()).map_err(BoxError::from) }
    })
    .await?;
    println!("{count} uploads of 10 KiB, {AT_ONCE} at a time (POST + one PATCH):");
    println!("  through partway:       {partway:.0} uploads/s");
    println!("  PutObject straight:    {direct:.0} objects/s");
    println!("  ratio partway/direct:  {:.2}", partway / direct);
    println!(
        "  S3 requests per upload: {}",
        per_request(&s3_before, &s3_after, count)
    );
    println!(
        "  Redis round trips per upload: {}",
        per_request(&redis_before, &redis_after, count)
    );
    let urls = urls.lock().map(|u| u.clone()).unwrap_or_default();
    if urls.is_empty() {
        return Ok(());
    }
    let heads = 5000;
    let before = counts(metrics_url, "partway_redis_request_duration_seconds").await?;
    let rate_heads = rate(heads, |i| {
        head(client.clone(), urls[i % urls.len()].clone())
    })
    .await?;
    let after = counts(metrics_url, "partway_redis_request_duration_seconds").await?;
    println!("{heads} HEADs, {AT_ONCE} at a time: {rate_heads:.0} requests/s");
    println!(
        "  Redis round trips per HEAD: {}",
        per_request(&before, &after, heads)
    );
    Ok(())
}
