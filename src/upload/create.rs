//! Creating an upload: its part size, its record, its multipart upload.

use super::access::{Caller, Grant};
use super::error::HookRefusal;
use super::events::HookKind;
use super::model::{Concat, ObjectKey, UploadId, UploadInfo, UploadState, now_secs};
use super::ports::{PartsFrom, StoreError};
use super::{Error, Result, SizeExceeded, UploadService, plan};
use crate::protocol::metadata::Metadata;
use std::sync::Arc;

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
    /// The work runs in its own task, so a client that goes away cannot cut
    /// a creation (or a final upload's assembly) half-way.
    ///
    /// # Errors
    /// [`super::Error::Denied`] when the caller may not;
    /// [`super::Error::SizeExceeded`] when the length is over the limit or
    /// the caller's; [`super::Error::Hook`] when pre-create refused it or
    /// could not be asked; store failures.
    pub async fn create(self: &Arc<Self>, caller: &Caller, new: NewUpload) -> Result<UploadInfo> {
        let (service, caller) = (self.clone(), caller.clone());
        let work = async move { service.create_here(&caller, new).await };
        tokio::spawn(tracing::Instrument::in_current_span(work))
            .await
            .map_err(|e| super::Error::Internal(format!("create task failed: {e}")))?
    }

    async fn create_here(&self, caller: &Caller, mut new: NewUpload) -> Result<UploadInfo> {
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
        let info = self.new_record(new, part_size, max_length, concat, &grant);
        self.create_record(caller, info).await
    }

    /// A new upload's record, before anything is stored.
    pub(super) fn new_record(
        &self,
        new: NewUpload,
        part_size: u64,
        max_length: u64,
        concat: Option<Concat>,
        grant: &Grant,
    ) -> UploadInfo {
        let id = UploadId::random();
        let content_type = new.metadata.as_ref().and_then(Metadata::content_type);
        UploadInfo {
            object_key: ObjectKey::new(format!("{}{id}", self.key_prefix)),
            id,
            length: new.length,
            max_length,
            offset: 0,
            part_size,
            metadata: new.metadata.map(|m| m.raw().to_owned()),
            content_type,
            multipart_id: None,
            state: UploadState::Receiving,
            created_at: now_secs(),
            expires_at: None,
            concat,
            owner: grant.subject.clone(),
        }
    }

    /// Asks pre-create, writes an empty upload's object at once (or starts a
    /// final upload's multipart upload) and writes the record, with
    /// post-create (and an empty upload's post-finish) in the same step.
    pub(super) async fn create_record(
        &self,
        caller: &Caller,
        info: UploadInfo,
    ) -> Result<UploadInfo> {
        let mut info = self.pre_create(caller, info).await?;
        let content_type = info.content_type.as_deref();
        if info.length == Some(0) {
            self.objects
                .put_object(&info.object_key, content_type, bytes::Bytes::new())
                .await?;
            info.state = UploadState::Completed;
        } else if info.is_final() {
            let mp = self
                .objects
                .create_multipart(&info.object_key, content_type, PartsFrom::Assembly)
                .await?;
            info.multipart_id = Some(mp);
        }
        // Any other upload starts its multipart upload once a first part is
        // coming: one that ends inside its first part costs one PutObject.
        info.expires_at = self.expiry_for(&info);
        let mut events = self.announce(HookKind::PostCreate, &info, caller);
        if info.state == UploadState::Completed {
            let asked = self.ask(self.event(HookKind::PreFinish, &info, caller));
            if let Err(e) = asked.await {
                self.discard(&info, true).await;
                return Err(e);
            }
            events.extend(self.announce(HookKind::PostFinish, &info, caller));
        }
        if let Err(e) = self.state.create(&info, &events).await {
            // A taken id's object may be the other upload's: only the new
            // multipart upload is ours to undo.
            let taken = matches!(e, StoreError::Exists(_));
            self.discard(&info, !taken).await;
            return Err(if taken {
                Error::IdTaken(info.id)
            } else {
                e.into()
            });
        }
        super::bump(&self.counters.uploads_created);
        if info.state == UploadState::Completed {
            super::bump(&self.counters.uploads_finished);
        }
        tracing::info!(upload = %info.id, length = ?info.length, part_size = info.part_size, "upload created");
        Ok(info)
    }

    /// Asks pre-create about `info`, and applies the changes it answered.
    async fn pre_create(&self, caller: &Caller, mut info: UploadInfo) -> Result<UploadInfo> {
        let mut event = self.event(HookKind::PreCreate, &info, caller);
        event.body.upload.id = String::new();
        event.body.upload.storage = None;
        let verdict = self.ask(event).await?;
        if verdict.reject_upload {
            return Err(HookRefusal::UploadRejected(verdict.response).into());
        }
        if let Some(id) = verdict.change_id.filter(|id| !id.is_empty()) {
            let id = UploadId::parse(&id).ok_or_else(|| HookRefusal::Unavailable {
                kind: HookKind::PreCreate,
                detail: format!("ChangeFileInfo.ID {id:?} is not a safe path segment"),
            })?;
            if self.state.get(&id).await?.is_some() {
                return Err(Error::IdTaken(id));
            }
            info.object_key = ObjectKey::new(format!("{}{id}", self.key_prefix));
            info.id = id;
        }
        if let Some(pairs) = verdict.change_metadata {
            let raw = Metadata::encode(pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))));
            let parsed = Metadata::parse(raw.as_bytes()).map_err(|e| HookRefusal::Unavailable {
                kind: HookKind::PreCreate,
                detail: format!("ChangeFileInfo.MetaData: {e}"),
            })?;
            info.content_type = parsed.content_type();
            info.metadata = (!raw.is_empty()).then_some(raw);
        }
        Ok(info)
    }

    /// Undoes what a creation that failed wrote to the object store: its
    /// multipart upload, and with `object`, the empty object of an upload of
    /// length 0.
    async fn discard(&self, info: &UploadInfo, object: bool) {
        let undone = match &info.multipart_id {
            Some(mp) => self.objects.abort_multipart(&info.object_key, mp).await,
            None if object && info.length == Some(0) => {
                self.objects.delete_object(&info.object_key).await
            }
            None => Ok(()),
        };
        if let Err(e) = undone {
            tracing::warn!(error = %e, "could not undo an upload whose creation failed");
        }
    }

    fn part_size_for(&self, total: u64) -> Result<u64> {
        plan::part_size(total, self.limits.part_size, &self.limits.parts)
            .map_err(|e| SizeExceeded::Grid(e).into())
    }
}
