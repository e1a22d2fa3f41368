//! The authorization flags: bearer tokens (`--auth-*`) and the access hook
//! (`--access-hook-*`).

use super::Span;
use crate::auth::{AuthSettings, JwtRules};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

/// The defaults of the authorization flags: the auth module's.
pub mod defaults {
    use crate::auth::AuthSettings;
    use std::time::Duration;

    /// How often a JWKS URL is fetched again.
    pub const JWKS_REFRESH: Duration = AuthSettings::DEFAULT_JWKS_REFRESH;
    /// Clock skew absorbed for `exp` and `nbf`.
    pub const LEEWAY: Duration = AuthSettings::DEFAULT_LEEWAY;
    /// How long the access hook gets to answer, over all tries.
    pub const ACCESS_HOOK_TIMEOUT: Duration = AuthSettings::DEFAULT_ACCESS_HOOK_TIMEOUT;
}

/// Who may create, resume, read and delete uploads.
#[derive(Debug, Clone, Args)]
pub struct AuthFlags {
    /// File with an HMAC secret (HS256/384/512) that tokens are signed
    /// with; repeat for several.
    #[arg(long, env = "PARTWAY_AUTH_JWT_SECRET_FILE", value_delimiter = ',')]
    pub auth_jwt_secret_file: Vec<PathBuf>,
    /// PEM public key (RSA, EC P-256/P-384, Ed25519) that verifies tokens;
    /// repeat for several.
    #[arg(long, env = "PARTWAY_AUTH_JWT_PUBLIC_KEY", value_delimiter = ',')]
    pub auth_jwt_public_key: Vec<PathBuf>,
    /// JWKS file or http(s) URL; keys are chosen by the token's kid.
    #[arg(long, env = "PARTWAY_AUTH_JWKS", value_delimiter = ',')]
    pub auth_jwks: Vec<String>,
    /// How often a JWKS URL is fetched again (also on an unknown kid, at
    /// most every 30s).
    #[arg(long, env = "PARTWAY_AUTH_JWKS_REFRESH", default_value_t = Span(defaults::JWKS_REFRESH))]
    pub auth_jwks_refresh: Span,
    /// Required token issuer (iss).
    #[arg(long, env = "PARTWAY_AUTH_ISSUER")]
    pub auth_issuer: Option<String>,
    /// Required token audience (aud).
    #[arg(long, env = "PARTWAY_AUTH_AUDIENCE")]
    pub auth_audience: Option<String>,
    /// Clock skew allowed for exp and nbf.
    #[arg(long, env = "PARTWAY_AUTH_LEEWAY", default_value_t = Span(defaults::LEEWAY))]
    pub auth_leeway: Span,
    /// Also take the token from this cookie (for downloads by `<img>` and `<a>`).
    #[arg(long, env = "PARTWAY_AUTH_COOKIE")]
    pub auth_cookie: Option<String>,
    /// Comma-separated token subjects that act on any upload.
    #[arg(long, env = "PARTWAY_AUTH_ADMIN_SUBJECTS", value_delimiter = ',')]
    pub auth_admin_subjects: Vec<String>,
    /// A token that creates an upload must carry jti and creates only one.
    #[arg(long, env = "PARTWAY_AUTH_SINGLE_USE_CREATION")]
    pub auth_single_use_creation: bool,
    /// How long after its expiry a token may still resume (HEAD, PATCH)
    /// its own unfinished upload [default: --expire-after].
    #[arg(long, env = "PARTWAY_AUTH_RESUME_GRACE")]
    pub auth_resume_grace: Option<Span>,
    /// URL of the application's pre-access hook, asked before HEAD, PATCH,
    /// DELETE, GET and concatenation.
    #[arg(long, env = "PARTWAY_ACCESS_HOOK_URL")]
    pub access_hook_url: Option<String>,
    /// How long an access decision is reused per credential, upload and
    /// mode; 0 asks every time.
    #[arg(long, env = "PARTWAY_ACCESS_HOOK_CACHE", default_value_t = Span(Duration::ZERO))]
    pub access_hook_cache: Span,
    /// How long the access hook gets to answer, over all tries; past it,
    /// 503.
    #[arg(long, env = "PARTWAY_ACCESS_HOOK_TIMEOUT",
          default_value_t = Span(defaults::ACCESS_HOOK_TIMEOUT))]
    pub access_hook_timeout: Span,
}

impl AuthFlags {
    /// The settings these flags describe.
    ///
    /// # Errors
    /// A plain message naming the flag at fault.
    pub fn settings(&self) -> Result<AuthSettings, String> {
        let settings = AuthSettings {
            jwt_secret_files: self.auth_jwt_secret_file.clone(),
            jwt_public_keys: self.auth_jwt_public_key.clone(),
            jwks: self.auth_jwks.clone(),
            jwks_refresh: self.auth_jwks_refresh.0.max(Duration::from_secs(30)),
            rules: JwtRules {
                issuer: self.auth_issuer.clone(),
                audience: self.auth_audience.clone(),
                leeway: self.auth_leeway.0,
                cookie: self.auth_cookie.clone(),
                admin_subjects: self.auth_admin_subjects.clone(),
                single_use_creation: self.auth_single_use_creation,
            },
            resume_grace: self.auth_resume_grace.map(|s| s.0),
            access_hook_url: self.access_hook_url.clone(),
            access_hook_cache: self.access_hook_cache.0,
            access_hook_timeout: self.access_hook_timeout.0,
        };
        self.check(&settings)?;
        Ok(settings)
    }

    /// The rules that tie the flags together.
    fn check(&self, settings: &AuthSettings) -> Result<(), String> {
        let needs_jwt = [
            (self.auth_issuer.is_some(), "--auth-issuer"),
            (self.auth_audience.is_some(), "--auth-audience"),
            (self.auth_cookie.is_some(), "--auth-cookie"),
            (
                !self.auth_admin_subjects.is_empty(),
                "--auth-admin-subjects",
            ),
            (self.auth_single_use_creation, "--auth-single-use-creation"),
        ];
        if let Some((_, flag)) = needs_jwt.iter().find(|(set, _)| *set && !settings.jwt()) {
            return Err(format!(
                "{flag} needs a key: --auth-jwt-secret-file, --auth-jwt-public-key or --auth-jwks"
            ));
        }
        if let Some(url) = &self.access_hook_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err("--access-hook-url must be an http:// or https:// URL".into());
        }
        if self.access_hook_timeout.0.is_zero() {
            return Err("--access-hook-timeout must be more than 0".into());
        }
        Ok(())
    }
}
