//! The HTTP surface: an axum [`Router`] speaking tus 1.0.0.
//!
//! Two routes: the collection (`<base>`, OPTIONS and POST) and an upload
//! (`<base><id>`, OPTIONS, HEAD, PATCH, DELETE, GET), plus `/healthz` and
//! `/readyz` (`health`); every request gets an id (`request_id`). Each
//! route dispatches on the *effective* method itself, after applying
//! `X-HTTP-Method-Override`, so the override works without a layer outside
//! the router and the router can be merged into any axum application. Handlers are thin: they parse headers
//! through [`crate::protocol`], call [`crate::upload::UploadService`] and
//! render the result; every refusal becomes a response in [`error`].

mod cors;
mod create;
mod download;
mod draft;
pub mod error;
#[cfg(test)]
mod fuzz;
mod health;
mod linger;
pub(crate) mod location;
mod request_id;
mod resource;

pub use error::{Error, Result};

use crate::protocol::checksum::Checksum;
use crate::protocol::{self, names};
use crate::upload::access::Caller;
use crate::upload::model::UploadInfo;
use crate::upload::{BodyError, BodyStream, TrailerSlot, UploadService, Verify};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::routing::any;
use http_body_util::BodyExt;
use std::sync::Arc;

/// The path of the upload collection unless configured otherwise.
pub const DEFAULT_BASE_PATH: &str = "/files/";

/// How the HTTP layer presents itself.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Path of the upload collection, with a trailing slash, e.g. `/files/`.
    pub base_path: String,
    /// Origins allowed by CORS; empty or `*` allows any.
    pub cors_origins: Vec<String>,
    /// Let browsers send credentials (cookies, HTTP auth): the origin is
    /// echoed from `cors_origins`, which must then list origins.
    pub cors_credentials: bool,
    /// `Location` is a path instead of an absolute URL.
    pub relative_location: bool,
    /// partway's own listener speaks TLS: `Location` URLs are `https`
    /// unless a trusted proxy says otherwise.
    pub https: bool,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            base_path: DEFAULT_BASE_PATH.into(),
            cors_origins: Vec::new(),
            cors_credentials: false,
            relative_location: false,
            https: false,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Shared state of the handlers.
#[derive(Clone)]
pub(crate) struct AppState {
    pub service: Arc<UploadService>,
    pub base_path: Arc<str>,
    pub relative_location: bool,
    pub https: bool,
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
}

/// Builds the tus router for `service`.
pub(crate) fn router(service: Arc<UploadService>, config: &HttpConfig) -> Router {
    let base = config.base_path.trim_end_matches('/');
    let state = AppState {
        service,
        base_path: format!("{base}/").into(),
        relative_location: config.relative_location,
        https: config.https,
        trusted_proxies: config.trusted_proxies.clone().into(),
    };
    let mut router = Router::new()
        .route(&format!("{base}/"), any(create::collection))
        .route(&format!("{base}/{{id}}"), any(resource::upload));
    if !base.is_empty() {
        router = router.route(base, any(create::collection));
    }
    router
        .merge(health::routes())
        .layer(axum::middleware::from_fn(linger::middleware))
        .layer(axum::middleware::map_response(common_headers))
        .layer(axum::middleware::from_fn_with_state(
            cors::Cors::new(&config.cors_origins, config.cors_credentials),
            cors::middleware,
        ))
        // Bodies are streamed and bounded by the upload's length instead.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(request_id::middleware))
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
pub(crate) fn effective_method(request: &Request) -> Result<Method> {
    match request.headers().get(names::METHOD_OVERRIDE) {
        None => Ok(request.method().clone()),
        Some(value) => Method::from_bytes(value.as_bytes())
            .map_err(|_| Error::Malformed("invalid X-HTTP-Method-Override".into())),
    }
}

/// Headers that carry one value: sent twice, the request is ambiguous
/// (RFC 9110 §5.3) and is refused rather than read by its first line.
const SINGLE_VALUED: &[&str] = &[
    names::TUS_RESUMABLE,
    names::UPLOAD_OFFSET,
    names::UPLOAD_LENGTH,
    names::UPLOAD_DEFER_LENGTH,
    names::UPLOAD_METADATA,
    names::UPLOAD_CHECKSUM,
    names::UPLOAD_CONCAT,
    names::METHOD_OVERRIDE,
];

/// The first of `names` the request sends more than once.
fn repeated<'a>(headers: &HeaderMap, names: &[&'a str]) -> Option<&'a str> {
    names
        .iter()
        .copied()
        .find(|name| headers.get_all(*name).iter().nth(1).is_some())
}

