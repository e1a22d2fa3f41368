//! The application's hooks, through the core, over the embedded store and
//! its outbox: blocking hooks refuse, rewrite, or stop what they guard
//! when they fail; durable events are written with their change, once,
//! and delivered in order per upload, whatever fails.

use super::*;
use crate::hook::Callbacks;
use crate::upload::access::Answer;
use crate::upload::deliver::{Deliverer, DeliveryConfig};
use crate::upload::events::{Event, HookFailure, HookKind, Verdict};
use crate::upload::ports::Outbox;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// A service whose application is `hooks`, and its outbox.
fn hooked(dir: &std::path::Path, hooks: Callbacks) -> (Arc<UploadService>, Arc<LocalState>) {
    let (service, _objects) = bare_service(dir);
    // The same directory, so the same records and outbox.
    let locker = LocalLocker::new();
    let state = Arc::new(LocalState::new(dir, &locker));
    let service = service.with_application(Arc::new(hooks), Default::default());
    (Arc::new(service), state)
}

/// The kinds of the undelivered events of upload `id`, oldest first.
async fn outbox_of(state: &LocalState, id: &UploadId) -> Vec<HookKind> {
    let pending = state.pending(1000).await.expect("pending");
    pending
        .into_iter()
        .filter(|p| p.event.body.upload.id == id.as_str())
        .map(|p| p.event.kind)
        .collect()
}

fn subscribed() -> Callbacks {
    Callbacks::new().subscribe(|_| async { Ok(()) })
}

#[tokio::test]
async fn pre_create_refuses_with_the_applications_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = subscribed().on(HookKind::PreCreate, |event| async move {
        assert_eq!(event.body.upload.id, "", "no id before creation");
        assert_eq!(event.body.upload.storage, None);
        Ok(Verdict {
            reject_upload: true,
            response: Some(Answer {
                status: Some(403),
                body: Some("quota exceeded".into()),
                headers: vec![],
            }),
            ..Verdict::default()
        })
    });
    let (service, state) = hooked(dir.path(), hooks);
    let refused = service.create(&anyone(), NewUpload::default()).await;
    let Err(Error::Hook(HookRefusal::UploadRejected(Some(answer)))) = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(answer.status, Some(403));
    assert!(
        state.pending(10).await.expect("pending").is_empty(),
        "no post-create"
    );
}

#[tokio::test]
async fn pre_create_renames_and_rewrites_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = subscribed().on(HookKind::PreCreate, |_| async {
        Ok(Verdict {
            change_id: Some("tenant-7.avatar".into()),
            change_metadata: Some([("filetype".into(), "image/png".into())].into()),
            ..Verdict::default()
        })
    });
    let (service, state) = hooked(dir.path(), hooks);
    let info = new_upload(&service, Some(10)).await;
    assert_eq!(info.id.as_str(), "tenant-7.avatar");
    assert!(info.object_key.as_str().ends_with("tenant-7.avatar"));
    assert_eq!(info.content_type.as_deref(), Some("image/png"));
    assert_eq!(outbox_of(&state, &info.id).await, [HookKind::PostCreate]);
    // The same id again is taken: 409, and the first upload is untouched.
    let five = NewUpload {
        length: Some(5),
        ..NewUpload::default()
    };
    let again = service.create(&anyone(), five).await;
    assert!(matches!(again, Err(Error::IdTaken(_))), "{again:?}");
    let head = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(head.length, Some(10));
}

#[tokio::test]
async fn a_failing_or_unsafe_pre_create_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = subscribed().on(HookKind::PreCreate, |event| async move {
        match event.body.upload.size {
            1 => Err(HookFailure("receiver down".into())),
            _ => Ok(Verdict {
                change_id: Some("../etc".into()),
                ..Verdict::default()
            }),
        }
    });
    let (service, state) = hooked(dir.path(), hooks);
    for length in [1, 2] {
        let new = NewUpload {
            length: Some(length),
            ..NewUpload::default()
        };
        let refused = service.create(&anyone(), new).await;
        assert!(
            matches!(
                refused,
                Err(Error::Hook(HookRefusal::Unavailable {
                    kind: HookKind::PreCreate,
                    ..
                }))
            ),
            "{refused:?}"
        );
    }
    assert!(state.pending(10).await.expect("pending").is_empty());
}

#[tokio::test]
async fn a_failed_pre_finish_is_asked_again_and_post_finish_is_written_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let asked = Arc::new(AtomicU32::new(0));
    let counter = asked.clone();
    let hooks = subscribed().on(HookKind::PreFinish, move |event| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            assert_eq!(event.body.upload.offset, event.body.upload.size);
            if n == 0 {
                Err(HookFailure("receiver down".into()))
            } else {
                Ok(Verdict::default())
            }
        }
    });
    let (service, state) = hooked(dir.path(), hooks);
    let data = vec![7u8; 2500];
    let info = new_upload(&service, Some(2500)).await;
    let first = service.append(&anyone(), &info.id, send(0, &data)).await;
    assert!(
        matches!(first, Err(Error::Hook(HookRefusal::Unavailable { .. }))),
        "{first:?}"
    );
    assert_eq!(outbox_of(&state, &info.id).await, [HookKind::PostCreate]);
    // Every byte is kept; HEAD asks pre-finish again, and it passes.
    let head = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!((head.offset, head.state), (2500, UploadState::Completed));
    assert_eq!(asked.load(Ordering::SeqCst), 2);
    let again = service.head(&anyone(), &info.id).await.expect("head");
    assert_eq!(again.state, UploadState::Completed);
    assert_eq!(
        outbox_of(&state, &info.id).await,
        [HookKind::PostCreate, HookKind::PostFinish],
        "post-finish once, after post-create"
    );
}

