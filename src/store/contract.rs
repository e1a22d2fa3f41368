//! The contract every state store and every object store must keep, as
//! test functions any backend can run: the embedded store runs them in unit
//! tests, Redis and moto in the integration tests, and a third backend gets
//! its tests by calling them. Each function panics on the first broken rule.

use crate::upload::events::{Event, EventBody, FileInfo, HookKind, HttpRequest, new_event_id};
use crate::upload::model::{
    ETag, LockToken, MultipartId, ObjectKey, PartNumber, PartRecord, UploadId, UploadInfo,
    UploadState,
};
use crate::upload::ports::{
    Change, Commit, CommitError, Locker, ObjectStore, Outbox, PartsFrom, StateStore, StoreError,
    read_range,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use std::time::Duration;

/// A fresh record in `receiving`, as the core creates one.
fn record(id: &UploadId, part_size: u64) -> UploadInfo {
    UploadInfo {
        id: id.clone(),
        length: Some(100),
        max_length: 100,
        offset: 0,
        part_size,
        metadata: Some("filename ZC50eHQ=".into()),
        content_type: Some("text/plain".into()),
        object_key: ObjectKey::new(format!("contract/{id}")),
        multipart_id: Some(crate::upload::model::MultipartId::new("mp-1")),
        state: UploadState::Receiving,
        created_at: 1_700_000_000,
        concat: None,
        expires_at: Some(1_700_003_600),
        owner: Some("subject-1".into()),
    }
}

fn commit(offset: u64, tail: u64, new_offset: u64, change: Change) -> Commit {
    Commit {
        expected_offset: offset,
        expected_tail_len: tail,
        new_offset,
        change,
        events: Vec::new(),
    }
}

fn part(number: u32, size: u64) -> PartRecord {
    PartRecord {
        number: PartNumber::new(number).expect("part number"),
        etag: ETag::new(format!("\"etag-{number}\"")),
        size,
    }
}

/// Runs every state-store rule on `state`, whose commits are fenced by the
/// locks of `locker`.
pub async fn state_store(state: &dyn StateStore, locker: &dyn Locker) {
    records_round_trip(state).await;
    commits_move_offset_and_tail(state, locker).await;
    commits_are_compare_and_set(state, locker).await;
    multipart_starts_late_and_completion_drops_the_tail(state, locker).await;
    expiry_is_indexed(state).await;
    credentials_redeem_once(state).await;
}

/// An event of `kind` about `info`.
fn event(kind: HookKind, info: &UploadInfo) -> Event {
    Event {
        kind,
        body: EventBody {
            upload: FileInfo::of(info, &Default::default()),
            http_request: HttpRequest::default(),
        },
        id: new_event_id(),
    }
}

/// The kinds of the undelivered events about upload `id`, oldest first.
async fn pending_of(outbox: &dyn Outbox, id: &UploadId) -> Vec<(HookKind, String)> {
    let all = outbox.pending(10_000).await.expect("pending");
    all.into_iter()
        .filter(|p| p.event.body.upload.id == id.as_str())
        .map(|p| (p.event.kind, p.event.id))
        .collect()
}

/// Runs every outbox rule: events are written with the changes they report
/// and only with them, kept in order until delivered, dead-lettered and
/// replayed with their ids. With `shared`, the store is reached by several
/// processes, and its lease is held by one holder at a time.
pub async fn outbox<S: StateStore + Outbox>(store: &S, locker: &dyn Locker, shared: bool) {
    let id = UploadId::random();
    let info = record(&id, 10);
    let created = event(HookKind::PostCreate, &info);
    store
        .create(&info, std::slice::from_ref(&created))
        .await
        .expect("create");
    let guard = locker
        .acquire(&id, Duration::from_secs(1))
        .await
        .expect("lock");
    let refused = Commit {
        events: vec![event(HookKind::PostFinish, &info)],
        ..commit(5, 0, 5, Change::SetState(UploadState::Completed))
    };
    let outcome = store.commit(&id, guard.token(), refused).await;
    assert!(matches!(outcome, Err(CommitError::Conflict)), "{outcome:?}");
    let finished = event(HookKind::PostFinish, &info);
    let done = Commit {
        events: vec![finished.clone()],
        ..commit(0, 0, 0, Change::SetState(UploadState::Completed))
    };
    store
        .commit(&id, guard.token(), done)
        .await
        .expect("commit");
    guard.release().await;
    let terminated = event(HookKind::PostTerminate, &info);
    store
        .remove(&id, std::slice::from_ref(&terminated))
        .await
        .expect("remove");
    let kinds = |list: &[(HookKind, String)]| list.iter().map(|p| p.0).collect::<Vec<_>>();
    let pending = pending_of(store, &id).await;
    assert_eq!(
        kinds(&pending),
        [
            HookKind::PostCreate,
            HookKind::PostFinish,
            HookKind::PostTerminate
        ],
        "each change's events, in order, and none of a refused commit"
    );
    outbox_delivers_and_replays(store, &id, &finished).await;
    lease_is_held_by_one(store, shared).await;
}

/// The lease is taken and renewed; with `shared`, by one holder at a time.
async fn lease_is_held_by_one<S: Outbox>(store: &S, shared: bool) {
    let ttl = Duration::from_secs(5);
    assert!(store.lease("holder-a", ttl).await.expect("lease"));
    assert!(store.lease("holder-a", ttl).await.expect("renew"));
    if shared {
        assert!(!store.lease("holder-b", ttl).await.expect("lease"));
    }
}

/// Delivered events leave; a dead letter comes back, same id, when replayed.
async fn outbox_delivers_and_replays<S: Outbox>(store: &S, id: &UploadId, finished: &Event) {
    let all = store.pending(10_000).await.expect("pending");
    let ours: Vec<_> = all
        .iter()
        .filter(|p| p.event.body.upload.id == id.as_str())
        .collect();
    store.delivered(&ours[0].key).await.expect("delivered");
    store
        .dead_letter(ours[1], "receiver said no")
        .await
        .expect("dead letter");
    let left = pending_of(store, id).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].0, HookKind::PostTerminate);
    let backlog = store.backlog().await.expect("backlog");
    assert!(
        backlog.count >= 1 && backlog.oldest_ms.is_some(),
        "{backlog:?}"
    );
    assert!(store.replay_dead().await.expect("replay") >= 1);
    let replayed = pending_of(store, id).await;
    assert_eq!(replayed.len(), 2, "{replayed:?}");
    assert_eq!(
        replayed[1],
        (HookKind::PostFinish, finished.id.clone()),
        "same id"
    );
    for p in store.pending(10_000).await.expect("pending") {
        if p.event.body.upload.id == id.as_str() {
            store.delivered(&p.key).await.expect("delivered");
        }
    }
    assert!(pending_of(store, id).await.is_empty());
}

