//! The Redis state store and lock against a real redis-server: the fenced
//! compare-and-set commit, TTL renewal, release requests between instances,
//! and the expiry of a dead holder's lock.

use crate::servers::servers;
use bytes::Bytes;
use partway::store::redis::{RedisLocker, RedisState, connect};
use partway::upload::model::{
    Concat, LockToken, MultipartId, ObjectKey, UploadId, UploadInfo, UploadState,
};
use partway::upload::ports::{Change, Commit, CommitError, Locker, StateStore};
use std::time::{Duration, Instant};

fn prefix() -> String {
    format!("it-store-{:016x}:", rand::random::<u64>())
}

async fn locker(prefix: &str, ttl: Duration) -> RedisLocker {
    let url = &servers().redis_url;
    let client = redis::Client::open(url.as_str()).expect("client");
    let conn = connect(&client).await.expect("redis");
    RedisLocker::new(client, conn, prefix, ttl)
}

fn record(id: &UploadId) -> UploadInfo {
    UploadInfo {
        id: id.clone(),
        length: Some(100),
        max_length: 100,
        offset: 0,
        part_size: 10,
        metadata: None,
        content_type: None,
        object_key: ObjectKey::new(format!("k/{id}")),
        multipart_id: Some(MultipartId::new("mp")),
        state: UploadState::Receiving,
        created_at: 0,
        concat: None,
        expires_at: None,
        owner: None,
    }
}

fn append(expected_offset: u64, expected_tail_len: u64, data: &'static [u8]) -> Commit {
    Commit {
        expected_offset,
        expected_tail_len,
        new_offset: expected_offset + data.len() as u64,
        change: Change::AppendTail(Bytes::from_static(data)),
        events: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_fenced_by_offset_tail_and_lock_owner() {
    let prefix = prefix();
    let state = RedisState::new(
        connect(&redis::Client::open(servers().redis_url.as_str()).expect("client"))
            .await
            .expect("redis"),
        prefix.clone(),
    );
    let locks = locker(&prefix, Duration::from_secs(10)).await;
    let id = UploadId::random();
    state.create(&record(&id), &[]).await.expect("create");
    let guard = locks.acquire(&id, Duration::ZERO).await.expect("lock");
    let token = guard.token().to_owned();

    state
        .commit(&id, &token, append(0, 0, b"abc"))
        .await
        .expect("first commit");
    assert!(matches!(
        state.commit(&id, &token, append(0, 0, b"x")).await,
        Err(CommitError::Conflict)
    ));
    assert!(matches!(
        state.commit(&id, &token, append(3, 0, b"x")).await,
        Err(CommitError::Conflict)
    ));
    assert!(matches!(
        state
            .commit(&id, &LockToken::random(), append(3, 3, b"x"))
            .await,
        Err(CommitError::LockLost)
    ));
    guard.release().await;
    assert!(matches!(
        state.commit(&id, &token, append(3, 3, b"x")).await,
        Err(CommitError::LockLost)
    ));
    assert_eq!(
        state.get(&id).await.expect("get").expect("exists").offset,
        3
    );
    assert_eq!(
        state.read_tail(&id, 3).await.expect("tail"),
        Bytes::from_static(b"abc")
    );

    state.remove(&id, &[]).await.expect("remove");
    assert!(state.get(&id).await.expect("get").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lock_is_renewed_past_its_ttl() {
    let prefix = prefix();
    let a = locker(&prefix, Duration::from_millis(300)).await;
    let b = locker(&prefix, Duration::from_millis(300)).await;
    let id = UploadId::random();
    let guard = a.acquire(&id, Duration::ZERO).await.expect("lock");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        b.try_acquire(&id).await.expect("redis").is_none(),
        "still held after 4 TTLs"
    );
    assert!(!guard.stop_signal().is_cancelled());
    guard.release().await;
    assert!(
        b.try_acquire(&id).await.expect("redis").is_some(),
        "free after release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_instance_asks_the_holder_to_let_go() {
    let prefix = prefix();
    let holder = locker(&prefix, Duration::from_secs(10)).await;
    let other = locker(&prefix, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await; // listeners subscribe
    let id = UploadId::random();
    let guard = holder.acquire(&id, Duration::ZERO).await.expect("lock");
    let stop = guard.stop_signal().clone();
    // The holder lets go when asked, as a PATCH does after committing.
    tokio::spawn(async move {
        stop.cancelled().await;
        guard.release().await;
    });
    let start = Instant::now();
    let taken = other.acquire(&id, Duration::from_secs(5)).await;
    assert!(taken.is_ok(), "the waiter got the lock");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "well before the 10 s TTL: {:?}",
        start.elapsed()
    );
}

#[test]
fn a_dead_holders_lock_expires_with_its_ttl() {
    let prefix = prefix();
    let id = UploadId::random();
    // The holder's process "dies": its runtime, renewal task included, is
    // dropped without releasing.
    {
        let dead = tokio::runtime::Runtime::new().expect("runtime");
        dead.block_on(async {
            let a = locker(&prefix, Duration::from_millis(500)).await;
            let guard = a.acquire(&id, Duration::ZERO).await.expect("lock");
            std::mem::forget(guard);
        });
    }
    let live = tokio::runtime::Runtime::new().expect("runtime");
    live.block_on(async {
        let b = locker(&prefix, Duration::from_millis(500)).await;
        assert!(
            b.try_acquire(&id).await.expect("redis").is_none(),
            "held right after"
        );
        let start = Instant::now();
        b.acquire(&id, Duration::from_secs(3))
            .await
            .expect("free once the TTL ran out");
        assert!(start.elapsed() < Duration::from_secs(2));
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expiry_index_follows_the_records() {
    let servers = servers();
    let client = redis::Client::open(servers.redis_url.as_str()).expect("client");
    let state = RedisState::new(connect(&client).await.expect("redis"), prefix());
    let (a, b, c) = (UploadId::random(), UploadId::random(), UploadId::random());
    let final_concat = Concat::Final {
        header: "final;/files/x".into(),
        partials: vec![c.clone()],
    };
    for (id, at, concat) in [
        (&a, 100, None),
        (&b, 200, Some(final_concat.clone())),
        (&c, 300, Some(Concat::Partial)),
    ] {
        let info = UploadInfo {
            expires_at: Some(at),
            concat,
            ..record(id)
        };
        state.create(&info, &[]).await.expect("create");
        assert_eq!(state.get(id).await.expect("get"), Some(info));
    }
    assert_eq!(
        state.expired(250, 10).await.expect("expired"),
        [a.clone(), b.clone()]
    );
    assert_eq!(
        state.expired(250, 1).await.expect("expired"),
        std::slice::from_ref(&a)
    );
    // Extending moves an upload out of reach; finishing drops it.
    state.set_expiry(&a, Some(400)).await.expect("extend");
    state.set_expiry(&b, None).await.expect("clear");
    assert_eq!(
        state.expired(350, 10).await.expect("expired"),
        std::slice::from_ref(&c)
    );
    assert_eq!(
        state.get(&b).await.expect("get").and_then(|i| i.expires_at),
        None
    );
    state.remove(&c, &[]).await.expect("remove");
    assert!(state.expired(350, 10).await.expect("expired").is_empty());
    // A record that is gone is not brought back by a late expiry update.
    state.set_expiry(&c, Some(1)).await.expect("no-op");
    assert_eq!(state.get(&c).await.expect("get"), None);
    assert!(!state.is_gone(&c).await.expect("gone?"));
    state.mark_gone(&c).await.expect("mark");
    assert!(state.is_gone(&c).await.expect("gone?"));
}
