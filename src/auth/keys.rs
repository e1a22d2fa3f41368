//! The keys tokens are verified with, and the algorithms each allows.
//!
//! The allow-list follows from the keys, never from the token: an HMAC
//! secret verifies only HS256/384/512, an RSA key only RS* and PS*, an EC
//! key only ES256/ES384, an Ed25519 key only EdDSA. So `alg: none` has no
//! key, and an HS256 token "signed" with an RSA public key as its secret is
//! never checked against that key as a secret.
//!
//! A JWKS given as a URL is fetched at start, refreshed on a period and,
//! at most every [`MIN_REFETCH`], when a token names an unknown `kid`; a
//! failed refresh keeps the last good set.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The shortest time between two fetches of a JWKS URL.
pub(crate) const MIN_REFETCH: Duration = Duration::from_secs(30);

/// One verification key.
#[derive(Clone)]
pub(crate) struct Key {
    /// The JWK's `kid`; `None` for a key given as a file.
    pub kid: Option<String>,
    pub key: DecodingKey,
    /// The algorithms this key verifies.
    pub algorithms: Vec<Algorithm>,
}

const HMAC: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];
const RSA: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// An HMAC secret read from a file: at least 32 bytes; a trailing newline
/// is not part of it.
///
/// # Errors
/// An unreadable file, or a secret too short.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = bytes.trim_ascii_end();
    if secret.len() < 32 {
        return Err(format!(
            "{}: an HMAC secret needs at least 32 bytes",
            path.display()
        ));
    }
    Ok(secret.to_vec())
}

impl Key {
    /// An HMAC secret read from a file; a trailing newline is not part of it.
    pub fn secret_file(path: &Path) -> Result<Self, String> {
        let secret = read_secret(path)?;
        let key = DecodingKey::from_secret(&secret).map_err(|e| e.to_string())?;
        Ok(Self {
            kid: None,
            key,
            algorithms: HMAC.to_vec(),
        })
    }

    /// A PEM public key: RSA, EC P-256/P-384 or Ed25519.
    pub fn public_key_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (key, algorithms) = if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
            (key, RSA.to_vec())
        } else if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
            (key, vec![Algorithm::ES256, Algorithm::ES384])
        } else if let Ok(key) = DecodingKey::from_ed_pem(&pem) {
            (key, vec![Algorithm::EdDSA])
        } else {
            return Err(format!(
                "{}: not a PEM RSA, EC or Ed25519 public key",
                path.display()
            ));
        };
        Ok(Self {
            kid: None,
            key,
            algorithms,
        })
    }

    /// A key of a JWKS, if partway can use it.
    fn from_jwk(jwk: &Jwk) -> Option<Self> {
        let by_type = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => RSA.to_vec(),
            AlgorithmParameters::OctetKey(_) => HMAC.to_vec(),
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => vec![Algorithm::ES256],
                EllipticCurve::P384 => vec![Algorithm::ES384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
                vec![Algorithm::EdDSA]
            }
            _ => return None,
        };
        // A key's own `alg` narrows what its type allows; it never widens it.
        let algorithms = match jwk.common.key_algorithm {
            Some(alg) => match Algorithm::try_from(alg) {
                Ok(alg) if by_type.contains(&alg) => vec![alg],
                _ => return None,
            },
            None => by_type,
        };
        Some(Self {
            kid: jwk.common.key_id.clone(),
            key: DecodingKey::from_jwk(jwk).ok()?,
            algorithms,
        })
    }

    /// Whether this key may verify a token with this header.
    pub fn fits(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        self.algorithms.contains(&alg)
            && match (kid, &self.kid) {
                (Some(wanted), Some(have)) => wanted == have,
                _ => true,
            }
    }
}

/// The usable keys of a JWKS document.
pub(crate) fn parse_jwks(text: &str) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS: {e}"))?;
    let keys: Vec<Key> = set.keys.iter().filter_map(Key::from_jwk).collect();
    if keys.is_empty() {
        return Err("the JWKS has no key partway can use".into());
    }
    Ok(keys)
}

/// A JWKS fetched from a URL, kept fresh.
pub(crate) struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<Vec<Key>>>,
    /// When it was last fetched; also serialises fetches.
    fetched: Mutex<Instant>,
}

impl RemoteJwks {
    /// Fetches the set once; partway does not start without it.
    pub async fn fetch_first(url: &str, client: reqwest::Client) -> Result<Arc<Self>, String> {
        let keys = fetch(&client, url).await?;
        Ok(Arc::new(Self {
            url: url.to_owned(),
            client,
            keys: RwLock::new(Arc::new(keys)),
            fetched: Mutex::new(Instant::now()),
        }))
    }

    /// The keys as last fetched.
    pub fn keys(&self) -> Arc<Vec<Key>> {
        self.keys
            .read()
            .map_or_else(|poisoned| poisoned.into_inner().clone(), |k| k.clone())
    }

    /// Fetches again if the last fetch is older than `min_age`; a failure
    /// keeps the keys there are. Returns whether a fetch happened.
    pub async fn refresh(&self, min_age: Duration) -> bool {
        let mut fetched = self.fetched.lock().await;
        if fetched.elapsed() < min_age {
            return false;
        }
        *fetched = Instant::now();
        match fetch(&self.client, &self.url).await {
            Ok(keys) => {
                let mut slot = self.keys.write().unwrap_or_else(|p| p.into_inner());
                *slot = Arc::new(keys);
                tracing::debug!(url = %self.url, "JWKS refreshed");
                true
            }
            Err(e) => {
                tracing::warn!(url = %self.url, error = %e, "JWKS refresh failed; keeping the last good set");
                false
            }
        }
    }

    /// Refreshes every `period` until the process ends.
    pub fn spawn_refresh(self: &Arc<Self>, period: Duration) {
        let jwks = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(jwks) = jwks.upgrade() else { return };
                jwks.refresh(period / 2).await;
            }
        });
    }
}

/// Fetches and parses a JWKS.
async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<Key>, String> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| format!("JWKS {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("JWKS {url}: status {}", response.status()));
    }
    let text = response
        .text()
        .await
        .map_err(|e| format!("JWKS {url}: {e}"))?;
    parse_jwks(&text).map_err(|e| format!("JWKS {url}: {e}"))
}