/// A single-use credential redeems once, even when presented at once by
/// many, and is forgotten only after its time.
async fn credentials_redeem_once(state: &dyn StateStore) {
    let key = format!("issuer\u{0}{}", UploadId::random());
    let until = crate::upload::model::now_secs() + 600;
    let tries = futures_util::future::join_all((0..8).map(|_| state.redeem(&key, until))).await;
    let won = tries.into_iter().filter(|t| matches!(t, Ok(true))).count();
    assert_eq!(won, 1, "exactly one of eight concurrent redemptions wins");
    assert!(
        !state.redeem(&key, until).await.expect("redeem"),
        "a replay"
    );
    let other = format!("issuer\u{0}{}", UploadId::random());
    assert!(
        state.redeem(&other, until).await.expect("redeem"),
        "another key"
    );
}

/// A record reads back as written; an id is created once.
async fn records_round_trip(state: &dyn StateStore) {
    let id = UploadId::random();
    assert_eq!(state.get(&id).await.expect("get"), None, "unknown id");
    let info = record(&id, 10);
    state.create(&info, &[]).await.expect("create");
    assert_eq!(state.get(&id).await.expect("get"), Some(info.clone()));
    assert!(
        state.create(&info, &[]).await.is_err(),
        "an id is created once"
    );
    assert!(state.parts(&id).await.expect("parts").is_empty());
    assert_eq!(state.read_tail(&id, 0).await.expect("tail"), Bytes::new());
    state.remove(&id, &[]).await.expect("remove");
    assert_eq!(state.get(&id).await.expect("get"), None, "removed");
}

