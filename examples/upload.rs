//! A small tus client: uploads a file in chunks and resumes an interrupted
//! upload where the server says it stands.
//!
//! Run a server (`cargo run`), then:
//!
//! ```text
//! cargo run --example upload -- http://127.0.0.1:1080/files/ path/to/file [chunk-bytes]
//! ```
//!
//! The upload URL is kept next to the file in `<file>.tus-url`; run the same
//! command again after an interruption (ctrl-c, a dropped network) and it
//! asks the server for the offset (HEAD) and sends only the rest. Transient
//! failures (409, 423, 5xx, connection errors) are retried with backoff.

use reqwest::{Client, StatusCode};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TUS: &str = "1.0.0";

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: upload <endpoint> <file> [chunk-bytes]";
    let endpoint = args.next().ok_or(usage)?;
    let file = PathBuf::from(args.next().ok_or(usage)?);
    let chunk: u64 = args.next().map_or(Ok(4 << 20), |c| c.parse())?;
    let client = Client::new();
    let size = tokio::fs::metadata(&file).await?.len();
    let sidecar = file.with_extension("tus-url");
    let url = match tokio::fs::read_to_string(&sidecar).await {
        Ok(url) => {
            println!("resuming {url}");
            url.trim().to_owned()
        }
        Err(_) => {
            let url = create(&client, &endpoint, &file, size).await?;
            tokio::fs::write(&sidecar, &url).await?;
            println!("created {url}");
            url
        }
    };
    let mut failures = 0u32;
    loop {
        match send_from_offset(&client, &url, &file, size, chunk).await {
            Ok(()) => break,
            Err(e) if failures < 8 => {
                failures += 1;
                let delay = Duration::from_millis(250 << failures.min(5));
                eprintln!("interrupted ({e}); resuming in {delay:?}");
                tokio::time::sleep(delay).await;
            }
            Err(e) => return Err(e),
        }
    }
    tokio::fs::remove_file(&sidecar).await?;
    println!("done: {size} bytes at {url}");
    Ok(())
}

/// POST: creates the upload and returns its URL.
async fn create(
    client: &Client,
    endpoint: &str,
    file: &Path,
    size: u64,
) -> Result<String, BoxError> {
    use base64::Engine as _;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let metadata = format!(
        "filename {}",
        base64::engine::general_purpose::STANDARD.encode(name)
    );
    let response = client
        .post(endpoint)
        .header("Tus-Resumable", TUS)
        .header("Upload-Length", size)
        .header("Upload-Metadata", metadata)
        .send()
        .await?;
    if response.status() != StatusCode::CREATED {
        return Err(format!("create: {}", response.status()).into());
    }
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or("create: no Location")?;
    Ok(reqwest::Url::parse(endpoint)?.join(location)?.to_string())
}

/// HEAD for the offset, then PATCH the rest in chunks.
async fn send_from_offset(
    client: &Client,
    url: &str,
    file: &Path,
    size: u64,
    chunk: u64,
) -> Result<(), BoxError> {
    let head = client.head(url).header("Tus-Resumable", TUS).send().await?;
    if head.status() == StatusCode::NOT_FOUND {
        return Err("the upload is gone; delete the .tus-url file to start over".into());
    }
    let mut offset = header_u64(&head, "upload-offset").ok_or("HEAD: no Upload-Offset")?;
    let mut source = tokio::fs::File::open(file).await?;
    source.seek(std::io::SeekFrom::Start(offset)).await?;
    while offset < size {
        let len = chunk.min(size - offset);
        let mut buf = vec![0; usize::try_from(len)?];
        source.read_exact(&mut buf).await?;
        let response = client
            .patch(url)
            .header("Tus-Resumable", TUS)
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset)
            .body(buf)
            .send()
            .await?;
        if response.status() != StatusCode::NO_CONTENT {
            return Err(format!("PATCH at {offset}: {}", response.status()).into());
        }
        offset = header_u64(&response, "upload-offset").ok_or("PATCH: no Upload-Offset")?;
        source.seek(std::io::SeekFrom::Start(offset)).await?;
        println!("{offset}/{size}");
    }
    Ok(())
}

fn header_u64(response: &reqwest::Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.parse().ok()
}
