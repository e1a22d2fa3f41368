//! Core tests of the bounds on parts in flight: per PATCH, and across all
//! PATCHes at once, whatever the number of PATCHes.

use super::faults::{FlakyComplete, flaky_service_with};
use super::{PART, anyone, body, new_upload, send, stored};
use crate::store::local::LocalObjects;
use crate::upload::model::UploadInfo;
use crate::upload::{AppendRequest, BodyStream, UploadService, Verify};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::watch;

#[tokio::test]
async fn parts_in_flight_across_patches_stay_within_the_total() {
    for (per_patch, total) in [(4, 1), (4, 3), (2, 8)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (service, counting, objects) = flaky_service_with(dir.path(), 0, |limits| {
            limits.parts_in_flight = per_patch;
            limits.parts_in_flight_total = total;
        });
        let data: Vec<u8> = (0..12 * PART).map(|i| (i % 241) as u8).collect();
        let mut uploads = Vec::new();
        for _ in 0..4 {
            uploads.push(new_upload(&service, Some(data.len() as u64)).await);
        }
        let patches = uploads.iter().map(|info| {
            let (service, id, data) = (service.clone(), info.id.clone(), data.clone());
            tokio::spawn(async move { service.append(&anyone(), &id, send(0, &data)).await })
        });
        for patched in futures_util::future::join_all(patches).await {
            let info = patched.expect("join").expect("patch");
            assert_eq!(info.offset, data.len() as u64);
        }
        for info in &uploads {
            assert_eq!(stored(&objects, info), data);
        }
        let peak = counting.parts_peak.load(Ordering::SeqCst);
        let bound = total.min(uploads.len() * per_patch);
        assert!(
            (1..=bound).contains(&peak),
            "{peak} parts at once, at most {bound} allowed"
        );
    }
}

/// Polls `ready` every few ms until it holds, for at most five seconds.
async fn until(what: &str, ready: impl Fn() -> bool) {
    for _ in 0..1000 {
        if ready() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("never: {what}");
}

/// Uploads of three parts each over a store that holds every part until
/// the test lets it through, with two slots across PATCHes.
struct Held {
    _dir: tempfile::TempDir,
    service: Arc<UploadService>,
    store: Arc<FlakyComplete>,
    objects: LocalObjects,
    data: Vec<u8>,
    uploads: Vec<UploadInfo>,
    patches: Vec<tokio::task::JoinHandle<crate::upload::Result<UploadInfo>>>,
}

impl Held {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (service, store, objects) = flaky_service_with(dir.path(), 0, |limits| {
            limits.parts_in_flight = 4;
            limits.parts_in_flight_total = 2;
        });
        store.let_through.forget_permits(usize::MAX);
        let data = (0..3 * PART).map(|i| (i % 239) as u8).collect();
        Self {
            _dir: dir,
            service,
            store,
            objects,
            data,
            uploads: Vec::new(),
            patches: Vec::new(),
        }
    }

    /// Starts a PATCH of a new upload, its body sent a part per chunk once
    /// `open` is true.
    async fn patch(&mut self, open: watch::Receiver<bool>) {
        let info = new_upload(&self.service, Some(self.data.len() as u64)).await;
        let (service, id) = (self.service.clone(), info.id.clone());
        let chunks = self.data.chunks(PART as usize).map(<[u8]>::to_vec);
        let request = AppendRequest {
            offset: 0,
            declared_length: None,
            content_length: Some(self.data.len() as u64),
            body: held_body(chunks.collect(), open),
            verify: Verify::None,
        };
        let patch = async move { service.append(&anyone(), &id, request).await };
        self.patches.push(tokio::spawn(patch));
        self.uploads.push(info);
    }

    /// Part buffers held now.
    fn buffers(&self) -> u64 {
        self.service.buffer_in_use_kib() / (PART / 1024)
    }

    /// Waits until the store has been asked for `parts` part uploads.
    async fn parts_entered(&self, parts: usize) {
        let entered = || self.store.parts_uploaded.load(Ordering::SeqCst) == parts;
        until("parts in the store", entered).await;
    }

    /// Lets every part through, then checks that every upload is whole.
    async fn finish(self) {
        let all = tokio::sync::Semaphore::MAX_PERMITS / 2;
        self.store.let_through.add_permits(all);
        for patched in futures_util::future::join_all(self.patches).await {
            let info = patched.expect("join").expect("patch");
            assert_eq!(info.offset, self.data.len() as u64);
        }
        for info in &self.uploads {
            assert_eq!(stored(&self.objects, info), self.data);
        }
    }
}

#[tokio::test]
async fn a_patch_whose_part_waited_for_a_slot_reads_no_part_ahead_of_it() {
    let mut held = Held::new();
    let (_open, opened) = watch::channel(true);
    // The first PATCH takes both slots and waits with its third part; the
    // next three wait with their first.
    for buffers in [3, 4, 5, 6] {
        held.patch(opened.clone()).await;
        until("the PATCH waits for a slot", || held.buffers() == buffers).await;
    }
    // Two parts of the first are stored: their slots go to its third part
    // and to the second PATCH's first, which waited: the second PATCH must
    // not read its next part while that one is in flight.
    for parts in [3, 4] {
        held.store.let_through.add_permits(1);
        held.parts_entered(parts).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(held.buffers(), 4, "part buffers held");
    held.finish().await;
}

#[tokio::test]
async fn more_patches_than_slots_read_one_part_each_at_a_time() {
    let mut held = Held::new();
    // Four PATCHes are being written before any sends a byte.
    let (open, opened) = watch::channel(false);
    for _ in 0..4 {
        held.patch(opened.clone()).await;
    }
    until("four PATCHes written", || {
        held.service.active_appends() == 4
    })
    .await;
    let _ = open.send(true);
    // Two first parts go to the store and two wait for a slot; the two
    // PATCHes with a part in flight read no second part meanwhile.
    held.parts_entered(2).await;
    until("four part buffers", || held.buffers() >= 4).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(held.buffers(), 4, "part buffers held");
    held.finish().await;
}

/// A body of `chunks` that sends nothing until `open` is true.
fn held_body(chunks: Vec<Vec<u8>>, mut open: watch::Receiver<bool>) -> BodyStream {
    let held = futures_util::stream::once(async move {
        let _ = open.wait_for(|open| *open).await;
    });
    let held = held.filter_map(|()| async { None });
    Box::pin(held.chain(body(chunks, false)))
}
