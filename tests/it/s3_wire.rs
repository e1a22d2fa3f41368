//! What partway puts on the wire to S3, read by a stand-in that records each
//! request: a multipart upload is created with CRC-32C, every UploadPart and
//! PutObject carries the CRC-32C of the bytes it sends, and Complete lists
//! each part's, as S3 requires of such an upload; a final upload's assembly,
//! and a multipart upload an older partway created, are created without it,
//! and their uploaded parts get Content-MD5 instead. Unsigned
//! bodies say `UNSIGNED-PAYLOAD`, signed ones the SHA-256 of the body. A part
//! the store finds damaged (its checksum does not match what arrived) is
//! refused as a failure to retry, never stored.
//!
//! The stand-in only records and answers: moto, the S3 server of the other
//! tests, checks no checksum at all, so the refusal itself is the stand-in's
//! (Garage answers `InvalidDigest` in the same case, AWS `BadDigest`).

use base64::Engine;
use bytes::Bytes;
use partway::store::s3::{PartCheck, S3Objects, S3Settings};
use partway::upload::model::{MultipartId, ObjectKey, PartNumber, PartRecord};
use partway::upload::ports::{ObjectStore, PartsFrom, StoreError};
use sha2::Digest;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as it arrived: method and path, headers (lower-case), body.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A stand-in S3 server on loopback. With `damage`, it flips one bit of
/// every body before checking it against `x-amz-checksum-crc32c`, as a
/// store behind a faulty link would see it.
struct StandIn {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    async fn start(damage: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, log.clone(), damage));
            }
        });
        Self { url, seen, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("log").clone()
    }
}

/// Reads one HTTP/1.1 request (head, then a Content-Length body).
async fn read_request(conn: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 8192];
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |l| l.parse().ok())?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = conn.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        line,
        headers,
        body,
    })
}

