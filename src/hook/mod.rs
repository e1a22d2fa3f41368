//! Talking to the application over HTTP hooks, in the JSON shape tusd's
//! hooks use, so a receiver written for tusd reads partway's requests.
//!
//! [`event`] encodes an upload and the request as tusd does (`FileInfo`,
//! `HTTPRequest`); [`client`] posts a hook request with tusd's retry rules
//! and reads the answer the way Go's `encoding/json` would (keys in any
//! case, unknown keys ignored).

pub mod client;
pub mod event;

pub use client::{HookAnswer, HookClient, HookError};
