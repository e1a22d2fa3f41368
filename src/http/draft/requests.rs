//! The draft's requests, each mapped onto the core's operations: creation
//! (POST to the collection, with or without content), append (PATCH),
//! offset retrieval (HEAD), cancellation (DELETE). Authorization, hooks,
//! limits and expiry are the core's, as for tus.

use super::problem::Problem;
use super::{Interop, Limits};
use crate::http::location::collection_url;
use crate::http::{AppState, body_stream, caller_of, content_length};
use crate::protocol::checksum::{Algorithm, Checksum};
use crate::protocol::metadata::Metadata;
use crate::protocol::{names, sf};
use crate::upload::access::Caller;
use crate::upload::model::{UploadId, UploadInfo, UploadState};
use crate::upload::{self, AppendRequest, BodyStream, NewUpload, Verify};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header as h};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

type Result<T> = std::result::Result<T, Problem>;

/// The media type of an append's content (from -04).
const PARTIAL_UPLOAD: &str = "application/partial-upload";

/// A draft request on the collection: creation (POST).
pub(crate) async fn collection(
    app: AppState,
    request: Request,
    v: Interop,
    method: Method,
) -> Response {
    let result = match method {
        Method::POST => create(&app, request, v).await,
        _ => Err(crate::http::Error::MethodNotAllowed.into()),
    };
    finish(&app, result, v)
}

/// The response, with the server's limits on a 413 the limits caused.
fn finish(app: &AppState, result: Result<Response>, v: Interop) -> Response {
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    let headers = response.headers_mut();
    headers.insert(names::INTEROP_VERSION, HeaderValue::from(v.0));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let limits = Limits {
            max_size: app.service.limits().max_size,
            max_age: None,
        };
        limits.insert(v, response.headers_mut());
    }
    response
}

/// A draft request on an upload: HEAD, PATCH or DELETE.
pub(crate) async fn upload(
    app: AppState,
    id: &str,
    request: Request,
    v: Interop,
    method: Method,
) -> Response {
    let result = async {
        let id = UploadId::parse(id).ok_or(upload::Error::NotFound)?;
        let caller = caller_of(&request, &method);
        match method {
            Method::HEAD => head(&app, &caller, &id, request.headers(), v).await,
            Method::PATCH => append(&app, &caller, &id, request, v).await,
            Method::DELETE => {
                refuse_upload_fields(request.headers(), v)?;
                app.service.terminate(&caller, &id).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(crate::http::Error::MethodNotAllowed.into()),
        }
    }
    .await;
    finish(&app, result, v)
}

/// `Upload-Offset` and `Upload-Length`, strictly parsed, if present.
fn integer(headers: &HeaderMap, name: &'static str, label: &'static str) -> Result<Option<u64>> {
    headers
        .get(name)
        .map(|raw| sf::non_negative_integer(label, raw.as_bytes()))
        .transpose()
        .map_err(|e| Problem::malformed(e.to_string()))
}

/// HEAD and DELETE carry neither an offset nor a completeness.
fn refuse_upload_fields(headers: &HeaderMap, v: Interop) -> Result<()> {
    let completeness = if v.inverted() {
        names::UPLOAD_INCOMPLETE
    } else {
        names::UPLOAD_COMPLETE
    };
    match [names::UPLOAD_OFFSET, completeness]
        .iter()
        .find(|n| headers.contains_key(**n))
    {
        Some(name) => Err(Problem::malformed(format!("{name} is not allowed here"))),
        None => Ok(()),
    }
}

/// The metadata of a creation: tus's `Upload-Metadata` if sent (tus-js-client
/// sends it in its draft modes), else `Content-Type` as `filetype` and
/// `Content-Disposition`'s filename as `filename`.
fn creation_metadata(headers: &HeaderMap) -> Result<Option<Metadata>> {
    if let Some(raw) = headers.get(names::UPLOAD_METADATA) {
        return Metadata::parse(raw.as_bytes())
            .map(Some)
            .map_err(|e| Problem::malformed(e.to_string()));
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let filetype = text(h::CONTENT_TYPE).filter(|t| {
        let essence = t.split(';').next().unwrap_or("").trim();
        !essence.eq_ignore_ascii_case(PARTIAL_UPLOAD)
    });
    let filename = text(h::CONTENT_DISPOSITION).and_then(disposition_filename);
    let pairs: Vec<(&str, Option<&[u8]>)> =
        [("filetype", filetype), ("filename", filename.as_deref())]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, Some(v.as_bytes()))))
            .collect();
    if pairs.is_empty() {
        return Ok(None);
    }
    Metadata::parse(Metadata::encode(pairs).as_bytes())
        .map(Some)
        .map_err(|e| Problem::malformed(e.to_string()))
}

