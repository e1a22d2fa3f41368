//! Posting a hook request and reading its answer, with tusd's delivery
//! rules: `POST <url>` with `{"Type", "Event"}` as JSON; a network error or a
//! 5xx is tried again (up to `attempts` tries in all, `backoff` apart), a
//! 4xx is not; the answer must be 2xx, `application/json` and a JSON
//! object; one deadline covers every try. With a signing secret, each try
//! is signed when it is sent: `Hook-Timestamp` (Unix seconds) and
//! `Hook-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`.

use crate::upload::access::Answer;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use std::time::Duration;
use thiserror::Error;

/// The largest answer read from a hook.
const MAX_ANSWER: usize = 64 * 1024;

/// Why a hook gave no usable answer.
#[derive(Debug, Error)]
pub enum HookError {
    #[error("the hook endpoint cannot be reached: {0}")]
    Unreachable(String),
    #[error("the hook endpoint answered {0}")]
    Status(u16),
    #[error("the hook endpoint did not answer within {0:?}")]
    TimedOut(Duration),
    #[error("the hook's answer is not usable: {0}")]
    BadAnswer(String),
}

/// Posts hook requests to one URL.
#[derive(Debug, Clone)]
pub struct HookClient {
    client: reqwest::Client,
    url: String,
    /// One deadline over all tries.
    timeout: Duration,
    attempts: u32,
    backoff: Duration,
    /// Signs every request when set.
    secret: Option<Vec<u8>>,
}

/// One hook request: its JSON body and the headers besides Content-Type.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub body: Bytes,
    pub headers: Vec<(String, String)>,
}

/// `v1=<hex>`: the HMAC-SHA256 under `secret` of `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        // HMAC takes a key of any length; this cannot happen.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

/// A hook's answer: a JSON object whose keys are matched in any case, as
/// Go's `encoding/json` matches them for tusd.
#[derive(Debug, Clone, Default)]
pub struct HookAnswer(Map<String, Value>);

impl From<Map<String, Value>> for HookAnswer {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

impl HookAnswer {
    /// The value of `key`, in whatever case the receiver wrote it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Whether `key` is `true`.
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The `HTTPResponse` the application chose, if any.
    pub fn http_response(&self) -> Option<Answer> {
        let response = HookAnswer(self.get("HTTPResponse")?.as_object()?.clone());
        let status = response
            .get("StatusCode")
            .and_then(Value::as_u64)
            .and_then(|s| u16::try_from(s).ok());
        let body = response
            .get("Body")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let headers = response
            .get("Header")
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Some(Answer {
            status,
            headers,
            body,
        })
    }
}

impl HookClient {
    /// A client for `url` with tusd's defaults: 3 tries, 1 s apart.
    pub fn new(client: reqwest::Client, url: &str, timeout: Duration) -> Self {
        Self {
            client,
            url: url.to_owned(),
            timeout,
            attempts: 3,
            backoff: Duration::from_secs(1),
            secret: None,
        }
    }

    /// The same client, trying `attempts` times in all, `backoff` apart.
    pub fn with_retries(mut self, attempts: u32, backoff: Duration) -> Self {
        self.attempts = attempts.max(1);
        self.backoff = backoff;
        self
    }

    /// The same client, signing every request with `secret`.
    pub fn signed(mut self, secret: Vec<u8>) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Sends hook `kind` with `event`, and reads the answer.
    ///
    /// # Errors
    /// [`HookError`] when no try gave a usable answer in time.
    pub async fn call(&self, kind: &str, event: Value) -> Result<HookAnswer, HookError> {
        let body = serde_json::to_vec(&json!({ "Type": kind, "Event": event }))
            .map_err(|e| HookError::BadAnswer(e.to_string()))?;
        let request = HookRequest {
            body: body.into(),
            headers: Vec::new(),
        };
        self.send(&request, self.attempts).await
    }

    /// Posts `request`, up to `attempts` tries in all, and reads the answer.
    ///
    /// # Errors
    /// [`HookError`] when no try gave a usable answer in time.
    pub async fn send(
        &self,
        request: &HookRequest,
        attempts: u32,
    ) -> Result<HookAnswer, HookError> {
        tokio::time::timeout(self.timeout, self.tries(request, attempts))
            .await
            .map_err(|_| HookError::TimedOut(self.timeout))?
    }

    async fn tries(&self, request: &HookRequest, attempts: u32) -> Result<HookAnswer, HookError> {
        let mut attempt = 1;
        loop {
            match self.once(request).await {
                Err(e @ (HookError::Unreachable(_) | HookError::Status(500..))) => {
                    if attempt >= attempts {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, attempt, "hook failed; trying again");
                }
                other => return other,
            }
            attempt += 1;
            tokio::time::sleep(self.backoff).await;
        }
    }

    async fn once(&self, request: &HookRequest) -> Result<HookAnswer, HookError> {
        let mut post = self
            .client
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(request.body.clone());
        for (name, value) in &request.headers {
            post = post.header(name, value);
        }
        if let Some(secret) = &self.secret {
            let now = crate::upload::model::now_secs();
            post = post
                .header("Hook-Timestamp", now.to_string())
                .header("Hook-Signature", signature(secret, now, &request.body));
        }
        let response = post
            .send()
            .await
            .map_err(|e| HookError::Unreachable(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(HookError::Status(status.as_u16()));
        }
        let json = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json {
            return Err(HookError::BadAnswer(
                "Content-Type is not application/json".into(),
            ));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HookError::Unreachable(e.without_url().to_string()))?;
        if bytes.len() > MAX_ANSWER {
            return Err(HookError::BadAnswer(format!(
                "longer than {MAX_ANSWER} bytes"
            )));
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(HookAnswer(map)),
            Ok(_) => Err(HookError::BadAnswer("not a JSON object".into())),
            Err(e) => Err(HookError::BadAnswer(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // As Python's hmac.new(b"secret", b'1700000000.{"ID":"1"}', sha256).
        let a = signature(b"secret", 1_700_000_000, br#"{"ID":"1"}"#);
        assert_eq!(
            a,
            "v1=08fcf815bcef27a622d109c2200e7786918e7b1c3fd38d381eaecac316ad596c"
        );
        let b = signature(b"secret", 1_700_000_001, br#"{"ID":"1"}"#);
        let c = signature(b"other", 1_700_000_000, br#"{"ID":"1"}"#);
        assert!(a != b && a != c);
    }

    #[test]
    fn answers_are_read_in_any_case() {
        let answer: Map<String, Value> = serde_json::from_str(
            r#"{"rejectaccess": true, "httpResponse": {"statusCode": 401,
                "body": "who are you", "header": {"X-Why": "expired", "Bad": 1}}}"#,
        )
        .expect("json");
        let answer = HookAnswer(answer);
        assert!(answer.flag("RejectAccess"));
        assert!(!answer.flag("StopUpload"));
        let response = answer.http_response().expect("a response");
        assert_eq!(response.status, Some(401));
        assert_eq!(response.body.as_deref(), Some("who are you"));
        assert_eq!(response.headers, vec![("X-Why".into(), "expired".into())]);
    }
}
