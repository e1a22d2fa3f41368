//! One upload's URL: OPTIONS, HEAD (status), PATCH (append), DELETE
//! (termination) and GET (download of a finished upload).

use super::create::options;
use super::{
    AppState, body_stream, caller_of, check_version, content_length, effective_method,
    expires_header, is_offset_stream, u64_header, verify_from,
};
use super::{Error, Result};
use crate::protocol::names;
use crate::upload::access::Caller;
use crate::upload::model::{UploadId, UploadInfo, UploadState};
use crate::upload::{self, AppendRequest};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header as h};
use axum::response::{IntoResponse, Response};

/// Dispatches a request on an upload URL.
pub(crate) async fn upload(
    State(app): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let draft = match super::draft::Interop::of(request.headers()) {
        Ok(draft) => draft,
        Err(problem) => return problem.into_response(),
    };
    let result = async {
        let method = effective_method(&request)?;
        if method == Method::OPTIONS {
            return Ok(super::draft::echo(options(&app), draft));
        }
        if let Some(v) = draft
            && method != Method::GET
        {
            return Ok(super::draft::upload(app.clone(), &id, request, v, method).await);
        }
        let caller = caller_of(&request, &method);
        if method == Method::GET {
            // A plain download: browsers and curl send no Tus-Resumable.
            let id = UploadId::parse(&id).ok_or(upload::Error::NotFound)?;
            return super::download::get(&app, &caller, &id, request.headers()).await;
        }
        check_version(request.headers())?;
        // Anything that is not one of our ids cannot name an upload.
        let id = UploadId::parse(&id).ok_or(upload::Error::NotFound)?;
        match method {
            Method::HEAD => head(&app, &caller, &id).await,
            Method::PATCH => patch(&app, &caller, &id, request).await,
            Method::DELETE => {
                app.service.terminate(&caller, &id).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(Error::MethodNotAllowed),
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// HEAD: offset, length and metadata, never cached.
async fn head(app: &AppState, caller: &Caller, id: &UploadId) -> Result<Response> {
    let info = app.service.head(caller, id).await?;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    headers.insert(h::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // A final upload has no offset until it is assembled.
    if !info.is_final() || info.state == UploadState::Completed {
        headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
    }
    if let Some(concat) = info.concat_header()
        && let Ok(value) = HeaderValue::from_str(concat)
    {
        headers.insert(names::UPLOAD_CONCAT, value);
    }
    expires_header(headers, &info);
    match info.length {
        Some(length) => headers.insert(names::UPLOAD_LENGTH, HeaderValue::from(length)),
        None => headers.insert(names::UPLOAD_DEFER_LENGTH, HeaderValue::from_static("1")),
    };
    if let Some(metadata) = info.metadata.as_deref().filter(|m| !m.is_empty())
        && let Ok(value) = HeaderValue::from_bytes(metadata.as_bytes())
    {
        headers.insert(names::UPLOAD_METADATA, value);
    }
    Ok(response)
}

/// PATCH: appends the body at `Upload-Offset`.
async fn patch(
    app: &AppState,
    caller: &Caller,
    id: &UploadId,
    request: Request,
) -> Result<Response> {
    let headers = request.headers();
    if !is_offset_stream(headers) {
        return Err(Error::UnsupportedMediaType);
    }
    let offset = u64_header(headers, names::UPLOAD_OFFSET, "Upload-Offset")?
        .ok_or_else(|| Error::Malformed("Upload-Offset is required".into()))?;
    let declared_length = u64_header(headers, names::UPLOAD_LENGTH, "Upload-Length")?;
    let content_length = content_length(headers)?;
    let verify = verify_from(headers)?;
    let body = body_stream(request, &verify);
    let info = app
        .service
        .append(
            caller,
            id,
            AppendRequest {
                offset,
                declared_length,
                content_length,
                body,
                verify,
            },
        )
        .await?;
    Ok(patched(&info))
}

fn patched(info: &UploadInfo) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
    expires_header(headers, info);
    response
}
