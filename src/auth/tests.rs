//! Token checks of the JWT authorizer, against the test keys in
//! `tests/keys/`: what verifies, what is refused, and that no header value
//! makes it panic.

use super::keys::{Key, parse_jwks};
use super::{JwtAuthorizer, JwtRules};
use crate::upload::access::{AccessRequest, Action, Authorizer, Caller, Denial, Grant};
use crate::upload::model::now_secs;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use http::{HeaderMap, HeaderValue};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const RSA_KEY: &[u8] = include_bytes!("../../tests/keys/rsa.key");
const RSA_PUB: &str = "tests/keys/rsa.pub";
const RSA2_KEY: &[u8] = include_bytes!("../../tests/keys/rsa2.key");
const EC_KEY: &[u8] = include_bytes!("../../tests/keys/ec.key");
const ED_KEY: &[u8] = include_bytes!("../../tests/keys/ed.key");

fn key_file(path: &str) -> Key {
    Key::public_key_file(&Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("a test key")
}

fn hmac_key() -> Key {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret");
    std::fs::write(&path, [SECRET, b"\n"].concat()).expect("write");
    Key::secret_file(&path).expect("a secret")
}

fn rules() -> JwtRules {
    JwtRules {
        leeway: Duration::from_secs(60),
        admin_subjects: vec!["backend".into()],
        ..JwtRules::default()
    }
}

fn claims(sub: &str, exp_in: i64) -> Value {
    let exp = now_secs().saturating_add_signed(exp_in);
    json!({ "sub": sub, "exp": exp })
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).expect("a token")
}

fn hs256(claims: &Value) -> String {
    sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET).expect("a secret"),
        None,
        claims,
    )
}

async fn ask(authorizer: &JwtAuthorizer, authorization: &[u8]) -> Result<Grant, Denial> {
    let mut headers = HeaderMap::new();
    headers.insert(
        "authorization",
        HeaderValue::from_bytes(authorization).expect("a header value"),
    );
    let caller = Caller::new(headers, "HEAD", "/files/x", None);
    let request = AccessRequest {
        action: Action::Status,
        uploads: &[],
        caller: &caller,
    };
    authorizer.authorize(&request).await
}

async fn bearer(authorizer: &JwtAuthorizer, token: &str) -> Result<Grant, Denial> {
    ask(authorizer, format!("Bearer {token}").as_bytes()).await
}

fn refused(result: &Result<Grant, Denial>) -> bool {
    matches!(result, Err(Denial::Unauthenticated { invalid: true, .. }))
}

#[tokio::test]
async fn valid_tokens_name_their_subject_and_limits() {
    let jwt = JwtAuthorizer::new(vec![hmac_key()], Vec::new(), rules());
    let mut body = claims("alice", 600);
    body["partway"] =
        json!({ "max_size": 1000, "content_types": ["image/*"], "actions": ["read"] });
    let grant = bearer(&jwt, &hs256(&body)).await.expect("valid");
    assert_eq!(grant.subject.as_deref(), Some("alice"));
    assert!(!grant.admin);
    assert_eq!(grant.rules.max_size, Some(1000));
    assert_eq!(grant.expired_for, None);
    let admin = bearer(&jwt, &hs256(&claims("backend", 600))).await;
    assert!(admin.expect("valid").admin);
    body["partway"] = json!({ "actions": ["fly"] });
    assert!(
        refused(&bearer(&jwt, &hs256(&body)).await),
        "unknown action"
    );
    body["partway"] = json!({ "maxsize": 1 });
    assert!(refused(&bearer(&jwt, &hs256(&body)).await), "unknown limit");
}

