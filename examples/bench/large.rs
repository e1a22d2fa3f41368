//! The large-upload workloads of the benchmark, and their limit.
//!
//! - the limit: one multipart upload straight into the S3 server, 8 MiB
//!   parts, four in flight, `UNSIGNED-PAYLOAD`: the fastest direct client;
//! - one PATCH of the whole upload;
//! - the same bytes in PATCHes of 5 MiB, then of 500 KiB, one after another;
//! - 16 uploads at once, each a sixteenth of the size, one PATCH each.
//!
//! Every object is read back from the S3 server and compared byte for byte
//! with what was sent, then deleted.

use super::{BUCKET, BoxError, PART};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use futures_util::StreamExt;

/// Parts the direct client keeps in flight.
const DIRECT_IN_FLIGHT: usize = 4;

/// The payload's bytes from `from` to `to`: the random block, repeated.
pub fn slice(block: &Bytes, from: u64, to: u64) -> Vec<Bytes> {
    let len = block.len() as u64;
    let mut out = Vec::new();
    let mut at = from;
    while at < to {
        let start = at % len;
        let end = (start + (to - at)).min(len);
        out.push(block.slice(to_usize(start)..to_usize(end)));
        at += end - start;
    }
    out
}

/// The payload's bytes from `from` to `to` in one buffer: a view of the
/// block when they do not wrap around it (a part never does), so the direct
/// client sends without a copy, as partway does.
fn contiguous(block: &Bytes, from: u64, to: u64) -> Bytes {
    let mut pieces = slice(block, from, to);
    match pieces.len() {
        1 => pieces.remove(0),
        _ => Bytes::from(pieces.concat()),
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The payload from `from` to `to` as a stream of chunks of at most 1 MiB.
pub fn stream(
    block: &Bytes,
    from: u64,
    to: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + use<> {
    let chunks: Vec<Bytes> = slice(block, from, to)
        .into_iter()
        .flat_map(|piece| {
            (0..piece.len().div_ceil(1 << 20))
                .map(move |i| piece.slice(i << 20..((i + 1) << 20).min(piece.len())))
        })
        .collect();
    futures_util::stream::iter(chunks.into_iter().map(Ok))
}

/// One multipart upload of `size` bytes straight into the S3 server.
pub async fn direct(
    s3: &aws_sdk_s3::Client,
    block: &Bytes,
    key: &str,
    size: u64,
) -> Result<(), BoxError> {
    let created = s3
        .create_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await?;
    let upload_id = created.upload_id().ok_or("no upload id")?.to_owned();
    let parts = (0..size.div_ceil(PART)).map(|n| {
        let (s3, upload_id) = (s3.clone(), upload_id.clone());
        let body = contiguous(block, n * PART, (n * PART + PART).min(size));
        let number = i32::try_from(n + 1).unwrap_or(i32::MAX);
        async move {
            let out = s3
                .upload_part()
                .bucket(BUCKET)
                .key(key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .customize()
                .disable_payload_signing()
                .send()
                .await?;
            Ok::<_, BoxError>(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            )
        }
    });
    let completed: Vec<CompletedPart> = futures_util::stream::iter(parts)
        .buffered(DIRECT_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    s3.complete_multipart_upload()
        .bucket(BUCKET)
        .key(key)
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// One tus upload of `size` bytes in PATCHes of `chunk` bytes (one PATCH
/// when `chunk` is `size`); returns its object key.
pub async fn via_partway(
    endpoint: &str,
    block: &Bytes,
    size: u64,
    chunk: u64,
) -> Result<String, BoxError> {
    let client = super::client()?;
    let url = super::create(&client, endpoint, size).await?;
    let mut offset = 0;
    while offset < size {
        let end = (offset + chunk).min(size);
        let patched = client
            .patch(&url)
            .header("Tus-Resumable", "1.0.0")
            .header("Content-Type", "application/offset+octet-stream")
            .header("Upload-Offset", offset)
            .header("Content-Length", end - offset)
            .body(reqwest::Body::wrap_stream(stream(block, offset, end)))
            .send()
            .await?;
        if patched.status() != reqwest::StatusCode::NO_CONTENT {
            return Err(format!("PATCH at {offset}: {}", patched.status()).into());
        }
        offset = end;
    }
    Ok(url.rsplit('/').next().unwrap_or_default().to_owned())
}

/// `count` uploads of `size` bytes at once, one PATCH each; returns their keys.
pub async fn at_once(
    endpoint: &str,
    block: &Bytes,
    count: usize,
    size: u64,
) -> Result<Vec<String>, BoxError> {
    let uploads = (0..count).map(|_| via_partway(endpoint, block, size, size));
    futures_util::future::join_all(uploads)
        .await
        .into_iter()
        .collect()
}

/// Reads `key` back from the S3 server, compares it with the payload's
/// first `size` bytes, and deletes it.
pub async fn check_and_delete(
    s3: &aws_sdk_s3::Client,
    block: &Bytes,
    key: &str,
    size: u64,
) -> Result<(), BoxError> {
    let object = s3.get_object().bucket(BUCKET).key(key).send().await?;
    let mut body = object.body;
    let mut at = 0u64;
    while let Some(chunk) = body.try_next().await? {
        let mut rest = chunk.as_ref();
        for piece in slice(block, at, at + chunk.len() as u64) {
            let (got, after) = rest.split_at(piece.len());
            if got != piece.as_ref() {
                return Err(format!("{key}: bytes differ near offset {at}").into());
            }
            rest = after;
        }
        at += chunk.len() as u64;
    }
    if at != size {
        return Err(format!("{key}: {at} bytes stored, {size} sent").into());
    }
    s3.delete_object().bucket(BUCKET).key(key).send().await?;
    Ok(())
}
