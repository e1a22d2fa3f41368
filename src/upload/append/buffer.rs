//! The part-buffering stage of a PATCH: the one buffer a part is built in as
//! the body streams, its share of the global buffer budget, and the pool that
//! full-part buffers return to once their part is uploaded.

use crate::upload::{Error, Result, UploadService};
use bytes::{Bytes, BytesMut};
use std::sync::Mutex;
use tokio::sync::OwnedSemaphorePermit;

/// Buffers of one part size, kept for reuse once their part is uploaded:
/// a fresh buffer costs a page fault for every 4 KiB it is filled with,
/// and freed ones are not always given back to the system. At most
/// `max_idle` wait here.
#[derive(Debug)]
pub struct PartPool {
    part_size: usize,
    max_idle: usize,
    idle: Mutex<Vec<BytesMut>>,
}

impl PartPool {
    pub fn new(part_size: u64, max_idle: usize) -> Self {
        Self {
            part_size: usize::try_from(part_size).unwrap_or(usize::MAX),
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An empty buffer with room for `len` bytes: a pooled one if one is
    /// idle and `len` fits, else a new one of `len`.
    fn take(&self, len: usize) -> BytesMut {
        if len <= self.part_size
            && let Some(buffer) = self.idle.lock().ok().and_then(|mut idle| idle.pop())
        {
            return buffer;
        }
        BytesMut::with_capacity(len)
    }

    /// Keeps a buffer whose bytes are stored (an uploaded part, a tail) for
    /// the next part, if no one else holds it, it has a whole part's room,
    /// and the pool has room.
    pub(super) fn recycle(&self, data: Bytes) {
        let Ok(mut buffer) = data.try_into_mut() else {
            return;
        };
        if buffer.capacity() != self.part_size {
            return;
        }
        buffer.clear();
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push(buffer);
        }
    }

    /// Buffers waiting for reuse.
    #[cfg(test)]
    fn idle(&self) -> usize {
        self.idle.lock().map_or(0, |idle| idle.len())
    }
}

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
    pub(super) fn start(&mut self, expected: u64, tail: u64, pool: &PartPool) {
        self.placeholder = usize::try_from(tail).unwrap_or(0);
        let expected = usize::try_from(expected).unwrap_or(0);
        self.bytes = pool.take(self.placeholder + expected);
        self.bytes.resize(self.placeholder, 0);
    }

    /// Puts the stored tail in its room, or, if none was kept (the body
    /// was not expected to complete the part), in front of the new bytes in
    /// a new buffer.
    pub(super) fn fill_placeholder(&mut self, tail: &[u8]) -> Result<()> {
        if self.placeholder == 0 && !tail.is_empty() {
            let mut bytes = BytesMut::with_capacity(tail.len() + self.bytes.len());
            bytes.extend_from_slice(tail);
            bytes.extend_from_slice(&self.bytes);
            self.bytes = bytes;
            return Ok(());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_part_buffer_is_reused_once_no_one_else_holds_it() {
        let pool = PartPool::new(1024, 2);
        let mut buffer = pool.take(1024);
        buffer.extend_from_slice(&[7; 1024]);
        let part = buffer.freeze();
        let still_sending = part.clone();
        pool.recycle(part);
        assert_eq!(pool.idle(), 0, "a buffer someone holds is not reused");
        pool.recycle(still_sending);
        assert_eq!(pool.idle(), 1);
        let again = pool.take(1024);
        assert!(again.is_empty() && again.capacity() == 1024);
        assert_eq!(pool.idle(), 0);
    }

    #[test]
    fn the_tail_goes_in_front_with_or_without_room_kept_for_it() {
        let pool = PartPool::new(8, 1);
        let mut kept = PartBuffer::default();
        kept.start(5, 3, &pool);
        kept.bytes.extend_from_slice(b"defgh");
        assert_eq!(kept.new_bytes(), 5);
        kept.fill_placeholder(b"abc").expect("fits its room");
        assert_eq!(&kept.bytes[..], b"abcdefgh");
        let mut unkept = PartBuffer::default();
        unkept.start(5, 0, &pool);
        unkept.bytes.extend_from_slice(b"defgh");
        unkept.fill_placeholder(b"abc").expect("goes in front");
        assert_eq!(&unkept.bytes[..], b"abcdefgh");
    }

    #[test]
    fn other_sizes_and_a_full_pool_are_not_kept() {
        let pool = PartPool::new(1024, 1);
        pool.recycle(pool.take(512).freeze());
        assert_eq!(pool.idle(), 0, "only whole parts' buffers");
        pool.recycle(pool.take(1024).freeze());
        assert_eq!(
            pool.take(10).capacity(),
            1024,
            "smaller needs take pooled ones"
        );
        pool.recycle(pool.take(1024).freeze());
        pool.recycle(pool.take(1024).freeze());
        assert_eq!(pool.idle(), 1, "at most max_idle");
    }
}
