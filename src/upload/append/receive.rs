//! One PATCH body from start to settlement: the reading stage feeds the
//! committer, the checksum stage judges the body, and what is left past the
//! last full part joins the tail in one last commit.

use super::AppendRequest;
use super::commit::{Progress, Report, commit_parts};
use super::read::{Ended, Reader};
use super::verify::{Verdict, Verifier};
use crate::upload::model::UploadInfo;
use crate::upload::notify::ProgressHook;
use crate::upload::ports::{Change, Commit, LockGuard};
use crate::upload::{Error, UploadService};
use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};

impl UploadService {
    /// Streams the body into parts and the tail.
    pub(super) async fn receive(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        mut request: AppendRequest,
        hook: &mut ProgressHook,
    ) -> Received {
        let start = Progress::at(info.offset, info.part_size);
        let ctx = match self.commit_ctx(guard, info) {
            Ok(ctx) => ctx,
            Err(e) => return Received::failed(start, e),
        };
        let mut verifier = Verifier::new(std::mem::take(&mut request.verify));
        let (verdict_tx, verdict_rx) = match verifier {
            Some(_) => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let (parts, jobs) = mpsc::channel(1);
        let committing = commit_parts(ctx, jobs, start, verdict_rx);
        let committer = tokio::spawn(tracing::Instrument::in_current_span(committing));
        let mut reader = Reader::new(self, guard, info, request.content_length);
        let ended = reader
            .read(&mut request.body, &parts, &mut verifier, hook)
            .await;
        // Its budget share stays held until the bytes are committed.
        let (pending, _budget) = reader.buffer.into_new_bytes();
        drop(parts);
        let verdict = Verdict::of(verifier, &ended);
        if let Some(tx) = verdict_tx {
            let _ = tx.send(verdict.keeps());
        }
        let report = committer.await.unwrap_or_else(|e| Report {
            progress: start,
            failure: Some(Error::Internal(format!("committer failed: {e}"))),
        });
        self.settle(guard, info, ended, verdict, report, pending)
            .await
    }

    /// Decides how a PATCH ends once the committer is done, and appends the
    /// bytes past the last full part to the tail if they are to be kept.
    async fn settle(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        ended: Ended,
        verdict: Verdict,
        report: Report,
        pending: BytesMut,
    ) -> Received {
        let progress = report.progress;
        if let Some(e) = report.failure {
            return Received::failed(progress, e);
        }
        match ended {
            Ended::Complete => {}
            Ended::Cut(cut) => cut.log(info),
            Ended::Refused(e) => return Received::failed(progress, e),
            Ended::CommitterStopped => {
                let e = Error::Internal("the committer stopped without a reason".into());
                return Received::failed(progress, e);
            }
        }
        match verdict {
            Verdict::Keep => {}
            Verdict::Unjudged => {
                tracing::info!(upload = %info.id, "checked body cut short; none of it kept");
                return Received::kept(progress);
            }
            Verdict::Refused(e) => {
                tracing::info!(upload = %info.id, error = %e, "checked body not kept");
                return Received::failed(progress, e);
            }
        }
        if pending.is_empty() {
            return Received::kept(progress);
        }
        let pending = pending.freeze();
        let commit = Commit {
            expected_offset: progress.offset,
            expected_tail_len: progress.tail,
            new_offset: progress.offset + pending.len() as u64,
            change: Change::AppendTail(pending.clone()),
            events: Vec::new(),
        };
        let after = Progress::after(&commit);
        let committed = self.state.commit(&info.id, guard.token(), commit).await;
        self.part_pool.recycle(pending);
        match committed {
            Ok(()) => Received::kept(after),
            Err(e) => Received::failed(progress, e.into()),
        }
    }
}

/// Where a PATCH left the upload, and the error that stopped it, if any.
pub(super) struct Received {
    /// Always what is committed.
    pub progress: Progress,
    pub result: Result<(), Error>,
}

impl Received {
    fn kept(progress: Progress) -> Self {
        Self {
            progress,
            result: Ok(()),
        }
    }

    fn failed(progress: Progress, e: Error) -> Self {
        Self {
            progress,
            result: Err(e),
        }
    }
}
