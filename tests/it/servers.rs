//! Real backing servers for the integration tests: one redis-server and one
//! moto S3 server per test process, on ephemeral loopback ports.
//!
//! moto is the S3 server here because it enforces the 5 MiB minimum part size
//! and checks ETags at CompleteMultipartUpload, which lenient stores do not.
//! Each server runs under a small shell watchdog that stops it when the test
//! process exits, however it exits. Tests share the servers but never keys:
//! each test app gets its own Redis and S3 key prefixes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Addresses of the shared servers.
pub struct Servers {
    pub redis_url: String,
    pub s3_endpoint: String,
    pub bucket: String,
    _children: Mutex<Vec<Child>>,
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Runs `command` under a watchdog that kills it when this process is gone.
pub fn spawn_watched(command: &str, log: &PathBuf) -> Child {
    let script = format!(
        "{command} & child=$!; trap 'kill $child 2>/dev/null' EXIT; \
         while kill -0 {parent} 2>/dev/null && kill -0 $child 2>/dev/null; do sleep 0.5; done",
        parent = std::process::id()
    );
    let log = std::fs::File::create(log).expect("server log file");
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"))
}

pub fn wait_until(what: &str, log: &PathBuf, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not start within 30 s; its log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn redis_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
}

fn http_ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut buf = [0u8; 16];
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_ok()
        && s.read(&mut buf)
            .is_ok_and(|n| buf[..n].starts_with(b"HTTP/"))
}

/// A server binary: from `env` if set, else the project's test environment
/// (`tests/run.sh` installs pinned versions there), else the PATH.
fn tool(env: &str, default: &str) -> String {
    if let Ok(path) = std::env::var(env) {
        return path;
    }
    let local = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-env/bin")
        .join(default);
    if local.exists() {
        return local.display().to_string();
    }
    default.to_owned()
}

/// Starts a redis-server on a fresh port; returns its port and process.
pub fn start_redis(dir: &std::path::Path, extra: &str) -> (u16, Child) {
    start_redis_on(dir, free_port(), extra)
}

/// How the test suite starts redis-server (a pinned one, or the PATH's).
pub fn redis_server() -> String {
    tool("PARTWAY_TEST_REDIS_SERVER", "redis-server")
}

/// Starts a redis-server on `port` with its files in `dir`.
pub fn start_redis_on(dir: &std::path::Path, port: u16, extra: &str) -> (u16, Child) {
    let log = dir.join(format!("redis-{port}.log"));
    let command = format!(
        "exec {} --port {port} --bind 127.0.0.1 --save '' --dir {} {extra}",
        tool("PARTWAY_TEST_REDIS_SERVER", "redis-server"),
        dir.display()
    );
    let child = spawn_watched(&command, &log);
    wait_until("redis-server (apt-get install redis-server)", &log, || {
        redis_ready(port)
    });
    (port, child)
}

/// A local three-node Redis Cluster (no replicas), built with
/// `redis-cli --cluster create`; returns its node URLs and processes.
pub fn start_redis_cluster(dir: &std::path::Path) -> (Vec<String>, Vec<Child>) {
    let mut nodes = Vec::new();
    let mut children = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let extra = format!(
            "--cluster-enabled yes --cluster-config-file nodes-{port}.conf --appendonly no"
        );
        children.push(start_redis_on(dir, port, &extra).1);
        nodes.push(port);
    }
    let redis_cli = std::path::Path::new(&tool("PARTWAY_TEST_REDIS_SERVER", "redis-server"))
        .with_file_name("redis-cli");
    let redis_cli = if redis_cli.exists() {
        redis_cli.display().to_string()
    } else {
        "redis-cli".to_owned()
    };
    let addresses: Vec<String> = nodes.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new(&redis_cli)
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .status()
        .expect("redis-cli runs");
    assert!(created.success(), "redis-cli --cluster create failed");
    for port in &nodes {
        let log = dir.join(format!("redis-{port}.log"));
        wait_until("the cluster to settle", &log, || {
            TcpStream::connect(("127.0.0.1", *port)).is_ok_and(|mut stream| {
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                let mut reply = [0u8; 2048];
                stream.write_all(b"CLUSTER INFO\r\n").is_ok()
                    && stream.read(&mut reply).is_ok_and(|n| {
                        String::from_utf8_lossy(&reply[..n]).contains("cluster_state:ok")
                    })
            })
        });
    }
    let urls = nodes
        .iter()
        .map(|p| format!("redis://127.0.0.1:{p}/"))
        .collect();
    (urls, children)
}

/// The servers of this test process, started on first use.
pub fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("partway-it-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let (redis_port, redis) = start_redis(&dir, "--appendonly no");
        let moto_port = free_port();
        let moto_log = dir.join("moto.log");
        let moto = spawn_watched(
            &format!(
                "exec {} -H 127.0.0.1 -p {moto_port}",
                tool("PARTWAY_TEST_MOTO_SERVER", "moto_server")
            ),
            &moto_log,
        );
        wait_until(
            "moto_server (pip install 'moto[server]')",
            &moto_log,
            || http_ready(moto_port),
        );
        Servers {
            redis_url: format!("redis://127.0.0.1:{redis_port}/"),
            s3_endpoint: format!("http://127.0.0.1:{moto_port}"),
            bucket: "partway-test".into(),
            _children: Mutex::new(vec![redis, moto]),
        }
    })
}
