//! A property harness over the whole HTTP surface: random methods, paths
//! (ids, traversal attempts, junk), tus header values and `Authorization`
//! (the owner's token, another subject's, an expired one, garbage, none),
//! with and without bodies, sent through the router onto the embedded store
//! with bearer tokens required. Whatever comes from the network, partway
//! must answer with a status below 500 and never panic; a finished upload
//! that no request legitimately removed still holds its bytes afterwards;
//! and only its owner's token can remove it. `PARTWAY_FUZZ_CASES` sets how
//! many requests (400 by default, the bounded run CI does).

use crate::app::Partway;
use crate::http::HttpConfig;
use crate::store::local::{LocalLocker, LocalObjects, LocalState};
use crate::upload::access::Caller;
use crate::upload::model::UploadInfo;
use crate::upload::plan::PartLimits;
use crate::upload::{AppendRequest, Limits, NewUpload, UploadService, Verify};
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Request};
use proptest::prelude::*;
use std::sync::Arc;
use tower::ServiceExt;

const HEADERS: &[&str] = &[
    "upload-defer-length",
    "upload-metadata",
    "upload-checksum",
    "upload-concat",
    "x-http-method-override",
    "content-length",
    "range",
    "if-range",
    "if-none-match",
    "forwarded",
    "x-forwarded-host",
    "trailer",
];

/// Values that are nearly right, so the fuzzer gets past the first checks.
fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"1".to_vec()),
        Just(b"PATCH".to_vec()),
        Just(b"DELETE".to_vec()),
        Just(b"partial".to_vec()),
        Just(b"upload-checksum".to_vec()),
        Just(b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=".to_vec()),
        Just(b"bytes=0-".to_vec()),
        "[0-9]{1,22}".prop_map(String::into_bytes),
        "-?[0-9+ ]{0,6}".prop_map(String::into_bytes),
        "final;/files/[0-9a-f]{0,33}( /files/[0-9a-f]{32})?".prop_map(String::into_bytes),
        "[a-z]{1,6} [A-Za-z0-9+/=]{0,12}(,[a-z]{0,4} ?[A-Za-z0-9+/=]{0,8}){0,3}"
            .prop_map(String::into_bytes),
        proptest::collection::vec(0x20u8..0x7f, 0..40),
    ]
}

/// Bearer tokens of the harness, signed with [`SECRET`].
#[derive(Clone)]
struct Tokens {
    owner: String,
    stranger: String,
    expired: String,
}

const SECRET: &[u8] = b"fuzz-secret-0123456789abcdef0123456789";

impl Tokens {
    fn mint() -> Self {
        let key = jsonwebtoken::EncodingKey::from_secret(SECRET).expect("a secret");
        let header = jsonwebtoken::Header::default();
        let sign = |sub: &str, exp: u64| {
            let claims = serde_json::json!({ "sub": sub, "exp": exp });
            let token = jsonwebtoken::encode(&header, &claims, &key).expect("a token");
            format!("Bearer {token}")
        };
        let far = crate::upload::model::now_secs() + 3600;
        Self {
            owner: sign("owner", far),
            stranger: sign("stranger", far),
            expired: sign("owner", 1_000_000),
        }
    }

    /// An `Authorization` value: mostly the owner's, sometimes not.
    fn authorization(&self) -> impl Strategy<Value = Option<Vec<u8>>> {
        let owner = self.owner.clone().into_bytes();
        prop_oneof![
            8 => Just(Some(owner.clone())),
            1 => Just(Some(self.stranger.clone().into_bytes())),
            1 => Just(Some(self.expired.clone().into_bytes())),
            1 => Just(None),
            1 => value().prop_map(|v| Some([b"Bearer ".as_slice(), &v].concat())),
            1 => (0..owner.len(), any::<u8>()).prop_map(move |(at, byte)| {
                let mut garbled = owner.clone();
                garbled[at] = byte.clamp(0x21, 0x7e);
                Some(garbled)
            }),
            1 => value().prop_map(Some),
        ]
    }
}

/// The headers most requests carry, right most of the time.
fn usual(tokens: &Tokens) -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let number = prop_oneof![
        3 => "[0-6]".prop_map(String::into_bytes),
        1 => value(),
    ];
    (
        prop_oneof![9 => Just(b"1.0.0".to_vec()), 1 => value()],
        proptest::option::of(number.clone()),
        proptest::option::of(number),
        prop_oneof![
            3 => Just(b"application/offset+octet-stream".to_vec()),
            1 => value()
        ],
        tokens.authorization(),
    )
        .prop_map(|(version, offset, length, content_type, authorization)| {
            let mut headers = vec![("tus-resumable", version), ("content-type", content_type)];
            headers.extend(authorization.map(|a| ("authorization", a)));
            headers.extend(offset.map(|o| ("upload-offset", o)));
            headers.extend(length.map(|l| ("upload-length", l)));
            headers
        })
}

