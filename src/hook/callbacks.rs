//! Hooks in process, for embedders: async functions for the hooks that
//! decide (`pre-create`, `pre-finish`, `pre-terminate`, and `post-receive`
//! for its `StopUpload`), and subscribers told of every event. Durable
//! events reach subscribers from the outbox, at least once, as a receiver
//! over HTTP gets them: a subscriber that fails is called again later.
//!
//! ```no_run
//! use partway::hook::Callbacks;
//! use partway::upload::events::{HookKind, Verdict};
//!
//! let hooks = Callbacks::new()
//!     .on(HookKind::PreCreate, |event| async move {
//!         let named = event.body.upload.meta_data.contains_key("filename");
//!         Ok(Verdict { reject_upload: !named, ..Verdict::default() })
//!     })
//!     .subscribe(|event| async move {
//!         println!("{} {}", event.kind, event.body.upload.id);
//!         Ok(())
//!     });
//! ```

use crate::upload::events::{Application, Event, HookFailure, HookKind, Verdict};
use async_trait::async_trait;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

type Handler = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<Verdict, HookFailure>> + Send + Sync>;
type Subscriber = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), HookFailure>> + Send + Sync>;

/// The embedder's hooks.
#[derive(Clone, Default)]
pub struct Callbacks {
    handlers: HashMap<HookKind, Handler>,
    subscribers: Vec<Subscriber>,
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("handlers", &self.handlers.keys().collect::<Vec<_>>())
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

impl Callbacks {
    /// No hooks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers hook `kind` with `handler`.
    #[must_use]
    pub fn on<F, Fut>(mut self, kind: HookKind, handler: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Verdict, HookFailure>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |event| Box::pin(handler(event)));
        self.handlers.insert(kind, handler);
        self
    }

    /// Tells `subscriber` of every post-* event.
    #[must_use]
    pub fn subscribe<F, Fut>(mut self, subscriber: F) -> Self
    where
        F: Fn(Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HookFailure>> + Send + 'static,
    {
        let subscriber: Subscriber = Arc::new(move |event| Box::pin(subscriber(event)));
        self.subscribers.push(subscriber);
        self
    }
}

fn is_post(kind: HookKind) -> bool {
    kind.is_durable() || kind == HookKind::PostReceive
}

#[async_trait]
impl Application for Callbacks {
    fn wants(&self, kind: HookKind) -> bool {
        self.handlers.contains_key(&kind) || (is_post(kind) && !self.subscribers.is_empty())
    }

    async fn send(&self, event: &Event) -> Result<Verdict, HookFailure> {
        if is_post(event.kind) {
            for subscriber in &self.subscribers {
                subscriber(event.clone()).await?;
            }
        }
        match self.handlers.get(&event.kind) {
            Some(handler) => handler(event.clone()).await,
            None => Ok(Verdict::default()),
        }
    }
}
