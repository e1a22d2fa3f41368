//! Every request gets an id: the client's `X-Request-Id` when it is a
//! sensible token, else a fresh one. It is echoed in the response and is a
//! field of the request's tracing span, with the upload id when the path
//! names one, so every log line about the request carries both.

use crate::protocol::headers::url_last_segment;
use crate::upload::model::UploadId;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

const HEADER: &str = "x-request-id";

/// The client's id if it is 1 to 128 characters of `[A-Za-z0-9._:-]`.
fn given(request: &Request) -> Option<String> {
    let value = request.headers().get(HEADER)?.to_str().ok()?;
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
    (!value.is_empty() && value.len() <= 128 && value.chars().all(fine)).then(|| value.to_owned())
}

/// Runs the request inside a span with its id, and echoes the id.
pub(super) async fn middleware(request: Request, next: Next) -> Response {
    let id = given(&request).unwrap_or_else(|| format!("{:016x}", rand::random::<u64>()));
    let upload = UploadId::parse(url_last_segment(request.uri().path()));
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        upload = tracing::field::Empty,
    );
    if let Some(upload) = upload {
        span.record("upload", tracing::field::display(upload));
    }
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> Request {
        Request::builder()
            .header(HEADER, value)
            .body(axum::body::Body::empty())
            .expect("a request")
    }

    #[test]
    fn only_sensible_ids_are_taken() {
        assert_eq!(
            given(&with("req-42:a.b_c")).as_deref(),
            Some("req-42:a.b_c")
        );
        for bad in ["", "two words", "a\"b", "x{}", &"y".repeat(129)] {
            assert_eq!(given(&with(bad)), None, "{bad:?}");
        }
    }
}
