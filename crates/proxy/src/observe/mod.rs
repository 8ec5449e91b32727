//! Observability: HAProxy's statistics and the ways operators read them.
//!
//! - `handle`: [`ProxyHandle`], what observers read the proxy through;
//! - `source` takes consistent readings and turns totals into rates once a second;
//! - `runtime_api` (HAProxy's stats socket) and `metrics` (`/metrics`, `/stats;csv`) serve
//!   them.
//!
//! Nothing here is on the request path, and the data plane imports nothing from here.

mod handle;
pub(crate) mod metrics;
pub(crate) mod runtime_api;
pub(crate) mod source;

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Error;
use crate::config::{Global, StatsSocketAddr};
use crate::listen::{self, Purpose};
use crate::observe::runtime_api::{StatsListener, UnixSocket};
use crate::observe::source::StatsSource;

pub use handle::ProxyHandle;
pub(crate) use handle::UpgradeRequest;

/// The observability services of a running proxy: stats socket, metrics listener, rate
/// ticker. They stop when the proxy's drain token is cancelled.
#[derive(Debug, Default)]
pub(crate) struct Services {
    stats_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    /// Duplicates of the TCP listening sockets, to hand to a new binary (`upgrade`).
    sockets: Vec<(SocketAddr, OwnedFd)>,
}

impl Services {
    /// Binds what `global` asks for (all or nothing) and starts serving it. The listeners
    /// run on `tracker`, so a graceful stop waits for the unix socket to be removed.
    pub(crate) fn start(
        global: &Global,
        handle: &ProxyHandle,
        stop: &CancellationToken,
        tracker: &TaskTracker,
        loops: Vec<tokio::runtime::Handle>,
    ) -> Result<Self, Error> {
        let mut stats = Vec::with_capacity(global.stats_sockets.len());
        for socket in &global.stats_sockets {
            let listener = match &socket.addr {
                StatsSocketAddr::Tcp(addr) => {
                    StatsListener::Tcp(listen::bind_for(Purpose::StatsSocket, *addr)?)
                }
                StatsSocketAddr::Unix(path) => {
                    runtime_api::ensure_directory(path).map_err(|(dir, source)| {
                        Error::SocketDirectory {
                            what: "stats socket".to_owned(),
                            path: path.clone(),
                            dir,
                            source,
                        }
                    })?;
                    StatsListener::Unix(UnixSocket::bind(path, socket.mode).map_err(|source| {
                        Error::BindPath {
                            what: "stats socket".to_owned(),
                            path: path.clone(),
                            source,
                        }
                    })?)
                }
            };
            stats.push((listener, socket.level));
        }
        let metrics = match global.metrics_listen {
            None => None,
            Some(addr) => {
                let listener = listen::bind_for(Purpose::Metrics, addr)?;
                let bound = listener.local_addr().unwrap_or(addr);
                Some((listener, bound))
            }
        };
        let source = StatsSource::start(handle, stop, loops);
        let mut services = Services::default();
        for (listener, level) in stats {
            if let StatsListener::Tcp(l) = &listener {
                if services.stats_addr.is_none() {
                    services.stats_addr = l.local_addr().ok();
                }
                services.keep(l);
            }
            tracing::info!(
                "runtime API listening on {} (level {level})",
                listener.describe()
            );
            tracker.spawn(runtime_api::serve(
                listener,
                level,
                source.clone(),
                stop.clone(),
            ));
        }
        if let Some(listener) = metrics {
            let (listener, addr) = listener;
            services.metrics_addr = Some(addr);
            services.keep(&listener);
            tracing::info!("metrics listening on {addr}");
            tracker.spawn(crate::observe::metrics::serve(
                listener,
                source,
                stop.clone(),
            ));
        }
        Ok(services)
    }

    fn keep(&mut self, listener: &tokio::net::TcpListener) {
        if let (Ok(addr), Ok(fd)) = (listener.local_addr(), listener.as_fd().try_clone_to_owned()) {
            self.sockets.push((addr, fd));
        }
    }

    /// Closes the duplicates (a stop: the listeners must close with their accept loops).
    pub(crate) fn forget_sockets(&mut self) {
        self.sockets.clear();
    }

    /// Duplicates of the TCP listening sockets (runtime API, metrics).
    pub(crate) fn sockets(&self) -> &[(SocketAddr, OwnedFd)] {
        &self.sockets
    }

    /// The address of the first TCP stats socket, with the real port when configured as 0.
    pub(crate) fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_addr
    }

    /// The address of the metrics listener, with the real port when configured as 0.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
}
