//! TLS where operators need it, with a CA the test makes: partway serving
//! HTTPS itself (HTTP/1.1 and HTTP/2 by ALPN, `https` Locations, uploads by
//! tus-js-client under Node over HTTP/1.1 and by Uppy in Chromium over
//! HTTP/2), and partway keeping its state in a redis-server that speaks
//! only TLS (`rediss://` with `--redis-ca-file`).

use crate::clients::{outcome, run_client_at};
use crate::helpers::{MIB, TestApp, data, location};
use crate::servers::{free_port, redis_server, spawn_watched, wait_until};
use partway::config::Backend;
use partway::tls::TlsFiles;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use reqwest::{StatusCode, Version};
use std::path::{Path, PathBuf};

/// A CA and a certificate it signed for `localhost` and 127.0.0.1, as PEM
/// files in a temporary directory.
struct TestCa {
    dir: tempfile::TempDir,
}

impl TestCa {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("a key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "partway test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("the CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("a key");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let cert = CertificateParams::new(names).expect("params");
        let cert = cert.signed_by(&key, &issuer).expect("a certificate");
        let write =
            |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).expect("write");
        write("ca.pem", ca_cert.pem());
        write("server.pem", cert.pem());
        write("server.key", key.serialize_pem());
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
        }
    }

    /// A client that trusts this CA, speaking HTTP/2 if `http2`.
    fn client(&self, http2: bool) -> reqwest::Client {
        let ca = std::fs::read(self.path("ca.pem")).expect("ca");
        let mut builder = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("a certificate"));
        if !http2 {
            builder = builder.http1_only();
        }
        builder.build().expect("a client")
    }
}

/// Creates, sends and reads back an upload over `client`; returns the
/// HTTP version the server answered with.
async fn round_trip(client: &reqwest::Client, endpoint: &str, bytes: &[u8]) -> Version {
    let created = client
        .post(endpoint)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let url = location(&created);
    assert!(url.starts_with("https://localhost:"), "Location {url}");
    let patched = client
        .patch(&url)
        .header("Tus-Resumable", "1.0.0")
        .header("Content-Type", "application/offset+octet-stream")
        .header("Upload-Offset", "0")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(patched.status(), StatusCode::NO_CONTENT);
    let got = client.get(&url).send().await.expect("GET");
    let version = got.version();
    assert_eq!(&got.bytes().await.expect("body")[..], bytes);
    version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partway_serves_https_with_http2_and_http1() {
    let ca = TestCa::new();
    let files = ca.files();
    let app = TestApp::spawn_with(move |s| s.serving.tls = Some(files)).await;
    let endpoint = format!("https://localhost:{}/files/", app.addr.port());
    let bytes = data(6 * MIB + 5, 120);
    assert_eq!(
        round_trip(&ca.client(true), &endpoint, &bytes).await,
        Version::HTTP_2
    );
    assert_eq!(
        round_trip(&ca.client(false), &endpoint, &bytes).await,
        Version::HTTP_11
    );
    // Plain HTTP on the TLS port gets nowhere.
    let plain = app
        .http
        .get(format!("http://localhost:{}/healthz", app.addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || plain.is_ok_and(|r| !r.status().is_success()));

    // tus-js-client under Node, trusting the CA.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/upload.mjs");
    let ca_file = ca.path("ca.pem");
    let env = [("NODE_EXTRA_CA_CERTS", ca_file.as_os_str())];
    let args = ["--chunk-size", "1048576"];
    let output = run_client_at("node", &script, &endpoint, &bytes, None, &args, &env).await;
    let url = outcome("tus-js-client over HTTPS", &output)["url"]
        .as_str()
        .expect("url")
        .to_owned();
    assert!(url.starts_with("https://"), "{url}");
    app.assert_object(&url, &bytes).await;
}

/// A redis-server that speaks only TLS, with `ca`'s certificate.
fn tls_redis(ca: &TestCa) -> (u16, std::process::Child) {
    let port = free_port();
    let log = ca.path(&format!("redis-{port}.log"));
    let command = format!(
        "exec {} --port 0 --tls-port {port} --bind 127.0.0.1 --save '' --dir {dir} \
         --tls-cert-file {dir}/server.pem --tls-key-file {dir}/server.key \
         --tls-ca-cert-file {dir}/ca.pem --tls-auth-clients no",
        redis_server(),
        dir = ca.dir.path().display()
    );
    let child = spawn_watched(&command, &log);
    wait_until("redis-server with TLS", &log, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("Ready to accept connections"))
    });
    (port, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_lives_in_a_redis_that_speaks_only_tls() {
    let ca = TestCa::new();
    let (port, _redis) = tls_redis(&ca);
    let ca_file = ca.path("ca.pem");
    let app = TestApp::spawn_with(move |s| {
        if let Backend::S3 {
            redis_url,
            redis_ca_file,
            ..
        } = &mut s.backend
        {
            *redis_url = format!("rediss://localhost:{port}/");
            *redis_ca_file = Some(ca_file);
        }
    })
    .await;
    let bytes = data(5 * MIB + 3, 121);
    let url = app.create(Some(bytes.len() as u64)).await;
    assert_eq!(
        app.patch(&url, 0, bytes.clone()).await.status(),
        StatusCode::NO_CONTENT
    );
    app.assert_object(&url, &bytes).await;
    assert_eq!(app.offset(&url).await, bytes.len() as u64);

    // Without the CA, the server's certificate is not trusted: no start.
    let mut untrusted = app.settings.clone();
    if let Backend::S3 { redis_ca_file, .. } = &mut untrusted.backend {
        *redis_ca_file = None;
    }
    let refused = partway::Partway::from_settings(&untrusted).await;
    assert!(
        refused.is_err(),
        "a rediss:// server outside the trusted roots is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uppy_in_chromium_uploads_over_http2() {
    let ca = TestCa::new();
    let files = ca.files();
    let page_port = free_port();
    let app = TestApp::spawn_with(move |s| {
        s.serving.tls = Some(files);
        s.http.cors_origins = vec![format!("http://127.0.0.1:{page_port}")];
        s.http.cors_credentials = true;
    })
    .await;
    let endpoint = format!("https://localhost:{}/files/", app.addr.port());
    let bytes = data(6 * MIB + 9, 122);
    let port = page_port.to_string();
    // Chromium is told to accept the test CA's certificate; it then
    // negotiates HTTP/2 by ALPN, as browsers do with any HTTPS server.
    let args = [
        "--page-port",
        &port,
        "--ignore-https-errors",
        "--chunk-size",
        "1048576",
    ];
    let script = crate::uppy::script();
    let output = run_client_at("node", &script, &endpoint, &bytes, None, &args, &[]).await;
    let json = outcome("Uppy over HTTPS", &output);
    assert_eq!(json["protocols"], serde_json::json!(["h2"]), "{json}");
    let url = json["url"].as_str().expect("url").to_owned();
    assert!(url.starts_with("https://localhost:"), "{url}");
    app.assert_object(&url, &bytes).await;
}
