//! The `veza-lb` data plane: listeners, routing, pools, tunnels, runtime API and metrics.
//!
//! Every routing and health decision is made by [`lb_core`]; this crate moves bytes and feeds
//! it observations. Its folders are its subsystems (ARCHITECTURE.md has the map):
//!
//! - [`config`]: the TOML configuration, validated in full before anything starts or changes;
//! - `data`: the data plane, one request's path from listener to server and back;
//! - `control`: the task that owns every pool's `lb_core::PoolState`, fed by health checks,
//!   passive observations and operator commands, publishing routing snapshots;
//! - [`counters`] and [`stats`]: HAProxy's statistics, counted lock-free and rendered by pure
//!   functions;
//! - `observe`: the runtime API and Prometheus metrics that serve them;
//! - `tls`: certificates and TLS settings of HTTPS listeners;
//! - `process`: the process around it all ([`daemon`]: runtime, signals, reload, `sd_notify`);
//! - `supervisor`: [`Proxy`], which binds, reloads and stops the frontends.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = proxy::config::Config::load("/etc/veza-lb/veza-lb.toml".as_ref())?;
//! let proxy = proxy::Proxy::start(config).await?;
//! println!("serving on {:?}", proxy.frontend_addrs("veza"));
//! proxy.shutdown().await;
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod config;
mod control;
pub mod counters;
mod data;
mod listen;
mod observe;
mod process;
mod resolve;
pub mod stats;
mod supervisor;
mod tls;

use std::net::SocketAddr;

pub use control::{AdminCommand, AdminError, WeightChange};
pub use observe::ProxyHandle;
pub use observe::runtime_api::required_level;
pub use process::{daemon, notify};
pub use supervisor::Proxy;
pub use tls::TlsCounters;

/// Errors starting or reloading the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// A listening socket could not be opened.
    #[error("cannot bind {what} to {addr}: {source} (is another process using this port?)")]
    Bind {
        /// What was being bound (`frontend veza`, `stats socket`).
        what: String,
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A frontend's certificate or key cannot be used.
    #[error("frontend {frontend}: {}: {reason}", path.display())]
    Tls {
        /// The frontend.
        frontend: String,
        /// The certificate or key file at fault.
        path: std::path::PathBuf,
        /// What is wrong, as a sentence.
        reason: String,
    },
    /// A unix socket could not be created.
    #[error("cannot create {what} {}: {source}", path.display())]
    BindPath {
        /// What was being bound (`stats socket`).
        what: String,
        /// Socket path.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The directory of a unix socket does not exist and could not be created.
    #[error(
        "cannot create {what} {}: its directory {} does not exist and cannot be created \
         ({source}); create it, owned by the user veza-lb runs as, or let systemd make it \
         (RuntimeDirectory=veza-lb in the service unit, as veza-provision's unit has)",
        path.display(),
        dir.display()
    )]
    SocketDirectory {
        /// What was being bound (`stats socket`).
        what: String,
        /// Socket path.
        path: std::path::PathBuf,
        /// Its missing directory.
        dir: std::path::PathBuf,
        /// Why it could not be created.
        #[source]
        source: std::io::Error,
    },
    /// A server written `name:port` could not be resolved at start.
    #[error("{0}")]
    Resolve(String),
    /// The async runtime or signal handlers could not be set up.
    #[error("cannot start the runtime: {source}")]
    Runtime {
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The proxy stopped while the operation ran.
    #[error("the proxy is shutting down")]
    Stopped,
}
