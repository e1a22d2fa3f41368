//! The part-buffering stage of a PATCH: the one buffer a part is built in as
//! the body streams, and its share of the global buffer budget.

use crate::upload::{Error, Result, UploadService};
use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;

/// The part buffer being filled by a PATCH.
#[derive(Default)]
pub(super) struct PartBuffer {
    pub bytes: BytesMut,
    /// Its share of the global budget, taken when the buffer is started.
    pub budget: Option<OwnedSemaphorePermit>,
    /// Bytes at the start of `bytes` that stand for the stored tail: room
    /// kept in front of the new bytes and filled only if the part
    /// completes, so the part is built in place, with no second buffer.
    pub placeholder: usize,
}

impl PartBuffer {
    /// Whether a part is being built (its budget share is taken).
    pub(super) fn is_started(&self) -> bool {
        self.budget.is_some()
    }

    /// New bytes of this request in the buffer (the stored tail excluded).
    pub(super) fn new_bytes(&self) -> u64 {
        (self.bytes.len() - self.placeholder) as u64
    }

    /// Allocates for `expected` new bytes, behind room for `tail` bytes.
    pub(super) fn start(&mut self, expected: u64, tail: u64) {
        self.placeholder = usize::try_from(tail).unwrap_or(0);
        let expected = usize::try_from(expected).unwrap_or(0);
        self.bytes.reserve(self.placeholder + expected);
        self.bytes.resize(self.placeholder, 0);
    }

    /// Puts the stored tail in its room.
    pub(super) fn fill_placeholder(&mut self, tail: &[u8]) -> Result<()> {
        if tail.len() != self.placeholder {
            return Err(Error::Internal(format!(
                "the stored tail has {} bytes, {} expected",
                tail.len(),
                self.placeholder
            )));
        }
        self.bytes[..self.placeholder].copy_from_slice(tail);
        self.placeholder = 0;
        Ok(())
    }

    /// A full part and its budget share. The whole buffer goes with the
    /// part: `split` would leave this side holding the allocation after the
    /// part's share is released, uncounted, while it waits for the next.
    pub(super) fn take_part(&mut self) -> (Bytes, Option<OwnedSemaphorePermit>) {
        (std::mem::take(&mut self.bytes).freeze(), self.budget.take())
    }

    /// The bytes this request brought past its last full part, and their
    /// budget share.
    pub(super) fn into_new_bytes(mut self) -> (BytesMut, Option<OwnedSemaphorePermit>) {
        (self.bytes.split_off(self.placeholder), self.budget)
    }
}

impl UploadService {
    /// Waits a bounded time for room in the global buffer budget for one
    /// part; `None` when there is none (the PATCH then stops, keeps what it
    /// has and is refused with [`Error::BufferFull`]).
    pub(super) async fn reserve(&self, part_size: u64) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(part_size.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .min(self.limits.buffer_budget_kib);
        if let Ok(permit) = self.budget.clone().try_acquire_many_owned(kib) {
            return Some(permit);
        }
        super::super::bump(&self.counters.budget_waits);
        let acquire = self.budget.clone().acquire_many_owned(kib);
        match tokio::time::timeout(self.limits.budget_wait, acquire).await {
            Ok(Ok(permit)) => Some(permit),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}
