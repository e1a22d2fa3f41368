//! The flood phase of the benchmark: far more uploads at once than
//! partway's buffer budget and its cap on active uploads allow, each retried
//! as tus clients do on 429 and 503, while partway's RSS is sampled.
//!
//! ```text
//! BENCH_FLOOD=400 BENCH_PARTWAY_ARGS="--max-buffer 64MiB --max-active-uploads 16" \
//!   cargo run --release --example bench -- 64 1
//! ```

use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Current RSS of a process in MiB, from /proc.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// One upload of `size` bytes, retried until it is in; returns the
/// refusal statuses it met (0 for a refusal seen as a cut connection).
async fn upload(
    client: reqwest::Client,
    endpoint: String,
    block: Bytes,
    size: usize,
) -> Result<Vec<u16>, BoxError> {
    let url = super::create(&client, &endpoint, size as u64).await?;
    let mut refusals = Vec::new();
    loop {
        let head = client
            .head(&url)
            .header("Tus-Resumable", "1.0.0")
            .send()
            .await;
        // A connection the server closed after a refusal: try again.
        let Ok(head) = head else {
            refusals.push(0);
            continue;
        };
        let offset: usize = head
            .headers()
            .get("upload-offset")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .ok_or("no Upload-Offset")?;
        if offset == size {
            return Ok(refusals);
        }
        let sent = client
            .patch(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset)
            .body(block.slice(offset..size))
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(204) => {}
            Ok(status @ (409 | 423 | 429 | 503)) => refusals.push(status),
            Ok(other) => return Err(format!("PATCH {url}: {other}").into()),
            Err(_) => refusals.push(0),
        }
        if refusals.last().is_some() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs `count` uploads of `size` bytes at once against partway (`pid`) and
/// prints the time, the refusals and partway's RSS before and during.
pub async fn flood(endpoint: &str, pid: u32, count: usize, size: usize) -> Result<(), BoxError> {
    let block = Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<_>>());
    let client = super::client()?;
    let before = rss_mib(pid);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(rss_mib(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let start = Instant::now();
    let runs = (0..count).map(|_| {
        tokio::spawn(upload(
            client.clone(),
            endpoint.to_owned(),
            block.clone(),
            size,
        ))
    });
    let mut refusals = BTreeMap::new();
    for run in futures_util::future::join_all(runs).await {
        for status in run?? {
            *refusals.entry(status).or_insert(0u32) += 1;
        }
    }
    let took = start.elapsed();
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await?;
    println!(
        "flood: {count} uploads of {} MiB at once in {took:.1?}; refusals by status {refusals:?} \
         (0 = seen as a cut connection); partway RSS {before:.1} MiB before, {peak:.1} MiB peak during",
        size >> 20
    );
    Ok(())
}