/// Appends, parts, a declared length and a state each move the record.
async fn commits_move_offset_and_tail(state: &dyn StateStore, locker: &dyn Locker) {
    let id = UploadId::random();
    let mut info = record(&id, 10);
    info.length = None;
    state.create(&info, &[]).await.expect("create");
    let guard = locker.acquire(&id, Duration::ZERO).await.expect("lock");
    let token = guard.token();
    let append = Change::AppendTail(Bytes::from_static(b"abcd"));
    state
        .commit(&id, token, commit(0, 0, 4, append))
        .await
        .expect("append");
    let more = Change::AppendTail(Bytes::from_static(b"ef"));
    state
        .commit(&id, token, commit(4, 4, 6, more))
        .await
        .expect("append");
    assert_eq!(state.read_tail(&id, 6).await.expect("tail"), "abcdef");
    assert_eq!(
        state.read_tail(&id, 4).await.expect("tail"),
        "abcd",
        "a prefix"
    );
    assert!(state.read_tail(&id, 7).await.is_err(), "more than stored");
    parts_and_fields_move_the_record(state, &id, token).await;
    guard.release().await;
    state.remove(&id, &[]).await.expect("remove");
}

/// An upload created without a multipart upload records one later; a
/// completed upload's tail is dropped with the state change.
async fn multipart_starts_late_and_completion_drops_the_tail(
    state: &dyn StateStore,
    locker: &dyn Locker,
) {
    let id = UploadId::random();
    let info = UploadInfo {
        multipart_id: None,
        ..record(&id, 10)
    };
    state.create(&info, &[]).await.expect("create");
    let guard = locker.acquire(&id, Duration::ZERO).await.expect("lock");
    let token = guard.token();
    let append = Change::AppendTail(Bytes::from_static(b"abc"));
    state
        .commit(&id, token, commit(0, 0, 3, append))
        .await
        .expect("append");
    let started = Change::SetMultipart(MultipartId::new("mp-late"));
    state
        .commit(&id, token, commit(3, 3, 3, started))
        .await
        .expect("multipart");
    let got = state.get(&id).await.expect("get").expect("record");
    assert_eq!(got.multipart_id, Some(MultipartId::new("mp-late")));
    let done = Change::SetState(UploadState::Completed);
    state
        .commit(&id, token, commit(3, 3, 3, done))
        .await
        .expect("complete");
    let got = state.get(&id).await.expect("get").expect("record");
    assert_eq!((got.state, got.offset), (UploadState::Completed, 3));
    assert!(
        state.read_tail(&id, 3).await.is_err(),
        "the tail is dropped"
    );
    guard.release().await;
    state.remove(&id, &[]).await.expect("remove");
}

/// On an upload with 6 bytes in its tail: parts, then a length and a state.
async fn parts_and_fields_move_the_record(
    state: &dyn StateStore,
    id: &UploadId,
    token: &LockToken,
) {
    let first = Change::Part {
        record: part(1, 10),
        consumes_tail: true,
    };
    state
        .commit(id, token, commit(6, 6, 10, first))
        .await
        .expect("part");
    let second = Change::Part {
        record: part(2, 10),
        consumes_tail: false,
    };
    state
        .commit(id, token, commit(10, 0, 20, second))
        .await
        .expect("part");
    assert_eq!(state.read_tail(id, 0).await.expect("tail"), Bytes::new());
    assert_eq!(
        state.parts(id).await.expect("parts"),
        [part(1, 10), part(2, 10)]
    );
    let length = Change::SetLength(25);
    state
        .commit(id, token, commit(20, 0, 20, length))
        .await
        .expect("length");
    let done = Change::SetState(UploadState::Completing);
    state
        .commit(id, token, commit(20, 0, 20, done))
        .await
        .expect("state");
    let got = state.get(id).await.expect("get").expect("record");
    assert_eq!((got.offset, got.length), (20, Some(25)));
    assert_eq!(got.state, UploadState::Completing);
}

