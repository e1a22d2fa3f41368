//! The production object store: S3 multipart uploads through aws-sdk-s3.
//!
//! The only module that imports `aws_sdk_s3`. It is set up for S3-compatible
//! stores as well as AWS: a custom endpoint, path-style
//! addressing, and request checksums only "when required", because the SDK's
//! default since 2025 breaks many S3-compatible stores. Every request is signed
//! here at send time; no URL ever leaves the server. The SDK retries
//! transient failures with backoff, a bounded number of times.

mod integrity;

pub use integrity::PartCheck;

use crate::upload::model::{ETag, MultipartId, ObjectKey, PartNumber, PartRecord};
use crate::upload::ports::{ObjectStore, ObjectStream, PartsFrom, StoreError};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use integrity::{Upload, digests, etag_parts, kept_etag};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use std::ops::Range;
use std::time::Duration;

/// Characters left as they are in an `x-amz-copy-source` path.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Sends a request that carries a body: signed as `UNSIGNED-PAYLOAD` if
/// `$unsigned`, else with the body's SHA-256 (the SDK's default).
macro_rules! send_body {
    ($unsigned:expr, $request:expr) => {
        if $unsigned {
            $request.customize().disable_payload_signing().send().await
        } else {
            $request.send().await
        }
    };
}

/// A part number as the SDK takes it; the type keeps it in 1..=10000.
fn s3_part_number(number: PartNumber) -> i32 {
    i32::try_from(number.get()).unwrap_or(i32::MAX)
}

/// An HTTP byte range for S3 (`bytes=first-last`, inclusive).
fn byte_range(range: &Range<u64>) -> String {
    format!("bytes={}-{}", range.start, range.end.saturating_sub(1))
}

/// Where and how to reach the bucket.
#[derive(Clone, Default)]
pub struct S3Settings {
    pub bucket: String,
    /// A custom endpoint (MinIO, R2, Ceph, Garage...); `None` for AWS.
    pub endpoint: Option<String>,
    /// `None` takes the region from the standard AWS chain.
    pub region: Option<String>,
    pub force_path_style: bool,
    /// Fixed credentials (access key id, secret) instead of the AWS chain;
    /// for embedders that manage their own, and for tests.
    pub credentials: Option<(String, String)>,
    /// What every UploadPart and PutObject carries for the store to check
    /// its bytes against, taken before they left partway (stores answer
    /// BadDigest or InvalidDigest; partway answers 503 and the client
    /// resends, so a damaged part is never stored).
    pub part_check: PartCheck,
    /// Sign bodies as `UNSIGNED-PAYLOAD` instead of with their SHA-256, which
    /// the store must then recompute. Integrity rests on `part_check` (and
    /// TLS), so it needs one ([`S3Settings::validate`]).
    pub unsigned_payload: bool,
    /// How long one attempt waits for S3 to start answering once the
    /// request is sent; `None` for the default of 60 s. A store that stops
    /// answering then fails the attempt instead of hanging the upload.
    pub read_timeout: Option<Duration>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("force_path_style", &self.force_path_style)
            .field("part_check", &self.part_check)
            .field("unsigned_payload", &self.unsigned_payload)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|(id, _)| (id, "***")),
            )
            .finish()
    }
}

impl S3Settings {
    /// Refuses a body that nothing would check: unsigned and unchecked.
    ///
    /// # Errors
    /// A plain message naming the fields at fault.
    pub fn validate(&self) -> Result<(), String> {
        if self.unsigned_payload && self.part_check == PartCheck::None {
            return Err("an unsigned payload needs a part checksum (crc32c or md5)".into());
        }
        Ok(())
    }
}

/// A bucket reached through aws-sdk-s3.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
    part_check: PartCheck,
    unsigned_payload: bool,
}

