//! Client traffic for tests of changes under load (binary upgrade, reload, stop and start):
//! keep-alive HTTP/1.1 connections, one connection per request, and HTTP/2 over TLS, each
//! request counted as served or failed, every failure described.
//!
//! The clients are strict, as a load generator is: a keep-alive connection closed before any
//! byte of an answer fails the request (the server gave no `Connection: close` warning, and a
//! client that sent a POST could not know whether it was processed), and an HTTP/2 request
//! that was sent and then lost fails too. What a well-behaved client is told in time is not a
//! failure: it opens a new connection after an answer that said `Connection: close`, and after
//! HTTP/2's GOAWAY, for a request the connection gave back unsent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rustls::client::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::WAIT;

/// How many clients of each kind, and where they connect.
#[derive(Clone)]
pub struct Mix {
    /// The plain HTTP listener.
    pub addr: SocketAddr,
    /// Keep-alive HTTP/1.1 connections, each sending one request after the other.
    pub keep_alive: usize,
    /// Clients opening a connection per request.
    pub new_connection: usize,
    /// HTTP/2 over TLS clients, if any.
    pub http2: Option<Http2>,
}

/// HTTP/2 clients over TLS.
#[derive(Clone)]
pub struct Http2 {
    /// The TLS listener.
    pub addr: SocketAddr,
    /// The name the certificate is for.
    pub server_name: &'static str,
    /// Client settings offering ALPN `h2` ([`crate::tls::TestCa::client`]).
    pub client: Arc<ClientConfig>,
    /// Connections, each with `streams` requests in flight at a time.
    pub connections: usize,
    /// Requests in flight on each connection.
    pub streams: usize,
}

/// The kinds of client, as [`Report`] counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// HTTP/1.1 keep-alive.
    KeepAlive,
    /// HTTP/1.1, one connection per request.
    NewConnection,
    /// HTTP/2 over TLS.
    Http2,
}

const KINDS: [Kind; 3] = [Kind::KeepAlive, Kind::NewConnection, Kind::Http2];

/// The failures described in full, at most; the rest are only counted.
const DESCRIBED: usize = 20;