#[tokio::test]
async fn pre_terminate_can_refuse_and_termination_is_told() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks = subscribed().on(HookKind::PreTerminate, |event| async move {
        Ok(Verdict {
            reject_termination: event.body.upload.size == 1,
            ..Verdict::default()
        })
    });
    let (service, state) = hooked(dir.path(), hooks);
    let kept = new_upload(&service, Some(1)).await;
    let refused = service.terminate(&anyone(), &kept.id).await;
    assert!(matches!(
        refused,
        Err(Error::Hook(HookRefusal::TerminationRejected(None)))
    ));
    assert!(service.head(&anyone(), &kept.id).await.is_ok());
    let gone = new_upload(&service, Some(2)).await;
    service
        .terminate(&anyone(), &gone.id)
        .await
        .expect("terminate");
    assert_eq!(
        outbox_of(&state, &gone.id).await,
        [HookKind::PostCreate, HookKind::PostTerminate]
    );
}

#[tokio::test]
async fn post_receive_reports_progress_and_can_stop_the_upload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let offsets = Arc::new(Mutex::new(Vec::new()));
    let seen = offsets.clone();
    let hooks = subscribed().on(HookKind::PostReceive, move |event| {
        seen.lock().expect("lock").push(event.body.upload.offset);
        async {
            Ok(Verdict {
                stop_upload: true,
                ..Verdict::default()
            })
        }
    });
    let (service, state) = hooked(dir.path(), hooks);
    let info = new_upload(&service, Some(4000)).await;
    // A body that never ends: only the application's stop ends it.
    let first: std::result::Result<Bytes, BodyError> = Ok(Bytes::from(vec![1u8; 1500]));
    let endless = futures_util::StreamExt::chain(
        futures_util::stream::iter(vec![first]),
        futures_util::stream::pending(),
    );
    let request = AppendRequest {
        body: Box::pin(endless),
        ..send(0, b"")
    };
    let request = AppendRequest {
        content_length: None,
        ..request
    };
    let stopped = service.append(&anyone(), &info.id, request).await;
    assert!(
        matches!(stopped, Err(Error::Hook(HookRefusal::UploadStopped(None)))),
        "{stopped:?}"
    );
    assert!(matches!(
        service.head(&anyone(), &info.id).await,
        Err(Error::NotFound)
    ));
    assert!(offsets.lock().expect("lock").contains(&1500));
    assert_eq!(
        outbox_of(&state, &info.id).await,
        [HookKind::PostCreate, HookKind::PostTerminate]
    );
}

#[tokio::test]
async fn the_deliverer_retries_in_order_and_empties_the_outbox() {
    let dir = tempfile::tempdir().expect("tempdir");
    let delivered: Arc<Mutex<Vec<(String, HookKind, String)>>> = Arc::default();
    let failures = Arc::new(AtomicU32::new(0));
    let (log, fails) = (delivered.clone(), failures.clone());
    let hooks = Callbacks::new().subscribe(move |event: Event| {
        let (log, fails) = (log.clone(), fails.clone());
        async move {
            if !event.kind.is_durable() {
                return Ok(());
            }
            // The first two tries of a post-create fail.
            if event.kind == HookKind::PostCreate && fails.fetch_add(1, Ordering::SeqCst) < 2 {
                return Err(HookFailure("receiver down".into()));
            }
            let upload = event.body.upload.id.clone();
            log.lock()
                .expect("lock")
                .push((upload, event.kind, event.id));
            Ok(())
        }
    });
    let (service, state) = hooked(dir.path(), hooks);
    let a = new_upload(&service, Some(0)).await;
    let b = new_upload(&service, Some(3)).await;
    service
        .append(&anyone(), &b.id, send(0, b"abc"))
        .await
        .expect("patch");
    let config = DeliveryConfig {
        poll: Duration::from_millis(10),
        ..DeliveryConfig::default()
    };
    let stop = tokio_util::sync::CancellationToken::new();
    let outbox: Arc<dyn Outbox> = state.clone();
    let task = tokio::spawn(Deliverer::new(service.clone(), outbox, config).run(stop.clone()));
    for _ in 0..200 {
        if delivered.lock().expect("lock").len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.expect("deliverer");
    let log = delivered.lock().expect("lock").clone();
    for id in [&a.id, &b.id] {
        let kinds: Vec<HookKind> = log
            .iter()
            .filter(|(u, ..)| u == id.as_str())
            .map(|(_, k, _)| *k)
            .collect();
        assert_eq!(
            kinds,
            [HookKind::PostCreate, HookKind::PostFinish],
            "{log:?}"
        );
    }
    assert!(state.pending(10).await.expect("pending").is_empty());
    assert_eq!(
        service.counters().outbox_delivered.load(Ordering::Relaxed),
        4
    );
}
