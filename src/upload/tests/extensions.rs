//! Core tests of the checksum, concatenation and expiration extensions over
//! the embedded store (which enforces S3's multipart rules), with the part
//! limits shrunk so that many parts fit in a small test.

use super::{PART, anyone, body, new_upload, send, service, stored};
use crate::protocol::checksum::{Algorithm, Checksum, digest};
use crate::upload::Error;
use crate::upload::model::{UploadId, UploadState};
use crate::upload::{AppendRequest, NewConcat, NewUpload, TrailerSlot, UploadService, Verify};
use std::sync::Arc;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

fn checked(offset: u64, bytes: &[u8], claimed: &[u8]) -> AppendRequest {
    AppendRequest {
        verify: Verify::Header(Checksum {
            algorithm: Algorithm::Sha1,
            digest: digest(Algorithm::Sha1, claimed),
        }),
        ..send(offset, bytes)
    }
}

#[tokio::test]
async fn a_checksum_mismatch_commits_nothing_even_after_parts_went_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    let whole = data(5 * PART as usize + 300, 7);
    let info = new_upload(&service, Some(whole.len() as u64)).await;
    // A first PATCH leaves a tail, so the next one's first part consumes it.
    service
        .append(&anyone(), &info.id, send(0, &whole[..500]))
        .await
        .expect("first");
    // Three full parts reach the store, then the digest does not match.
    let mut wrong = whole[500..4000].to_vec();
    let refused = service
        .append(
            &anyone(),
            &info.id,
            checked(500, &whole[500..4000], &{
                wrong[10] ^= 1;
                wrong
            }),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::ChecksumMismatch { algorithm: "sha1" })),
        "{refused:?}"
    );
    let head = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(head.offset, 500, "a refused body moves nothing");
    // The same bytes with the right digest, then the rest: the object is exact.
    let rest = &whole[500..];
    service
        .append(&anyone(), &info.id, checked(500, rest, rest))
        .await
        .expect("accepted");
    let done = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(done.state, UploadState::Completed);
    assert_eq!(stored(&objects, &done), whole);
}

#[tokio::test]
async fn a_cut_body_with_a_checksum_is_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let whole = data(3000, 1);
    let info = new_upload(&service, Some(3000)).await;
    let cut = AppendRequest {
        body: body(vec![whole[..2500].to_vec()], true),
        ..checked(0, &whole, &whole)
    };
    let _ = service.append(&anyone(), &info.id, cut).await;
    assert_eq!(
        service
            .head(&anyone(), &info.id)
            .await
            .expect("head")
            .offset,
        0
    );
}

#[tokio::test]
async fn trailer_checksums_are_judged_when_the_body_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    let whole = data(2 * PART as usize + 9, 3);
    let info = new_upload(&service, Some(whole.len() as u64)).await;
    for (claimed, expect_ok) in [(&b"other"[..], false), (&whole[..], true)] {
        let slot = TrailerSlot::default();
        *slot.lock().expect("lock") = Some(Ok(Checksum {
            algorithm: Algorithm::Crc32c,
            digest: digest(Algorithm::Crc32c, claimed),
        }));
        let request = AppendRequest {
            verify: Verify::Trailer(slot),
            ..send(0, &whole)
        };
        let result = service.append(&anyone(), &info.id, request).await;
        assert_eq!(result.is_ok(), expect_ok, "{result:?}");
    }
    let done = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(stored(&objects, &done), whole);
}

async fn partial(service: &Arc<UploadService>, bytes: &[u8]) -> UploadId {
    let info = service
        .create(
            &anyone(),
            NewUpload {
                length: Some(bytes.len() as u64),
                metadata: None,
                concat: Some(NewConcat::Partial),
            },
        )
        .await
        .expect("partial");
    if !bytes.is_empty() {
        service
            .append(&anyone(), &info.id, send(0, bytes))
            .await
            .expect("patch");
    }
    info.id
}

