//! CORS for browser clients (tus-js-client, Uppy).
//!
//! Browsers can only read response headers that are exposed, and a tus client
//! that cannot read `Location` or `Upload-Offset` fails in confusing ways, so
//! every tus header is exposed. Only a real preflight (OPTIONS with `Origin`
//! and `Access-Control-Request-Method`) is answered here; a plain OPTIONS is
//! tus discovery and reaches the tus handler, which general-purpose CORS
//! layers get wrong by answering every OPTIONS themselves.

use crate::protocol::names;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header as h};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Request headers a tus client sends.
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
    names::INTEROP_VERSION,
    names::UPLOAD_COMPLETE,
    names::UPLOAD_INCOMPLETE,
    "content-disposition",
];

/// Response headers a tus client must be able to read.
const EXPOSED: &[&str] = &[
    "location",
    names::INTEROP_VERSION,
    names::UPLOAD_COMPLETE,
    names::UPLOAD_INCOMPLETE,
    names::UPLOAD_LIMIT,
    "upload-draft-interop-versions",
    "accept-patch",
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
    "content-range",
    "accept-ranges",
    "content-disposition",
    "etag",
    // Why a token was refused, for the application's own retry logic.
    "www-authenticate",
    "retry-after",
    "x-request-id",
];

const METHODS: &str = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";

/// Which origins may call partway from a browser.
#[derive(Debug, Clone)]
pub(super) struct Cors {
    any: bool,
    credentials: bool,
    origins: Arc<[HeaderValue]>,
    allowed: HeaderValue,
    exposed: HeaderValue,
}

/// A comma-separated header value from header names.
fn list(names: &[&str]) -> HeaderValue {
    HeaderValue::from_str(&names.join(", ")).unwrap_or_else(|_| HeaderValue::from_static(""))
}

impl Cors {
    /// Allows `origins`; any origin when the list is empty or holds `*`.
    /// With `credentials`, the origin is always echoed, never `*` (the
    /// configuration refuses `*` with credentials).
    pub(super) fn new(origins: &[String], credentials: bool) -> Self {
        Self {
            any: origins.is_empty() || origins.iter().any(|o| o == "*"),
            credentials,
            origins: origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
                .collect(),
            allowed: list(ALLOWED),
            exposed: list(EXPOSED),
        }
    }

    fn allows(&self, origin: &HeaderValue) -> bool {
        self.any || self.origins.iter().any(|o| o == origin)
    }

    /// An echoed origin makes responses differ by Origin; caches must know,
    /// whether or not this request had one.
    fn vary(&self, headers: &mut HeaderMap) {
        if !self.any || self.credentials {
            headers.append(h::VARY, HeaderValue::from_static("origin"));
        }
    }

    fn decorate(&self, origin: &HeaderValue, headers: &mut HeaderMap) {
        if self.credentials {
            headers.insert(
                h::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        if self.any && !self.credentials {
            headers.insert(
                h::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else {
            headers.insert(h::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            self.vary(headers);
        }
        headers.insert(h::ACCESS_CONTROL_EXPOSE_HEADERS, self.exposed.clone());
    }
}

/// Answers preflights and adds CORS headers to responses for allowed origins.
pub(super) async fn middleware(State(cors): State<Cors>, request: Request, next: Next) -> Response {
    let Some(origin) = request.headers().get(h::ORIGIN).cloned() else {
        let mut response = next.run(request).await;
        cors.vary(response.headers_mut());
        return response;
    };
    if !cors.allows(&origin) {
        // No CORS headers: the browser refuses the response.
        let mut response = next.run(request).await;
        cors.vary(response.headers_mut());
        return response;
    }
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(h::ACCESS_CONTROL_REQUEST_METHOD);
    if !preflight {
        let mut response = next.run(request).await;
        cors.decorate(&origin, response.headers_mut());
        return response;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    cors.decorate(&origin, headers);
    headers.insert(
        h::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(METHODS),
    );
    // Allow what the page asks for (its origin is allowed), else the tus set.
    let requested = request
        .headers()
        .get(h::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned()
        .unwrap_or_else(|| cors.allowed.clone());
    headers.insert(h::ACCESS_CONTROL_ALLOW_HEADERS, requested);
    headers.insert(h::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(86_400));
    headers.append(
        h::VARY,
        HeaderValue::from_static("access-control-request-headers"),
    );
    response
}