/// A commit applies only from the offset and tail it expects, by the
/// lock's owner, to a record that exists.
async fn commits_are_compare_and_set(state: &dyn StateStore, locker: &dyn Locker) {
    let id = UploadId::random();
    state.create(&record(&id, 10), &[]).await.expect("create");
    let guard = locker.acquire(&id, Duration::ZERO).await.expect("lock");
    let token = guard.token();
    let append = |data: &'static [u8]| Change::AppendTail(Bytes::from_static(data));
    state
        .commit(&id, token, commit(0, 0, 3, append(b"abc")))
        .await
        .expect("append");
    let refused = [
        (token.clone(), commit(0, 0, 1, append(b"x"))),
        (token.clone(), commit(3, 4, 4, append(b"x"))),
    ];
    for (token, stale) in refused {
        let result = state.commit(&id, &token, stale).await;
        assert!(matches!(result, Err(CommitError::Conflict)), "{result:?}");
    }
    let stranger = LockToken::random();
    let result = state
        .commit(&id, &stranger, commit(3, 3, 4, append(b"x")))
        .await;
    assert!(matches!(result, Err(CommitError::LockLost)), "{result:?}");
    assert_eq!(
        state.get(&id).await.expect("get").map(|i| i.offset),
        Some(3)
    );
    state.remove(&id, &[]).await.expect("remove");
    let result = state
        .commit(&id, token, commit(3, 3, 4, append(b"x")))
        .await;
    assert!(matches!(result, Err(CommitError::NotFound)), "{result:?}");
    guard.release().await;
}

/// Expiry times are indexed for the reaper; expired uploads are remembered.
async fn expiry_is_indexed(state: &dyn StateStore) {
    let id = UploadId::random();
    let mut info = record(&id, 10);
    info.expires_at = None;
    state.create(&info, &[]).await.expect("create");
    let listed = |ids: Vec<UploadId>| ids.contains(&id);
    let now = info.created_at;
    assert!(!listed(state.expired(now, 1000).await.expect("expired")));
    state.set_expiry(&id, Some(now - 1)).await.expect("expiry");
    let got = state.get(&id).await.expect("get").expect("record");
    assert_eq!(got.expires_at, Some(now - 1));
    assert!(listed(state.expired(now, 1000).await.expect("expired")));
    assert!(!listed(
        state.expired(now - 2, 1000).await.expect("expired")
    ));
    state.set_expiry(&id, None).await.expect("expiry");
    assert!(!listed(state.expired(now, 1000).await.expect("expired")));
    assert!(!state.is_gone(&id).await.expect("gone"));
    state.mark_gone(&id).await.expect("mark");
    assert!(state.is_gone(&id).await.expect("gone"));
    state.remove(&id, &[]).await.expect("remove");
    state
        .set_expiry(&id, Some(now))
        .await
        .expect("a removed record is left alone");
    state.unindex(&id).await.expect("unindex");
    assert_eq!(state.get(&id).await.expect("get"), None);
}

/// Deterministic bytes for object-store checks.
fn bytes(len: u64, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

async fn read_all(objects: &dyn ObjectStore, key: &ObjectKey) -> Vec<u8> {
    let stream = objects.get_object(key, None).await.expect("get");
    let chunks: Vec<Bytes> = stream.try_collect().await.expect("read");
    chunks.concat()
}

/// How strictly an object store follows S3 where test servers differ.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// The smallest size of every part but the last.
    pub min_part: u64,
    /// A request on an aborted multipart upload answers NoSuchUpload, which
    /// the core reads as a lost upload. S3 and the embedded store do; moto
    /// answers a bare 500, so only "refused" is checked there.
    pub aborted_is_not_found: bool,
}

/// Whether `result` refused a request on an aborted upload as `rules` ask.
fn gone<T>(result: &Result<T, StoreError>, rules: Rules) -> bool {
    match result {
        Err(StoreError::NotFound(_)) => true,
        Err(_) => !rules.aborted_is_not_found,
        Ok(_) => false,
    }
}

/// Runs every object-store rule on `objects`, with keys under `prefix`.
pub async fn object_store(objects: &dyn ObjectStore, prefix: &str, rules: Rules) {
    let min_part = rules.min_part;
    multipart_uploads_assemble_in_order(objects, prefix, min_part).await;
    aborted_uploads_are_gone(objects, prefix, rules).await;
    whole_objects(objects, prefix).await;
}

/// Uploads `data` as parts 1, 2, ... of the multipart upload `mp`.
async fn upload_parts(
    objects: &dyn ObjectStore,
    key: &ObjectKey,
    mp: &MultipartId,
    data: &[Bytes],
) -> Vec<PartRecord> {
    let mut parts = Vec::new();
    for (index, part) in data.iter().enumerate() {
        let number = PartNumber::at_index(index).expect("part number");
        let etag = objects
            .upload_part(key, mp, number, part.clone())
            .await
            .expect("part");
        let size = part.len() as u64;
        parts.push(PartRecord { number, etag, size });
    }
    parts
}