/// A path: mostly one of the case's uploads (`{done}`, `{half}`,
/// `{deferred}`), sometimes the collection or junk.
fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("/files/{done}".to_owned()),
        5 => Just("/files/{half}".to_owned()),
        3 => Just("/files/{deferred}".to_owned()),
        3 => Just("/files/".to_owned()),
        1 => Just("/files".to_owned()),
        1 => "/files/[0-9a-fA-F]{30,34}".prop_map(|p| p),
        1 => "/files/(\\.\\.|%2e%2e|%2F|[a-z0-9/]){0,12}".prop_map(|p| p),
        1 => "/[a-z/.%]{0,16}".prop_map(|p| p),
    ]
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        2 => Just("GET"),
        2 => Just("HEAD"),
        4 => Just("POST"),
        4 => Just("PATCH"),
        1 => Just("DELETE"),
        1 => Just("OPTIONS"),
        1 => Just("PUT"),
    ]
}

/// The embedded store in `dir`, requiring tokens signed with [`SECRET`].
async fn service(dir: &std::path::Path) -> Arc<UploadService> {
    let limits = Limits {
        max_size: 1 << 20,
        max_deferred_size: 1 << 20,
        ..Limits::new(5 << 20, Some(1 << 20))
    };
    let secret = dir.join("jwt-secret");
    std::fs::write(&secret, SECRET).expect("write the secret");
    let settings = crate::auth::AuthSettings {
        jwt_secret_files: vec![secret],
        ..crate::auth::AuthSettings::default()
    };
    let authorizer = crate::auth::build(&settings, None)
        .await
        .expect("an authorizer")
        .expect("tokens required");
    let locker = LocalLocker::new();
    let service = UploadService::new(
        Arc::new(LocalObjects::new(dir, PartLimits::S3)),
        Arc::new(LocalState::new(dir, &locker)),
        Arc::new(locker),
        limits,
        "",
    );
    Arc::new(service.with_authorizer(authorizer))
}

/// The owner's request as the core sees it.
fn owner(tokens: &Tokens) -> Caller {
    let mut headers = axum::http::HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&tokens.owner) {
        headers.insert("authorization", value);
    }
    Caller::new(headers, "POST", "/files/", None)
}

type Case = (
    &'static str,
    String,
    Vec<(&'static str, Vec<u8>)>,
    Vec<(usize, Vec<u8>)>,
    Option<Vec<u8>>,
);

fn request((method, path, usual, extra, body): Case) -> Option<Request<Body>> {
    let mut builder = Request::builder().method(method).uri(path);
    let extra = extra
        .into_iter()
        .map(|(name, value)| (HEADERS[name % HEADERS.len()], value));
    for (name, value) in usual.into_iter().chain(extra) {
        let name = HeaderName::from_static(name);
        builder = builder.header(name, HeaderValue::from_bytes(&value).ok()?);
    }
    builder.body(body.map_or_else(Body::empty, Body::from)).ok()
}

/// Creates an upload of `length` (deferred if `None`) holding `bytes`.
async fn upload(
    service: &Arc<UploadService>,
    caller: &Caller,
    length: Option<u64>,
    bytes: &'static [u8],
) -> UploadInfo {
    let info = service
        .create(
            caller,
            NewUpload {
                length,
                ..NewUpload::default()
            },
        )
        .await
        .expect("create");
    if bytes.is_empty() {
        return info;
    }
    let body = futures_util::stream::iter([Ok(bytes::Bytes::from_static(bytes))]);
    let request = AppendRequest {
        offset: 0,
        declared_length: None,
        content_length: Some(bytes.len() as u64),
        body: Box::pin(body),
        verify: Verify::None,
    };
    service
        .append(caller, &info.id, request)
        .await
        .expect("append")
}

#[test]
fn no_request_gets_a_5xx_or_harms_a_finished_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let service = runtime.block_on(service(dir.path()));
    let router = Partway::new(service.clone(), HttpConfig::default()).router();
    let tokens = Tokens::mint();
    let caller = owner(&tokens);
    let cases = (
        method(),
        path(),
        usual(&tokens),
        proptest::collection::vec((any::<usize>(), value()), 0..4),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
    );
    // A bounded run in CI; PARTWAY_FUZZ_CASES=20000 for a long one.
    let cases_to_run = std::env::var("PARTWAY_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(400);
    let config = ProptestConfig {
        cases: cases_to_run,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(case in cases)| {
        // Fresh targets each time: a finished upload, one half-way, one
        // with a deferred length.
        let (done, half, deferred) = runtime.block_on(async {
            (
                upload(&service, &caller, Some(5), b"hello").await,
                upload(&service, &caller, Some(6), b"abc").await,
                upload(&service, &caller, None, b"").await,
            )
        });
        let (method, path, usual, extra, body) = case;
        let by_owner = usual
            .iter()
            .any(|(name, value)| *name == "authorization" && *value == tokens.owner.as_bytes());
        let path = path
            .replace("{done}", done.id.as_str())
            .replace("{half}", half.id.as_str())
            .replace("{deferred}", deferred.id.as_str());
        let Some(request) = request((method, path, usual, extra, body)) else {
            return Ok(());
        };
        let response = runtime
            .block_on(router.clone().oneshot(request))
            .expect("infallible");
        prop_assert!(response.status().as_u16() < 500, "status {}", response.status());
        // Only a DELETE may remove a finished upload; nothing may change it.
        let object = dir.path().join("objects").join(done.object_key.as_str());
        match std::fs::read(&object) {
            Ok(bytes) => prop_assert_eq!(bytes, b"hello".to_vec()),
            Err(_) => prop_assert!(by_owner, "removed by a request without the owner's token"),
        }
    });
}
