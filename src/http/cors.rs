//! CORS for browser clients (tus-js-client, Uppy).
//!
//! Browsers can only read response headers that are exposed, and a tus client
//! that cannot read `Location` or `Upload-Offset` fails in confusing ways, so
//! every tus header is exposed. Preflight requests are answered here, before
//! the tus handlers see them.

use crate::protocol::names;
use axum::http::{HeaderName, HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

const ALLOWED: &[&str] = &[
    "authorization",
    "content-type",
    "origin",
    "x-requested-with",
    "x-request-id",
    names::METHOD_OVERRIDE,
    names::TUS_RESUMABLE,
    names::UPLOAD_LENGTH,
    names::UPLOAD_OFFSET,
    names::UPLOAD_METADATA,
    names::UPLOAD_DEFER_LENGTH,
    names::UPLOAD_CONCAT,
    "upload-checksum",
];

const EXPOSED: &[&str] = &[
    "location",
    names::UPLOAD_OFFSET,
    names::UPLOAD_LENGTH,
    names::UPLOAD_METADATA,
    names::UPLOAD_DEFER_LENGTH,
    names::UPLOAD_EXPIRES,
    names::UPLOAD_CONCAT,
    names::TUS_RESUMABLE,
    names::TUS_VERSION,
    names::TUS_EXTENSION,
    names::TUS_MAX_SIZE,
    "tus-checksum-algorithm",
];

/// A CORS layer allowing `origins` (any origin when empty or `*`).
pub(super) fn layer(origins: &[String]) -> CorsLayer {
    let any = origins.is_empty() || origins.iter().any(|o| o == "*");
    let allow_origin = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(
            ALLOWED
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .expose_headers(
            EXPOSED
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(86_400))
}
