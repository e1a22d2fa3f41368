//! The core's access rules, whatever the authorizer: ownership without an
//! existence oracle, a grant's actions and limits, the resume grace of an
//! expired credential, and single-use redemption.

use super::{PART, bare_service, send};
use crate::protocol::metadata::Metadata;
use crate::upload::access::{
    AccessRequest, Authorizer, Caller, Denial, Grant, Permission, Redemption, Rules,
};
use crate::upload::model::{UploadId, UploadState};
use crate::upload::{Error, NewConcat, NewUpload, SizeExceeded, UploadService};
use async_trait::async_trait;
use http::{HeaderMap, HeaderValue};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Grants whatever the test set for the caller named in `x-who`.
#[derive(Default)]
struct Scripted(Mutex<Vec<(String, Grant)>>);

#[async_trait]
impl Authorizer for Scripted {
    async fn authorize(&self, request: &AccessRequest<'_>) -> Result<Grant, Denial> {
        let who = request.caller.headers().get("x-who");
        let who = who.and_then(|v| v.to_str().ok()).unwrap_or("");
        let grants = self
            .0
            .lock()
            .map_err(|_| Denial::Unavailable("poisoned".into()))?;
        grants
            .iter()
            .find(|(name, _)| name == who)
            .map(|(_, grant)| grant.clone())
            .ok_or_else(|| Denial::Unauthenticated {
                reason: "who are you".into(),
                invalid: false,
            })
    }
}

fn who(name: &str) -> Caller {
    let mut headers = HeaderMap::new();
    headers.insert("x-who", HeaderValue::from_str(name).expect("a name"));
    Caller::new(headers, "X", "/", None)
}

fn subject(name: &str) -> Grant {
    Grant {
        subject: Some(name.into()),
        ..Grant::default()
    }
}

fn service(dir: &std::path::Path, grants: Vec<(&str, Grant)>) -> Arc<UploadService> {
    let scripted = Scripted(Mutex::new(
        grants.into_iter().map(|(n, g)| (n.to_owned(), g)).collect(),
    ));
    let (service, _) = bare_service(dir);
    Arc::new(service.with_authorizer(Arc::new(scripted)))
}

fn sized(length: Option<u64>) -> NewUpload {
    NewUpload {
        length,
        ..NewUpload::default()
    }
}

fn is_not_found<T: std::fmt::Debug>(result: Result<T, Error>) -> bool {
    matches!(result, Err(Error::NotFound))
}

#[tokio::test]
async fn an_upload_answers_its_owner_and_no_one_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = Grant {
        admin: true,
        ..subject("backend")
    };
    let svc = service(
        dir.path(),
        vec![
            ("alice", subject("alice")),
            ("bob", subject("bob")),
            ("carol", subject("carol")),
            ("admin", admin),
        ],
    );
    let (alice, bob) = (who("alice"), who("bob"));
    let info = svc.create(&alice, sized(Some(3))).await.expect("create");
    assert_eq!(info.owner.as_deref(), Some("alice"));
    assert!(is_not_found(svc.head(&bob, &info.id).await));
    assert!(is_not_found(
        svc.append(&bob, &info.id, send(0, b"abc")).await
    ));
    assert!(is_not_found(svc.terminate(&bob, &info.id).await));
    assert!(is_not_found(svc.finished(&bob, &info.id).await));
    // A stranger learns nothing it could not learn of an unknown id.
    assert!(is_not_found(svc.head(&bob, &UploadId::random()).await));
    let unknown = svc.head(&who("nobody"), &info.id).await;
    assert!(matches!(
        unknown,
        Err(Error::Denied(Denial::Unauthenticated { .. }))
    ));
    let done = svc
        .append(&alice, &info.id, send(0, b"abc"))
        .await
        .expect("append");
    assert_eq!(done.state, UploadState::Completed);
    assert!(svc.finished(&who("admin"), &info.id).await.is_ok());
    assert!(is_not_found(svc.finished(&who("carol"), &info.id).await));
}

#[tokio::test]
async fn a_share_reads_but_does_not_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(dir.path(), vec![("alice", subject("alice"))]);
    let info = svc
        .create(&who("alice"), sized(Some(3)))
        .await
        .expect("create");
    let share = Grant {
        rules: Rules {
            uploads: vec![info.id.clone()],
            ..Rules::default()
        },
        ..subject("carol")
    };
    let svc2 = service(dir.path(), vec![("carol", share)]);
    let carol = who("carol");
    assert!(svc2.head(&carol, &info.id).await.is_ok());
    assert!(is_not_found(
        svc2.append(&carol, &info.id, send(0, b"abc")).await
    ));
    assert!(is_not_found(svc2.terminate(&carol, &info.id).await));
}

