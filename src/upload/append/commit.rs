//! The committing stage of a PATCH: a committer task uploads full parts,
//! several at once, and commits them to the state store strictly in order,
//! each with a compare-and-set of the offset, so an acknowledged byte is
//! always durable.
//!
//! When the body carries a checksum, the committer still uploads every part
//! as it comes (memory stays bounded), but holds the commits until the reader
//! has judged the whole body: on a match they are applied in order, on a
//! mismatch none is, and the uploaded parts are left to be overwritten.

use super::buffer::PartPool;
use crate::upload::Error;
use crate::upload::model::{
    ETag, LockToken, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId,
};
use crate::upload::plan;
use crate::upload::ports::{Change, Commit, ObjectStore, StateStore, StoreError};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};

/// A full part on its way to the object store.
pub(super) struct PartJob {
    pub number: PartNumber,
    pub data: Bytes,
    /// Bytes of this part that this request brought (the rest was the tail).
    pub new_bytes: u64,
    pub consumes_tail: bool,
    /// Its share of the buffer budget, given back once it is uploaded.
    pub _budget: Option<OwnedSemaphorePermit>,
    /// Its slot among the parts in flight across all PATCHes.
    pub _slot: OwnedSemaphorePermit,
    /// Its place among this PATCH's parts in flight.
    pub _own: OwnedSemaphorePermit,
}

/// A part the object store acknowledged, not yet committed.
struct Uploaded {
    record: PartRecord,
    new_bytes: u64,
    consumes_tail: bool,
}

/// What the committer needs, owned so it can run as its own task.
#[derive(Clone)]
pub(super) struct CommitCtx {
    pub objects: Arc<dyn ObjectStore>,
    pub state: Arc<dyn StateStore>,
    pub id: UploadId,
    pub key: ObjectKey,
    /// `None` until the upload's first part is coming.
    pub multipart_id: Option<MultipartId>,
    pub token: LockToken,
    pub in_flight: usize,
    /// Where uploaded parts' buffers go back to.
    pub pool: Arc<PartPool>,
}

/// Where an upload's committed bytes stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Progress {
    pub offset: u64,
    /// Bytes of `offset` that sit in the tail, past the last full part.
    pub tail: u64,
}

impl Progress {
    /// The progress of an upload committed up to `offset`.
    pub fn at(offset: u64, part_size: u64) -> Self {
        Self {
            offset,
            tail: plan::tail_len(offset, part_size),
        }
    }

    /// The commit that records `part` on top of this progress.
    fn commit(self, part: Uploaded) -> Commit {
        Commit {
            expected_offset: self.offset,
            expected_tail_len: self.tail,
            new_offset: self.offset + part.new_bytes,
            change: Change::Part {
                record: part.record,
                consumes_tail: part.consumes_tail,
            },
            events: Vec::new(),
        }
    }

    /// The progress once `commit` has applied.
    pub fn after(commit: &Commit) -> Self {
        let tail = match &commit.change {
            Change::AppendTail(data) => commit.expected_tail_len + data.len() as u64,
            Change::Part { .. } => 0,
            Change::SetLength(_) | Change::SetState(_) | Change::SetMultipart(_) => {
                commit.expected_tail_len
            }
        };
        Self {
            offset: commit.new_offset,
            tail,
        }
    }
}

/// How far the committer got, and the error that stopped it, if any.
pub(super) struct Report {
    pub progress: Progress,
    pub failure: Option<Error>,
}

impl Report {
    /// Applies `commit`, moving the progress on.
    async fn apply(&mut self, ctx: &CommitCtx, commit: Commit) -> Result<(), Error> {
        let next = Progress::after(&commit);
        ctx.state.commit(&ctx.id, &ctx.token, commit).await?;
        self.progress = next;
        Ok(())
    }

    fn failed(self, e: Error) -> Self {
        Self {
            failure: Some(e),
            ..self
        }
    }
}

/// Uploads parts (several at once) and commits them in order. With a
/// `verdict`, commits wait for it and are dropped unless it is `true`.
pub(super) async fn commit_parts(
    ctx: CommitCtx,
    jobs: mpsc::Receiver<PartJob>,
    start: Progress,
    verdict: Option<oneshot::Receiver<bool>>,
) -> Report {
    let uploads = upload_parts(&ctx, jobs);
    futures_util::pin_mut!(uploads);
    let mut report = Report {
        progress: start,
        failure: None,
    };
    let mut planned = start;
    let mut held = Vec::new();
    while let Some(uploaded) = uploads.next().await {
        let commit = match uploaded {
            Ok(part) => planned.commit(part),
            Err(e) => return report.failed(e),
        };
        planned = Progress::after(&commit);
        if verdict.is_some() {
            held.push(commit);
        } else if let Err(e) = report.apply(&ctx, commit).await {
            return report.failed(e);
        }
    }
    let Some(verdict) = verdict else {
        return report;
    };
    if verdict.await != Ok(true) {
        return report;
    }
    for commit in held {
        if let Err(e) = report.apply(&ctx, commit).await {
            return report.failed(e);
        }
    }
    report
}

/// The parts of `jobs`, uploaded up to `in_flight` at once, in order. Each
/// job's buffer and budget share go as soon as its part is uploaded.
fn upload_parts(
    ctx: &CommitCtx,
    jobs: mpsc::Receiver<PartJob>,
) -> impl Stream<Item = Result<Uploaded, Error>> + use<> {
    let jobs = futures_util::stream::unfold(jobs, |mut jobs| async move {
        jobs.recv().await.map(|job| (job, jobs))
    });
    let ctx = ctx.clone();
    let (in_flight, pool) = (ctx.in_flight, ctx.pool.clone());
    jobs.map(move |job| {
        let ctx = ctx.clone();
        // Spawned, so parts keep moving while the committer commits.
        tokio::spawn(tracing::Instrument::in_current_span(async move {
            let etag = match &ctx.multipart_id {
                Some(mp) => {
                    ctx.objects
                        .upload_part(&ctx.key, mp, job.number, job.data.clone())
                        .await
                }
                None => Err(StoreError::Other(format!(
                    "upload {}: a part without a multipart upload",
                    ctx.id
                ))),
            };
            (job, etag)
        }))
    })
    .buffered(in_flight)
    .map(move |joined| match joined {
        Ok((job, Ok(etag))) => {
            let part = uploaded(&job, etag);
            pool.recycle(job.data);
            Ok(part)
        }
        Ok((_, Err(e))) => Err(Error::from_multipart(e)),
        Err(e) => Err(Error::Internal(format!("part upload task failed: {e}"))),
    })
}

fn uploaded(job: &PartJob, etag: ETag) -> Uploaded {
    Uploaded {
        record: PartRecord {
            number: job.number,
            etag,
            size: job.data.len() as u64,
        },
        new_bytes: job.new_bytes,
        consumes_tail: job.consumes_tail,
    }
}
