//! A lingering read: an answer that comes before its request body is
//! read (a PATCH taken over by another request, a 409, a refusal) would be
//! lost on HTTP/1.1, because a server that closes a connection with unread
//! bytes makes the kernel reset it, and the client, still sending, sees a
//! broken pipe instead of the status. So, on HTTP/1.x, the rest of the body
//! is read and dropped, within bounds, before the answer goes out.
//!
//! Not when the client waits for `100 Continue` and nothing read the body:
//! that client has sent nothing, and reading would ask it to.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, Version, header};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// At most this much of a body is read after its answer is decided.
const DRAIN_BYTES: usize = 64 << 20;
/// And for at most this long...
const DRAIN_FOR: Duration = Duration::from_secs(10);
/// ...and only while the client sends: a client that stalls gets its
/// answer after this.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// The request body, shared between the handler and the drain.
#[derive(Clone, Default)]
struct Shared {
    body: Arc<Mutex<Option<Body>>>,
    polled: Arc<AtomicBool>,
}

/// The handler's view of the shared body.
struct Reader(Shared);

impl HttpBody for Reader {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.polled.store(true, Ordering::Relaxed);
        let Ok(mut slot) = self.0.body.lock() else {
            return Poll::Ready(None);
        };
        match slot.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}

/// Serves `request`, then reads what is left of its body (within bounds)
/// before the answer goes out, on HTTP/1.x POST and PATCH.
pub(crate) async fn middleware(request: Request, next: Next) -> Response {
    let lingers = request.version() < Version::HTTP_2
        && (request.method() == Method::PATCH || request.method() == Method::POST);
    if !lingers {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let shared = Shared::default();
    if let Ok(mut slot) = shared.body.lock() {
        *slot = Some(body);
    }
    let reader = Body::new(Reader(shared.clone()));
    let response = next.run(Request::from_parts(parts, reader)).await;
    // A client waiting for 100 Continue that was never asked sent nothing.
    if !expects_continue || shared.polled.load(Ordering::Relaxed) {
        drain(&shared).await;
    }
    response
}

/// Reads and drops what is left of the body, up to [`DRAIN_BYTES`], for
/// [`DRAIN_FOR`], while a frame comes at least every [`DRAIN_IDLE`].
async fn drain(shared: &Shared) {
    let Some(mut body) = shared.body.lock().ok().and_then(|mut slot| slot.take()) else {
        return;
    };
    let mut left = DRAIN_BYTES;
    let reading = async {
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(DRAIN_IDLE, body.frame()).await {
            let len = frame.data_ref().map_or(0, Bytes::len);
            left = left.saturating_sub(len);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_FOR, reading).await;
}
