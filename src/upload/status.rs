//! Reading an upload's state (HEAD), its finished object (GET) and
//! terminating it (DELETE).

use super::access::{Action, Caller};
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
        self.status(info).await
    }

    /// An upload's state, finished first if it awaits its object.
    pub(super) async fn status(&self, info: UploadInfo) -> Result<UploadInfo> {
        let id = &info.id;
        if !info.awaits_its_object() {
            return Ok(info);
        }
        let Some(guard) = self.locker.try_acquire(id).await? else {
            return Err(Error::Busy);
        };
        // Re-read under the lock: another request may have finished it.
        let finished = match self.get(id).await {
            Ok(fresh) => self.finish(&guard, fresh).await,
            Err(e) => Err(e),
        };
        let finished = self.forget_if_lost(id, finished).await;
        guard.release().await;
        finished.map_err(|e| match e {
            Error::Lost { .. } | Error::NotFound => e,
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
        self.authorized(caller, Action::Delete, id).await?;
        self.remove(id).await
    }

    /// Terminates an upload, for partway itself.
    pub(super) async fn remove(&self, id: &UploadId) -> Result<()> {
        let guard = self.locker.acquire(id, self.limits.lock_wait).await?;
        let result = match self.state.get(id).await {
            Ok(Some(info)) => self.remove_upload(&info).await,
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
    /// one and removes its state. The caller holds its lock.
    pub(super) async fn remove_upload(&self, info: &UploadInfo) -> Result<()> {
        let id = &info.id;
        if let Some(mp) = &info.multipart_id {
            self.objects.abort_multipart(&info.object_key, mp).await?;
        }
        if info.state != UploadState::Receiving {
            self.objects.delete_object(&info.object_key).await?;
        }
        self.state.remove(id).await?;
        Ok(())
    }
}
