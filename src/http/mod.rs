//! The HTTP surface: an axum [`Router`] speaking tus 1.0.0.
//!
//! Two routes: the collection (`<base>`, OPTIONS and POST) and an upload
//! (`<base><id>`, OPTIONS, HEAD, PATCH, DELETE). Each route dispatches on the
//! *effective* method itself, after applying `X-HTTP-Method-Override`, so the
//! override works without a layer outside the router and the router can be
//! merged into any axum application. Handlers are thin: they parse headers
//! through [`crate::protocol`], call [`crate::upload::UploadService`] and
//! render the result; every error goes through [`crate::error::Error`].

mod cors;
mod create;
mod resource;

use crate::error::{Error, Result};
use crate::protocol::{self, names};
use crate::upload::{BodyError, BodyStream, UploadService};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;
use futures_util::TryStreamExt;
use std::sync::Arc;

/// How the HTTP layer presents itself.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Path of the upload collection, with a trailing slash, e.g. `/files/`.
    pub base_path: String,
    /// Origins allowed by CORS; empty or `*` allows any.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_path: "/files/".into(),
            cors_origins: Vec::new(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub service: Arc<UploadService>,
    pub base_path: Arc<str>,
}

/// Builds the tus router for `service`.
pub fn router(service: Arc<UploadService>, config: &HttpConfig) -> Router {
    let base = config.base_path.trim_end_matches('/');
    let state = AppState {
        service,
        base_path: format!("{base}/").into(),
    };
    let mut router = Router::new()
        .route(&format!("{base}/"), any(create::collection))
        .route(&format!("{base}/{{id}}"), any(resource::upload));
    if !base.is_empty() {
        router = router.route(base, any(create::collection));
    }
    router
        .layer(axum::middleware::map_response(common_headers))
        .layer(axum::middleware::from_fn_with_state(
            cors::Cors::new(&config.cors_origins),
            cors::middleware,
        ))
        // Bodies are streamed and bounded by the upload's length instead.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Headers every response carries.
async fn common_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        names::TUS_RESUMABLE,
        HeaderValue::from_static(protocol::TUS_VERSION),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The method the client means: `X-HTTP-Method-Override` wins if present.
fn effective_method(request: &Request) -> Result<Method> {
    match request.headers().get(names::METHOD_OVERRIDE) {
        None => Ok(request.method().clone()),
        Some(value) => Method::from_bytes(value.as_bytes())
            .map_err(|_| Error::BadRequest("invalid X-HTTP-Method-Override".into())),
    }
}

/// Every tus request but OPTIONS must name the version we speak (412 otherwise).
fn check_version(headers: &HeaderMap) -> Result<()> {
    match headers.get(names::TUS_RESUMABLE) {
        Some(v) if protocol::headers::is_supported_version(v.as_bytes()) => Ok(()),
        _ => Err(Error::UnsupportedVersion),
    }
}

/// The request body as the core's stream type.
fn body_stream(request: Request) -> BodyStream {
    Box::pin(
        request
            .into_body()
            .into_data_stream()
            .map_err(|e| BodyError(e.to_string())),
    )
}

/// A header's raw bytes, if present.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers.get(name).map(HeaderValue::as_bytes)
}

/// Parses an optional non-negative integer header.
fn u64_header(headers: &HeaderMap, name: &'static str, label: &'static str) -> Result<Option<u64>> {
    header(headers, name)
        .map(|raw| protocol::headers::parse_u64(label, raw))
        .transpose()
        .map_err(Error::from)
}

/// `Content-Length`, if the body has one.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    u64_header(headers, "content-length", "Content-Length")
}

/// Whether the request body is tus data (`application/offset+octet-stream`).
fn is_offset_stream(headers: &HeaderMap) -> bool {
    header(headers, "content-type")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(protocol::OFFSET_OCTET_STREAM))
}
