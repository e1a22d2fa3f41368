//! partway: a tus 1.0 resumable-upload server that streams every upload
//! straight into an S3 multipart upload and keeps upload state in Redis.
//!
//! Clients speak tus to partway; partway authorizes each request, signs every
//! S3 call itself, cuts the byte stream into parts on a fixed grid, resumes
//! from the last acknowledged byte after any failure and finishes with
//! CompleteMultipartUpload. No presigned URL ever reaches a client.
//!
//! # Layout
//! - [`protocol`]: the tus wire format (headers, metadata); pure.
//! - [`upload`]: the core. [`upload::plan`] is the pure part-grid arithmetic,
//!   [`upload::UploadService`] creates, appends, finishes and terminates
//!   uploads through the traits in [`store`].
//! - [`store`]: the seams ([`store::ObjectStore`], [`store::StateStore`],
//!   [`store::Locker`]) and their adapters: S3, Redis, the Redis lock, and
//!   the embedded local-directory default.
//! - [`http`]: the axum router; [`error`]: the one error type and its statuses.
//! - [`config`], [`app`], [`server`]: flags, assembly and serving.
//!
//! # Embedding
//! [`Partway::router`] returns an axum `Router` that can be merged into an
//! existing application; see `examples/embed.rs`.

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod protocol;
pub mod server;
pub mod store;
pub mod upload;

pub use app::Partway;
pub use config::{Config, Settings};
pub use error::Error;
