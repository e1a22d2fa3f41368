//! Reading an upload's state (HEAD), its finished object (GET) and
//! terminating it (DELETE).

use super::access::{Action, Caller};
use super::error::HookRefusal;
use super::events::HookKind;
use super::model::{UploadId, UploadInfo, UploadState};
use super::ports::ObjectStream;
use super::{Error, Result, UploadService};
use std::ops::Range;

impl UploadService {
    /// The upload's state for HEAD, in one state-store read.
    ///
    /// An upload whose bytes have all arrived but whose object is not yet
    /// assembled is finished here first, so HEAD never reports an upload as
    /// complete before its object exists. HEAD never waits for the lock: if
    /// another request holds it, the answer is [`Error::Busy`], which clients
    /// retry.
    ///
    /// # Errors
    /// [`Error::Denied`] when the caller may not; [`Error::NotFound`] for an
    /// unknown upload, or one the caller does not own; [`Error::Busy`] or
    /// [`Error::Finishing`] while it cannot be finished yet.
    pub async fn head(&self, caller: &Caller, id: &UploadId) -> Result<UploadInfo> {
        let (info, _) = self.authorized(caller, Action::Status, id).await?;
        self.status(info, caller).await
    }

    /// An upload's state, finished first if it awaits its object.
    pub(super) async fn status(&self, info: UploadInfo, caller: &Caller) -> Result<UploadInfo> {
        let id = &info.id;
        if !info.awaits_its_object() {
            return Ok(info);
        }
        let Some(guard) = self.locker.try_acquire(id).await? else {
            return Err(Error::Busy);
        };
        // Re-read under the lock: another request may have finished it.
        let finished = match self.get(id).await {
            Ok(fresh) => self.finish(&guard, fresh, caller).await,
            Err(e) => Err(e),
        };
        let finished = self.forget_if_lost(id, finished).await;
        guard.release().await;
        finished.map_err(|e| match e {
            Error::Lost { .. } | Error::NotFound | Error::Hook(_) => e,
            e => {
                tracing::warn!(upload = %id, error = %e, "finishing on HEAD failed");
                Error::Finishing
            }
        })
    }

    /// A finished upload, for download.
    ///
    /// # Errors
    /// [`Error::Denied`] when the caller may not; [`Error::NotFound`] for an
    /// unknown upload, or one the caller may not read;
    /// [`Error::NotFinished`] while it is unfinished.
    pub async fn finished(&self, caller: &Caller, id: &UploadId) -> Result<UploadInfo> {
        let (info, _) = self.authorized(caller, Action::Read, id).await?;
        if info.state != UploadState::Completed {
            return Err(Error::NotFinished {
                offset: info.offset,
                length: info.length,
            });
        }
        Ok(info)
    }

    /// Streams a finished upload's object, or bytes `range` of it, which the
    /// caller has checked against the upload's length.
    ///
    /// # Errors
    /// Store failures.
    pub async fn read(&self, info: &UploadInfo, range: Option<Range<u64>>) -> Result<ObjectStream> {
        Ok(self.objects.get_object(&info.object_key, range).await?)
    }

    /// Terminates an upload: aborts its multipart upload, deletes its object
    /// if it was finished, and removes all its state.
    ///
    /// # Errors
    /// [`Error::Denied`] when the caller may not; [`Error::NotFound`] for an
    /// unknown upload, or one the caller does not own; [`Error::Busy`] if a
    /// request keeps holding it.
    pub async fn terminate(&self, caller: &Caller, id: &UploadId) -> Result<()> {
        let (info, _) = self.authorized(caller, Action::Delete, id).await?;
        let verdict = self
            .ask(self.event(HookKind::PreTerminate, &info, caller))
            .await?;
        if verdict.reject_termination {
            return Err(HookRefusal::TerminationRejected(verdict.response).into());
        }
        self.remove_for(id, Some(caller)).await
    }

    /// Terminates an upload, for partway itself: no event is raised.
    pub(super) async fn remove(&self, id: &UploadId) -> Result<()> {
        self.remove_for(id, None).await
    }

    /// Terminates an upload; post-terminate is raised when `caller` asked.
    async fn remove_for(&self, id: &UploadId, caller: Option<&Caller>) -> Result<()> {
        let guard = self.locker.acquire(id, self.limits.lock_wait).await?;
        let result = match self.state.get(id).await {
            Ok(Some(info)) => self.remove_upload(&info, caller).await,
            Ok(None) => Err(Error::NotFound),
            Err(e) => Err(e.into()),
        };
        guard.release().await;
        if result.is_ok() {
            super::bump(&self.counters.uploads_terminated);
            tracing::info!(upload = %id, "upload terminated");
        }
        result
    }

    /// Aborts an upload's multipart upload, deletes its object if it has
    /// one and removes its state, with post-terminate in the same step when
    /// `caller` asked for it. The caller holds its lock.
    pub(super) async fn remove_upload(
        &self,
        info: &UploadInfo,
        caller: Option<&Caller>,
    ) -> Result<()> {
        let id = &info.id;
        if let Some(mp) = &info.multipart_id {
            self.objects.abort_multipart(&info.object_key, mp).await?;
        }
        if info.state != UploadState::Receiving {
            self.objects.delete_object(&info.object_key).await?;
        }
        let events = caller
            .map(|c| self.announce(HookKind::PostTerminate, info, c))
            .unwrap_or_default();
        self.state.remove(id, &events).await?;
        Ok(())
    }
}
