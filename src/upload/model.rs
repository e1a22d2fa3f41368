//! Domain types of an upload: its id, its record, its state and its parts.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An upload's id: 128 random bits as 32 lowercase hex digits.
///
/// It is the last path segment of the upload URL and part of the object key,
/// so [`UploadId::parse`] accepts nothing else: no path traversal, no
/// surprises in Redis keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UploadId(String);

impl UploadId {
    /// A fresh random id.
    pub fn random() -> Self {
        let bits: u128 = rand::random();
        Self(format!("{bits:032x}"))
    }

    /// Parses an id from a URL segment; `None` if it is not one of ours.
    pub fn parse(text: &str) -> Option<Self> {
        (text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| Self(text.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for UploadId {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or_else(|| format!("not an upload id: {value:?}"))
    }
}

impl From<UploadId> for String {
    fn from(id: UploadId) -> Self {
        id.0
    }
}

/// Where an upload is in its life (decisions.md 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UploadState {
    /// Accepting bytes.
    Receiving,
    /// Every byte is durable; CompleteMultipartUpload has been started and may
    /// need retrying.
    Completing,
    /// The object exists in the store.
    Completed,
}

impl UploadState {
    /// The name stored in Redis.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receiving => "receiving",
            Self::Completing => "completing",
            Self::Completed => "completed",
        }
    }

    /// Parses a stored name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "receiving" => Some(Self::Receiving),
            "completing" => Some(Self::Completing),
            "completed" => Some(Self::Completed),
            _ => None,
        }
    }
}

/// An upload's part in the concatenation extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concat {
    /// `Upload-Concat: partial`: uploaded as usual, waiting to be used.
    Partial,
    /// `Upload-Concat: final;...`: assembled server-side from `partials`.
    Final {
        /// The header exactly as the client sent it, echoed by HEAD.
        header: String,
        partials: Vec<UploadId>,
    },
}

/// The record of one upload, as kept by the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadInfo {
    pub id: UploadId,
    /// `Upload-Length`, or `None` while the length is deferred.
    pub length: Option<u64>,
    /// The largest length a deferred upload may declare: the part grid and
    /// `--max-size` both bound it.
    pub max_length: u64,
    /// Bytes acknowledged so far: all durable, in S3 parts or in the tail.
    pub offset: u64,
    /// The part size `P`, fixed at creation.
    pub part_size: u64,
    /// The `Upload-Metadata` header exactly as the client sent it.
    pub metadata: Option<String>,
    /// Content-Type given to the stored object.
    pub content_type: Option<String>,
    /// Object key in the bucket: `<prefix><id>`.
    pub object_key: String,
    /// The store's multipart upload id; `None` when no multipart upload is
    /// needed (an empty upload).
    pub multipart_id: Option<String>,
    pub state: UploadState,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Its part in a concatenation, if any.
    #[serde(default)]
    pub concat: Option<Concat>,
    /// When it expires, seconds since the Unix epoch; `None` never.
    #[serde(default)]
    pub expires_at: Option<u64>,
}

impl UploadInfo {
    /// Whether every byte of a known length has been acknowledged.
    pub fn all_bytes_received(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Whether this is the final upload of a concatenation.
    pub fn is_final(&self) -> bool {
        matches!(self.concat, Some(Concat::Final { .. }))
    }

    /// Whether it has expired at `now` (seconds since the Unix epoch).
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The `Upload-Concat` value HEAD echoes.
    pub fn concat_header(&self) -> Option<&str> {
        match &self.concat {
            None => None,
            Some(Concat::Partial) => Some("partial"),
            Some(Concat::Final { header, .. }) => Some(header),
        }
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A part that S3 has acknowledged and the state store has committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub etag: String,
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_hex_and_parse_back() {
        let a = UploadId::random();
        let b = UploadId::random();
        assert_ne!(a, b);
        assert_eq!(UploadId::parse(a.as_str()), Some(a));
    }

    #[test]
    fn ids_refuse_anything_else() {
        for bad in [
            "",
            "../../etc/passwd",
            "0123456789abcdef0123456789abcdeF",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef/123456789abcdef",
        ] {
            assert_eq!(UploadId::parse(bad), None, "{bad}");
        }
    }
}
