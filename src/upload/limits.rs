//! The sizes and timings the upload core works within, and their defaults.

use super::plan::{MIB, PartLimits};
use std::time::Duration;

/// Sizes and timings the core works within.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The store's multipart rules.
    pub parts: PartLimits,
    /// The part size used unless an upload is too large for it.
    pub part_size: u64,
    /// The largest `Upload-Length` accepted (advertised as `Tus-Max-Size`).
    pub max_size: u64,
    /// The largest size a deferred-length upload may reach; its part size is
    /// chosen so that this fits in the part grid.
    pub max_deferred_size: u64,
    /// How long a PATCH waits for another request to let go of an upload.
    pub lock_wait: Duration,
    /// Part uploads in flight per PATCH while more bytes are read.
    pub parts_in_flight: usize,
    /// Part uploads in flight across all PATCHes. A PATCH with a full part
    /// and no free slot stops reading until one frees; while slots are
    /// short, a PATCH reads its next part only within its share of them, so
    /// memory stays near one part per PATCH, however fast clients send.
    pub parts_in_flight_total: usize,
    /// Part copies or uploads in flight while a final upload is assembled.
    pub assembly_in_flight: usize,
    /// Expired uploads handled per reaper pass.
    pub reap_batch: usize,
    /// Bytes buffered across all requests, in KiB; past it, requests wait
    /// up to `budget_wait`, then stop, keep what they have and are refused
    /// ([`super::Error::BufferFull`]).
    pub buffer_budget_kib: u32,
    /// How long a PATCH waits for room in the buffer budget.
    pub budget_wait: std::time::Duration,
    /// PATCHes (and creations with a body) written at once; past it, they
    /// are refused before a byte is read ([`super::Error::TooManyWriters`]).
    pub max_active_appends: usize,
    /// A PATCH body that sends nothing for this long is treated as cut off.
    pub body_idle_timeout: Duration,
    /// Unfinished uploads expire this long after their last PATCH; `None`
    /// keeps them forever.
    pub expire_after: Option<Duration>,
    /// Tell expired uploads from unknown ones ([`super::Error::Expired`]), and
    /// remember reaped ones for a while to do so; otherwise both are
    /// [`super::Error::NotFound`] (some clients re-create an upload only then).
    pub expired_gone: bool,
    /// How long past its expiry a credential may still resume (HEAD,
    /// PATCH) an unfinished upload of its subject.
    pub resume_grace: Duration,
    /// At most one post-receive per PATCH in this interval.
    pub progress_interval: Duration,
}

impl Limits {
    /// The part size used unless an upload is too large for it.
    pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
    /// Part uploads in flight per PATCH.
    pub const DEFAULT_PARTS_IN_FLIGHT: usize = 4;
    /// Part uploads in flight across all PATCHes.
    pub const DEFAULT_PARTS_IN_FLIGHT_TOTAL: usize = 8;
    /// Bytes buffered across all requests.
    pub const DEFAULT_BUFFER_BUDGET: u64 = 1 << 30;
    /// PATCHes written at once.
    pub const DEFAULT_MAX_ACTIVE_APPENDS: usize = 1024;
    /// How long an unfinished upload lives after its last PATCH.
    pub const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(24 * 3600);

    /// Production defaults for a given part size and optional size cap.
    pub fn new(part_size: u64, max_size: Option<u64>) -> Self {
        let parts = PartLimits::S3;
        Self {
            parts,
            part_size,
            max_size: max_size.unwrap_or(parts.max_object_size),
            max_deferred_size: max_size
                .unwrap_or(part_size.saturating_mul(u64::from(parts.max_parts))),
            lock_wait: Duration::from_secs(3),
            parts_in_flight: Self::DEFAULT_PARTS_IN_FLIGHT,
            parts_in_flight_total: Self::DEFAULT_PARTS_IN_FLIGHT_TOTAL,
            assembly_in_flight: 3,
            reap_batch: 100,
            buffer_budget_kib: Self::budget_kib(Self::DEFAULT_BUFFER_BUDGET),
            budget_wait: Duration::from_secs(5),
            max_active_appends: Self::DEFAULT_MAX_ACTIVE_APPENDS,
            body_idle_timeout: Duration::from_secs(60),
            expire_after: Some(Self::DEFAULT_EXPIRE_AFTER),
            expired_gone: false,
            resume_grace: Self::DEFAULT_EXPIRE_AFTER,
            progress_interval: Duration::from_secs(1),
        }
    }

    /// A buffer budget of `bytes`, in the KiB the core counts it in.
    pub fn budget_kib(bytes: u64) -> u32 {
        u32::try_from(bytes / 1024).unwrap_or(u32::MAX)
    }
}
