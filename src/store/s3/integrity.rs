//! How S3 checks the bytes partway sends: the digest each body carries, and,
//! for a multipart upload created with CRC-32C, each part's checksum, kept
//! with its ETag until CompleteMultipartUpload lists it (S3 refuses such a
//! Complete without them, and refuses a checksummed part of an upload
//! created without an algorithm). A final upload's assembly is created
//! without: its parts are mostly copies, which S3 may return without a
//! checksum to list.
//!
//! The core keeps multipart ids and ETags as opaque text, so the adapter
//! records both facts in them: a multipart id ends in [`CRC32C_UPLOAD`] when
//! its upload was created with CRC-32C, and an ETag carries its part's
//! checksum after [`CRC32C_PART`]. Assemblies, and uploads started by an
//! older partway, have neither, and their uploaded parts are checked with
//! Content-MD5 instead.

use crate::upload::model::{ETag, MultipartId};

/// The digest sent with each body, which the store verifies before it
/// stores a byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PartCheck {
    /// Nothing beyond the SHA-256 of a signed payload.
    None,
    /// `x-amz-checksum-crc32c`: hardware-fast, checked by AWS, MinIO,
    /// Garage, Ceph and R2.
    #[default]
    Crc32c,
    /// `Content-MD5`: checked by every S3 server, about 1.7 CPU-s per GiB.
    Md5,
}

/// Ends the multipart id of an upload created with CRC-32C.
const CRC32C_UPLOAD: &str = " crc32c";
/// Separates S3's ETag from the part's CRC-32C in the ETag partway keeps.
const CRC32C_PART: &str = " crc32c=";

/// The headers of `check` for one body: `(Content-MD5, CRC-32C)`.
pub(super) fn digests(check: PartCheck, body: &[u8]) -> (Option<String>, Option<String>) {
    use base64::Engine;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    match check {
        PartCheck::None => (None, None),
        PartCheck::Crc32c => (None, Some(b64(&crc32c::crc32c(body).to_be_bytes()))),
        PartCheck::Md5 => (
            Some(b64(&crate::protocol::checksum::digest(
                crate::protocol::checksum::Algorithm::Md5,
                body,
            ))),
            None,
        ),
    }
}

/// A multipart upload as S3 knows it.
pub(super) struct Upload<'a> {
    /// S3's upload id.
    pub id: &'a str,
    /// Created with CRC-32C: its parts must carry theirs.
    pub crc32c: bool,
}

impl<'a> Upload<'a> {
    pub fn of(multipart_id: &'a MultipartId) -> Self {
        let text = multipart_id.as_str();
        match text.strip_suffix(CRC32C_UPLOAD) {
            Some(id) => Self { id, crc32c: true },
            None => Self {
                id: text,
                crc32c: false,
            },
        }
    }

    /// The id partway keeps for S3's `id`.
    pub fn kept(id: &str, crc32c: bool) -> MultipartId {
        MultipartId::new(if crc32c {
            format!("{id}{CRC32C_UPLOAD}")
        } else {
            id.to_owned()
        })
    }

    /// The check for a part of this upload, `configured` being partway's:
    /// CRC-32C if the upload was created with it; for one created without,
    /// Content-MD5 in its place.
    pub fn part_check(&self, configured: PartCheck) -> PartCheck {
        match configured {
            PartCheck::Crc32c if !self.crc32c => PartCheck::Md5,
            _ if self.crc32c => PartCheck::Crc32c,
            other => other,
        }
    }
}

/// The ETag partway keeps for a part: S3's, with its CRC-32C if it has one.
pub(super) fn kept_etag(etag: &str, crc32c: Option<&str>) -> ETag {
    match crc32c {
        Some(crc) => ETag::new(format!("{etag}{CRC32C_PART}{crc}")),
        None => ETag::new(etag),
    }
}

/// S3's ETag and the part's CRC-32C, from what partway keeps.
pub(super) fn etag_parts(etag: &ETag) -> (&str, Option<&str>) {
    match etag.as_str().split_once(CRC32C_PART) {
        Some((etag, crc)) => (etag, Some(crc)),
        None => (etag.as_str(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_the_standard_ones_in_base64() {
        // CRC-32C's check value (RFC 3720 B.4): "123456789" -> 0xE3069283.
        assert_eq!(
            digests(PartCheck::Crc32c, b"123456789"),
            (None, Some("4waSgw==".into()))
        );
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e.
        assert_eq!(
            digests(PartCheck::Md5, b""),
            (Some("1B2M2Y8AsgTpgAmY7PhCfg==".into()), None)
        );
        assert_eq!(digests(PartCheck::None, b"x"), (None, None));
    }

    #[test]
    fn ids_and_etags_keep_what_complete_needs() {
        let kept = Upload::kept("2~abc", true);
        let upload = Upload::of(&kept);
        assert_eq!((upload.id, upload.crc32c), ("2~abc", true));
        let older = MultipartId::new("2~abc");
        assert!(!Upload::of(&older).crc32c);
        let etag = kept_etag("\"e1\"", Some("4waSgw=="));
        assert_eq!(etag_parts(&etag), ("\"e1\"", Some("4waSgw==")));
        assert_eq!(etag_parts(&ETag::new("\"e2\"")), ("\"e2\"", None));
    }

    #[test]
    fn a_part_is_checked_as_its_upload_was_created() {
        let (new, older) = (Upload::kept("a", true), MultipartId::new("b"));
        let (new, older) = (Upload::of(&new), Upload::of(&older));
        assert_eq!(new.part_check(PartCheck::Crc32c), PartCheck::Crc32c);
        assert_eq!(older.part_check(PartCheck::Crc32c), PartCheck::Md5);
        assert_eq!(older.part_check(PartCheck::Md5), PartCheck::Md5);
        assert_eq!(older.part_check(PartCheck::None), PartCheck::None);
        // Created with CRC-32C, its parts need theirs whatever is set now.
        assert_eq!(new.part_check(PartCheck::None), PartCheck::Crc32c);
    }
}
