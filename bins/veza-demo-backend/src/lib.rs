//! A small but real HTTP/1.1 + WebSocket backend for Veza edge demos, tests and benchmarks.
//!
//! It stands in for Veza's `backend-api` and `stream-server` instances behind `veza-lb`: every
//! answer names the backend that produced it (`X-Served-By`) and echoes what it received, so a
//! test can see where the load balancer sent a request and what it forwarded. Its health can be
//! switched without killing it, and [`RunningBackend::kill`] drops every connection at once,
//! as a killed process would.
//!
//! | Request | Answer |
//! |---|---|
//! | any method `/health`, `/api/v1/health` | the health status (200 unless switched), body `ok` or `unhealthy` |
//! | `POST /admin/health?status=N` | switches the health status to `N` (200..=599) |
//! | `GET /admin/health` | reports the health status |
//! | `GET /ws` with `Upgrade: websocket` | a WebSocket that sends the name first, then echoes |
//! | `GET /slow?ms=N` | the echo line, after `N` milliseconds |
//! | `GET /status/NNN` | status `NNN` (200..=599) with the echo line |
//! | `GET /stream/<track_id>/index.m3u8` (stream kind) | an HLS playlist, see [`playlist`] |
//! | `GET /stream/<track_id>/<file>` (stream kind) | deterministic bytes, see [`segment_bytes`] |
//! | anything else | 200, `served-by=NAME path=PATH cookies=COOKIE\n` |
//!
//! `POST` and `PUT` echo lines end with ` body-bytes=N`: request bodies are read, counted and
//! dropped. `COOKIE` is the `Cookie` header exactly as received (empty when absent).
//!
//! ```
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use veza_demo_backend::{BackendConfig, spawn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let backend = spawn("127.0.0.1:0".parse().unwrap(), BackendConfig::new("api-1")).await?;
//!
//! let mut tcp = tokio::net::TcpStream::connect(backend.addr()).await?;
//! tcp.write_all(b"GET /hello HTTP/1.1\r\nHost: demo\r\nCookie: a=1\r\nConnection: close\r\n\r\n")
//!     .await?;
//! let mut reply = String::new();
//! tcp.read_to_string(&mut reply).await?;
//! assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(reply.contains("\r\nX-Served-By: api-1\r\n"));
//! assert!(reply.ends_with("\r\n\r\nserved-by=api-1 path=/hello cookies=a=1\n"));
//!
//! backend.set_health(503);
//! backend.kill().await;
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod routes;
mod stream;
mod websocket;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hyper::StatusCode;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use stream::{PLAYLIST_FILE, StreamPath, playlist, segment_bytes};

/// What a backend pretends to be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kind {
    /// Like Veza's `backend-api`: health, echo, WebSocket, slow and status endpoints.
    #[default]
    Api,
    /// Like Veza's `stream-server`: everything [`Kind::Api`] serves, plus `/stream/...` HLS.
    Stream,
}

/// How a backend identifies itself and what it serves.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Sent in `X-Served-By`, in every echo line and as the first WebSocket message. Visible
    /// ASCII without spaces, so it stays one token in a header and in the echo line.
    pub name: String,
    /// Whether `/stream/...` paths serve HLS.
    pub kind: Kind,
    /// Bytes in each stream segment.
    pub segment_size: usize,
    /// Segments listed in each track's playlist.
    pub playlist_segments: u32,
    /// The status the health endpoints answer; keep a clone to switch it later.
    pub health: HealthSwitch,
}

impl BackendConfig {
    /// Segment size when none is configured, in bytes.
    pub const DEFAULT_SEGMENT_SIZE: usize = 16 * 1024;
    /// Playlist length when none is configured.
    pub const DEFAULT_PLAYLIST_SEGMENTS: u32 = 10;

    /// An API backend named `name`, healthy, with default stream settings.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: Kind::Api,
            segment_size: Self::DEFAULT_SEGMENT_SIZE,
            playlist_segments: Self::DEFAULT_PLAYLIST_SEGMENTS,
            health: HealthSwitch::default(),
        }
    }

    /// The same configuration with another [`Kind`].
    pub fn with_kind(mut self, kind: Kind) -> Self {
        self.kind = kind;
        self
    }

    /// The same configuration with another segment size in bytes.
    pub fn with_segment_size(mut self, bytes: usize) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Checks what [`serve`] and [`spawn`] would refuse, so a CLI can fail before binding.
    pub fn validate(&self) -> Result<(), Error> {
        let usable = |c: char| c.is_ascii_graphic();
        if self.name.is_empty() || !self.name.chars().all(usable) {
            return Err(Error::InvalidName(self.name.clone()));
        }
        Ok(())
    }
}

/// The status a backend's health endpoints answer, shared between the backend and whoever
/// wants to switch it. Clones share the same status.
#[derive(Debug, Clone)]
pub struct HealthSwitch(Arc<AtomicU16>);

impl Default for HealthSwitch {
    fn default() -> Self {
        Self(Arc::new(AtomicU16::new(StatusCode::OK.as_u16())))
    }
}