#[tokio::test]
async fn finals_are_assembled_from_partials_of_any_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, objects) = service(dir.path());
    // Below the minimum part size, off the grid, empty, and several parts long.
    let pieces = [
        data(10, 1),
        data(0, 2),
        data(3 * PART as usize + 77, 3),
        data(900, 4),
        data(PART as usize, 5),
    ];
    let mut ids = Vec::new();
    for piece in &pieces {
        ids.push(partial(&service, piece).await);
    }
    let header = "final;whatever".to_owned();
    let info = service
        .create(
            &anyone(),
            NewUpload {
                concat: Some(NewConcat::Final {
                    header: header.clone(),
                    partials: ids.clone(),
                }),
                ..NewUpload::default()
            },
        )
        .await
        .expect("final");
    assert_eq!(info.state, UploadState::Completed);
    assert_eq!(info.concat_header(), Some(header.as_str()));
    assert_eq!(stored(&objects, &info), pieces.concat());
    // A partial may be used again, in another order.
    let again = service
        .create(
            &anyone(),
            NewUpload {
                concat: Some(NewConcat::Final {
                    header,
                    partials: vec![ids[4].clone(), ids[0].clone()],
                }),
                ..NewUpload::default()
            },
        )
        .await
        .expect("second final");
    assert_eq!(
        stored(&objects, &again),
        [&pieces[4][..], &pieces[0][..]].concat()
    );
    // A final takes no PATCH.
    let refused = service
        .append(&anyone(), &info.id, send(info.offset, b""))
        .await;
    assert!(
        matches!(refused, Err(Error::FinalIsReadOnly)),
        "{refused:?}"
    );
}

#[tokio::test]
async fn finals_refuse_unusable_partials() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let plain = new_upload(&service, Some(1)).await.id;
    let unfinished = service
        .create(
            &anyone(),
            NewUpload {
                length: Some(10),
                concat: Some(NewConcat::Partial),
                ..NewUpload::default()
            },
        )
        .await
        .expect("partial")
        .id;
    for partials in [
        vec![plain],
        vec![unfinished],
        vec![UploadId::random()],
        vec![],
    ] {
        let refused = service
            .create(
                &anyone(),
                NewUpload {
                    concat: Some(NewConcat::Final {
                        header: "final;x".into(),
                        partials,
                    }),
                    ..NewUpload::default()
                },
            )
            .await;
        assert!(matches!(refused, Err(Error::Concat(_))), "{refused:?}");
    }
}

#[tokio::test]
async fn expired_uploads_are_refused_then_reaped_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (service, _) = service(dir.path());
    let mut ids = Vec::new();
    for _ in 0..5 {
        let info = new_upload(&service, Some(5000)).await;
        service
            .append(&anyone(), &info.id, send(0, &[1; 1500]))
            .await
            .expect("patch");
        ids.push(info.id);
    }
    // A finished upload never expires; a finished partial does.
    let done = new_upload(&service, Some(3)).await;
    let done = service
        .append(&anyone(), &done.id, send(0, b"abc"))
        .await
        .expect("done");
    assert_eq!(done.expires_at, None);
    let partial = partial(&service, b"xyz").await;
    assert!(
        service
            .head(&anyone(), &partial)
            .await
            .expect("head")
            .expires_at
            .is_some()
    );
    // Everything that can expire does so now.
    for id in ids.iter().chain([&partial]) {
        service.state.set_expiry(id, Some(1)).await.expect("expire");
    }
    assert!(matches!(
        service.head(&anyone(), &ids[0]).await,
        Err(Error::NotFound)
    ));
    // Reapers racing each other reap each upload exactly once.
    let passes = futures_util::future::join_all((0..3).map(|_| service.reap_expired())).await;
    let reaped: usize = passes.into_iter().map(|r| r.expect("pass")).sum();
    assert_eq!(reaped, ids.len() + 1);
    assert_eq!(service.reap_expired().await.expect("pass"), 0);
    for id in &ids {
        assert!(service.state.get(id).await.expect("get").is_none());
    }
    assert_eq!(
        service.head(&anyone(), &done.id).await.expect("head").state,
        UploadState::Completed
    );
    assert!(service.state.get(&partial).await.expect("get").is_none());
}
