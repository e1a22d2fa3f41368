//! The concatenation extension: a final upload assembled from partial ones.
//!
//! A final upload gets its own multipart upload, built from the partials'
//! objects by [`concat_plan`]: large ranges are copied inside the store
//! (UploadPartCopy), small runs are read and uploaded. The final's record is
//! written first, in `receiving`; assembling is deterministic, so if the
//! process dies half-way the next HEAD simply runs it again, overwriting the
//! same part numbers, and the final moves to `completed` only once its object
//! exists.

use super::access::{Action, Caller, Grant};
use super::concat_plan::{self, PlannedPart};
use super::model::{
    Concat, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId, UploadInfo, UploadState,
};
use super::ports::{LockGuard, StoreError, read_range};
use super::{ConcatRefusal, Error, NewUpload, Result, SizeExceeded, UploadService};
use bytes::BytesMut;
use futures_util::{StreamExt, TryStreamExt};

/// Refuses partials that are not partial uploads, or not finished.
fn usable(partials: &[UploadInfo]) -> Result<()> {
    for info in partials {
        if info.concat != Some(Concat::Partial) {
            return Err(ConcatRefusal::NotPartial(info.id.clone()).into());
        }
        if info.state != UploadState::Completed {
            return Err(ConcatRefusal::Unfinished(info.id.clone()).into());
        }
    }
    Ok(())
}

impl UploadService {
    /// Loads the partial uploads a final upload names, refusing any that
    /// cannot be used.
    ///
    /// # Errors
    /// [`Error::Concat`] naming the first unusable partial.
    pub(super) async fn usable_partials(&self, ids: &[UploadId]) -> Result<Vec<UploadInfo>> {
        let partials = self.named_partials(ids).await?;
        usable(&partials)?;
        Ok(partials)
    }

    /// Loads the uploads a final upload names.
    async fn named_partials(&self, ids: &[UploadId]) -> Result<Vec<UploadInfo>> {
        if ids.is_empty() {
            return Err(ConcatRefusal::NoPartials.into());
        }
        let now = super::model::now_secs();
        let mut partials = Vec::with_capacity(ids.len());
        for id in ids {
            match self.state.get(id).await? {
                Some(info) if !info.expired(now) => partials.push(info),
                _ => return Err(ConcatRefusal::Unknown(id.clone()).into()),
            }
        }
        Ok(partials)
    }

    /// The partials `caller` may concatenate, loaded: one it may not read is
    /// refused exactly as one that does not exist.
    async fn partials_for(&self, caller: &Caller, ids: &[UploadId]) -> Result<Vec<UploadInfo>> {
        let partials = self.named_partials(ids).await?;
        let grant = self.grant_for(caller, Action::Concat, &partials).await?;
        for info in &partials {
            if self.check_upload(&grant, Action::Concat, info).is_err() {
                return Err(ConcatRefusal::Unknown(info.id.clone()).into());
            }
        }
        usable(&partials)?;
        Ok(partials)
    }

    /// Creates a final upload and assembles its object.
    pub(super) async fn create_final(
        &self,
        caller: &Caller,
        grant: &Grant,
        new: NewUpload,
        header: String,
        ids: Vec<UploadId>,
    ) -> Result<UploadInfo> {
        let partials = self.partials_for(caller, &ids).await?;
        let length = partials.iter().map(|p| p.offset).sum::<u64>();
        if length > self.limits.max_size {
            return Err(SizeExceeded::Partials {
                total: length,
                max: self.limits.max_size,
            }
            .into());
        }
        if let Some(max) = grant.rules.max_size.filter(|max| length > *max) {
            return Err(SizeExceeded::Grant { length, max }.into());
        }
        let sizes: Vec<u64> = partials.iter().map(|p| p.offset).collect();
        concat_plan::plan(&sizes, &self.limits.parts).map_err(ConcatRefusal::from)?;
        let concat = Concat::Final {
            header,
            partials: ids,
        };
        let info = self.new_record(
            NewUpload {
                length: Some(length),
                ..new
            },
            self.limits.part_size,
            length,
            Some(concat),
            grant,
        );
        let info = self.create_record(caller, info).await?;
        let guard = self.locker.acquire(&info.id, self.limits.lock_wait).await?;
        let assembled = self
            .assemble_from(&guard, info.clone(), &partials, caller)
            .await;
        guard.release().await;
        match assembled {
            Ok(info) => Ok(info),
            Err(e) => {
                tracing::warn!(upload = %info.id, error = %e, "assembling a final upload failed");
                if let Err(cleanup) = self.remove(&info.id).await {
                    tracing::warn!(upload = %info.id, error = %cleanup, "could not remove it");
                }
                Err(e)
            }
        }
    }