impl HealthSwitch {
    /// Makes the health endpoints answer `status` from the next request on.
    ///
    /// # Panics
    ///
    /// When `status` is outside 200..=599; use [`HealthSwitch::try_set`] for untrusted input.
    pub fn set(&self, status: u16) {
        if let Err(err) = self.try_set(status) {
            panic!("{err}");
        }
    }

    /// Like [`HealthSwitch::set`], refusing statuses that cannot be a final answer.
    pub fn try_set(&self, status: u16) -> Result<(), Error> {
        if !(200..=599).contains(&status) {
            return Err(Error::InvalidHealthStatus(status));
        }
        self.0.store(status, Ordering::Relaxed);
        Ok(())
    }

    /// The status the health endpoints currently answer.
    pub fn get(&self) -> StatusCode {
        // Only `try_set` writes, and it only stores valid codes.
        StatusCode::from_u16(self.0.load(Ordering::Relaxed))
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// What this crate refuses.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name cannot be sent in a header or kept as one token in the echo line.
    #[error(
        "backend name {0:?} is unusable: use visible ASCII without spaces, e.g. \"backend-api-1\""
    )]
    InvalidName(String),
    /// A health status that is not a final HTTP status.
    #[error("health status {0} is not a final HTTP status: use 200..=599")]
    InvalidHealthStatus(u16),
}

impl From<Error> for io::Error {
    fn from(err: Error) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, err)
    }
}

/// Serves `listener` until this future is dropped, which also closes every connection it
/// accepted (WebSockets included).
///
/// Per-connection failures are absorbed. It returns only on a configuration error or when
/// the listener itself becomes unusable.
pub async fn serve(listener: TcpListener, config: BackendConfig) -> io::Result<()> {
    let backend = routes::Backend::new(config)?;
    // Connections watch this channel; dropping the sender with this future ends them.
    let (_stop, stop_rx) = watch::channel(());
    accept_loop(listener, backend, stop_rx).await
}

/// Binds `addr` (port 0 picks a free port) and serves it on a background task.
///
/// Must be called inside a tokio runtime.
pub async fn spawn(addr: SocketAddr, config: BackendConfig) -> io::Result<RunningBackend> {
    let health = config.health.clone();
    let name = config.name.clone();
    let backend = routes::Backend::new(config)?;
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stop_rx) = watch::channel(());
    tokio::spawn(accept_loop(listener, backend, stop_rx));
    Ok(RunningBackend {
        addr,
        name,
        health,
        stop,
    })
}

/// A backend started by [`spawn`]. Dropping it stops the backend like [`RunningBackend::kill`]
/// does, without waiting.
#[derive(Debug)]
pub struct RunningBackend {
    addr: SocketAddr,
    name: String,
    health: HealthSwitch,
    stop: watch::Sender<()>,
}

impl RunningBackend {
    /// The address it listens on, with the real port when it was bound to port 0.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its name, as sent in `X-Served-By`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The switch behind its health endpoints.
    pub fn health(&self) -> &HealthSwitch {
        &self.health
    }

    /// Makes its health endpoints answer `status`, as `POST /admin/health?status=N` does.
    ///
    /// # Panics
    ///
    /// When `status` is outside 200..=599.
    pub fn set_health(&self, status: u16) {
        self.health.set(status);
    }

    /// Closes the listener and every open connection and WebSocket without a goodbye, as a
    /// killed process would, and returns once all of them are closed.
    pub async fn kill(self) {
        // Fails only when every task is already gone, which is the goal anyway.
        let _ = self.stop.send(());
        self.stop.closed().await;
    }
}

/// How long to pause after an accept error that is not about one connection (for example
/// the process is out of file descriptors), so the loop does not spin while it lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

async fn accept_loop(
    listener: TcpListener,
    backend: Arc<routes::Backend>,
    mut stop: watch::Receiver<()>,
) -> io::Result<()> {
    let result = loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => break Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, _peer)) => {
                // Small answers must leave at once, not wait for Nagle.
                let _ = tcp.set_nodelay(true);
                tokio::spawn(routes::serve_connection(
                    tcp,
                    Arc::clone(&backend),
                    stop.clone(),
                ));
            }
            Err(err) if err.kind() == io::ErrorKind::InvalidInput => break Err(err),
            Err(err) if is_per_connection(&err) => {}
            Err(_) => {
                tokio::select! {
                    _ = stop.changed() => break Ok(()),
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                }
            }
        }
    };
    // `kill` returns when the last receiver is gone, so the port must be closed before ours is.
    drop(listener);
    drop(stop);
    result
}

fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_one_visible_token() {
        assert!(BackendConfig::new("backend-api-1").validate().is_ok());
        for bad in ["", "two words", "tab\there", "naïve", "line\nbreak"] {
            assert!(
                matches!(
                    BackendConfig::new(bad).validate(),
                    Err(Error::InvalidName(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn health_switch_accepts_only_final_statuses() {
        let switch = HealthSwitch::default();
        assert_eq!(switch.get(), StatusCode::OK);
        let shared = switch.clone();
        shared.set(503);
        assert_eq!(switch.get(), StatusCode::SERVICE_UNAVAILABLE);
        for bad in [0, 101, 199, 600, 999] {
            assert!(switch.try_set(bad).is_err(), "{bad}");
        }
        assert_eq!(switch.get(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