/// Refuses a request that repeats a single-valued tus header.
fn check_single_valued(headers: &HeaderMap) -> Result<()> {
    match repeated(headers, SINGLE_VALUED) {
        Some(name) => Err(Error::Malformed(format!("{name} is sent more than once"))),
        None => Ok(()),
    }
}

/// Every tus request but OPTIONS must name the version we speak (412 otherwise).
fn check_version(headers: &HeaderMap) -> Result<()> {
    check_single_valued(headers)?;
    match headers.get(names::TUS_RESUMABLE) {
        Some(v) if protocol::headers::is_supported_version(v.as_bytes()) => Ok(()),
        _ => Err(Error::UnsupportedVersion),
    }
}

/// How the request's body is to be checked: an `Upload-Checksum` header, or
/// one announced as a trailer with `Trailer: Upload-Checksum`.
///
/// # Errors
/// 400 for a malformed header or an unsupported algorithm.
fn verify_from(headers: &HeaderMap) -> Result<Verify> {
    if let Some(raw) = header(headers, names::UPLOAD_CHECKSUM) {
        let checksum = Checksum::parse(raw)?;
        return Ok(Verify::Header(checksum));
    }
    let announced = headers.get_all("trailer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|name| name.trim().eq_ignore_ascii_case(names::UPLOAD_CHECKSUM))
        })
    });
    Ok(if announced {
        Verify::Trailer(TrailerSlot::default())
    } else {
        Verify::None
    })
}

/// The request body as the core's stream type. An `Upload-Checksum` trailer
/// is put in the slot of `verify`, if it expects one.
fn body_stream(request: Request, verify: &Verify) -> BodyStream {
    let slot = match verify {
        Verify::Trailer(slot) => Some(slot.clone()),
        _ => None,
    };
    let body = request.into_body();
    Box::pin(futures_util::stream::unfold(
        (body, slot),
        |(mut body, slot)| async move {
            loop {
                let frame = match body.frame().await? {
                    Ok(frame) => frame,
                    Err(e) => return Some((Err(BodyError(e.to_string())), (body, slot))),
                };
                let frame = match frame.into_data() {
                    Ok(data) => return Some((Ok(data), (body, slot))),
                    Err(frame) => frame,
                };
                if let (Ok(trailers), Some(slot)) = (frame.into_trailers(), &slot)
                    && let Some(value) = trailers.get(names::UPLOAD_CHECKSUM)
                    && let Ok(mut slot) = slot.lock()
                {
                    *slot = Some(Checksum::parse(value.as_bytes()));
                }
            }
        },
    ))
}

/// The request as the core's authorizer sees it: its headers, the method
/// it means (after `X-HTTP-Method-Override`), its target as the client sent
/// it, and its peer.
fn caller_of(request: &Request, method: &Method) -> Caller {
    let uri = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or(request.uri(), |original| &original.0);
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    Caller::new(request.headers().clone(), method.as_str(), target, peer)
}

/// `Upload-Expires` for an upload that will expire (RFC 9110 date).
fn expires_header(headers: &mut HeaderMap, info: &UploadInfo) {
    let Some(at) = info.expires_at else {
        return;
    };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(at);
    if let Ok(value) = HeaderValue::from_str(&httpdate::fmt_http_date(when)) {
        headers.insert(names::UPLOAD_EXPIRES, value);
    }
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