#[derive(Default)]
struct Tally {
    stop: AtomicBool,
    served: [AtomicU64; 3],
    failed: [AtomicU64; 3],
    /// New connections opened because the server said it would close (Connection: close,
    /// GOAWAY).
    reconnects: AtomicU64,
    /// HTTP/2 requests the server refused unprocessed (GOAWAY), sent again.
    unprocessed: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn served(&self, kind: Kind) {
        self.served[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn failed(&self, kind: Kind, why: String) {
        self.failed[kind as usize].fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().expect("failures");
        if failures.len() < DESCRIBED {
            failures.push(format!("{kind:?}: {why}"));
        }
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What the clients saw so far.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Requests answered 200, by [`Kind`].
    pub served: [u64; 3],
    /// Requests failed, by [`Kind`].
    pub failed: [u64; 3],
    /// Connections opened again because the server announced it would close the last one.
    pub reconnects: u64,
    /// HTTP/2 requests a graceful GOAWAY refused unprocessed, sent again on a new connection.
    pub unprocessed: u64,
    /// The first failures, described.
    pub failures: Vec<String>,
}

impl Report {
    /// Requests served, all kinds.
    #[must_use]
    pub fn total_served(&self) -> u64 {
        self.served.iter().sum()
    }

    /// Requests failed, all kinds.
    #[must_use]
    pub fn total_failed(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// Requests of `kind` served.
    #[must_use]
    pub fn served_of(&self, kind: Kind) -> u64 {
        self.served[kind as usize]
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for kind in KINDS {
            write!(
                f,
                "{kind:?}: {} served, {} failed; ",
                self.served[kind as usize], self.failed[kind as usize]
            )?;
        }
        write!(
            f,
            "{} reconnects after a close announced, {} HTTP/2 requests refused unprocessed and \
             sent again",
            self.reconnects, self.unprocessed
        )?;
        for failure in &self.failures {
            write!(f, "\n  {failure}")?;
        }
        Ok(())
    }
}

/// Running clients.
pub struct Traffic {
    tally: Arc<Tally>,
    clients: Vec<JoinHandle<()>>,
}

impl Traffic {
    /// Starts the clients of `mix`.
    #[must_use]
    pub fn start(mix: &Mix) -> Traffic {
        let tally = Arc::new(Tally::default());
        let mut clients = Vec::new();
        for _ in 0..mix.keep_alive {
            clients.push(tokio::spawn(keep_alive(mix.addr, tally.clone())));
        }
        for _ in 0..mix.new_connection {
            clients.push(tokio::spawn(new_connection(mix.addr, tally.clone())));
        }
        if let Some(h2) = &mix.http2 {
            for _ in 0..h2.connections {
                clients.push(tokio::spawn(http2(h2.clone(), tally.clone())));
            }
        }
        Traffic { tally, clients }
    }

    /// What the clients saw so far.
    #[must_use]
    pub fn report(&self) -> Report {
        let load = |counts: &[AtomicU64; 3]| counts.each_ref().map(|c| c.load(Ordering::Relaxed));
        Report {
            served: load(&self.tally.served),
            failed: load(&self.tally.failed),
            reconnects: self.tally.reconnects.load(Ordering::Relaxed),
            unprocessed: self.tally.unprocessed.load(Ordering::Relaxed),
            failures: self.tally.failures.lock().expect("failures").clone(),
        }
    }

    /// Waits until `n` more requests have been served than now, so a test knows traffic
    /// flows (bounded by [`WAIT`]).
    ///
    /// # Panics
    /// When they are not served within [`WAIT`], with the report.
    pub async fn flows(&self, n: u64) {
        let start = self.report().total_served();
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.report().total_served() < start + n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} requests not served within {WAIT:?}: {}",
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients (each finishes its request under way) and reports.
    ///
    /// # Panics
    /// When a client task panicked.
    pub async fn stop(mut self) -> Report {
        self.tally.stop.store(true, Ordering::Relaxed);
        for client in std::mem::take(&mut self.clients) {
            client.await.expect("client task");
        }
        self.report()
    }
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: veza\r\n\r\n";

async fn keep_alive(addr: SocketAddr, tally: Arc<Tally>) {
    let mut conn: Option<TcpStream> = None;
    while !tally.stopped() {
        let mut stream = match conn.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => stream,
                Err(e) => {
                    tally.failed(Kind::KeepAlive, format!("connect: {e}"));
                    continue;
                }
            },
        };
        let sent = stream.write_all(REQUEST).await;
        match (sent, crate::http::next_response(&mut stream).await) {
            (Ok(()), Ok(Some(answer))) if answer.status == 200 => {
                tally.served(Kind::KeepAlive);
                if answer
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    tally.reconnects.fetch_add(1, Ordering::Relaxed);
                } else {
                    conn = Some(stream);
                }
            }
            (Err(e), _) => tally.failed(Kind::KeepAlive, format!("write: {e}")),
            (_, Ok(None)) => tally.failed(
                Kind::KeepAlive,
                "the connection closed under a request, without Connection: close on the last \
                 answer"
                    .to_owned(),
            ),
            (_, Ok(Some(answer))) => {
                tally.failed(Kind::KeepAlive, format!("status {}", answer.status));
            }
            (_, Err(e)) => tally.failed(Kind::KeepAlive, format!("read: {e}")),
        }
    }
}

async fn new_connection(addr: SocketAddr, tally: Arc<Tally>) {
    while !tally.stopped() {
        match crate::http::get(addr, "/").await {
            Ok(r) if r.status == 200 => tally.served(Kind::NewConnection),
            Ok(r) => tally.failed(Kind::NewConnection, format!("status {}", r.status)),
            Err(e) => tally.failed(Kind::NewConnection, e.to_string()),
        }
    }
}

/// The `h2` crate's client, not hyper's: hyper hands each request to its connection task
/// through a channel, and a request handed over while that task shuts down after a GOAWAY can
/// be left in the channel, neither sent nor failed, until the sender is dropped (seen: a GET
/// without an answer for 15 s on a connection already closed). `h2` opens the stream in the
/// caller's call, or refuses it there.
type Sender = h2::client::SendRequest<Bytes>;

/// An HTTP/2 connection over TLS.
async fn h2_connect(h2: &Http2) -> Result<(Sender, SocketAddr), String> {
    let tcp = TcpStream::connect(h2.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let local = tcp
        .local_addr()
        .map_err(|e| format!("local address: {e}"))?;
    let name = ServerName::try_from(h2.server_name).map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(h2.client.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Err("ALPN h2 not negotiated".to_owned());
    }
    let (sender, conn) = h2::client::handshake(tls)
        .await
        .map_err(|e| format!("HTTP/2 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok((sender, local))
}

/// One connection's clients: `streams` requests in flight, each sent again on a new
/// connection when the server refused it unprocessed (a GOAWAY).
async fn http2(h2: Http2, tally: Arc<Tally>) {
    while !tally.stopped() {
        let (sender, local) = match h2_connect(&h2).await {
            Ok(connected) => connected,
            Err(why) => {
                tally.failed(Kind::Http2, why);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let streams: Vec<_> = (0..h2.streams)
            .map(|_| tokio::spawn(h2_stream(sender.clone(), local, tally.clone())))
            .collect();
        drop(sender);
        for stream in streams {
            stream.await.expect("stream task");
        }
        if !tally.stopped() {
            tally.reconnects.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a request on an HTTP/2 connection ended.
enum Exchange {
    Served,
    /// The connection is going away; no request was made on it.
    GoingAway,
    /// The server refused the request unprocessed (GOAWAY, `REFUSED_STREAM`), or the client's
    /// connection had seen the GOAWAY and did not send it: a new connection sends it again.
    Refused,
    Failed(String),
}

/// Requests one after the other on `sender` until its connection goes away (or the test
/// stops).
async fn h2_stream(sender: Sender, local: SocketAddr, tally: Arc<Tally>) {
    while !tally.stopped() {
        let exchange = tokio::time::timeout(WAIT, h2_get(sender.clone())).await;
        match exchange {
            Ok(Exchange::Served) => tally.served(Kind::Http2),
            Ok(Exchange::GoingAway) => return,
            Ok(Exchange::Refused) => {
                tally.unprocessed.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Ok(Exchange::Failed(why)) => {
                tally.failed(Kind::Http2, why);
                return;
            }
            Err(_) => {
                tally.failed(
                    Kind::Http2,
                    format!(
                        "no answer within {WAIT:?} on the connection from {local}; its sockets \
                         now:\n{}",
                        sockets_of(local)
                    ),
                );
                return;
            }
        }
    }
}

/// `GET /` on `sender`'s connection, its body read to the end.
async fn h2_get(sender: Sender) -> Exchange {
    let mut sender = match sender.ready().await {
        Ok(sender) => sender,
        Err(e) if not_processed(&e) => return Exchange::GoingAway,
        Err(e) => return Exchange::Failed(format!("connection: {e}")),
    };
    let req = http::Request::get("https://lb.test/")
        .body(())
        .expect("request");
    let response = match sender.send_request(req, true) {
        Ok((response, _)) => response,
        Err(e) if not_processed(&e) => return Exchange::Refused,
        Err(e) => return Exchange::Failed(format!("send: {e}")),
    };
    let response = match response.await {
        Ok(response) => response,
        Err(e) if not_processed(&e) => return Exchange::Refused,
        Err(e) => return Exchange::Failed(format!("response: {e}")),
    };
    let status = response.status();
    let mut body = response.into_body();
    while let Some(data) = body.data().await {
        match data {
            Ok(data) => {
                let _ = body.flow_control().release_capacity(data.len());
            }
            Err(e) => return Exchange::Failed(format!("body: {e}")),
        }
    }
    if status == 200 {
        Exchange::Served
    } else {
        Exchange::Failed(format!("status {status}"))
    }
}

/// Whether the server's GOAWAY (`NO_ERROR`) or `REFUSED_STREAM` says it did not process the
/// request (RFC 9113, 6.8 and 8.7): opened after the GOAWAY, or numbered above its last
/// stream. Counted apart, and sent again on a new connection, as browsers do.
fn not_processed(e: &h2::Error) -> bool {
    let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM);
    let going_away = e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR);
    refused || going_away
}

/// What `ss` says of the TCP sockets on `port`'s connection (both ends: state, queues, owner),
/// for a failure to say what the connection was doing.
fn sockets_of(local: SocketAddr) -> String {
    let port = local.port();
    match std::process::Command::new("ss")
        .args(["-tanpi", &format!("( sport = :{port} or dport = :{port} )")])
        .output()
    {
        Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
        Err(e) => format!("(ss: {e})"),
    }
}
