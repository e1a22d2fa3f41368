//! Creating an upload: its part size, its record, its multipart upload.

use super::access::{Caller, Grant};
use super::model::{Concat, ObjectKey, UploadId, UploadInfo, UploadState, now_secs};
use super::{Result, SizeExceeded, UploadService, plan};
use crate::protocol::metadata::Metadata;

/// What a POST asks for.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    /// `Upload-Length`, or `None` for `Upload-Defer-Length: 1`.
    pub length: Option<u64>,
    pub metadata: Option<Metadata>,
    /// `Upload-Concat`, if present.
    pub concat: Option<NewConcat>,
}

/// The `Upload-Concat` of a POST.
#[derive(Debug, Clone)]
pub enum NewConcat {
    Partial,
    /// A final upload: the header as sent, and the partials it names.
    Final {
        header: String,
        partials: Vec<UploadId>,
    },
}

impl UploadService {
    /// Creates an upload for `caller`, who owns it: its record, and its
    /// multipart upload in the store.
    ///
    /// # Errors
    /// [`super::Error::Denied`] when the caller may not;
    /// [`super::Error::SizeExceeded`] when the length is over the limit or
    /// the caller's; store failures.
    pub async fn create(&self, caller: &Caller, mut new: NewUpload) -> Result<UploadInfo> {
        let grant = self
            .grant_creation(caller, new.length, new.metadata.as_ref())
            .await?;
        let concat = match new.concat.take() {
            None => None,
            Some(NewConcat::Partial) => Some(Concat::Partial),
            Some(NewConcat::Final { header, partials }) => {
                return self
                    .create_final(caller, &grant, new, header, partials)
                    .await;
            }
        };
        let (part_size, max_length) = match new.length {
            Some(length) if length > self.limits.max_size => {
                return Err(SizeExceeded::Length {
                    length,
                    max: self.limits.max_size,
                }
                .into());
            }
            Some(length) => (self.part_size_for(length)?, length),
            None => (
                self.part_size_for(self.limits.max_deferred_size)?,
                self.limits.max_deferred_size,
            ),
        };
        let max_length = grant
            .rules
            .max_size
            .map_or(max_length, |m| m.min(max_length));
        self.create_record(new, part_size, max_length, concat, &grant)
            .await
    }

    /// Writes a new upload's record and starts its multipart upload (or,
    /// when it is empty, writes its object at once).
    pub(super) async fn create_record(
        &self,
        new: NewUpload,
        part_size: u64,
        max_length: u64,
        concat: Option<Concat>,
        grant: &Grant,
    ) -> Result<UploadInfo> {
        let id = UploadId::random();
        let object_key = ObjectKey::new(format!("{}{id}", self.key_prefix));
        let content_type = new.metadata.as_ref().and_then(Metadata::content_type);
        let (multipart_id, state) = if new.length == Some(0) {
            self.objects
                .put_object(&object_key, content_type.as_deref(), bytes::Bytes::new())
                .await?;
            (None, UploadState::Completed)
        } else {
            let mp = self
                .objects
                .create_multipart(&object_key, content_type.as_deref())
                .await?;
            (Some(mp), UploadState::Receiving)
        };
        let info = UploadInfo {
            id,
            length: new.length,
            max_length,
            offset: 0,
            part_size,
            metadata: new.metadata.map(|m| m.raw().to_owned()),
            content_type,
            object_key,
            multipart_id,
            state,
            created_at: now_secs(),
            expires_at: None,
            concat,
            owner: grant.subject.clone(),
        };
        let info = UploadInfo {
            expires_at: self.expiry_for(&info),
            ..info
        };
        if let Err(e) = self.state.create(&info).await {
            if let Some(mp) = &info.multipart_id
                && let Err(abort) = self.objects.abort_multipart(&info.object_key, mp).await
            {
                tracing::warn!(error = %abort, "could not abort an orphaned multipart upload");
            }
            return Err(e.into());
        }
        super::bump(&self.counters.uploads_created);
        if info.state == UploadState::Completed {
            super::bump(&self.counters.uploads_finished);
        }
        tracing::info!(upload = %info.id, length = ?info.length, part_size, "upload created");
        Ok(info)
    }

    fn part_size_for(&self, total: u64) -> Result<u64> {
        plan::part_size(total, self.limits.part_size, &self.limits.parts)
            .map_err(|e| SizeExceeded::Grid(e).into())
    }
}