    /// Builds a final upload's object from its partials and marks it
    /// completed. The caller holds its lock.
    pub(super) async fn assemble(
        &self,
        guard: &LockGuard,
        info: UploadInfo,
        caller: &Caller,
    ) -> Result<UploadInfo> {
        let Some(Concat::Final { partials, .. }) = &info.concat else {
            return Ok(info);
        };
        // A partial that went away since the final was created means the
        // final cannot be built any more; a store that is down does not.
        let sources = self.usable_partials(partials).await.map_err(|e| match e {
            Error::Concat(refusal) => Error::Lost {
                detail: refusal.to_string(),
            },
            e => e,
        })?;
        self.assemble_from(guard, info, &sources, caller).await
    }

    /// Assembles a final upload from `sources`, its partials as loaded.
    async fn assemble_from(
        &self,
        guard: &LockGuard,
        mut info: UploadInfo,
        sources: &[UploadInfo],
        caller: &Caller,
    ) -> Result<UploadInfo> {
        if info.state == UploadState::Completed {
            // An empty final: its object was written at creation.
            return Ok(info);
        }
        let length = info.length.unwrap_or(0);
        if let Some(mp) = &info.multipart_id {
            let sizes: Vec<u64> = sources.iter().map(|p| p.offset).collect();
            let plan =
                concat_plan::plan(&sizes, &self.limits.parts).map_err(ConcatRefusal::from)?;
            let keys: Vec<&ObjectKey> = sources.iter().map(|p| &p.object_key).collect();
            let parts = futures_util::stream::iter(plan.into_iter().enumerate())
                .map(|(i, part)| self.assemble_part(&info.object_key, mp, i, part, &keys))
                .buffered(self.limits.assembly_in_flight.max(1))
                .try_collect::<Vec<_>>()
                .await?;
            self.complete_sized(&info, &parts, length).await?;
        }
        self.mark_completed(guard, &info, caller, (length, 0))
            .await?;
        self.state.set_expiry(&info.id, None).await?;
        info.offset = length;
        info.state = UploadState::Completed;
        info.expires_at = None;
        tracing::info!(upload = %info.id, length, "final upload assembled");
        Ok(info)
    }

    async fn assemble_part(
        &self,
        key: &ObjectKey,
        mp: &MultipartId,
        index: usize,
        part: PlannedPart,
        sources: &[&ObjectKey],
    ) -> Result<PartRecord> {
        let number = PartNumber::at_index(index)
            .ok_or_else(|| Error::Internal("part count overflow".into()))?;
        let size = part.size();
        let etag = match part {
            PlannedPart::Copy(piece) => self
                .objects
                .upload_part_copy(key, mp, number, sources[piece.source], piece.range)
                .await
                .map_err(Error::from_multipart)?,
            PlannedPart::Upload(pieces) => {
                let mut data = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
                for piece in pieces {
                    let bytes = read_range(&*self.objects, sources[piece.source], piece.range)
                        .await
                        .map_err(|e| match e {
                            StoreError::NotFound(detail) => Error::Lost { detail },
                            e => e.into(),
                        })?;
                    data.extend_from_slice(&bytes);
                }
                self.objects
                    .upload_part(key, mp, number, data.freeze())
                    .await
                    .map_err(Error::from_multipart)?
            }
        };
        Ok(PartRecord { number, etag, size })
    }
}
