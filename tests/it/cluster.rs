//! partway on a Redis Cluster: three nodes started by the test with
//! `redis-cli --cluster create`. Each upload's keys share a hash tag, so its
//! Lua scripts stay on one slot; uploads land on every node; the expiry index
//! and the release requests work across the cluster.

use crate::helpers::{MIB, TestApp, data, id_of, location};
use crate::servers::start_redis_cluster;
use partway::config::Backend;
use reqwest::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_concatenation_takeover_and_reaping_work_on_a_cluster() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (nodes, _cluster) = start_redis_cluster(dir.path());
    let seeds = nodes.join(",");
    let app = TestApp::spawn_with(move |s| {
        if let Backend::S3 {
            redis_url,
            redis_cluster,
            ..
        } = &mut s.backend
        {
            *redis_url = seeds;
            *redis_cluster = true;
        }
        // Durable events are written for an application that pulls them.
        s.hooks.outbox = true;
    })
    .await;

    // Uploads in small PATCHes, so tails and parts move through the scripts.
    let mut partials = Vec::new();
    let mut whole = Vec::new();
    for i in 0..4 {
        let bytes = data(6 * MIB + 1000 * i, 500 + i as u64);
        let response = app
            .post(Some(bytes.len() as u64), &[("Upload-Concat", "partial")])
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let url = location(&response);
        for (n, chunk) in bytes.chunks(2 * MIB).enumerate() {
            let patched = app.patch(&url, (n * 2 * MIB) as u64, chunk.to_vec()).await;
            assert_eq!(patched.status(), StatusCode::NO_CONTENT);
        }
        app.assert_object(&url, &bytes).await;
        whole.extend_from_slice(&bytes);
        partials.push(url);
    }
    let final_ = app
        .http
        .post(app.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Concat", format!("final;{}", partials.join(" ")))
        .send()
        .await
        .expect("POST final");
    assert_eq!(final_.status(), StatusCode::CREATED);
    app.assert_object(&location(&final_), &whole).await;

    // The uploads' keys are spread over the nodes, not on one.
    let mut used = 0;
    for node in &nodes {
        let mut conn = redis::Client::open(node.as_str())
            .expect("node")
            .get_multiplexed_async_connection()
            .await
            .expect("node connection");
        let keys: i64 = redis::cmd("DBSIZE")
            .query_async(&mut conn)
            .await
            .expect("DBSIZE");
        used += usize::from(keys > 0);
    }
    assert!(used >= 2, "all keys on {used} node");

    // A second instance takes over an upload the first one holds.
    let settings = app.settings.clone();
    let other = TestApp::spawn_with(move |s| *s = settings).await;
    let bytes = data(7 * MIB, 600);
    let url = app.create(Some(bytes.len() as u64)).await;
    let (tx, stalled) = crate::helpers::stalled_patch(&app.http, &url, bytes[..MIB].to_vec()).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other_url = format!("{}{}", other.endpoint(), id_of(&url));
    let start = std::time::Instant::now();
    loop {
        let offset = other.offset(&other_url).await;
        let from = usize::try_from(offset).expect("offset");
        let response = other
            .patch(&other_url, offset, bytes[from..].to_vec())
            .await;
        match response.status() {
            StatusCode::NO_CONTENT => break,
            StatusCode::CONFLICT | StatusCode::LOCKED => {
                assert!(
                    start.elapsed() < partway::config::defaults::LOCK_TTL,
                    "no takeover"
                );
            }
            status => panic!("takeover PATCH got {status}"),
        }
    }
    drop(tx);
    let _ = stalled.await;
    app.assert_object(&url, &bytes).await;

    // The partials expire and are reaped, once, by two instances at once.
    let Backend::S3 { redis_prefix, .. } = &app.settings.backend else {
        panic!("not a Redis-backed app");
    };
    let client = redis::cluster::ClusterClient::new(nodes.clone()).expect("cluster client");
    let mut conn = client.get_async_connection().await.expect("cluster");
    for url in &partials {
        let id = id_of(url);
        let () = redis::cmd("HSET")
            .arg(format!("{redis_prefix}{{{id}}}:info"))
            .arg("expires")
            .arg(1)
            .query_async(&mut conn)
            .await
            .expect("HSET");
        let () = redis::cmd("ZADD")
            .arg(format!("{redis_prefix}expiry"))
            .arg(1)
            .arg(id)
            .query_async(&mut conn)
            .await
            .map(|_: i64| ())
            .expect("ZADD");
    }
    // On a Cluster, each event follows its script: six uploads, each
    // created then finished, in that order.
    let entries: Vec<(String, std::collections::HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg(format!("{redis_prefix}events"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .expect("XRANGE");
    let events: Vec<(String, String)> = entries
        .into_iter()
        .map(|(_, f)| (f["upload"].clone(), f["type"].clone()))
        .collect();
    assert_eq!(events.len(), 12, "{events:?}");
    for (upload, kind) in events.iter().filter(|(_, k)| k == "post-finish") {
        let created = events
            .iter()
            .position(|e| e.0 == *upload && e.1 == "post-create");
        let finished = events.iter().position(|e| e.0 == *upload && e.1 == *kind);
        assert!(created < finished, "{events:?}");
    }
    relay_survives_a_crash(&nodes, redis_prefix).await;
    assert_eq!(app.reap_with_instances(2).await, partials.len());
    for url in &partials {
        assert_eq!(app.head(url).await.status(), StatusCode::NOT_FOUND);
    }
}

/// A writer that died between its script and the relay left an event in
/// its upload's pending stream; the delivering instance relays it.
async fn relay_survives_a_crash(nodes: &[String], prefix: &str) {
    use partway::upload::ports::Outbox;
    let conn = partway::store::redis::connect_cluster(nodes, None)
        .await
        .expect("cluster");
    let state = partway::store::redis::RedisState::new(conn.clone(), prefix);
    let id = format!("{:032x}", rand::random::<u128>());
    let mut conn = conn;
    let event = serde_json::json!({"Type": "post-finish", "ID": "e-1", "Event": {
        "Upload": {"ID": id, "Size": 1, "SizeIsDeferred": false, "Offset": 1, "MetaData": {},
                   "IsPartial": false, "IsFinal": false, "PartialUploads": null, "Storage": null},
        "HTTPRequest": {"Method": "PATCH", "URI": "/", "RemoteAddr": "", "Header": {}}}});
    let _: String = redis::cmd("XADD")
        .arg(format!("{prefix}{{{id}}}:pending"))
        .arg("*")
        .arg(&[
            "id",
            "e-1",
            "type",
            "post-finish",
            "upload",
            &id,
            "event",
            &event.to_string(),
        ])
        .query_async(&mut conn)
        .await
        .expect("XADD");
    let _: i64 = redis::cmd("ZADD")
        .arg(format!("{prefix}relay"))
        .arg(1)
        .arg(&id)
        .query_async(&mut conn)
        .await
        .expect("ZADD");
    let pending = state.pending(1000).await.expect("pending");
    assert!(
        pending
            .iter()
            .any(|p| p.event.id == "e-1" && p.event.body.upload.id == id),
        "relayed"
    );
    let left: i64 = redis::cmd("ZCARD")
        .arg(format!("{prefix}relay"))
        .query_async(&mut conn)
        .await
        .expect("ZCARD");
    assert_eq!(left, 0, "unindexed once relayed");
}