#[tokio::test]
async fn expiry_is_reported_and_nbf_checked() {
    let jwt = JwtAuthorizer::new(vec![hmac_key()], Vec::new(), rules());
    let late = bearer(&jwt, &hs256(&claims("alice", -600))).await;
    let late = late.expect("an expired token still yields a grant");
    assert!(
        late.expired_for
            .is_some_and(|d| d >= Duration::from_secs(600))
    );
    let within_leeway = bearer(&jwt, &hs256(&claims("alice", -30))).await;
    assert_eq!(within_leeway.expect("valid").expired_for, None);
    let mut early = claims("alice", 600);
    early["nbf"] = json!(now_secs() + 300);
    assert!(refused(&bearer(&jwt, &hs256(&early)).await));
    let mut no_exp = claims("alice", 600);
    no_exp.as_object_mut().expect("object").remove("exp");
    assert!(refused(&bearer(&jwt, &hs256(&no_exp)).await));
}

#[tokio::test]
async fn issuer_and_audience_are_required_when_configured() {
    let strict = JwtRules {
        issuer: Some("https://app.example".into()),
        audience: Some("partway".into()),
        ..rules()
    };
    let jwt = JwtAuthorizer::new(vec![hmac_key()], Vec::new(), strict);
    let mut body = claims("alice", 600);
    assert!(
        refused(&bearer(&jwt, &hs256(&body)).await),
        "no iss, no aud"
    );
    body["iss"] = json!("https://app.example");
    body["aud"] = json!(["other", "partway"]);
    assert!(bearer(&jwt, &hs256(&body)).await.is_ok());
    body["aud"] = json!("other");
    assert!(refused(&bearer(&jwt, &hs256(&body)).await), "wrong aud");
    body["aud"] = json!("partway");
    body["iss"] = json!("https://evil.example");
    assert!(refused(&bearer(&jwt, &hs256(&body)).await), "wrong iss");
}

#[tokio::test]
async fn the_keys_decide_the_algorithms() {
    let jwt = JwtAuthorizer::new(vec![key_file(RSA_PUB)], Vec::new(), rules());
    let body = claims("alice", 600);
    let rs = EncodingKey::from_rsa_pem(RSA_KEY).expect("rsa");
    assert!(
        bearer(&jwt, &sign(Algorithm::RS256, &rs, None, &body))
            .await
            .is_ok()
    );
    assert!(
        bearer(&jwt, &sign(Algorithm::PS384, &rs, None, &body))
            .await
            .is_ok()
    );
    // The classic confusion: HS256 "signed" with the RSA public key.
    let public = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(RSA_PUB)).expect("pem");
    let confused = sign(
        Algorithm::HS256,
        &EncodingKey::from_secret(&public).expect("a secret"),
        None,
        &body,
    );
    assert!(refused(&bearer(&jwt, &confused).await));
    // alg none: a header, a payload and no signature.
    let payload = B64.encode(body.to_string());
    for header in [r#"{"alg":"none"}"#, r#"{"alg":"None","typ":"JWT"}"#] {
        let token = format!("{}.{payload}.", B64.encode(header));
        assert!(refused(&bearer(&jwt, &token).await), "{header}");
    }
    // Another RSA key's signature; a tampered payload.
    let other = EncodingKey::from_rsa_pem(RSA2_KEY).expect("rsa");
    assert!(refused(
        &bearer(&jwt, &sign(Algorithm::RS256, &other, None, &body)).await
    ));
    let token = sign(Algorithm::RS256, &rs, None, &body);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = B64.encode(claims("mallory", 600).to_string());
    parts[1] = &forged;
    assert!(refused(&bearer(&jwt, &parts.join(".")).await));
}

#[tokio::test]
async fn ec_and_ed25519_keys_verify_their_own_algorithms() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys = vec![
        Key::public_key_file(&dir.join("tests/keys/ec.pub")).expect("ec"),
        Key::public_key_file(&dir.join("tests/keys/ed.pub")).expect("ed"),
    ];
    let jwt = JwtAuthorizer::new(keys, Vec::new(), rules());
    let body = claims("alice", 600);
    let ec = EncodingKey::from_ec_pem(EC_KEY).expect("ec");
    let ed = EncodingKey::from_ed_pem(ED_KEY).expect("ed");
    assert!(
        bearer(&jwt, &sign(Algorithm::ES256, &ec, None, &body))
            .await
            .is_ok()
    );
    assert!(
        bearer(&jwt, &sign(Algorithm::EdDSA, &ed, None, &body))
            .await
            .is_ok()
    );
    assert!(
        refused(&bearer(&jwt, &hs256(&body)).await),
        "no secret configured"
    );
}