/// The `filename` parameter of a `Content-Disposition`, quoted or not.
fn disposition_filename(value: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("filename")
            .then(|| value.trim().trim_matches('"').to_owned())
            .filter(|name| !name.is_empty())
    })
}

/// The length a request declares: `Upload-Length`, or, when it completes
/// the upload, its offset plus its content. Both must agree.
fn declared_length(headers: &HeaderMap, offset: u64, complete: bool) -> Result<Option<u64>> {
    let stated = integer(headers, names::UPLOAD_LENGTH, "Upload-Length")?;
    let content = content_length(headers)?;
    let implied = content.filter(|_| complete).map(|c| offset + c);
    match (stated, implied) {
        (Some(s), Some(i)) if s != i => Err(Problem::InconsistentLength(format!(
            "Upload-Length {s}, but the request completes the upload at {i}"
        ))),
        (stated, implied) => Ok(stated.or(implied)),
    }
}

/// POST: creates an upload, appends the request's content, and completes
/// it if the request says so.
async fn create(app: &AppState, request: Request, v: Interop) -> Result<Response> {
    let headers = request.headers();
    let complete = v
        .complete(headers)?
        .ok_or_else(|| Problem::malformed("a creation needs Upload-Complete"))?;
    let length = declared_length(headers, 0, complete)?;
    let new = NewUpload {
        length,
        metadata: creation_metadata(headers)?,
        concat: None,
    };
    let location = collection_url(app, &request);
    let caller = caller_of(&request, &Method::POST);
    let info = app.service.create(&caller, new).await?;
    let location = format!("{location}{}", info.id);
    let info = write(app, &caller, &info, request, 0, complete).await?;
    let mut response = StatusCode::CREATED.into_response();
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        out.insert(h::LOCATION, value);
    }
    progress(app, out, &info, v);
    Ok(response)
}

/// Appends `request`'s content at `offset`; if `complete`, the upload ends
/// with it (its length is then the offset reached, if not declared).
async fn write(
    app: &AppState,
    caller: &Caller,
    info: &UploadInfo,
    request: Request,
    offset: u64,
    complete: bool,
) -> Result<UploadInfo> {
    let headers = request.headers();
    let declared = declared_length(headers, offset, complete)?;
    if let (Some(declared), Some(known)) = (declared, info.length)
        && declared != known
    {
        return Err(Problem::InconsistentLength(format!(
            "the request ends the upload at {declared}, its length is {known}"
        )));
    }
    let content_length = content_length(headers)?;
    let empty = content_length == Some(0) && !headers.contains_key(h::TRANSFER_ENCODING);
    if empty && !complete && declared.is_none() {
        return Ok(info.clone());
    }
    let verify = content_digest(headers)?;
    let (body, ended) = watch_end(body_stream(request, &verify));
    let append = AppendRequest {
        offset,
        declared_length: declared.filter(|_| info.length.is_none()),
        content_length,
        body,
        verify,
    };
    let after = app.service.append(caller, &info.id, append).await?;
    // An interrupted request never completes the upload.
    if !complete || after.length.is_some() || !ended.load(Ordering::Relaxed) {
        return Ok(after);
    }
    // Content of unknown length that completes the upload: its length is
    // where it ended.
    let end = AppendRequest {
        offset: after.offset,
        declared_length: Some(after.offset),
        content_length: Some(0),
        body: Box::pin(futures_util::stream::empty()),
        verify: Verify::None,
    };
    Ok(app.service.append(caller, &info.id, end).await?)
}

