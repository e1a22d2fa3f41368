//! The upload collection: OPTIONS (discovery) and POST (creation, with
//! `creation-with-upload` and `creation-defer-length`).

use super::{
    AppState, body_stream, check_version, content_length, effective_method, header,
    is_offset_stream, u64_header,
};
use crate::error::{Error, Result};
use crate::protocol::metadata::Metadata;
use crate::protocol::{self, headers as tus, names};
use crate::upload::{AppendRequest, NewUpload};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header as h};
use axum::response::{IntoResponse, Response};

/// Dispatches a request on the collection URL.
pub(crate) async fn collection(State(app): State<AppState>, request: Request) -> Response {
    let result = match effective_method(&request) {
        Ok(Method::OPTIONS) => Ok(options(&app)),
        Ok(Method::POST) => create(app, request).await,
        Ok(_) => Err(Error::MethodNotAllowed),
        Err(e) => Err(e),
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// OPTIONS: what this server supports. No `Tus-Resumable` needed.
pub(crate) fn options(app: &AppState) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        names::TUS_VERSION,
        HeaderValue::from_static(protocol::TUS_VERSION),
    );
    if let Ok(v) = HeaderValue::from_str(&protocol::EXTENSIONS.join(",")) {
        headers.insert(names::TUS_EXTENSION, v);
    }
    headers.insert(
        names::TUS_MAX_SIZE,
        HeaderValue::from(app.service.limits().max_size),
    );
    response
}

/// Reads `Upload-Length` / `Upload-Defer-Length`; exactly one must be there.
fn requested_length(headers: &HeaderMap) -> Result<Option<u64>> {
    let length = u64_header(headers, names::UPLOAD_LENGTH, "Upload-Length")?;
    let deferred = header(headers, names::UPLOAD_DEFER_LENGTH)
        .map(tus::parse_defer_length)
        .transpose()?
        .is_some();
    match (length, deferred) {
        (Some(_), true) => Err(Error::BadRequest(
            "send Upload-Length or Upload-Defer-Length, not both".into(),
        )),
        (None, false) => Err(Error::BadRequest(
            "Upload-Length or Upload-Defer-Length: 1 is required".into(),
        )),
        (length, _) => Ok(length),
    }
}

/// POST: creates an upload, taking its first bytes if the body carries any.
async fn create(app: AppState, request: Request) -> Result<Response> {
    let headers = request.headers();
    check_version(headers)?;
    if headers.contains_key(names::UPLOAD_CONCAT) {
        return Err(Error::BadRequest(
            "Upload-Concat: the concatenation extension is not enabled".into(),
        ));
    }
    let length = requested_length(headers)?;
    let metadata = header(headers, names::UPLOAD_METADATA)
        .map(Metadata::parse)
        .transpose()?;
    let body_len = content_length(headers)?;
    let with_upload = is_offset_stream(headers);
    if !with_upload && body_len.is_some_and(|l| l > 0) {
        return Err(Error::UnsupportedMediaType);
    }
    if let (Some(sent), Some(length)) = (body_len, length)
        && sent > length
    {
        return Err(Error::TooLarge(format!(
            "body of {sent} bytes exceeds Upload-Length {length}"
        )));
    }
    let location = location(&app, headers);
    let info = app.service.create(NewUpload { length, metadata }).await?;
    let location = format!("{location}{}", info.id);
    let mut offset = None;
    if with_upload && body_len != Some(0) {
        let append = AppendRequest {
            offset: 0,
            declared_length: None,
            content_length: body_len,
            body: body_stream(request),
        };
        offset = Some(match app.service.append(&info.id, append).await {
            Ok(after) => after.offset,
            Err(e) => {
                // The upload exists: tell the client where, and how far it got.
                tracing::warn!(upload = %info.id, error = %e, "creation-with-upload stopped early");
                app.service.head(&info.id).await.map_or(0, |i| i.offset)
            }
        });
    }
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    out.insert(
        h::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| Error::Internal("unrepresentable Location".into()))?,
    );
    if let Some(offset) = offset {
        out.insert(names::UPLOAD_OFFSET, HeaderValue::from(offset));
    }
    Ok(response)
}

/// The absolute URL of the collection, from the request's authority.
///
/// Falls back to a path (a relative Location, which every tus client
/// resolves) when the request names no usable host.
fn location(app: &AppState, headers: &HeaderMap) -> String {
    let host = headers
        .get(h::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
        });
    match host {
        Some(host) => format!("http://{host}{}", app.base_path),
        None => app.base_path.to_string(),
    }
}
