//! The adapters behind the upload core's ports ([`crate::upload::ports`]),
//! grouped by backend:
//! - [`s3`]: the object store on S3 and S3-compatible servers;
//! - [`redis`]: the state store and the lock on Redis or a Redis Cluster;
//! - [`local`]: the embedded default, everything in one local directory and
//!   an in-process lock.
//!
//! Every state store and object store passes the same contract suite
//! (`contract`, behind the `test-util` feature), run on the embedded store
//! in unit tests and on real Redis and moto in the integration tests.

#[cfg(any(test, feature = "test-util"))]
pub mod contract;
pub mod local;
pub mod redis;
pub mod s3;

/// The name under which a single-use credential's `key` is remembered: a
/// digest, so no credential text reaches a key or a file name.
pub(crate) fn once_name(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
