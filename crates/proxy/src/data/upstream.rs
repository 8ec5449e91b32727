//! Connections to one server: connecting, the keep-alive idle pool, and the kill switch that
//! `shutdown-sessions` pulls when the server is marked DOWN.
//!
//! Both are lock-free: the idle pool is a bounded MPMC queue, the kill switch an atomically
//! swapped token, so requests on every thread share a server without contending on a lock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::counters::Counters;
use crate::data::timeout::Idle;

/// The body of a request sent to a server: the client's body as it streams in, or nothing
/// (bodiless requests, and retries of them).
pub(crate) type UpstreamBody = Either<Idle<Incoming>, Empty<Bytes>>;

/// Idle connections kept per server.
const MAX_IDLE: usize = 128;
/// An idle connection older than this is closed instead of reused: servers drop idle
/// keep-alive connections on their own schedule, and reusing one they are closing costs a
/// retry.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// Why a connection could not be established.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// `timeout_connect` elapsed (HAProxy's `sC` termination).
    Timeout,
    /// Refused, reset, unreachable.
    Io(std::io::Error),
    /// The HTTP/1.1 handshake failed.
    Handshake(hyper::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("connect timeout"),
            Self::Io(e) => write!(f, "connect failed: {e}"),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

/// A connection ready to carry one request.
pub(crate) struct Conn {
    pub(crate) sender: SendRequest<UpstreamBody>,
    /// Whether it came from the idle pool (a failure on it is retried without counting).
    pub(crate) reused: bool,
}

struct Parked {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

/// The runtime side of one server: address, idle pool, kill switch and counters. Lives as
/// long as the server is configured; shared by every request routed to it.
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) counters: Arc<Counters>,
    idle: ArrayQueue<Parked>,
    sessions: ArcSwap<CancellationToken>,
}

impl Upstream {
    pub(crate) fn new(name: String, addr: SocketAddr) -> Self {
        Self {
            name: name.into(),
            addr,
            counters: Arc::default(),
            idle: ArrayQueue::new(MAX_IDLE),
            sessions: ArcSwap::from_pointee(CancellationToken::new()),
        }
    }

    /// A token cancelled when this server's sessions are shut down. Every connection and
    /// tunnel to the server watches the token current when it started.
    pub(crate) fn sessions(&self) -> CancellationToken {
        CancellationToken::clone(&self.sessions.load())
    }

    /// Closes every connection, in-flight request and tunnel to this server
    /// (`on-marked-down shutdown-sessions`); connections made afterwards are unaffected.
    pub(crate) fn shutdown_sessions(&self) {
        let old = self.sessions.swap(Arc::new(CancellationToken::new()));
        old.cancel();
        self.close_idle();
    }

    /// Closes idle connections only (graceful stop, removed servers).
    pub(crate) fn close_idle(&self) {
        while self.idle.pop().is_some() {}
    }

    /// An idle connection that is still open, if any.
    pub(crate) async fn checkout(&self) -> Option<Conn> {
        loop {
            let idle = self.idle.pop()?;
            if idle.since.elapsed() > MAX_IDLE_AGE || idle.sender.is_closed() {
                continue;
            }
            let mut sender = idle.sender;
            // Ready right away unless the connection is closing.
            if sender.ready().await.is_ok() {
                return Some(Conn {
                    sender,
                    reused: true,
                });
            }
        }
    }

    /// Puts a connection whose response was read completely back in the idle pool.
    pub(crate) fn checkin(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        // A full pool drops (closes) the connection.
        let _ = self.idle.push(Parked {
            sender,
            since: Instant::now(),
        });
    }

    /// Opens a new connection, within `timeout`. The connection's task ends when the
    /// connection closes or the server's sessions are shut down.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Conn, ConnectError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(e)) => return Err(ConnectError::Io(e)),
            Ok(Ok(s)) => s,
        };
        // Small writes (headers) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        let killed = self.sessions();
        tokio::spawn(async move {
            tokio::select! {
                // Errors here surface to the request through its SendRequest.
                _ = connection.with_upgrades() => {}
                () = killed.cancelled() => {}
            }
        });
        Ok(Conn {
            sender,
            reused: false,
        })
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