/// Parts complete into one object, read whole or by range; a part sent
/// again replaces the first.
async fn multipart_uploads_assemble_in_order(objects: &dyn ObjectStore, prefix: &str, min: u64) {
    let key = ObjectKey::new(format!("{prefix}multipart"));
    let mp = objects
        .create_multipart(&key, Some("text/plain"), PartsFrom::Uploads)
        .await
        .expect("create");
    let data = [bytes(min, 1), bytes(min / 2 + 3, 2)];
    let junk = [bytes(min, 9)];
    upload_parts(objects, &key, &mp, &junk).await;
    let parts = upload_parts(objects, &key, &mp, &data).await;
    objects
        .complete_multipart(&key, &mp, &parts)
        .await
        .expect("complete");
    let whole = data.concat();
    let size = objects.object_size(&key).await.expect("size");
    assert_eq!(size, Some(whole.len() as u64));
    assert_eq!(
        read_all(objects, &key).await,
        whole,
        "part 1 sent again wins"
    );
    let range = read_range(objects, &key, 5..min + 7).await.expect("range");
    assert_eq!(range, whole[5..usize::try_from(min + 7).expect("size")]);
    parts_are_copied(objects, prefix, &key, &whole, min).await;
    objects.delete_object(&key).await.expect("delete");
}

/// A part copied from bytes of an existing object.
async fn parts_are_copied(
    objects: &dyn ObjectStore,
    prefix: &str,
    source: &ObjectKey,
    content: &[u8],
    min: u64,
) {
    let copy = ObjectKey::new(format!("{prefix}copy"));
    let mp = objects
        .create_multipart(&copy, None, PartsFrom::Uploads)
        .await
        .expect("create");
    let number = PartNumber::new(1).expect("part number");
    let etag = objects
        .upload_part_copy(&copy, &mp, number, source, 3..min + 3)
        .await
        .expect("copy");
    let parts = [PartRecord {
        number,
        etag,
        size: min,
    }];
    objects
        .complete_multipart(&copy, &mp, &parts)
        .await
        .expect("complete");
    let expected = &content[3..usize::try_from(min + 3).expect("size")];
    assert_eq!(read_all(objects, &copy).await, expected);
    objects.delete_object(&copy).await.expect("delete");
}

/// An aborted multipart upload takes no more parts; aborting is idempotent.
async fn aborted_uploads_are_gone(objects: &dyn ObjectStore, prefix: &str, rules: Rules) {
    let key = ObjectKey::new(format!("{prefix}aborted"));
    let mp = objects
        .create_multipart(&key, None, PartsFrom::Uploads)
        .await
        .expect("create");
    let one = PartNumber::new(1).expect("part number");
    let etag = objects
        .upload_part(&key, &mp, one, bytes(10, 3))
        .await
        .expect("part");
    objects.abort_multipart(&key, &mp).await.expect("abort");
    objects
        .abort_multipart(&key, &mp)
        .await
        .expect("abort again");
    let late = objects.upload_part(&key, &mp, one, bytes(10, 3)).await;
    assert!(gone(&late, rules), "a part for an aborted upload: {late:?}");
    let parts = [PartRecord {
        number: one,
        etag,
        size: 10,
    }];
    let complete = objects.complete_multipart(&key, &mp, &parts).await;
    assert!(
        gone(&complete, rules),
        "completing an aborted upload: {complete:?}"
    );
    assert_eq!(objects.object_size(&key).await.expect("size"), None);
}

/// Objects written whole (an empty upload), read and deleted.
async fn whole_objects(objects: &dyn ObjectStore, prefix: &str) {
    let key = ObjectKey::new(format!("{prefix}empty"));
    assert_eq!(objects.object_size(&key).await.expect("size"), None);
    let missing = objects.get_object(&key, None).await.err();
    assert!(
        matches!(missing, Some(StoreError::NotFound(_))),
        "{missing:?}"
    );
    objects
        .put_object(&key, Some("text/plain"), Bytes::new())
        .await
        .expect("put");
    assert_eq!(objects.object_size(&key).await.expect("size"), Some(0));
    objects.delete_object(&key).await.expect("delete");
    objects.delete_object(&key).await.expect("delete again");
    assert_eq!(objects.object_size(&key).await.expect("size"), None);
}