#[tokio::test]
async fn a_grant_is_bounded_by_its_actions_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = Grant {
        rules: Rules {
            actions: Some(vec![Permission::Read]),
            ..Rules::default()
        },
        ..subject("alice")
    };
    let small = Grant {
        rules: Rules {
            max_size: Some(2 * PART),
            content_types: Some(vec!["image/*".into()]),
            ..Rules::default()
        },
        ..subject("alice")
    };
    let svc = service(dir.path(), vec![("reader", reader), ("small", small)]);
    let refused = svc.create(&who("reader"), sized(Some(3))).await;
    assert!(matches!(refused, Err(Error::Denied(Denial::Forbidden(_)))));
    let small = who("small");
    let image = |length| NewUpload {
        length,
        metadata: Metadata::parse(
            Metadata::encode([("filetype", Some(&b"image/png"[..]))]).as_bytes(),
        )
        .ok(),
        concat: None,
    };
    let too_big = svc.create(&small, image(Some(2 * PART + 1))).await;
    assert!(matches!(
        too_big,
        Err(Error::SizeExceeded(SizeExceeded::Grant { .. }))
    ));
    let untyped = svc.create(&small, sized(Some(10))).await;
    assert!(matches!(untyped, Err(Error::Denied(Denial::Forbidden(_)))));
    let deferred = svc.create(&small, image(None)).await.expect("create");
    assert_eq!(
        deferred.max_length,
        2 * PART,
        "a deferred upload is capped too"
    );
    let mut grow = send(0, b"abc");
    grow.declared_length = Some(2 * PART + 1);
    let grown = svc.append(&small, &deferred.id, grow).await;
    assert!(matches!(grown, Err(Error::SizeExceeded(_))), "{grown:?}");
}

#[tokio::test]
async fn an_expired_credential_resumes_its_own_upload_within_the_grace() {
    let dir = tempfile::tempdir().expect("tempdir");
    let late = |secs| Grant {
        expired_for: Some(Duration::from_secs(secs)),
        ..subject("alice")
    };
    let svc = service(
        dir.path(),
        vec![
            ("alice", subject("alice")),
            ("late", late(60)),
            ("too-late", late(7200)),
        ],
    );
    let info = svc
        .create(&who("alice"), sized(Some(6)))
        .await
        .expect("create");
    let (late, too_late) = (who("late"), who("too-late"));
    assert!(svc.head(&late, &info.id).await.is_ok());
    svc.append(&late, &info.id, send(0, b"abc"))
        .await
        .expect("resumed");
    fn expired<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(Error::Denied(Denial::Unauthenticated { .. })))
    }
    assert!(
        expired(svc.head(&too_late, &info.id).await),
        "past the grace"
    );
    assert!(
        expired(svc.terminate(&late, &info.id).await),
        "DELETE needs a valid token"
    );
    assert!(
        expired(svc.create(&late, sized(Some(3))).await),
        "so does creation"
    );
    svc.append(&late, &info.id, send(3, b"def"))
        .await
        .expect("finished");
    assert!(
        expired(svc.head(&late, &info.id).await),
        "a finished upload is not resumed"
    );
    assert!(
        expired(svc.finished(&late, &info.id).await),
        "GET needs a valid token"
    );
}

#[tokio::test]
async fn a_single_use_credential_creates_once_even_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let once = Grant {
        redeem: Some(Redemption {
            key: "issuer\u{0}jti-1".into(),
            until: crate::upload::model::now_secs() + 600,
        }),
        ..subject("alice")
    };
    let svc = service(dir.path(), vec![("once", once)]);
    let caller = who("once");
    let tries =
        futures_util::future::join_all((0..4).map(|_| svc.create(&caller, sized(Some(3))))).await;
    let created: Vec<_> = tries.iter().filter_map(|t| t.as_ref().ok()).collect();
    assert_eq!(created.len(), 1, "{tries:?}");
    assert!(
        tries
            .iter()
            .any(|t| matches!(t, Err(Error::Denied(Denial::Forbidden(_)))))
    );
    // The upload it created stays usable by its owner with the same token.
    svc.append(&caller, &created[0].id, send(0, b"abc"))
        .await
        .expect("append");
}

#[tokio::test]
async fn a_final_upload_cannot_take_another_subjects_partial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = service(
        dir.path(),
        vec![("alice", subject("alice")), ("bob", subject("bob"))],
    );
    let (alice, bob) = (who("alice"), who("bob"));
    let partial = NewUpload {
        length: Some(3),
        metadata: None,
        concat: Some(NewConcat::Partial),
    };
    let mine = svc.create(&alice, partial.clone()).await.expect("create");
    svc.append(&alice, &mine.id, send(0, b"abc"))
        .await
        .expect("append");
    let concat = |ids: Vec<UploadId>| NewUpload {
        length: None,
        metadata: None,
        concat: Some(NewConcat::Final {
            header: "final".into(),
            partials: ids,
        }),
    };
    let taken = svc.create(&bob, concat(vec![mine.id.clone()])).await;
    let unknown = svc.create(&bob, concat(vec![UploadId::random()])).await;
    let same = |r: &Result<_, Error>| {
        matches!(
            r,
            Err(Error::Concat(crate::upload::ConcatRefusal::Unknown(_)))
        )
    };
    assert!(same(&taken) && same(&unknown), "{taken:?} {unknown:?}");
    let own = svc
        .create(&alice, concat(vec![mine.id.clone()]))
        .await
        .expect("final");
    assert_eq!(own.state, UploadState::Completed);
}
