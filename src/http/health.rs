//! Health for load balancers and orchestrators, outside authorization:
//! `/healthz` answers while the process serves; `/readyz` answers 200 only
//! when the stores answer in time and partway is not draining, else 503.
//! The cause goes to the log, not to the caller.

use super::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::time::Duration;

/// How long each store gets to answer a readiness check.
const READY_WITHIN: Duration = Duration::from_secs(2);

/// `/healthz` and `/readyz`.
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/readyz", get(ready))
}

async fn ready(State(app): State<AppState>) -> (StatusCode, &'static str) {
    match app.service.readiness(READY_WITHIN).await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, cause = ?e, "not ready");
            (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
        }
    }
}
