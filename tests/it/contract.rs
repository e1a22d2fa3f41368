//! The store contract ([`partway::store::contract`]) on the production
//! backends: the Redis state store and lock against a real redis-server, and
//! the S3 object store against moto, which enforces the 5 MiB part minimum.
//! The embedded store runs the same functions in its unit tests.

use crate::helpers::{MIB, TestApp};
use crate::servers::servers;
use partway::config::Backend;
use partway::store::contract;
use partway::store::redis::{RedisLocker, RedisState, connect};
use partway::store::s3::S3Objects;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_state_store_keeps_the_contract() {
    let prefix = format!("it-contract-{:016x}:", rand::random::<u64>());
    let client = redis::Client::open(servers().redis_url.as_str()).expect("client");
    let conn = connect(&client).await.expect("redis");
    let state = RedisState::new(conn.clone(), prefix.clone());
    let locker = RedisLocker::new(client, conn, prefix, Duration::from_secs(10));
    contract::state_store(&state, &locker).await;
    contract::outbox(&state, &locker, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_object_store_keeps_the_contract() {
    // A test app creates the bucket and names the S3 settings.
    let app = TestApp::spawn().await;
    let Backend::S3 { s3, key_prefix, .. } = &app.settings.backend else {
        panic!("an S3-backed app");
    };
    let objects = S3Objects::connect(s3).await;
    let rules = contract::Rules {
        min_part: 5 * MIB as u64,
        // moto answers a bare 500 on an aborted upload, not NoSuchUpload.
        aborted_is_not_found: false,
    };
    contract::object_store(&objects, key_prefix, rules).await;
}
