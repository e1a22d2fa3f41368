//! The part buffer a PATCH fills as its body streams in (see `append`).

use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use tokio::sync::OwnedSemaphorePermit;

/// The part buffer being filled by a PATCH.
#[derive(Default)]
pub(super) struct Filling {
    pub bytes: BytesMut,
    /// Its share of the global budget, taken when the buffer is started.
    pub budget: Option<OwnedSemaphorePermit>,
    /// Bytes at the start of `bytes` that stand for the stored tail: room
    /// kept in front of the new bytes and filled only if the part
    /// completes, so the part is built in place, with no second buffer.
    pub placeholder: usize,
}

impl Filling {
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
            return Err(Error::Internal("tail length changed".into()));
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
