//! partway: a tus 1.0 resumable-upload server that streams every upload
//! straight into an S3 multipart upload and keeps upload state in Redis.
//!
//! Clients speak tus to partway; partway authorizes each request, signs every
//! S3 call itself, cuts the byte stream into parts on a fixed grid, resumes
//! from the last acknowledged byte after any failure and finishes with
//! CompleteMultipartUpload. No presigned URL ever reaches a client.
//!
//! # Layout
//! Dependencies run one way: `protocol ← upload ← {store, auth, hook, http} ← app`.
//! - [`protocol`]: the tus wire format (headers, metadata, checksums); pure.
//! - [`upload`]: the core. It owns its ports ([`upload::ports`]), its domain
//!   types ([`upload::model`]) and its errors, named by cause
//!   ([`upload::Error`]); [`upload::plan`] is the pure part-grid arithmetic;
//!   [`upload::UploadService`] creates, appends, finishes and terminates.
//! - [`store`]: the adapters behind the ports, by backend: S3, Redis, and
//!   the embedded local-directory default.
//! - [`auth`]: the built-in authorizers behind the core's
//!   [`upload::access::Authorizer`] port: JWT bearer tokens and the
//!   application's `pre-access` hook, spoken through [`hook`].
//! - [`http`]: the axum router, and the one place refusals become statuses.
//! - [`config`], [`app`]: flags typed at the edge, assembly and serving.
//!
//! # Embedding
//! [`Partway::builder`] configures partway in code, and
//! [`Partway::serve`] runs it with the embedding application's own routes
//! beside it; [`Partway::router`] gives the tus router alone, to merge into
//! an application served some other way. See `examples/embed.rs`.

pub mod app;
pub mod auth;
pub mod config;
pub mod hook;
pub mod http;
pub mod metrics;
pub mod protocol;
mod server;
pub mod store;
pub mod tls;
pub mod upload;

pub use app::{Builder, Partway, StartError};
pub use config::{Config, Settings};
pub use server::shutdown_signal;
