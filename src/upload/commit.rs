//! The committer of a PATCH: uploads full parts, several at once, and commits
//! them to the state store strictly in order, each with a compare-and-set of
//! the offset (decisions.md 4).
//!
//! When the body carries a checksum, the committer still uploads every part
//! as it comes (memory stays bounded), but holds the commits until the reader
//! has judged the whole body: on a match they are applied in order, on a
//! mismatch none is, and the uploaded parts are left to be overwritten.

use super::model::{PartRecord, UploadId};
use crate::error::Error;
use crate::store::{Change, Commit, ObjectStore, StateStore};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// A full part on its way to the object store.
pub(super) struct PartJob {
    pub number: u32,
    pub data: Bytes,
    /// Bytes of this part that this request brought (the rest was the tail).
    pub new_bytes: u64,
    pub consumes_tail: bool,
    pub _budget: Option<OwnedSemaphorePermit>,
}

/// What the committer needs, owned so it can run as its own task.
#[derive(Clone)]
pub(super) struct CommitCtx {
    pub objects: Arc<dyn ObjectStore>,
    pub state: Arc<dyn StateStore>,
    pub id: UploadId,
    pub key: String,
    pub multipart_id: String,
    pub token: String,
    pub in_flight: usize,
}

/// Where the committer left the upload: offset, tail length, first error.
pub(super) type Committed = (u64, u64, Option<Error>);

/// Uploads parts (several at once) and commits them in order. With a
/// `verdict`, commits wait for it and are dropped unless it is `true`.
pub(super) async fn commit_parts(
    ctx: CommitCtx,
    rx: mpsc::Receiver<PartJob>,
    mut offset: u64,
    mut tail: u64,
    verdict: Option<oneshot::Receiver<bool>>,
) -> Committed {
    let jobs =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|job| (job, rx)) },
        );
    let uploads = jobs
        .map(|job| {
            let ctx = ctx.clone();
            // Spawned, so parts keep moving while this task commits.
            tokio::spawn(async move {
                let etag = ctx
                    .objects
                    .upload_part(&ctx.key, &ctx.multipart_id, job.number, job.data.clone())
                    .await;
                (job, etag)
            })
        })
        .buffered(ctx.in_flight);
    futures_util::pin_mut!(uploads);
    let mut held = Vec::new();
    let mut expected = (offset, tail);
    while let Some(joined) = uploads.next().await {
        let (job, etag) = match joined {
            Ok(done) => done,
            Err(e) => return (offset, tail, Some(Error::Internal(e.to_string()))),
        };
        let etag = match etag {
            Ok(etag) => etag,
            Err(e) => return (offset, tail, Some(Error::from_multipart(e))),
        };
        let commit = Commit {
            expected_offset: expected.0,
            expected_tail_len: expected.1,
            new_offset: expected.0 + job.new_bytes,
            change: Change::Part {
                record: PartRecord {
                    number: job.number,
                    etag,
                    size: job.data.len() as u64,
                },
                consumes_tail: job.consumes_tail,
            },
        };
        expected = (commit.new_offset, 0);
        // The part's buffer and its share of the budget go now.
        drop(job);
        if verdict.is_some() {
            held.push(commit);
            continue;
        }
        if let Err(e) = ctx.state.commit(&ctx.id, &ctx.token, commit).await {
            return (offset, tail, Some(e.into()));
        }
        (offset, tail) = expected;
    }
    if let Some(verdict) = verdict {
        if verdict.await != Ok(true) {
            return (offset, tail, None);
        }
        for commit in held {
            let next = (commit.new_offset, 0);
            if let Err(e) = ctx.state.commit(&ctx.id, &ctx.token, commit).await {
                return (offset, tail, Some(e.into()));
            }
            (offset, tail) = next;
        }
    }
    (offset, tail, None)
}
