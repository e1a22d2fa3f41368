//! Hooks and events against a receiver written as for tusd
//! ([`crate::receiver`]), with real Redis, moto, tus-js-client and the
//! binary: every hook in tusd's shape and signed; pre-create rejecting and
//! renaming; a pre-finish that fails once and exactly one post-finish; and
//! three instances delivering one outbox through a kill -9 and a receiver
//! outage, with no event lost.

use crate::clients::run_client;
use crate::helpers::{KIB, MIB, TestApp, data, header_str, id_of, location};
use crate::receiver::{Received, Receiver};
use crate::servers::free_port;
use partway::upload::events::HookKind;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"a hook signing secret of 32+ bytes, for tests";

/// A test app whose hooks go to a new receiver, with `adjust` more.
async fn hooked(adjust: impl FnOnce(&mut partway::hook::HookSettings)) -> (TestApp, Receiver) {
    let (receiver, url) = Receiver::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("hook-secret");
    std::fs::write(&secret, SECRET).expect("secret");
    receiver.verify_with(SECRET);
    let app = TestApp::spawn_with(move |s| {
        s.hooks.http = Some(url);
        s.hooks.signing_secret = Some(secret);
        s.hooks.progress_interval = Duration::from_millis(100);
        adjust(&mut s.hooks);
    })
    .await;
    // The secret is read at start; the directory may go.
    drop(dir);
    (app, receiver)
}

/// tus-js-client's upload of `bytes` to `app`; returns the upload's URL.
async fn js_upload(app: &TestApp, bytes: &[u8], args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/upload.mjs");
    let output = run_client("node", &script, app, bytes, None, args).await;
    let json = crate::clients::outcome("tus-js-client", &output);
    json["url"].as_str().expect("url").to_owned()
}

/// A POST of an upload of `length` bytes named `filename`.
async fn post_named(
    app: &TestApp,
    filename: &str,
    length: u64,
) -> reqwest::Result<reqwest::Response> {
    let metadata =
        partway::protocol::metadata::Metadata::encode([("filename", Some(filename.as_bytes()))]);
    app.http
        .post(app.endpoint())
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", length.to_string())
        .header("Upload-Metadata", metadata)
        .send()
        .await
}