/// Answers requests on one connection: 400 InvalidDigest for a body whose
/// CRC-32C or MD5 does not match (after `damage`), else 200 with an ETag.
async fn serve(mut conn: TcpStream, log: Arc<Mutex<Vec<Seen>>>, damage: bool) {
    while let Some(mut seen) = read_request(&mut conn).await {
        if damage && let Some(byte) = seen.body.first_mut() {
            *byte ^= 1;
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let crc = b64(&crc32c::crc32c(&seen.body).to_be_bytes());
        let md5 = b64(&md5::Md5::digest(&seen.body));
        let headers = &seen.headers;
        let intact = headers
            .get("x-amz-checksum-crc32c")
            .is_none_or(|sent| *sent == crc)
            && headers.get("content-md5").is_none_or(|sent| *sent == md5);
        let xml = if seen.line.starts_with("POST") && seen.line.contains("?uploads") {
            "<InitiateMultipartUploadResult><UploadId>up-1</UploadId></InitiateMultipartUploadResult>"
        } else if seen.line.starts_with("POST") {
            "<CompleteMultipartUploadResult><ETag>\"whole\"</ETag></CompleteMultipartUploadResult>"
        } else {
            ""
        };
        log.lock().expect("log").push(seen);
        let answer = if intact {
            format!(
                "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: {}\r\n\r\n{xml}",
                xml.len()
            )
        } else {
            let body = "<Error><Code>InvalidDigest</Code><Message>checksum</Message></Error>";
            format!(
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        if conn.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn objects(url: &str, unsigned_payload: bool) -> S3Objects {
    S3Objects::connect(&S3Settings {
        bucket: "wire".into(),
        endpoint: Some(url.to_owned()),
        region: Some("us-east-1".into()),
        force_path_style: true,
        credentials: Some(("id".into(), "secret".into())),
        part_check: PartCheck::Crc32c,
        unsigned_payload,
        read_timeout: None,
    })
    .await
}

fn key() -> ObjectKey {
    ObjectKey::new("wire/object")
}

fn crc32c_of(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(crc32c::crc32c(bytes).to_be_bytes())
}

#[tokio::test]
async fn every_body_carries_its_crc32c_and_says_how_it_is_signed() {
    let body = Bytes::from((0..6u32 << 20).map(|i| (i % 253) as u8).collect::<Vec<_>>());
    let number = PartNumber::new(1).expect("part 1");
    for unsigned in [true, false] {
        let stand_in = StandIn::start(false).await;
        let store = objects(&stand_in.url, unsigned).await;
        let mp = store
            .create_multipart(&key(), None, PartsFrom::Uploads)
            .await
            .expect("created");
        let etag = store
            .upload_part(&key(), &mp, number, body.clone())
            .await
            .expect("the part is taken");
        store
            .put_object(&key(), None, body.slice(..1000))
            .await
            .expect("the object is taken");
        let part = PartRecord {
            number,
            etag,
            size: body.len() as u64,
        };
        store
            .complete_multipart(&key(), &mp, &[part])
            .await
            .expect("completed");
        let seen = stand_in.seen();
        assert_eq!(seen.len(), 4, "{seen:?}");
        let created = &seen[0].headers;
        assert_eq!(
            created.get("x-amz-checksum-algorithm").map(String::as_str),
            Some("CRC32C")
        );
        let listed = String::from_utf8_lossy(&seen[3].body).to_string();
        let crc = crc32c_of(&body);
        assert!(
            listed.contains(&format!("<ChecksumCRC32C>{crc}</ChecksumCRC32C>")),
            "Complete lists the part's checksum: {listed}"
        );
        assert!(
            listed.contains("<ETag>&quot;e&quot;</ETag>"),
            "and S3's ETag: {listed}"
        );
        for (request, sent) in seen[1..3].iter().zip([body.clone(), body.slice(..1000)]) {
            assert!(request.line.starts_with("PUT "), "{}", request.line);
            assert_eq!(request.body, sent.as_ref(), "the bytes as they were");
            let crc = crc32c_of(&sent);
            assert_eq!(request.headers.get("x-amz-checksum-crc32c"), Some(&crc));
            let payload = request.headers.get("x-amz-content-sha256").cloned();
            let expected = if unsigned {
                "UNSIGNED-PAYLOAD".to_owned()
            } else {
                sha2::Sha256::digest(&sent)
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            };
            assert_eq!(payload, Some(expected), "{}", request.line);
        }
        assert!(seen[1].line.contains("partNumber=1"), "{}", seen[1].line);
    }
}

/// A final upload's assembly (its parts mostly copies, which may come back
/// without a checksum) and a multipart upload an older partway created are
/// both without CRC-32C: their uploaded parts get Content-MD5 instead.
#[tokio::test]
async fn multipart_uploads_created_without_crc32c_get_content_md5() {
    let stand_in = StandIn::start(false).await;
    let store = objects(&stand_in.url, true).await;
    let assembly = store
        .create_multipart(&key(), None, PartsFrom::Assembly)
        .await
        .expect("created");
    let older = MultipartId::new("created-by-an-older-partway");
    let body = Bytes::from(vec![9u8; 1 << 20]);
    let number = PartNumber::new(1).expect("part 1");
    for mp in [&assembly, &older] {
        let etag = store
            .upload_part(&key(), mp, number, body.clone())
            .await
            .expect("the part is taken");
        assert_eq!(etag.as_str(), "\"e\"", "no checksum to list at Complete");
    }
    let seen = stand_in.seen();
    assert!(!seen[0].headers.contains_key("x-amz-checksum-algorithm"));
    let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
    for part in &seen[1..] {
        let headers = &part.headers;
        assert!(
            !headers.contains_key("x-amz-checksum-crc32c"),
            "{headers:?}"
        );
        assert_eq!(headers.get("content-md5"), Some(&md5));
    }
    assert!(seen[1].line.contains("uploadId=up-1"), "{}", seen[1].line);
    assert!(
        seen[2]
            .line
            .contains("uploadId=created-by-an-older-partway")
    );
}

#[tokio::test]
async fn a_part_damaged_on_the_way_is_refused_as_a_failure_to_retry() {
    let stand_in = StandIn::start(true).await;
    let store = objects(&stand_in.url, true).await;
    let body = Bytes::from(vec![42u8; 1 << 20]);
    let number = PartNumber::new(1).expect("part 1");
    let created = store
        .create_multipart(&key(), None, PartsFrom::Uploads)
        .await
        .expect("created");
    // Checked with CRC-32C, and (created by an older partway) with MD5.
    for mp in [created, MultipartId::new("older")] {
        let refused = store
            .upload_part(&key(), &mp, number, body.clone())
            .await
            .expect_err("the store refuses a damaged part");
        assert!(
            matches!(&refused, StoreError::Unavailable(m) if m.contains("InvalidDigest")),
            "{refused:?}"
        );
    }
}
