//! The tus 1.0.0 wire format: header names, constants and pure parsers,
//! and the structured fields of the resumable-upload draft ([`sf`]).
//!
//! Nothing here does I/O or knows about storage; the HTTP layer parses every
//! incoming header through this module once, at the edge, and the core only
//! sees typed values.

pub mod checksum;
pub mod headers;
pub mod metadata;
pub mod sf;

/// The only protocol version partway speaks.
pub const TUS_VERSION: &str = "1.0.0";

/// Content type every PATCH (and a POST with a body) must carry.
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";

/// Extensions partway implements, as advertised in `Tus-Extension`.
pub const EXTENSIONS: &[&str] = &[
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "termination",
    "expiration",
    "checksum",
    "checksum-trailer",
    "concatenation",
];

/// Header names, lower-case as `http` wants them.
pub mod names {
    pub const TUS_RESUMABLE: &str = "tus-resumable";
    pub const TUS_VERSION: &str = "tus-version";
    pub const TUS_EXTENSION: &str = "tus-extension";
    pub const TUS_MAX_SIZE: &str = "tus-max-size";
    pub const UPLOAD_OFFSET: &str = "upload-offset";
    pub const UPLOAD_LENGTH: &str = "upload-length";
    pub const UPLOAD_DEFER_LENGTH: &str = "upload-defer-length";
    pub const UPLOAD_METADATA: &str = "upload-metadata";
    pub const UPLOAD_EXPIRES: &str = "upload-expires";
    pub const UPLOAD_CONCAT: &str = "upload-concat";
    pub const UPLOAD_CHECKSUM: &str = "upload-checksum";
    pub const TUS_CHECKSUM_ALGORITHM: &str = "tus-checksum-algorithm";
    pub const METHOD_OVERRIDE: &str = "x-http-method-override";
    // The resumable-upload draft's.
    pub const INTEROP_VERSION: &str = "upload-draft-interop-version";
    pub const UPLOAD_COMPLETE: &str = "upload-complete";
    pub const UPLOAD_INCOMPLETE: &str = "upload-incomplete";
    pub const UPLOAD_LIMIT: &str = "upload-limit";
}