/// A JWKS document with the public half of `key` under `kid`.
pub(crate) fn jwks(keys: &[(&EncodingKey, Algorithm, &str)]) -> String {
    let keys = keys
        .iter()
        .map(|(key, alg, kid)| {
            let mut jwk = Jwk::from_encoding_key(key, *alg).expect("a jwk");
            jwk.common.key_id = Some((*kid).to_owned());
            jwk
        })
        .collect();
    serde_json::to_string(&JwkSet { keys }).expect("json")
}

#[tokio::test]
async fn a_jwks_picks_the_key_by_kid() {
    let rs = EncodingKey::from_rsa_pem(RSA_KEY).expect("rsa");
    let rs2 = EncodingKey::from_rsa_pem(RSA2_KEY).expect("rsa");
    let set = jwks(&[
        (&rs, Algorithm::RS256, "one"),
        (&rs2, Algorithm::RS256, "two"),
    ]);
    let jwt = JwtAuthorizer::new(parse_jwks(&set).expect("jwks"), Vec::new(), rules());
    let body = claims("alice", 600);
    assert!(
        bearer(&jwt, &sign(Algorithm::RS256, &rs2, Some("two"), &body))
            .await
            .is_ok()
    );
    let swapped = sign(Algorithm::RS256, &rs2, Some("one"), &body);
    assert!(
        refused(&bearer(&jwt, &swapped).await),
        "signed by another kid's key"
    );
    let unknown = sign(Algorithm::RS256, &rs, Some("three"), &body);
    assert!(refused(&bearer(&jwt, &unknown).await), "unknown kid");
    // A JWK's own alg narrows its key: RS256 only, not PS256.
    assert!(refused(
        &bearer(&jwt, &sign(Algorithm::PS256, &rs, Some("one"), &body)).await
    ));
}

#[tokio::test]
async fn garbage_is_a_401_never_a_panic() {
    let jwt = JwtAuthorizer::new(vec![hmac_key()], Vec::new(), rules());
    let good = hs256(&claims("alice", 600));
    let [header, payload, signature]: [&str; 3] = good
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .expect("three parts");
    let values = [
        "Bearer x".to_owned(),
        "Bearer ...".to_owned(),
        format!("Bearer {header}"),
        format!("Bearer {header}.{payload}"),
        format!("Bearer {header}.{payload}.{signature}.x"),
        format!("Bearer !!.{payload}.{signature}"),
        format!("Bearer {header}.!!.{signature}"),
        format!("Bearer {header}.{payload}.!!"),
        format!(
            "Bearer {}.{payload}.{signature}",
            B64.encode("{\"alg\":\"HS999\"}")
        ),
        format!("Bearer {header}.{}.{signature}", B64.encode("[1,2,3]")),
    ];
    for value in &values {
        assert!(refused(&ask(&jwt, value.as_bytes()).await), "{value}");
    }
    let missing = ask(&jwt, b"Basic dXNlcjpwYXNz").await;
    assert!(matches!(
        missing,
        Err(Denial::Unauthenticated { invalid: false, .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_header_value_is_refused_cleanly(value in proptest::collection::vec(0x20u8..0x7f, 0..300)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let jwt = JwtAuthorizer::new(vec![hmac_key()], Vec::new(), rules());
        let result = runtime.block_on(ask(&jwt, &value));
        prop_assert!(result.is_err());
        let bearer_value = [b"Bearer ".as_slice(), &value].concat();
        prop_assert!(runtime.block_on(ask(&jwt, &bearer_value)).is_err());
    }
}
