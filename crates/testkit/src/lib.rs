//! The workspace's test kit: what integration tests share, in one copy.
//!
//! - [`http`]: a raw HTTP/1.1 client (one request per connection, bytes exactly as given)
//!   and a strict response parser, for tests that must control the bytes on the wire;
//! - [`runtime_api`]: one runtime API command over TCP or a unix socket;
//! - [`tls`]: a test certificate authority, its leaves as PEM files, clients that trust it;
//! - [`traffic`]: keep-alive, new-connection and HTTP/2 clients that count every request
//!   served or failed, for tests of changes under load;
//! - [`free_port`], [`temp_dir`]: a loopback port that was free a moment ago, and a
//!   temporary directory removed on drop;
//! - [`backend`]: a `veza-demo-backend` on a free loopback port.
//!
//! Every wait is bounded by [`WAIT`], so a broken build fails instead of hanging; nothing
//! here asserts on how fast anything is. `show stat` answers are read with
//! `proxy::stats::StatTable`, which `veza-lb ctl top` uses too.

pub mod http;
pub mod runtime_api;
pub mod tls;
pub mod traffic;

use std::net::SocketAddr;
use std::time::Duration;

pub use tempfile::TempDir;
use veza_demo_backend::{BackendConfig, Kind, RunningBackend};

/// The longest any single wait may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(15);

/// A port on 127.0.0.1 that was free a moment ago, for configurations that need a fixed
/// port (prefer port 0 wherever the code under test reports the port it bound).
///
/// # Panics
/// When no port can be bound at all.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A fresh temporary directory, removed with everything in it on drop.
///
/// # Panics
/// When the system's temporary directory is not writable.
#[must_use]
pub fn temp_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("veza-test-")
        .tempdir()
        .expect("create a temporary directory")
}

/// Starts a demo backend called `name` on a free loopback port.
///
/// # Panics
/// When it cannot start.
pub async fn backend(name: &str, kind: Kind) -> RunningBackend {
    veza_demo_backend::spawn(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        BackendConfig::new(name).with_kind(kind),
    )
    .await
    .expect("demo backend starts")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("still free");
    }

    #[test]
    fn temp_dirs_are_removed_on_drop() {
        let dir = temp_dir();
        let path = dir.path().to_owned();
        std::fs::write(path.join("f"), "x").expect("writable");
        drop(dir);
        assert!(!path.exists());
    }
}
