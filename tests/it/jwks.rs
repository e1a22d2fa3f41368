//! Tokens verified with a JWKS served over HTTP by the test, whose keys
//! rotate mid-run: a token signed with the new key is accepted once partway
//! looks again (on an unknown kid, at most every 30 s), the retired key's
//! tokens are then refused, and a JWKS server that goes away leaves the
//! keys partway has in force.

use crate::helpers::{TestApp, serve_app};
use crate::tokens::now;
use axum::extract::State;
use axum::routing::get;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::StatusCode;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RSA_KEY: &[u8] = include_bytes!("../keys/rsa.key");
const RSA2_KEY: &[u8] = include_bytes!("../keys/rsa2.key");

/// The JWKS document the test serves, and whether it serves at all.
type Published = Arc<Mutex<Option<String>>>;

fn jwks(key: &EncodingKey, kid: &str) -> String {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).expect("a jwk");
    jwk.common.key_id = Some(kid.to_owned());
    serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json")
}

async fn serve(State(published): State<Published>) -> (StatusCode, String) {
    match published.lock().expect("published").clone() {
        Some(document) => (StatusCode::OK, document),
        None => (StatusCode::SERVICE_UNAVAILABLE, String::new()),
    }
}

fn bearer(key: &EncodingKey, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let claims = json!({ "sub": "alice", "exp": now() + 600 });
    format!("Bearer {}", encode(&header, &claims, key).expect("a token"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_picked_up_and_the_old_key_retired() {
    let old = EncodingKey::from_rsa_pem(RSA_KEY).expect("rsa");
    let new = EncodingKey::from_rsa_pem(RSA2_KEY).expect("rsa");
    let published: Published = Arc::new(Mutex::new(Some(jwks(&old, "2026-old"))));
    let router = axum::Router::new()
        .route("/jwks.json", get(serve))
        .with_state(published.clone());
    let url = serve_app(router, "/jwks.json").await;
    let app = TestApp::spawn_with(move |s| s.auth.jwks = vec![url]).await;
    let started = Instant::now();
    assert_eq!(
        app_post(&app, &bearer(&old, "2026-old")).await,
        StatusCode::CREATED
    );

    // The issuer rotates; partway has just fetched, so it waits its 30 s.
    *published.lock().expect("published") = Some(jwks(&new, "2026-new"));
    assert_eq!(
        app_post(&app, &bearer(&new, "2026-new")).await,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_secs(31).saturating_sub(started.elapsed())).await;
    assert_eq!(
        app_post(&app, &bearer(&new, "2026-new")).await,
        StatusCode::CREATED
    );
    assert_eq!(
        app_post(&app, &bearer(&old, "2026-old")).await,
        StatusCode::UNAUTHORIZED
    );

    // The JWKS server goes away: the keys partway has stay in force.
    *published.lock().expect("published") = None;
    let stranger = bearer(&old, "2026-unknown");
    assert_eq!(app_post(&app, &stranger).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app_post(&app, &bearer(&new, "2026-new")).await,
        StatusCode::CREATED
    );
}

async fn app_post(app: &TestApp, auth: &str) -> StatusCode {
    app.post(Some(3), &[("Authorization", auth)]).await.status()
}
