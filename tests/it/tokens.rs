//! Bearer tokens for the authorization tests: an HMAC secret in a file, as
//! `--auth-jwt-secret-file` reads it, and tokens minted with it.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use partway::auth::AuthSettings;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints tokens with a secret it wrote to a file.
pub struct Signer {
    dir: tempfile::TempDir,
    secret: Vec<u8>,
}

impl Signer {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        );
        std::fs::write(dir.path().join("secret"), format!("{secret}\n")).expect("write secret");
        Self {
            dir,
            secret: secret.into_bytes(),
        }
    }

    pub fn secret_file(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    /// Settings that require this signer's tokens, with no leeway.
    pub fn settings(&self) -> AuthSettings {
        let mut auth = AuthSettings {
            jwt_secret_files: vec![self.secret_file()],
            ..AuthSettings::default()
        };
        auth.rules.leeway = std::time::Duration::ZERO;
        auth.rules.admin_subjects = vec!["backend".into()];
        auth
    }

    /// A token for `sub` that expires `exp_in` seconds from now, with the
    /// claims of `extra` added.
    pub fn token(&self, sub: &str, exp_in: i64, extra: Value) -> String {
        let mut claims = json!({ "sub": sub, "exp": now().saturating_add_signed(exp_in) });
        if let (Some(claims), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            claims.extend(extra);
        }
        let key = EncodingKey::from_secret(&self.secret).expect("a secret");
        encode(&Header::new(Algorithm::HS256), &claims, &key).expect("a token")
    }

    /// `Bearer <token>` for `sub`, valid for ten minutes.
    pub fn bearer(&self, sub: &str) -> String {
        format!("Bearer {}", self.token(sub, 600, json!({})))
    }
}

/// A token endpoint, as an application runs one: each GET mints a fresh
/// token for `sub`, valid for `lifetime_secs`. Returns its URL and the
/// number of tokens minted so far.
pub async fn token_endpoint(
    signer: Signer,
    sub: &'static str,
    lifetime_secs: i64,
) -> (String, Arc<AtomicUsize>) {
    let minted = Arc::new(AtomicUsize::new(0));
    let counter = minted.clone();
    let signer = Arc::new(signer);
    let mint = move || {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(signer.token(sub, lifetime_secs, json!({})))
    };
    let router = axum::Router::new().route("/token", axum::routing::get(mint));
    (crate::helpers::serve_app(router, "/token").await, minted)
}
