//! What the application is told, and what it may decide.
//!
//! The core raises an [`Event`] at each hook point tusd's users know
//! (pre-create, post-create, post-receive, pre-finish, post-finish,
//! pre-terminate, post-terminate) and hands it to the [`Application`] port.
//! Blocking hooks (`pre-*`, and `post-receive`'s stop) wait for its
//! [`Verdict`]; the durable ones (post-create, post-finish, post-terminate)
//! are written by the state store in the same atomic step as the change they
//! report, and delivered later from that outbox (see [`super::deliver`]).
//!
//! An event serializes to tusd v2's hook request (`Type`, `Event.Upload`,
//! `Event.HTTPRequest`) with one more key, `ID`, unique per event, so a
//! receiver written for tusd reads it unchanged and can drop duplicates.

use super::access::{Answer, Caller};
use super::model::{Concat, UploadInfo};
use crate::protocol::metadata::Metadata;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// The hook points, named as tusd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookKind {
    PreCreate,
    PostCreate,
    PostReceive,
    PreFinish,
    PostFinish,
    PreTerminate,
    PostTerminate,
}

impl HookKind {
    /// Every hook, in the order an upload meets them.
    pub const ALL: [Self; 7] = [
        Self::PreCreate,
        Self::PostCreate,
        Self::PostReceive,
        Self::PreFinish,
        Self::PostFinish,
        Self::PreTerminate,
        Self::PostTerminate,
    ];

    /// The name tusd gives it (`pre-create`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreCreate => "pre-create",
            Self::PostCreate => "post-create",
            Self::PostReceive => "post-receive",
            Self::PreFinish => "pre-finish",
            Self::PostFinish => "post-finish",
            Self::PreTerminate => "pre-terminate",
            Self::PostTerminate => "post-terminate",
        }
    }

    /// The hook named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Written to the outbox with the change it reports, and delivered at
    /// least once.
    pub fn is_durable(self) -> bool {
        matches!(
            self,
            Self::PostCreate | Self::PostFinish | Self::PostTerminate
        )
    }
}

impl std::fmt::Display for HookKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One hook request: tusd's `{Type, Event}` plus its unique `ID`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(rename = "Type")]
    pub kind: HookKind,
    #[serde(rename = "Event")]
    pub body: EventBody,
    /// Unique per event; sent again unchanged on every retry.
    #[serde(rename = "ID")]
    pub id: String,
}

/// tusd's `HookEvent`: the upload and the request that caused the hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EventBody {
    pub upload: FileInfo,
    #[serde(rename = "HTTPRequest")]
    pub http_request: HttpRequest,
}

/// tusd's `FileInfo`, keys in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FileInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub size: u64,
    pub size_is_deferred: bool,
    pub offset: u64,
    pub meta_data: BTreeMap<String, String>,
    pub is_partial: bool,
    pub is_final: bool,
    pub partial_uploads: Option<Vec<String>>,
    pub storage: Option<BTreeMap<String, String>>,
}

/// tusd's `HTTPRequest`: header names in Go's canonical form, each with all
/// its values.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpRequest {
    #[serde(rename = "Method")]
    pub method: String,
    #[serde(rename = "URI")]
    pub uri: String,
    #[serde(rename = "RemoteAddr")]
    pub remote_addr: String,
    #[serde(rename = "Header")]
    pub header: BTreeMap<String, Vec<String>>,
}

impl FileInfo {
    /// `info` as tusd describes an upload; `storage` names where its object
    /// lives (`Type` and, on S3, `Bucket`), to which its `Key` is added.
    pub fn of(info: &UploadInfo, storage: &BTreeMap<String, String>) -> Self {
        let meta_data = info
            .metadata
            .as_deref()
            .and_then(|raw| Metadata::parse(raw.as_bytes()).ok())
            .map(|m| {
                m.pairs()
                    .map(|(k, v)| (k.to_owned(), String::from_utf8_lossy(v).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let partial_uploads = match &info.concat {
            Some(Concat::Final { partials, .. }) => {
                Some(partials.iter().map(ToString::to_string).collect())
            }
            _ => None,
        };
        let mut storage = storage.clone();
        storage.insert("Key".into(), info.object_key.as_str().to_owned());
        Self {
            id: info.id.to_string(),
            size: info.length.unwrap_or(0),
            size_is_deferred: info.length.is_none(),
            offset: info.offset,
            meta_data,
            is_partial: info.concat == Some(Concat::Partial),
            is_final: info.is_final(),
            partial_uploads,
            storage: Some(storage),
        }
    }
}

impl HttpRequest {
    /// The request `caller` made.
    pub fn of(caller: &Caller) -> Self {
        let mut header: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in caller.headers() {
            if let Ok(value) = value.to_str() {
                header
                    .entry(canonical(name.as_str()))
                    .or_default()
                    .push(value.to_owned());
            }
        }
        Self {
            method: caller.method().to_owned(),
            uri: caller.uri().to_owned(),
            remote_addr: caller.peer().map(|p| p.to_string()).unwrap_or_default(),
            header,
        }
    }
}

/// `content-type` as Go writes it: `Content-Type`.
pub fn canonical(name: &str) -> String {
    name.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + &chars.as_str().to_ascii_lowercase()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A fresh event id: 128 random bits.
pub fn new_event_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

/// What the application answered, read as tusd reads it. Empty means
/// "go on unchanged".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Verdict {
    pub reject_upload: bool,
    pub reject_termination: bool,
    pub stop_upload: bool,
    /// pre-create: the new upload's id instead of a random one.
    pub change_id: Option<String>,
    /// pre-create: the new upload's metadata instead of the client's.
    pub change_metadata: Option<BTreeMap<String, String>>,
    /// The response the application chose for a refusal.
    pub response: Option<Answer>,
}

/// The application could not be asked, or gave no usable answer.
#[derive(Debug, Clone, Error)]
#[error("{0}")]
pub struct HookFailure(pub String);

/// The application: told of events, asked by blocking hooks.
#[async_trait]
pub trait Application: Send + Sync + 'static {
    /// Whether hook `kind` is sent at all. A durable kind that is wanted is
    /// written to the outbox.
    fn wants(&self, kind: HookKind) -> bool;

    /// Sends one event and reads the answer.
    ///
    /// # Errors
    /// [`HookFailure`] when no usable answer came in time.
    async fn send(&self, event: &Event) -> Result<Verdict, HookFailure>;

    /// Delivers a durable event from the outbox: one try, whose failure the
    /// deliverer retries later.
    ///
    /// # Errors
    /// [`HookFailure`] when the application did not take it.
    async fn deliver(&self, event: &Event) -> Result<(), HookFailure> {
        self.send(event).await.map(|_| ())
    }
}

/// No application: nothing is sent, nothing is written to an outbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct Nobody;

#[async_trait]
impl Application for Nobody {
    fn wants(&self, _kind: HookKind) -> bool {
        false
    }

    async fn send(&self, _event: &Event) -> Result<Verdict, HookFailure> {
        Ok(Verdict::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_canonical() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(
            canonical("x-http-method-override"),
            "X-Http-Method-Override"
        );
        assert_eq!(canonical("tus-resumable"), "Tus-Resumable");
    }

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in HookKind::ALL {
            assert_eq!(HookKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{kind}\""));
        }
        assert_eq!(HookKind::parse("post-access"), None);
    }
}