/// The check of a request's content from its `Content-Digest` (RFC 9530):
/// `sha-256` or `sha-512`, whichever comes first; others are ignored.
fn content_digest(headers: &HeaderMap) -> Result<Verify> {
    let Some(raw) = headers.get("content-digest") else {
        return Ok(Verify::None);
    };
    let malformed = || {
        Problem::malformed("Content-Digest is not a structured-field Dictionary of byte sequences")
    };
    let text = raw.to_str().map_err(|_| malformed())?;
    for member in text.split(',') {
        let (key, value) = member.trim().split_once('=').ok_or_else(malformed)?;
        let algorithm = match key.trim() {
            "sha-256" => Algorithm::Sha256,
            "sha-512" => Algorithm::Sha512,
            _ => continue,
        };
        let b64 = value
            .trim()
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .ok_or_else(malformed)?;
        let digest = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| malformed())?;
        return Ok(Verify::Header(Checksum { algorithm, digest }));
    }
    Ok(Verify::None)
}

/// `body`, and a flag set once it has ended cleanly (not cut, not left
/// unread).
fn watch_end(body: BodyStream) -> (BodyStream, Arc<AtomicBool>) {
    let ended = Arc::new(AtomicBool::new(false));
    let flag = ended.clone();
    let watched = futures_util::stream::unfold((body, flag), |(mut body, flag)| async move {
        match body.next().await {
            Some(item) => Some((item, (body, flag))),
            None => {
                flag.store(true, Ordering::Relaxed);
                None
            }
        }
    });
    (Box::pin(watched), ended)
}

/// PATCH: appends at `Upload-Offset`.
async fn append(
    app: &AppState,
    caller: &Caller,
    id: &UploadId,
    request: Request,
    v: Interop,
) -> Result<Response> {
    let headers = request.headers();
    if v.requires_partial_upload_type() {
        let essence = headers
            .get(h::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .and_then(|t| t.split(';').next())
            .map(str::trim);
        if !essence.is_some_and(|e| e.eq_ignore_ascii_case(PARTIAL_UPLOAD)) {
            return Err(crate::http::Error::UnsupportedMediaType.into());
        }
    }
    let offset = integer(headers, names::UPLOAD_OFFSET, "Upload-Offset")?
        .ok_or_else(|| Problem::malformed("an append needs Upload-Offset"))?;
    let complete = v.complete(headers)?.unwrap_or(false);
    let info = app.service.head(caller, id).await?;
    if info.state == UploadState::Completed {
        return Err(Problem::CompletedUpload);
    }
    let info = write(app, caller, &info, request, offset, complete).await?;
    let mut response = v.append_status().into_response();
    progress(app, response.headers_mut(), &info, v);
    Ok(response)
}

/// HEAD: the offset, completeness, length and limits; never cached.
async fn head(
    app: &AppState,
    caller: &Caller,
    id: &UploadId,
    headers: &HeaderMap,
    v: Interop,
) -> Result<Response> {
    refuse_upload_fields(headers, v)?;
    let info = app.service.head(caller, id).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(h::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    progress(app, out, &info, v);
    Ok(response)
}

/// Where an upload stands, in the draft's headers.
fn progress(app: &AppState, out: &mut HeaderMap, info: &UploadInfo, v: Interop) {
    out.insert(names::UPLOAD_OFFSET, HeaderValue::from(info.offset));
    if let Some(length) = info.length {
        out.insert(names::UPLOAD_LENGTH, HeaderValue::from(length));
    }
    let limits = Limits::of(info, app.service.limits().max_size);
    v.describe(out, info.state == UploadState::Completed, &limits);
}
