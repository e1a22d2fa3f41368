//! `--hooks-http`: one POST per hook, in tusd v2's JSON plus the event's
//! `ID`, which is also sent as the `Hook-Id` header so a receiver can drop
//! duplicates. Blocking hooks are tried as tusd tries them
//! (`--hooks-http-retry`, `--hooks-http-backoff`, one
//! `--hooks-http-timeout` over all tries); a durable event from the outbox
//! is tried once per delivery round, the deliverer keeping the backoff.

use super::client::{HookClient, HookRequest};
use super::{HookSettings, verdict};
use crate::upload::events::{Application, Event, HookFailure, HookKind, Verdict};
use async_trait::async_trait;

/// Hooks posted to one URL.
pub struct HttpHooks {
    client: HookClient,
    retry: u32,
    forward_headers: Vec<String>,
}

impl HttpHooks {
    /// Hooks for `url`, as `settings` say, signed with `secret` if given.
    pub fn new(url: &str, settings: &HookSettings, secret: Option<Vec<u8>>) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(settings.timeout)
            .build()
            .unwrap_or_default();
        let client = HookClient::new(client, url, settings.timeout)
            .with_retries(settings.retry, settings.backoff);
        Self {
            client: match secret {
                Some(secret) => client.signed(secret),
                None => client,
            },
            retry: settings.retry.max(1),
            forward_headers: settings.forward_headers.clone(),
        }
    }

    /// The POST of `event`: its JSON, `Hook-Id`, and the forwarded headers
    /// with all their values.
    fn request(&self, event: &Event) -> Result<HookRequest, HookFailure> {
        let body = serde_json::to_vec(event).map_err(|e| HookFailure(e.to_string()))?;
        let mut headers = vec![("Hook-Id".to_owned(), event.id.clone())];
        let sent = &event.body.http_request.header;
        for name in &self.forward_headers {
            let values = sent
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v);
            headers.extend(values.map(|v| (name.clone(), v.clone())));
        }
        Ok(HookRequest {
            body: body.into(),
            headers,
        })
    }
}

#[async_trait]
impl Application for HttpHooks {
    fn wants(&self, _kind: HookKind) -> bool {
        true
    }

    async fn send(&self, event: &Event) -> Result<Verdict, HookFailure> {
        let request = self.request(event)?;
        let answer = self
            .client
            .send(&request, self.retry)
            .await
            .map_err(|e| HookFailure(e.to_string()))?;
        Ok(verdict::read(&answer))
    }

    async fn deliver(&self, event: &Event) -> Result<(), HookFailure> {
        let request = self.request(event)?;
        self.client
            .send(&request, 1)
            .await
            .map(|_| ())
            .map_err(|e| HookFailure(e.to_string()))
    }
}