/// Classifies an SDK failure without leaking it to clients.
fn classify<E, R>(op: &str, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let detail = format!("{op}: {}", aws_sdk_s3::error::DisplayErrorContext(&err));
    match &err {
        SdkError::ServiceError(service) => match service.err().code() {
            Some("NoSuchUpload" | "NoSuchKey" | "NotFound") => StoreError::NotFound(detail),
            // The bytes were damaged on the way; sending them again helps.
            Some("BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch") => {
                StoreError::Unavailable(detail)
            }
            Some("SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout") => {
                StoreError::Unavailable(detail)
            }
            _ => StoreError::Other(detail),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        _ => StoreError::Other(detail),
    }
}

impl S3Objects {
    /// Builds a client with credentials from the standard AWS chain.
    pub async fn connect(settings: &S3Settings) -> Self {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some((id, secret)) = &settings.credentials {
            loader = loader.credentials_provider(Credentials::new(
                id.clone(),
                secret.clone(),
                None,
                None,
                "partway-settings",
            ));
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.force_path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(4)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(5)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(settings.read_timeout.unwrap_or(Duration::from_secs(60)))
                    .build(),
            );
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        Self {
            client: Client::from_conf(config.build()),
            bucket: settings.bucket.clone(),
            part_check: settings.part_check,
            unsigned_payload: settings.unsigned_payload,
        }
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn create_multipart(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        from: PartsFrom,
    ) -> Result<MultipartId, StoreError> {
        // S3 requires each part's checksum at Complete of an upload created
        // with one, and a copied part may come back without it: an assembly
        // is created without, and its uploaded parts get Content-MD5.
        let crc32c = self.part_check == PartCheck::Crc32c && from == PartsFrom::Uploads;
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_content_type(content_type.map(str::to_owned))
            .set_checksum_algorithm(crc32c.then_some(ChecksumAlgorithm::Crc32C))
            .send()
            .await
            .map_err(|e| classify("CreateMultipartUpload", e))?;
        out.upload_id()
            .map(|id| Upload::kept(id, crc32c))
            .ok_or_else(|| StoreError::Other("CreateMultipartUpload: no upload id".into()))
    }

    async fn upload_part(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        body: Bytes,
    ) -> Result<ETag, StoreError> {
        let part_number = s3_part_number(number);
        let length = i64::try_from(body.len()).unwrap_or(i64::MAX);
        let upload = Upload::of(multipart_id);
        let (md5, crc32c) = digests(upload.part_check(self.part_check), &body);
        let request = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload.id)
            .part_number(part_number)
            .content_length(length)
            .set_content_md5(md5)
            .set_checksum_crc32_c(crc32c.clone())
            .body(ByteStream::from(body));
        let sent = send_body!(self.unsigned_payload, request);
        let out = sent.map_err(|e| classify("UploadPart", e))?;
        let crc32c = crc32c.filter(|_| upload.crc32c);
        out.e_tag()
            .map(|etag| kept_etag(etag, crc32c.as_deref()))
            .ok_or_else(|| StoreError::Other("UploadPart: no ETag".into()))
    }

    async fn complete_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        parts: &[PartRecord],
    ) -> Result<(), StoreError> {
        let completed = parts
            .iter()
            .map(|p| {
                let (etag, crc32c) = etag_parts(&p.etag);
                CompletedPart::builder()
                    .part_number(s3_part_number(p.number))
                    .e_tag(etag)
                    .set_checksum_crc32_c(crc32c.map(str::to_owned))
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(Upload::of(multipart_id).id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| classify("CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_multipart(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
    ) -> Result<(), StoreError> {
        let aborted = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(Upload::of(multipart_id).id)
            .send()
            .await
            .map_err(|e| classify("AbortMultipartUpload", e));
        match aborted {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn put_object(
        &self,
        key: &ObjectKey,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<(), StoreError> {
        let (md5, crc32c) = digests(self.part_check, &body);
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_content_type(content_type.map(str::to_owned))
            .set_content_md5(md5)
            .set_checksum_crc32_c(crc32c)
            .body(ByteStream::from(body));
        let sent = send_body!(self.unsigned_payload, request);
        sent.map_err(|e| classify("PutObject", e))?;
        Ok(())
    }

    async fn object_size(&self, key: &ObjectKey) -> Result<Option<u64>, StoreError> {
        let head = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await;
        match head {
            Ok(out) => Ok(Some(
                out.content_length()
                    .and_then(|l| u64::try_from(l).ok())
                    .unwrap_or(0),
            )),
            Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => Ok(None),
            Err(e) => Err(classify("HeadObject", e)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify("HeadBucket", e))
    }

    async fn delete_object(&self, key: &ObjectKey) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .send()
            .await
            .map_err(|e| classify("DeleteObject", e))?;
        Ok(())
    }

    async fn upload_part_copy(
        &self,
        key: &ObjectKey,
        multipart_id: &MultipartId,
        number: PartNumber,
        source_key: &ObjectKey,
        range: Range<u64>,
    ) -> Result<ETag, StoreError> {
        let part_number = s3_part_number(number);
        let source = format!(
            "{}/{}",
            self.bucket,
            utf8_percent_encode(source_key.as_str(), COPY_SOURCE)
        );
        let upload = Upload::of(multipart_id);
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(key.as_str())
            .upload_id(upload.id)
            .part_number(part_number)
            .copy_source(source)
            .copy_source_range(byte_range(&range))
            .send()
            .await
            .map_err(|e| classify("UploadPartCopy", e))?;
        // Assemblies are created without CRC-32C; should a copy land in an
        // upload created with it, the checksum S3 computed is kept for Complete.
        let result = out.copy_part_result();
        let crc32c = result
            .and_then(|r| r.checksum_crc32_c())
            .filter(|_| upload.crc32c);
        result
            .and_then(|r| r.e_tag())
            .map(|etag| kept_etag(etag, crc32c))
            .ok_or_else(|| StoreError::Other("UploadPartCopy: no ETag".into()))
    }

    async fn get_object(
        &self,
        key: &ObjectKey,
        range: Option<Range<u64>>,
    ) -> Result<ObjectStream, StoreError> {
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .set_range(range.as_ref().map(byte_range))
            .send()
            .await
            .map_err(|e| classify("GetObject", e))?;
        let body = out.body;
        Ok(Box::pin(futures_util::stream::unfold(
            body,
            |mut body| async move {
                match body.try_next().await {
                    Ok(Some(chunk)) => Some((Ok(chunk), body)),
                    Ok(None) => None,
                    Err(e) => Some((
                        Err(StoreError::Unavailable(format!("GetObject body: {e}"))),
                        body,
                    )),
                }
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsigned_payload_must_be_checked() {
        let unchecked = S3Settings {
            unsigned_payload: true,
            part_check: PartCheck::None,
            ..S3Settings::default()
        };
        assert!(unchecked.validate().is_err());
        for part_check in [PartCheck::Crc32c, PartCheck::Md5] {
            let checked = S3Settings {
                part_check,
                ..unchecked.clone()
            };
            assert!(checked.validate().is_ok());
        }
    }
}
