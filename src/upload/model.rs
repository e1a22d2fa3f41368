//! Domain types of an upload: its id, its record, its state and its parts,
//! and the names the stores give things (object key, multipart upload id,
//! ETag, part number, lock token), each its own type so none is mistaken
//! for another and a part number is checked once, where it is made.

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

    /// Parses an id from a URL segment; `None` if it cannot be one.
    ///
    /// partway makes ids of 32 hex digits; an application's pre-create hook
    /// may choose others, if they are safe as a path segment, a file name
    /// and a Redis hash tag: 1 to 128 of `A-Z a-z 0-9 . _ ~ -`, not
    /// starting with a dot.
    pub fn parse(text: &str) -> Option<Self> {
        let safe = (1..=128).contains(&text.len())
            && !text.starts_with('.')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
        safe.then(|| Self(text.to_owned()))
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

/// Declares a newtype over `String` that stores and prints as its text.
macro_rules! text_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a value the store or the core produced.
            pub fn new(text: impl Into<String>) -> Self {
                Self(text.into())
            }

            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// Where an upload's object lives in the bucket: `<prefix><upload id>`.
    ObjectKey
);
text_type!(
    /// The object store's id of a multipart upload.
    MultipartId
);
text_type!(
    /// The ETag the object store gave a part, quoted as it sent it.
    ETag
);
text_type!(
    /// The owner token of a held lock; every commit presents it.
    LockToken
);

impl LockToken {
    /// A fresh random token.
    pub fn random() -> Self {
        Self(format!("{:032x}", rand::random::<u128>()))
    }
}

/// A part number of a multipart upload: 1..=10000, as S3 allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct PartNumber(u16);

impl PartNumber {
    /// The largest part number S3 allows.
    pub const MAX: u32 = 10_000;

    /// `n` if it is a valid part number.
    pub fn new(n: u32) -> Option<Self> {
        (1..=Self::MAX)
            .contains(&n)
            .then(|| Self(u16::try_from(n).unwrap_or(u16::MAX)))
    }

    /// The number of the part at `index` (0-based) of a part list.
    pub fn at_index(index: usize) -> Option<Self> {
        u32::try_from(index)
            .ok()?
            .checked_add(1)
            .and_then(Self::new)
    }

    /// The number as an integer.
    pub fn get(self) -> u32 {
        u32::from(self.0)
    }
}

impl fmt::Display for PartNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<u32> for PartNumber {
    type Error = String;
    fn try_from(n: u32) -> Result<Self, Self::Error> {
        Self::new(n).ok_or_else(|| format!("part number {n} is outside 1..=10000"))
    }
}

impl From<PartNumber> for u32 {
    fn from(n: PartNumber) -> Self {
        n.get()
    }
}

/// Where an upload is in its life: receiving → completing → completed.
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
    pub object_key: ObjectKey,
    /// The store's multipart upload id; `None` when no multipart upload is
    /// needed (an empty upload).
    pub multipart_id: Option<MultipartId>,
    pub state: UploadState,
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Its part in a concatenation, if any.
    #[serde(default)]
    pub concat: Option<Concat>,
    /// When it expires, seconds since the Unix epoch; `None` never.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// The subject that created it; only it (or an admin) may act on it.
    /// `None` when it was created without an identified caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

impl UploadInfo {
    /// Whether every byte of a known length has been acknowledged.
    pub fn all_bytes_received(&self) -> bool {
        self.length == Some(self.offset)
    }

    /// Whether nothing more is to arrive but the object is not assembled
    /// yet: every byte is in, or it is a final upload, and it is not
    /// completed.
    pub fn awaits_its_object(&self) -> bool {
        self.state != UploadState::Completed && (self.all_bytes_received() || self.is_final())
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

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A part that S3 has acknowledged and the state store has committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: PartNumber,
    pub etag: ETag,
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
    fn ids_are_safe_path_segments_and_nothing_else() {
        for good in ["tenant-7.5b0f8a2c", "a", "A_b~c-d.e", &"x".repeat(128)] {
            assert!(UploadId::parse(good).is_some(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "../../etc/passwd",
            "0123456789abcdef/123456789abcdef",
            "a{b}",
            "a b",
            "a%2F",
            "tenant:7",
            &"x".repeat(129),
        ] {
            assert_eq!(UploadId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn part_numbers_are_checked_once() {
        assert_eq!(PartNumber::new(0), None);
        assert_eq!(PartNumber::new(10_001), None);
        assert_eq!(PartNumber::new(10_000).map(PartNumber::get), Some(10_000));
        assert_eq!(PartNumber::at_index(0).map(PartNumber::get), Some(1));
        assert_eq!(PartNumber::at_index(10_000), None);
        let json = serde_json::to_string(&PartNumber::new(7)).expect("json");
        assert_eq!(json, "7");
        assert!(serde_json::from_str::<PartNumber>("0").is_err());
    }
}