fn kinds(received: &[Received]) -> Vec<&str> {
    received.iter().map(|r| r.kind.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hook_reaches_a_tusd_receiver_in_tusds_shape_and_signed() {
    let (app, receiver) = hooked(|h| h.enabled = HookKind::ALL.to_vec()).await;
    let bytes = data(6 * MIB, 3);
    let url = js_upload(&app, &bytes, &["--chunk-size", &MIB.to_string()]).await;
    let id = id_of(&url).to_owned();
    app.assert_object(&url, &bytes).await;
    let doomed = app.create(Some(10)).await;
    let deleted = app
        .http
        .delete(&doomed)
        .header("Tus-Resumable", "1.0.0")
        .send()
        .await;
    assert_eq!(deleted.expect("DELETE").status(), StatusCode::NO_CONTENT);
    let doomed = id_of(&doomed).to_owned();
    receiver
        .wait_for(20, |r| {
            r.iter().any(|e| e.kind == "post-finish" && e.upload == id)
                && r.iter()
                    .any(|e| e.kind == "post-terminate" && e.upload == doomed)
        })
        .await;
    assert_eq!(
        receiver.problems(),
        Vec::<String>::new(),
        "tusd's shape, signed"
    );
    let ours: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.upload == id)
        .collect();
    let seen: HashSet<&str> = kinds(&ours).into_iter().collect();
    for kind in ["post-create", "post-receive", "pre-finish", "post-finish"] {
        assert!(seen.contains(kind), "{kind} missing: {:?}", kinds(&ours));
    }
    let position = |kind: &str| ours.iter().position(|r| r.kind == kind).expect("kind");
    assert!(
        position("post-create") < position("post-finish"),
        "{:?}",
        kinds(&ours)
    );
    assert!(
        position("pre-finish") < position("post-finish"),
        "{:?}",
        kinds(&ours)
    );
    let finish = &ours[position("post-finish")].body["Event"];
    assert_eq!(finish["Upload"]["Offset"], json!(6 * MIB));
    assert_eq!(finish["Upload"]["Size"], json!(6 * MIB));
    assert_eq!(finish["Upload"]["MetaData"]["filename"], "upload.bin");
    assert_eq!(
        finish["Upload"]["Storage"]["Bucket"].as_str(),
        Some(app.bucket.as_str())
    );
    assert_eq!(
        finish["Upload"]["Storage"]["Key"],
        json!(format!("{}{id}", app.key_prefix))
    );
    assert_eq!(finish["HTTPRequest"]["Method"], "PATCH");
    let creates = receiver
        .received()
        .into_iter()
        .filter(|r| r.kind == "pre-create")
        .count();
    assert!(creates >= 2, "one pre-create per POST");
    // Blocking hooks are asked at once; post-* come from the outbox, in
    // order among themselves.
    let doomed: Vec<Received> = receiver
        .received()
        .into_iter()
        .filter(|r| r.upload == doomed)
        .collect();
    let posts: Vec<&str> = kinds(&doomed)
        .into_iter()
        .filter(|k| k.starts_with("post-"))
        .collect();
    assert_eq!(posts, ["post-create", "post-terminate"]);
    assert!(kinds(&doomed).contains(&"pre-terminate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_create_rejects_renames_and_never_opens_the_door() {
    let (app, receiver) = hooked(|_| {}).await;
    let renamed = format!("renamed-{:08x}", rand::random::<u32>());
    let name = renamed.clone();
    receiver.rule(move |request| {
        if request["Type"] != "pre-create" {
            return None;
        }
        match request["Event"]["Upload"]["MetaData"]["filename"].as_str()? {
            "reject.bin" => Some((
                StatusCode::OK,
                json!({"RejectUpload": true,
                "HTTPResponse": {"StatusCode": 403, "Body": "quota exceeded",
                                 "Header": {"X-Reason": "quota"}}}),
            )),
            "rename.bin" => Some((
                StatusCode::OK,
                json!({"changeFileInfo": {"id": name,
                "MetaData": {"filename": "renamed.txt", "filetype": "text/plain"}}}),
            )),
            "unsafe.bin" => Some((StatusCode::OK, json!({"ChangeFileInfo": {"ID": "../x"}}))),
            "broken.bin" => Some((StatusCode::INTERNAL_SERVER_ERROR, json!({}))),
            _ => None,
        }
    });
    let post = |filename: &'static str| post_named(&app, filename, 5);
    let rejected = post("reject.bin").await.expect("POST");
    assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
    assert_eq!(header_str(&rejected, "x-reason"), Some("quota"));
    assert_eq!(rejected.text().await.expect("body"), "quota exceeded");
    for refused in ["unsafe.bin", "broken.bin"] {
        let response = post(refused).await.expect("POST");
        assert_eq!(
            response.status(),
            StatusCode::SERVICE_UNAVAILABLE,
            "{refused}"
        );
        assert!(response.headers().contains_key("retry-after"));
    }
    let created = post("rename.bin").await.expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    assert_eq!(id_of(&url), renamed);
    assert_eq!(
        app.patch(&url, 0, b"hello".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    app.assert_object(&url, b"hello").await;
    let head = app.head(&url).await;
    let metadata = header_str(&head, "upload-metadata")
        .unwrap_or("")
        .to_owned();
    assert!(metadata.contains("filename cmVuYW1lZC50eHQ="), "{metadata}");
    receiver
        .wait_for(20, |r| {
            r.iter()
                .any(|e| e.kind == "post-finish" && e.upload == renamed)
        })
        .await;
    let created: Vec<String> = receiver
        .received()
        .iter()
        .filter(|r| r.kind == "post-create")
        .map(|r| r.upload.clone())
        .collect();
    assert_eq!(created, [renamed], "nothing else was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_finish_is_retried_and_post_finish_arrives_once() {
    let (app, receiver) = hooked(|h| {
        h.enabled.push(HookKind::PreFinish);
        h.retry = 1;
    })
    .await;
    let failed = std::sync::Arc::new(std::sync::Mutex::new(HashSet::<String>::new()));
    receiver.rule(move |request| {
        let upload = request["Event"]["Upload"]["ID"].as_str()?.to_owned();
        let first = request["Type"] == "pre-finish" && failed.lock().expect("lock").insert(upload);
        first.then(|| (StatusCode::INTERNAL_SERVER_ERROR, json!({})))
    });
    let bytes = data(MIB + 7, 5);
    let url = js_upload(&app, &bytes, &[]).await;
    let id = id_of(&url).to_owned();
    app.assert_object(&url, &bytes).await;
    receiver
        .wait_for(20, |r| {
            r.iter().any(|e| e.kind == "post-finish" && e.upload == id)
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        receiver.of("pre-finish", &id).len(),
        2,
        "failed once, asked again"
    );
    let finishes: HashSet<String> = receiver
        .of("post-finish", &id)
        .into_iter()
        .map(|r| r.hook_id)
        .collect();
    let metrics = crate::metrics::Scrape::of(&format!("http://{}/metrics", app.addr)).await;
    let pre_finish = [("hooktype", "pre-finish")];
    assert_eq!(
        metrics.get("partway_hook_invocations_total", &pre_finish),
        2.0
    );
    assert_eq!(metrics.get("partway_hook_errors_total", &pre_finish), 1.0);
    assert!(metrics.get("partway_outbox_delivered_total", &[]) >= 2.0);
    assert_eq!(metrics.get("partway_outbox_dead_lettered_total", &[]), 0.0);
    assert_eq!(
        finishes.len(),
        1,
        "one post-finish (a duplicate would carry the same id)"
    );
    assert_eq!(receiver.problems(), Vec::<String>::new());
}

/// Figures of a delivery run: what was produced, delivered, lost.
#[derive(Debug)]
struct Figures {
    produced: usize,
    distinct: usize,
    duplicates: usize,
    lost: usize,
    out_of_order: usize,
    /// From the receiver coming back to the last event arriving.
    lag: Duration,
}

/// Uploads `count` small files round-robin across `urls`; returns their ids.
async fn upload_across(app: &TestApp, urls: &[String], count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let endpoint = &urls[i % urls.len()];
        let created = app
            .http
            .post(endpoint)
            .header("Tus-Resumable", "1.0.0")
            .header("Upload-Length", (10 * KIB).to_string())
            .send()
            .await
            .expect("POST");
        assert_eq!(created.status(), StatusCode::CREATED);
        let url = location(&created);
        let url = format!("{endpoint}{}", id_of(&url));
        assert_eq!(
            app.patch(&url, 0, data(10 * KIB, i as u64)).await.status(),
            StatusCode::NO_CONTENT
        );
        ids.push(id_of(&url).to_owned());
    }
    ids
}

fn figures(received: &[Received], ids: &[String], back: Instant) -> Figures {
    let distinct: HashMap<&str, &Received> =
        received.iter().map(|r| (r.hook_id.as_str(), r)).collect();
    let mut out_of_order = 0;
    for id in ids {
        let first = |kind: &str| {
            received
                .iter()
                .position(|r| r.upload == *id && r.kind == kind)
        };
        if let (Some(c), Some(f)) = (first("post-create"), first("post-finish"))
            && c > f
        {
            out_of_order += 1;
        }
    }
    let expected = ids.len() * 2;
    let last = received.iter().map(|r| r.at).max().unwrap_or(back);
    Figures {
        produced: expected,
        distinct: distinct.len(),
        duplicates: received.len() - distinct.len(),
        lost: expected.saturating_sub(distinct.len()),
        out_of_order,
        lag: last.saturating_duration_since(back),
    }
}

/// Three instances, one outbox: the receiver is down while uploads go
/// through all three, the first instance is killed -9 right after its last
/// upload completes, and when the receiver comes back every post-create
/// and post-finish arrives, post-create first. `HOOK_RUN_UPLOADS` and
/// `HOOK_RUN_DOWN_SECS` scale it up (the closing figures: 200 and 60).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_deliver_one_outbox_through_a_kill_and_an_outage() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (count, down_secs) = (
        env("HOOK_RUN_UPLOADS", 30) as usize,
        env("HOOK_RUN_DOWN_SECS", 3),
    );
    let (receiver, hook_url) = Receiver::start().await;
    receiver.set_down(true);
    let app = TestApp::spawn().await;
    let args = [
        "--hooks-http",
        hook_url.as_str(),
        "--hooks-enabled-events",
        "post-create,post-finish",
    ];
    let ports = [free_port(), free_port(), free_port()];
    let mut instances = Vec::new();
    for port in ports {
        instances.push(crate::binary::launch_like(&app, port, &args).await);
    }
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}/files/"))
        .collect();
    let start = Instant::now();
    let ids = upload_across(&app, &urls, count).await;
    // The first instance dies right after its last upload completed.
    instances[0].kill().expect("kill -9");
    let _ = instances[0].wait();
    let down_for = Duration::from_secs(down_secs).saturating_sub(start.elapsed());
    tokio::time::sleep(down_for).await;
    receiver.set_down(false);
    let back = Instant::now();
    let expected: HashSet<(String, &str)> = ids
        .iter()
        .flat_map(|id| [(id.clone(), "post-create"), (id.clone(), "post-finish")])
        .collect();
    receiver
        .wait_for(120, |r| {
            let got: HashSet<(String, &str)> = r
                .iter()
                .map(|e| (e.upload.clone(), e.kind.as_str()))
                .collect();
            expected.is_subset(&got)
        })
        .await;
    let figures = figures(&receiver.received(), &ids, back);
    println!(
        "hook delivery, 3 instances, {count} uploads, receiver down {down_secs}s: produced {}, \
         delivered {}, duplicates {}, lost {}, out of order {}, last one {:?} after the receiver \
         came back",
        figures.produced,
        figures.distinct,
        figures.duplicates,
        figures.lost,
        figures.out_of_order,
        figures.lag
    );
    for mut instance in instances.into_iter().skip(1) {
        let _ = instance.kill();
        let _ = instance.wait();
    }
    assert_eq!((figures.lost, figures.out_of_order), (0, 0), "{figures:?}");
    assert_eq!(figures.distinct, figures.produced, "{figures:?}");
    assert!(
        receiver
            .problems()
            .iter()
            .all(|p| !p.contains("Upload keys"))
    );
}

/// A final upload whose client hung up before the answer is still
/// assembled, and its post-finish still sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_final_upload_gets_its_post_finish_when_the_client_hangs_up() {
    use tokio::io::AsyncWriteExt;
    let (app, receiver) = hooked(|_| {}).await;
    let mut partials = Vec::new();
    for i in 0..3u64 {
        let response = app
            .post(Some(6 * MIB as u64), &[("Upload-Concat", "partial")])
            .await;
        let url = location(&response);
        let patched = app.patch(&url, 0, data(6 * MIB, 40 + i)).await;
        assert_eq!(patched.status(), StatusCode::NO_CONTENT);
        partials.push(url);
    }
    let request = format!(
        "POST /files/ HTTP/1.1\r\nHost: {}\r\nTus-Resumable: 1.0.0\r\nUpload-Concat: final;{}\r\n\
         Content-Length: 0\r\n\r\n",
        app.addr,
        partials.join(" ")
    );
    // The cut comes while the final is being made: once its pre-create is
    // sent, which the receiver answers a second late.
    let is_final = |r: &Value| r["Event"]["Upload"]["IsFinal"] == json!(true);
    receiver.delay(move |r| is_final(r).then_some(Duration::from_secs(1)));
    let mut socket = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    socket.write_all(request.as_bytes()).await.expect("send");
    let asked = |r: &[Received]| {
        r.iter()
            .any(|e| e.kind == "pre-create" && is_final(&e.body))
    };
    receiver.wait_for(20, asked).await;
    drop(socket);
    let finished = |e: &Received| e.kind == "post-finish" && is_final(&e.body);
    receiver.wait_for(30, |r| r.iter().any(finished)).await;
    let finish = receiver.received().into_iter().find(finished);
    let upload = &finish.expect("post-finish").body["Event"]["Upload"];
    assert_eq!(upload["Offset"], json!(18 * MIB));
    assert_eq!(upload["PartialUploads"].as_array().map(Vec::len), Some(3));
}

/// tusd's file hooks: an executable per hook in `--hooks-dir`, the event
/// on stdin, the answer on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_executables_decide_and_are_told() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("finished.log");
    let scripts = [
        (
            "pre-create",
            "#!/bin/sh\ncase \"$(cat)\" in *'\"filename\":\"no.bin\"'*) \
             echo '{\"RejectUpload\": true}';; *) echo '{}';; esac\n"
                .to_owned(),
        ),
        (
            "post-finish",
            format!(
                "#!/bin/sh\ncat > /dev/null\necho \"$TUS_ID $TUS_OFFSET $HOOK_ID\" >> {}\n",
                log.display()
            ),
        ),
    ];
    for (name, body) in &scripts {
        let path = dir.path().join(name);
        std::fs::write(&path, body).expect("script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let hooks = dir.path().to_owned();
    let app = TestApp::spawn_with(move |s| s.hooks.dir = Some(hooks)).await;
    let post = |filename: &'static str| post_named(&app, filename, 3);
    let refused = post("no.bin").await.expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let created = post("yes.bin").await.expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    assert_eq!(
        app.patch(&url, 0, b"abc".to_vec()).await.status(),
        StatusCode::NO_CONTENT
    );
    let start = Instant::now();
    let line = loop {
        if let Ok(text) = std::fs::read_to_string(&log)
            && !text.is_empty()
        {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "post-finish never ran"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&fields[..2], [id_of(&url), "3"]);
    assert_eq!(fields[2].len(), 32, "the event id: {line}");
}

/// An event the receiver never took goes to the dead letters after
/// `--hooks-retry-for`; `--hooks-replay-dead` puts it back, and it is
/// delivered once the receiver answers (embedded store, the binary).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_replayed_by_the_operator() {
    use std::process::Stdio;
    let (receiver, hook_url) = Receiver::start().await;
    receiver.set_down(true);
    let dir = tempfile::tempdir().expect("tempdir");
    let events = [
        "--hooks-enabled-events",
        "post-create",
        "--hooks-retry-for",
        "1s",
    ];
    let args = [
        ["--hooks-http", hook_url.as_str()],
        [events[0], events[1]],
        [events[2], events[3]],
    ]
    .concat();
    let port = free_port();
    let mut server = crate::binary::launch_with(dir.path(), port, args, "warn", Stdio::null());
    crate::binary::ready(port).await;
    let created = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/files/"))
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", "3")
        .send()
        .await
        .expect("POST");
    let id = id_of(&location(&created)).to_owned();
    let dead = dir.path().join("events/dead");
    let start = Instant::now();
    while std::fs::read_to_string(&dead).map_or(true, |d| !d.contains(&id)) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.kill().expect("stop");
    let _ = server.wait();
    let replay = std::process::Command::new(env!("CARGO_BIN_EXE_partway"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--hooks-replay-dead")
        .output()
        .expect("replay");
    let said = String::from_utf8_lossy(&replay.stdout);
    assert!(
        replay.status.success() && said.starts_with("1 dead-lettered"),
        "{said}"
    );
    receiver.set_down(false);
    let mut server = crate::binary::launch_with(
        dir.path(),
        port,
        ["--hooks-http", hook_url.as_str()],
        "warn",
        Stdio::null(),
    );
    receiver
        .wait_for(20, |r| {
            r.iter().any(|e| e.kind == "post-create" && e.upload == id)
        })
        .await;
    let _ = server.kill();
    let _ = server.wait();
}
