//! Bearer tokens (JWT) verified in process: the signature against the
//! configured keys, `iss`, `aud`, `nbf` and `exp` with a leeway, and the
//! claims turned into the core's [`Grant`].
//!
//! Expiry is not a refusal here: a token past its `exp` yields a grant that
//! says how late it is, and the core decides whether the resume grace
//! covers the access.

use super::keys::{Key, MIN_REFETCH, RemoteJwks};
use super::token::{Presented, presented};
use crate::upload::access::{
    AccessRequest, Action, Authorizer, Denial, Grant, Permission, Redemption, Rules,
};
use crate::upload::model::{UploadId, now_secs};
use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

/// What the JWT authorizer checks, besides the signature.
#[derive(Debug, Clone, Default)]
pub struct JwtRules {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's), when set.
    pub audience: Option<String>,
    /// Clock skew absorbed for `exp` and `nbf`.
    pub leeway: Duration,
    /// The cookie a token may come in, besides `Authorization: Bearer`.
    pub cookie: Option<String>,
    /// Subjects that act on any upload.
    pub admin_subjects: Vec<String>,
    /// A creation token must carry `jti`, and is redeemed once.
    pub single_use_creation: bool,
}

/// Verifies bearer tokens.
pub struct JwtAuthorizer {
    keys: Vec<Key>,
    remote: Vec<Arc<RemoteJwks>>,
    rules: JwtRules,
}

/// The claims partway reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    partway: Option<PartwayClaim>,
}

/// The namespaced claim `partway`: limits carried by the token.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PartwayClaim {
    max_size: Option<u64>,
    content_types: Option<Vec<String>>,
    uploads: Option<Vec<String>>,
    actions: Option<Vec<String>>,
}

fn invalid(reason: impl Into<String>) -> Denial {
    Denial::Unauthenticated {
        reason: reason.into(),
        invalid: true,
    }
}

impl JwtAuthorizer {
    /// An authorizer over static keys and JWKS URLs.
    pub(crate) fn new(keys: Vec<Key>, remote: Vec<Arc<RemoteJwks>>, rules: JwtRules) -> Self {
        Self {
            keys,
            remote,
            rules,
        }
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.leeway = self.rules.leeway.as_secs();
        v.validate_exp = false;
        v.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(iss) = &self.rules.issuer {
            v.set_issuer(&[iss]);
            required.push("iss");
        }
        match &self.rules.audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        v
    }

    /// Every key that may verify a token with this header.
    fn candidates(&self, alg: Algorithm, kid: Option<&str>) -> Vec<Key> {
        let remote = self.remote.iter().flat_map(|r| r.keys().to_vec());
        self.keys
            .iter()
            .cloned()
            .chain(remote)
            .filter(|k| k.fits(alg, kid))
            .collect()
    }

    /// The token's claims, if a key verifies it and its claims hold.
    async fn verify(&self, token: &str) -> Result<Claims, Denial> {
        let header = decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        let kid = header.kid.as_deref();
        let mut keys = self.candidates(header.alg, kid);
        if keys.is_empty() && kid.is_some() {
            // A new key may have been published: look, at most so often.
            for remote in &self.remote {
                remote.refresh(MIN_REFETCH).await;
            }
            keys = self.candidates(header.alg, kid);
        }
        if keys.is_empty() {
            return Err(invalid("no key verifies tokens of this kind"));
        }
        let validation = self.validation(header.alg);
        let mut outcome = Err(invalid("the token's signature is not valid"));
        for key in &keys {
            match decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {}
                Err(e) => outcome = Err(invalid(claim_problem(e.kind()))),
            }
        }
        outcome
    }

    fn grant(&self, claims: Claims, action: Action) -> Result<Grant, Denial> {
        let now = now_secs();
        let leeway = self.rules.leeway.as_secs();
        let expired_for = (now > claims.exp.saturating_add(leeway))
            .then(|| Duration::from_secs(now - claims.exp));
        let redeem = if self.rules.single_use_creation && action == Action::Create {
            let jti = claims
                .jti
                .as_deref()
                .ok_or_else(|| invalid("a creation token must carry jti"))?;
            Some(Redemption {
                key: format!("{}\u{0}{jti}", claims.iss.as_deref().unwrap_or("")),
                until: claims.exp.saturating_add(leeway),
            })
        } else {
            None
        };
        Ok(Grant {
            admin: self.rules.admin_subjects.contains(&claims.sub),
            subject: Some(claims.sub),
            rules: rules(claims.partway.unwrap_or_default())?,
            expired_for,
            redeem,
        })
    }
}

/// What was wrong with a verified token's claims, in words.
fn claim_problem(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ImmatureSignature => "the token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "the token's issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "the token is not meant for this server (aud)".into(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        _ => "the token is not valid".into(),
    }
}

/// The core's rules from the `partway` claim.
fn rules(claim: PartwayClaim) -> Result<Rules, Denial> {
    let actions = claim
        .actions
        .map(|names| {
            names
                .iter()
                .map(|n| {
                    Permission::parse(n).ok_or_else(|| invalid(format!("unknown action {n:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let uploads = claim
        .uploads
        .unwrap_or_default()
        .iter()
        .map(|id| {
            UploadId::parse(id)
                .ok_or_else(|| invalid("uploads names something that is not an upload id"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rules {
        max_size: claim.max_size,
        content_types: claim.content_types,
        uploads,
        actions,
    })
}

#[async_trait]
impl Authorizer for JwtAuthorizer {
    async fn authorize(&self, request: &AccessRequest<'_>) -> Result<Grant, Denial> {
        let token = match presented(request.caller.headers(), self.rules.cookie.as_deref()) {
            Presented::Token(token) => token,
            Presented::Nothing => {
                return Err(Denial::Unauthenticated {
                    reason: "a bearer token is required".into(),
                    invalid: false,
                });
            }
            Presented::Garbled(why) => return Err(invalid(why)),
        };
        let claims = self.verify(token).await?;
        self.grant(claims, request.action)
    }
}
