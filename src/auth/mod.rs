//! The built-in authorizers, adapters of the core's
//! [`Authorizer`] port:
//! - [`jwt`]: bearer tokens verified in process, with keys from secret
//!   files, PEM public keys and JWKS (`keys`), found in the request by
//!   `token`;
//! - [`access_hook`]: the application's `pre-access` HTTP hook.
//!
//! [`build`] assembles the ones the settings ask for; when several are
//! configured, all must agree.

pub mod access_hook;
pub mod jwt;
mod keys;
#[cfg(test)]
mod tests;
mod token;

pub use access_hook::AccessHook;
pub use jwt::{JwtAuthorizer, JwtRules};
pub use keys::read_secret;

use crate::hook::HookClient;
use crate::metrics::Metrics;
use crate::upload::access::{AllOf, Authorizer};
use keys::{Key, RemoteJwks, parse_jwks};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How requests are authorized.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Files holding HMAC secrets (HS256/384/512).
    pub jwt_secret_files: Vec<PathBuf>,
    /// PEM public keys (RSA, EC P-256/P-384, Ed25519).
    pub jwt_public_keys: Vec<PathBuf>,
    /// JWKS documents: files, or `http(s)://` URLs refreshed on a period.
    pub jwks: Vec<String>,
    /// How often a JWKS URL is fetched again.
    pub jwks_refresh: Duration,
    /// What tokens must say besides their signature.
    pub rules: JwtRules,
    /// How long past its expiry a token may still resume its own unfinished
    /// upload; `None`: as long as an unfinished upload lives.
    pub resume_grace: Option<Duration>,
    /// The `pre-access` hook's URL.
    pub access_hook_url: Option<String>,
    /// How long a hook decision is reused; zero asks every time.
    pub access_hook_cache: Duration,
    /// How long the hook gets to answer, over all tries.
    pub access_hook_timeout: Duration,
}

impl Default for AuthSettings {
    /// No authorization: anyone who reaches partway may do anything.
    fn default() -> Self {
        Self {
            jwt_secret_files: Vec::new(),
            jwt_public_keys: Vec::new(),
            jwks: Vec::new(),
            jwks_refresh: Self::DEFAULT_JWKS_REFRESH,
            rules: JwtRules {
                leeway: Self::DEFAULT_LEEWAY,
                ..JwtRules::default()
            },
            resume_grace: None,
            access_hook_url: None,
            access_hook_cache: Duration::ZERO,
            access_hook_timeout: Self::DEFAULT_ACCESS_HOOK_TIMEOUT,
        }
    }
}

impl AuthSettings {
    /// How often a JWKS URL is fetched again.
    pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(300);
    /// Clock skew absorbed for `exp` and `nbf`.
    pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
    /// How long the access hook gets to answer, over all tries.
    pub const DEFAULT_ACCESS_HOOK_TIMEOUT: Duration = Duration::from_secs(10);

    /// Whether tokens are required.
    pub fn jwt(&self) -> bool {
        !(self.jwt_secret_files.is_empty()
            && self.jwt_public_keys.is_empty()
            && self.jwks.is_empty())
    }

    /// Whether any authorization is configured.
    pub fn any(&self) -> bool {
        self.jwt() || self.access_hook_url.is_some()
    }
}

/// The authorizer the settings describe, or `None` when they describe none.
///
/// # Errors
/// A key that cannot be read or used, or a JWKS URL that cannot be fetched.
pub async fn build(
    settings: &AuthSettings,
    metrics: Option<Arc<Metrics>>,
) -> Result<Option<Arc<dyn Authorizer>>, String> {
    if !settings.any() {
        return Ok(None);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let mut all: Vec<Arc<dyn Authorizer>> = Vec::new();
    if settings.jwt() {
        all.push(Arc::new(jwt_authorizer(settings, &client).await?));
    }
    if let Some(url) = &settings.access_hook_url {
        let hook = HookClient::new(client, url, settings.access_hook_timeout);
        all.push(Arc::new(AccessHook::new(
            hook,
            settings.access_hook_cache,
            metrics,
        )));
    }
    Ok(match all.len() {
        0 => None,
        1 => all.pop(),
        _ => Some(Arc::new(AllOf(all))),
    })
}

async fn jwt_authorizer(
    settings: &AuthSettings,
    client: &reqwest::Client,
) -> Result<JwtAuthorizer, String> {
    let mut keys = Vec::new();
    for path in &settings.jwt_secret_files {
        keys.push(Key::secret_file(path).map_err(|e| format!("--auth-jwt-secret-file {e}"))?);
    }
    for path in &settings.jwt_public_keys {
        keys.push(Key::public_key_file(path).map_err(|e| format!("--auth-jwt-public-key {e}"))?);
    }
    let mut remote = Vec::new();
    for source in &settings.jwks {
        if source.starts_with("http://") || source.starts_with("https://") {
            let jwks = RemoteJwks::fetch_first(source, client.clone())
                .await
                .map_err(|e| format!("--auth-jwks {e}"))?;
            jwks.spawn_refresh(settings.jwks_refresh);
            remote.push(jwks);
        } else {
            let text = std::fs::read_to_string(source)
                .map_err(|e| format!("--auth-jwks {source}: {e}"))?;
            keys.extend(parse_jwks(&text).map_err(|e| format!("--auth-jwks {source}: {e}"))?);
        }
    }
    Ok(JwtAuthorizer::new(keys, remote, settings.rules.clone()))
}
