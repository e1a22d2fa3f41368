//! The HTTP side of the metrics: a layer that counts requests by method
//! and refusals by status and code (and authorization refusals by reason),
//! and the `/metrics` route.

use super::Metrics;
use crate::http::effective_method;
use crate::http::error::ErrorCode;
use crate::upload::UploadService;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

/// Counts every request, and every answer of 400 or more.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = effective_method(&request).unwrap_or_else(|_| request.method().clone());
    metrics.request(method.as_str());
    let response = next.run(request).await;
    let status = response.status();
    if status.as_u16() >= 400 {
        let code = response.extensions().get::<ErrorCode>().map_or("", |c| c.0);
        metrics.error(status.as_u16(), code);
        if let Some(reason) = auth_reason(code) {
            metrics.auth_refusal(reason);
        }
    }
    response
}

/// The authorization refusal an error code stands for, if it is one.
fn auth_reason(code: &str) -> Option<&'static str> {
    match code {
        "ERR_TOKEN_MISSING" => Some("missing_token"),
        "ERR_TOKEN_INVALID" => Some("invalid_token"),
        "ERR_ACCESS_DENIED" => Some("forbidden"),
        "ERR_ACCESS_REJECTED" => Some("hook_rejected"),
        "ERR_ACCESS_UNAVAILABLE" => Some("hook_unavailable"),
        _ => None,
    }
}

/// `GET /metrics`, the registry as Prometheus text.
pub fn routes(metrics: Arc<Metrics>, service: Arc<UploadService>) -> Router {
    let scrape = move || {
        let text = metrics.render(&service);
        async move {
            let mut response = text.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
    };
    Router::new().route("/metrics", get(scrape))
}
