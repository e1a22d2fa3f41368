//! Finishing an upload: receiving → completing → completed.
//!
//! Once every byte is acknowledged, the tail goes up as the last part, the
//! upload moves to `completing`, CompleteMultipartUpload assembles the object
//! and the upload moves to `completed`. Each step is idempotent: if the
//! process dies or the store fails anywhere along the way, the next HEAD or
//! PATCH runs `finish` again and picks up where it stopped, without
//! re-uploading committed bytes. An upload is never reported complete before
//! its object exists.

use super::access::Caller;
use super::events::HookKind;
use super::model::{PartNumber, PartRecord, UploadInfo, UploadState};
use super::plan::check_part_list;
use super::ports::{Change, Commit, LockGuard, StoreError};
use super::{Error, Result, UploadService};

impl UploadService {
    /// Finishes an upload whose bytes have all arrived. The caller holds its lock.
    pub(super) async fn finish(
        &self,
        guard: &LockGuard,
        mut info: UploadInfo,
        caller: &Caller,
    ) -> Result<UploadInfo> {
        if info.state == UploadState::Completed {
            return Ok(info);
        }
        if info.is_final() {
            return self.assemble(guard, info, caller).await;
        }
        if !info.all_bytes_received() {
            return Ok(info);
        }
        if info.multipart_id.is_none() {
            return self.finish_in_one(guard, info, caller).await;
        }
        let parts = if info.state == UploadState::Receiving {
            let parts = self.upload_last_part(guard, &info).await?;
            self.set_state(guard, &info, UploadState::Completing)
                .await?;
            info.state = UploadState::Completing;
            parts
        } else {
            self.state.parts(&info.id).await?
        };
        self.complete_sized(&info, &parts, info.offset).await?;
        self.mark_completed(guard, &info, caller, (info.offset, 0))
            .await?;
        self.completed(info).await
    }

    /// Finishes an upload that ended inside its first part, so never started
    /// a multipart upload: its bytes, all in the tail, become the object in
    /// one PutObject. Writing it again after a crash writes the same bytes.
    async fn finish_in_one(
        &self,
        guard: &LockGuard,
        info: UploadInfo,
        caller: &Caller,
    ) -> Result<UploadInfo> {
        let bytes = self.state.read_tail(&info.id, info.offset).await?;
        self.objects
            .put_object(&info.object_key, info.content_type.as_deref(), bytes)
            .await?;
        self.mark_completed(guard, &info, caller, (info.offset, info.offset))
            .await?;
        self.completed(info).await
    }

    /// Says an upload is completed, and lets it live on without expiring.
    async fn completed(&self, mut info: UploadInfo) -> Result<UploadInfo> {
        info.state = UploadState::Completed;
        self.touch(&mut info).await?;
        tracing::info!(upload = %info.id, length = info.offset, key = %info.object_key, "upload completed");
        Ok(info)
    }

    /// Sends the tail up as the final part, unless the parts already cover
    /// every byte (the upload ended exactly on the part grid). Returns the
    /// complete part list.
    async fn upload_last_part(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
    ) -> Result<Vec<PartRecord>> {
        let mut parts = self.state.parts(&info.id).await?;
        let covered: u64 = parts.iter().map(|p| p.size).sum();
        if covered >= info.offset {
            return Ok(parts);
        }
        let Some(mp) = &info.multipart_id else {
            return Err(Error::Internal(format!(
                "upload {} has no multipart upload",
                info.id
            )));
        };
        let tail_len = info.offset - covered;
        let tail = self.state.read_tail(&info.id, tail_len).await?;
        let number = PartNumber::at_index(parts.len())
            .ok_or_else(|| Error::Internal("part count overflow".into()))?;
        let etag = self
            .objects
            .upload_part(&info.object_key, mp, number, tail)
            .await
            .map_err(Error::from_multipart)?;
        let record = PartRecord {
            number,
            etag,
            size: tail_len,
        };
        self.state
            .commit(
                &info.id,
                guard.token(),
                Commit {
                    expected_offset: info.offset,
                    expected_tail_len: tail_len,
                    new_offset: info.offset,
                    change: Change::Part {
                        record: record.clone(),
                        consumes_tail: true,
                    },
                    events: Vec::new(),
                },
            )
            .await?;
        parts.push(record);
        Ok(parts)
    }

    /// The object exists: asks pre-finish, then marks the upload completed
    /// at `offset`, with post-finish written in the same step (and the tail,
    /// `tail_len` bytes, dropped). If pre-finish fails, the upload stays as
    /// it was, and the next HEAD or PATCH (or a final upload's next HEAD)
    /// asks it again: post-finish is never lost.
    pub(super) async fn mark_completed(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        caller: &Caller,
        (offset, tail_len): (u64, u64),
    ) -> Result<()> {
        let done = UploadInfo {
            offset,
            state: UploadState::Completed,
            ..info.clone()
        };
        self.ask(self.event(HookKind::PreFinish, &done, caller))
            .await?;
        let commit = Commit {
            expected_offset: info.offset,
            expected_tail_len: tail_len,
            new_offset: offset,
            change: Change::SetState(UploadState::Completed),
            events: self.announce(HookKind::PostFinish, &done, caller),
        };
        self.state.commit(&info.id, guard.token(), commit).await?;
        super::bump(&self.counters.uploads_finished);
        Ok(())
    }

    async fn set_state(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        state: UploadState,
    ) -> Result<()> {
        self.set_state_at(guard, info, state, info.offset).await
    }

    /// Moves to `state`, with the offset moving to `offset` in the same
    /// step (a final upload's offset jumps to its length once assembled).
    pub(super) async fn set_state_at(
        &self,
        guard: &LockGuard,
        info: &UploadInfo,
        state: UploadState,
        offset: u64,
    ) -> Result<()> {
        self.state
            .commit(
                &info.id,
                guard.token(),
                Commit {
                    expected_offset: info.offset,
                    expected_tail_len: 0,
                    new_offset: offset,
                    change: Change::SetState(state),
                    events: Vec::new(),
                },
            )
            .await?;
        Ok(())
    }

    /// CompleteMultipartUpload, made idempotent: if the multipart upload is
    /// already gone and the object exists with `size` bytes, a previous
    /// attempt succeeded.
    pub(super) async fn complete_sized(
        &self,
        info: &UploadInfo,
        parts: &[PartRecord],
        size: u64,
    ) -> Result<()> {
        let key = &info.object_key;
        let Some(mp) = &info.multipart_id else {
            // Created empty: the object was written at creation.
            return Ok(());
        };
        if size == 0 {
            // A deferred upload that turned out empty: S3 needs at least one
            // part, so write the empty object directly instead.
            self.objects.abort_multipart(key, mp).await?;
            self.objects
                .put_object(key, info.content_type.as_deref(), bytes::Bytes::new())
                .await?;
            return Ok(());
        }
        check_part_list(parts, &self.limits.parts)
            .map_err(|e| Error::Internal(format!("refusing to complete: {e}")))?;
        match self.objects.complete_multipart(key, mp, parts).await {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound(detail)) => {
                if self.objects.object_size(key).await? == Some(size) {
                    Ok(())
                } else {
                    Err(Error::Lost {
                        detail: format!(
                            "upload {}: multipart upload gone and object missing: {detail}",
                            info.id
                        ),
                    })
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}
