//! What a bearer-token check costs per request: the built-in JWT authorizer
//! asked `ROUNDS` times for each kind of key in `tests/keys/`, on one core.
//!
//! ```text
//! cargo run --release --example auth_cost [-- ROUNDS]
//! ```

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use partway::auth::{AuthSettings, build};
use partway::upload::access::{AccessRequest, Action, Caller};
use std::path::{Path, PathBuf};
use std::time::Instant;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One kind of key: how partway is told of it, and how tokens are signed.
struct Kind {
    name: &'static str,
    settings: AuthSettings,
    alg: Algorithm,
    key: EncodingKey,
}

fn keys() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn public_key(file: &str) -> AuthSettings {
    AuthSettings {
        jwt_public_keys: vec![keys().join(file)],
        ..AuthSettings::default()
    }
}

fn kinds(dir: &Path) -> Result<Vec<Kind>, BoxError> {
    let secret = b"0123456789abcdef0123456789abcdef-bench";
    std::fs::write(dir.join("secret"), secret)?;
    let read = |file: &str| std::fs::read(keys().join(file));
    Ok(vec![
        Kind {
            name: "HS256 secret",
            settings: AuthSettings {
                jwt_secret_files: vec![dir.join("secret")],
                ..AuthSettings::default()
            },
            alg: Algorithm::HS256,
            key: EncodingKey::from_secret(secret)?,
        },
        Kind {
            name: "RS256 RSA-2048",
            settings: public_key("rsa.pub"),
            alg: Algorithm::RS256,
            key: EncodingKey::from_rsa_pem(&read("rsa.key")?)?,
        },
        Kind {
            name: "ES256 P-256",
            settings: public_key("ec.pub"),
            alg: Algorithm::ES256,
            key: EncodingKey::from_ec_pem(&read("ec.key")?)?,
        },
        Kind {
            name: "EdDSA Ed25519",
            settings: public_key("ed.pub"),
            alg: Algorithm::EdDSA,
            key: EncodingKey::from_ed_pem(&read("ed.key")?)?,
        },
    ])
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), BoxError> {
    let rounds: u32 = std::env::args().nth(1).map_or(Ok(20_000), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        + 3600;
    let claims =
        serde_json::json!({ "sub": "bench", "exp": exp, "partway": { "max_size": 1 << 30 } });
    println!("{rounds} authorizations per key kind");
    for kind in kinds(dir.path())? {
        let authorizer = build(&kind.settings, None).await?.ok_or("no authorizer")?;
        let token = encode(&Header::new(kind.alg), &claims, &kind.key)?;
        let mut headers = http::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse()?);
        let caller = Caller::new(headers, "PATCH", "/files/x", None);
        let request = AccessRequest {
            action: Action::Write,
            uploads: &[],
            caller: &caller,
        };
        let start = Instant::now();
        for _ in 0..rounds {
            authorizer
                .authorize(&request)
                .await
                .map_err(|e| e.to_string())?;
        }
        let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
        println!("{:<16} {micros:>8.1} µs per request", kind.name);
    }
    Ok(())
}
