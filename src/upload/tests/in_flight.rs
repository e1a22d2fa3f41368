//! Core tests of the bounds on parts in flight: per PATCH, and across all
//! PATCHes at once, whatever the number of PATCHes.

use super::faults::flaky_service_with;
use super::{PART, anyone, new_upload, send, stored};
use std::sync::atomic::Ordering;

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
