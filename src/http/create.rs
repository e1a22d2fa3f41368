//! The upload collection: OPTIONS (discovery) and POST (creation, with
//! `creation-with-upload`, `creation-defer-length` and `concatenation`).

use super::location::collection_url;
use super::{
    AppState, body_stream, caller_of, check_version, content_length, effective_method,
    expires_header, header, is_offset_stream, u64_header, verify_from,
};
use super::{Error, Result};
use crate::protocol::checksum::Algorithm;
use crate::protocol::headers::{UploadConcat, url_last_segment};
use crate::protocol::metadata::Metadata;
use crate::protocol::{self, headers as tus, names};
use crate::upload::access::Caller;
use crate::upload::model::{UploadId, UploadInfo};
use crate::upload::{self, AppendRequest, NewConcat, NewUpload, SizeExceeded, Verify};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header as h};
use axum::response::{IntoResponse, Response};

/// Dispatches a request on the collection URL.
pub(crate) async fn collection(State(app): State<AppState>, request: Request) -> Response {
    let draft = match super::draft::Interop::of(request.headers()) {
        Ok(draft) => draft,
        Err(problem) => return problem.into_response(),
    };
    let result = match effective_method(&request) {
        Ok(Method::OPTIONS) => Ok(super::draft::echo(options(&app), draft)),
        Ok(method) if let Some(v) = draft => {
            return super::draft::collection(app, request, v, method).await;
        }
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
    if let Ok(v) = HeaderValue::from_str(&Algorithm::advertised()) {
        headers.insert(names::TUS_CHECKSUM_ALGORITHM, v);
    }
    super::draft::options_headers(headers, app.service.limits().max_size);
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
        (Some(_), true) => Err(Error::Malformed(
            "send Upload-Length or Upload-Defer-Length, not both".into(),
        )),
        (None, false) => Err(Error::Malformed(
            "Upload-Length or Upload-Defer-Length: 1 is required".into(),
        )),
        (length, _) => Ok(length),
    }
}

/// Reads `Upload-Concat`. A final upload takes its length from its partials,
/// so it must not carry one, nor a body.
fn requested_concat(headers: &HeaderMap) -> Result<Option<NewConcat>> {
    let Some(raw) = header(headers, names::UPLOAD_CONCAT) else {
        return Ok(None);
    };
    Ok(Some(match tus::parse_concat(raw)? {
        UploadConcat::Partial => NewConcat::Partial,
        UploadConcat::Final(urls) => {
            if headers.contains_key(names::UPLOAD_LENGTH)
                || headers.contains_key(names::UPLOAD_DEFER_LENGTH)
            {
                return Err(Error::Malformed(
                    "a final upload (Upload-Concat: final) must not carry Upload-Length".into(),
                ));
            }
            let partials = urls
                .iter()
                .map(|url| {
                    UploadId::parse(url_last_segment(url)).ok_or_else(|| {
                        Error::Malformed(format!("Upload-Concat: {url:?} is not an upload URL"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let header = String::from_utf8_lossy(raw).trim().to_owned();
            NewConcat::Final { header, partials }
        }
    }))
}

/// What a POST asks for, read from its headers.
struct Creation {
    new: NewUpload,
    /// `Content-Length` of the body, if given.
    body_len: Option<u64>,
    /// The body carries the upload's first bytes (creation-with-upload).
    with_upload: bool,
    verify: Verify,
}

impl Creation {
    /// Reads and checks a POST's headers.
    fn read(headers: &HeaderMap) -> Result<Self> {
        check_version(headers)?;
        let concat = requested_concat(headers)?;
        let is_final = matches!(concat, Some(NewConcat::Final { .. }));
        let length = if is_final {
            None
        } else {
            requested_length(headers)?
        };
        let metadata = header(headers, names::UPLOAD_METADATA)
            .map(Metadata::parse)
            .transpose()?;
        let body_len = content_length(headers)?;
        let with_upload = is_offset_stream(headers);
        if !with_upload && body_len.is_some_and(|l| l > 0) {
            return Err(Error::UnsupportedMediaType);
        }
        if is_final && with_upload && body_len != Some(0) {
            return Err(Error::Malformed(
                "a final upload (Upload-Concat: final) takes no body".into(),
            ));
        }
        let verify = verify_from(headers)?;
        if let (Some(sent), Some(length)) = (body_len, length)
            && sent > length
        {
            return Err(SizeExceeded::Body { sent, room: length }.into());
        }
        let new = NewUpload {
            length,
            metadata,
            concat,
        };
        let with_upload = with_upload && body_len != Some(0) && !is_final;
        Ok(Self {
            new,
            body_len,
            with_upload,
            verify,
        })
    }
}

/// POST: creates an upload, taking its first bytes if the body carries any.
async fn create(app: AppState, request: Request) -> Result<Response> {
    let creation = Creation::read(request.headers())?;
    let location = collection_url(&app, &request);
    let caller = caller_of(&request, &Method::POST);
    let mut info = app.service.create(&caller, creation.new).await?;
    let location = format!("{location}{}", info.id);
    let mut offset = None;
    let mut status = StatusCode::CREATED;
    if creation.with_upload {
        let append = AppendRequest {
            offset: 0,
            declared_length: None,
            content_length: creation.body_len,
            body: body_stream(request, &creation.verify),
            verify: creation.verify,
        };
        let (reached, refused) = first_bytes(&app, &caller, &mut info, append).await;
        offset = Some(reached);
        status = refused.unwrap_or(status);
    }
    let mut response = status.into_response();
    let out = response.headers_mut();
    expires_header(out, &info);
    out.insert(
        h::LOCATION,
        HeaderValue::from_str(&location)
            .map_err(|_| upload::Error::Internal("unrepresentable Location".into()))?,
    );
    if let Some(offset) = offset {
        out.insert(names::UPLOAD_OFFSET, HeaderValue::from(offset));
    }
    Ok(response)
}

/// Appends the body of a creation-with-upload. The upload exists whatever
/// happens, so the answer is where it got to, and the status of a checksum
/// mismatch, which the client must hear of.
async fn first_bytes(
    app: &AppState,
    caller: &Caller,
    info: &mut UploadInfo,
    append: AppendRequest,
) -> (u64, Option<StatusCode>) {
    match app.service.append(caller, &info.id, append).await {
        Ok(after) => {
            *info = after;
            (info.offset, None)
        }
        Err(e) => {
            tracing::warn!(upload = %info.id, error = %e, "creation-with-upload stopped early");
            let status = match e {
                e @ upload::Error::ChecksumMismatch { .. } => Some(Error::from(e).status()),
                _ => None,
            };
            let reached = app
                .service
                .head(caller, &info.id)
                .await
                .map_or(0, |i| i.offset);
            (reached, status)
        }
    }
}
