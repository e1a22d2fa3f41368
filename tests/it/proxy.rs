//! A fault-injecting TCP proxy for the tests, to sit between partway and S3
//! or Redis. Its mode can change at any time and applies to new connections
//! (and, for latency and black-holing, to traffic on open ones):
//! - `Pass`: forward bytes both ways;
//! - `Latency(d)`: delay every chunk by `d`;
//! - `Reset`: accept, then close at once (a refused or reset connection);
//! - `BlackHole`: accept and read, never answer;
//! - `Http503 { every }`: on every `every`-th new connection, starting with
//!   the first, read the request head and answer `503 Service Unavailable`
//!   (S3's SlowDown) without forwarding, as an S3 front end shedding load
//!   does; the other connections pass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    Pass,
    Latency(Duration),
    Reset,
    BlackHole,
    Http503 { every: usize },
}

/// A running proxy; stops when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// New connections seen, and how many of them were shed with a 503.
    counts: Arc<Mutex<(usize, usize)>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Proxies a loopback port to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let counts = Arc::new(Mutex::new((0, 0)));
        let (shared, tally) = (mode.clone(), counts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let shed = match current(&shared) {
                    Mode::Http503 { every } => tally.lock().is_ok_and(|mut t| {
                        let shed = t.0 % every.max(1) == 0;
                        t.0 += 1;
                        t.1 += usize::from(shed);
                        shed
                    }),
                    _ => false,
                };
                tokio::spawn(handle(client, target, shared.clone(), shed));
            }
        });
        Self {
            addr,
            mode,
            counts,
            task,
        }
    }

    /// Requests answered 503 so far.
    pub fn shed(&self) -> usize {
        self.counts.lock().map_or(0, |c| c.1)
    }

    /// Changes what the proxy does from now on.
    pub fn set(&self, mode: Mode) {
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
    }

    /// The URL of the proxy for `scheme`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }
}

fn current(mode: &Mutex<Mode>) -> Mode {
    mode.lock().map_or(Mode::Pass, |m| *m)
}

async fn handle(mut client: TcpStream, target: SocketAddr, mode: Arc<Mutex<Mode>>, shed: bool) {
    let admitted = current(&mode);
    match admitted {
        Mode::Reset => return,
        Mode::BlackHole => {
            let mut sink = vec![0; 64 * 1024];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
            return;
        }
        Mode::Http503 { .. } if shed => {
            // Read the request head, then shed it.
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                match client.read(&mut buf).await {
                    Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            let _ = client
                .write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\n\
                      Content-Length: 95\r\nConnection: close\r\n\r\n\
                      <Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>\n",
                )
                .await;
            return;
        }
        _ => {}
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let shedding_since_admitted = matches!(admitted, Mode::Http503 { .. });
    tokio::join!(
        pump(cr, sw, mode.clone(), shedding_since_admitted),
        pump(sr, cw, mode, shedding_since_admitted)
    );
}

/// Copies one direction, applying latency and black-holing as they change.
/// `admitted_shedding`: the connection was let through while shedding, so a
/// shedding mode does not close it.
async fn pump(
    mut read: impl AsyncRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
    mode: Arc<Mutex<Mode>>,
    admitted_shedding: bool,
) {
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match read.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            _ => return,
        };
        match current(&mode) {
            Mode::Latency(delay) => tokio::time::sleep(delay).await,
            Mode::BlackHole => continue,
            Mode::Reset => return,
            // Connections opened before shedding began close, so every
            // request meets the new mode.
            Mode::Http503 { .. } if !admitted_shedding => return,
            Mode::Http503 { .. } | Mode::Pass => {}
        }
        if write.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
