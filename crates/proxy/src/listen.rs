//! The one place that knows which TCP addresses a configuration listens on, and how a
//! listening socket is opened.
//!
//! The supervisor binds frontends from it, the observability services bind the stats socket
//! and metrics listener from it, and the daemon tries every address before starting so that
//! all the ports in use are reported at once.
//!
//! Socket activation: sockets the service manager passed (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`, as `sd_listen_fds` reads them; a `veza-lb.socket` unit binds ports below
//! 1024 so the service needs no capability) are adopted by [`adopt_inherited`] at start and
//! taken by the first bind of their local address; one that no bind takes is reported and
//! closed ([`close_unused_inherited`]). An address without an inherited socket is bound as
//! usual.

use std::net::SocketAddr;
use std::sync::Mutex;

use tokio::net::TcpListener;

use crate::Error;
use crate::config::{self, Config, StatsSocketAddr};

/// Listening sockets passed by the service manager and not taken yet, by local address.
static INHERITED: Mutex<Vec<(SocketAddr, Option<String>, std::net::TcpListener)>> =
    Mutex::new(Vec::new());

fn inherited()
-> std::sync::MutexGuard<'static, Vec<(SocketAddr, Option<String>, std::net::TcpListener)>> {
    INHERITED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Adopts the listening sockets the service manager passed, if any (`LISTEN_FDS` for this
/// `LISTEN_PID`); returns what to log about each: adopted (with its `LISTEN_FDNAMES` name),
/// or not a TCP listening socket (closed).
pub(crate) fn adopt_inherited() -> Vec<String> {
    let mut fds = listenfd::ListenFd::from_env();
    let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
        .map(|n| n.split(':').map(str::to_owned).collect())
        .unwrap_or_default();
    let mut report = Vec::new();
    let mut adopted = inherited();
    for index in 0..fds.len() {
        let name = names.get(index).filter(|n| !n.is_empty()).cloned();
        let label = name
            .as_deref()
            .map_or_else(String::new, |n| format!(" ({n})"));
        match fds.take_tcp_listener(index) {
            Ok(Some(listener)) => match listener.local_addr() {
                Ok(addr) => {
                    let _ = listener.set_nonblocking(true);
                    report.push(format!(
                        "adopted listening socket {addr}{label} from the service manager"
                    ));
                    adopted.push((addr, name, listener));
                }
                Err(e) => report.push(format!("inherited socket {index}{label} closed: {e}")),
            },
            Ok(None) => {}
            Err(e) => report.push(format!(
                "inherited descriptor {}{label} is not a TCP listening socket, closed: {e}",
                index + 3
            )),
        }
    }
    report
}

/// Whether an inherited socket is waiting for `addr`.
pub(crate) fn is_inherited(addr: SocketAddr) -> bool {
    inherited().iter().any(|(a, _, _)| *a == addr)
}

/// Takes the inherited sockets of `addr`: one from a socket unit, or a group's (one per
/// event loop) from an older binary handing over.
fn take_inherited(addr: SocketAddr) -> Vec<std::net::TcpListener> {
    let mut sockets = inherited();
    let mut taken = Vec::new();
    let mut i = 0;
    while i < sockets.len() {
        if sockets[i].0 == addr {
            taken.push(sockets.remove(i).2);
        } else {
            i += 1;
        }
    }
    taken
}

/// Closes the inherited sockets no bind took, returning their addresses (to report).
pub(crate) fn close_unused_inherited() -> Vec<SocketAddr> {
    inherited().drain(..).map(|(addr, _, _)| addr).collect()
}

/// Descriptors kept aside from the connection budget: listeners, stats sockets, health checks,
/// the log, the binary's own files.
const RESERVED_FDS: u64 = 64;

/// The soft `RLIMIT_NOFILE`: how many descriptors the process may hold.
pub(crate) fn open_files_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// How many client connections the process serves at once: `maxconn` as configured, or what
/// `open_files` allows when it does not say. Each client connection may hold a server
/// connection too (HAProxy's `maxsock = 2 * maxconn + reserve`), so the open-files limit
/// allows `(open_files - reserve) / 2`; a larger `maxconn` is lowered to that, and the
/// warning says why.
pub(crate) fn effective_maxconn(configured: Option<u32>, open_files: u64) -> (u64, Option<String>) {
    let allowed = (open_files.saturating_sub(RESERVED_FDS) / 2).max(1);
    match configured {
        None => (allowed, None),
        Some(n) if u64::from(n) <= allowed => (u64::from(n), None),
        Some(n) => (
            allowed,
            Some(format!(
                "maxconn {n} needs about {} file descriptors but the open-files limit is \
                 {open_files}: serving at most {allowed} connections at once; raise \
                 LimitNOFILE= (or ulimit -n) to allow more",
                2 * u64::from(n) + RESERVED_FDS
            )),
        ),
    }
}

/// What listens on an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose<'a> {
    /// A frontend's plain HTTP listener (`bind`).
    Http(&'a str),
    /// A frontend's HTTPS listener (`tls.bind`).
    Https(&'a str),
    /// The runtime API (`stats_socket` on TCP).
    StatsSocket,
    /// The Prometheus endpoint (`metrics_listen`).
    Metrics,
}

impl<'a> Purpose<'a> {
    /// Frontend `name`'s listener, HTTPS or not.
    pub(crate) fn frontend(name: &'a str, tls: bool) -> Self {
        if tls {
            Self::Https(name)
        } else {
            Self::Http(name)
        }
    }

    /// As error messages name it.
    pub(crate) fn describe(self) -> String {
        match self {
            Self::Http(fe) | Self::Https(fe) => format!("frontend {fe}"),
            Self::StatsSocket => "stats socket".to_owned(),
            Self::Metrics => "metrics listener".to_owned(),
        }
    }

    /// As the daemon names it next to the configuration line that asked for it.
    pub(crate) fn config_key(self) -> String {
        match self {
            Self::Http(fe) | Self::Https(fe) => format!("frontend `{fe}`"),
            Self::StatsSocket => "the runtime API (`stats_socket`)".to_owned(),
            Self::Metrics => "the metrics endpoint (`metrics_listen`)".to_owned(),
        }
    }
}

/// A frontend's listening addresses: plain ones, then HTTPS ones (`true`).
pub(crate) fn frontend(fe: &config::Frontend) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
    let tls = fe
        .tls
        .iter()
        .flat_map(|t| t.bind.iter().map(|&a| (a, true)));
    fe.bind.iter().map(|&a| (a, false)).chain(tls)
}

/// Every TCP address `config` listens on, frontends first, in file order.
pub(crate) fn all(config: &Config) -> Vec<(Purpose<'_>, SocketAddr)> {
    let mut wanted: Vec<(Purpose<'_>, SocketAddr)> = config
        .frontends
        .iter()
        .flat_map(|fe| frontend(fe).map(|(addr, tls)| (Purpose::frontend(&fe.name, tls), addr)))
        .collect();
    for socket in &config.global.stats_sockets {
        if let StatsSocketAddr::Tcp(addr) = socket.addr {
            wanted.push((Purpose::StatsSocket, addr));
        }
    }
    if let Some(addr) = config.global.metrics_listen {
        wanted.push((Purpose::Metrics, addr));
    }
    wanted
}

/// Binds a listening socket the way a proxy wants it: `SO_REUSEADDR` (restart while old
/// connections linger in TIME_WAIT) and a deep backlog. Registered with the current runtime.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::from_std(bind_std(addr, false)?)
}

/// The same socket, not yet registered with a runtime; with `reuse_port`, one of a group of
/// sockets on the same address among which the kernel spreads new connections
/// (`SO_REUSEPORT`: one accepting socket per event loop, as nginx's `reuseport` and
/// HAProxy's per-thread listeners do).
pub(crate) fn bind_std(
    addr: SocketAddr,
    reuse_port: bool,
) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// `loops` sockets on `addr` for as many event loops (one plain socket when `loops` is 1);
/// a port 0 is resolved by the first and shared by the others.
pub(crate) fn bind_group(
    purpose: Purpose<'_>,
    addr: SocketAddr,
    loops: usize,
) -> Result<Vec<std::net::TcpListener>, Error> {
    let fail = |source| Error::Bind {
        what: purpose.describe(),
        addr,
        source,
    };
    let mut group = take_inherited(addr);
    if !group.is_empty() {
        // Fewer sockets than loops (a socket unit passes one): the loops share them, each
        // accepting from a duplicate (the kernel cannot spread one socket's connections the
        // way it spreads a `SO_REUSEPORT` group's).
        for i in group.len()..loops {
            let shared = group[i % group.len()].try_clone().map_err(fail)?;
            group.push(shared);
        }
        return Ok(group);
    }
    let reuse_port = loops > 1;
    let first = bind_std(addr, reuse_port).map_err(fail)?;
    let actual = first.local_addr().unwrap_or(addr);
    let mut group = vec![first];
    for _ in 1..loops {
        group.push(bind_std(actual, true).map_err(fail)?);
    }
    Ok(group)
}

/// [`bind`], with the error naming what wanted the address.
pub(crate) fn bind_for(purpose: Purpose<'_>, addr: SocketAddr) -> Result<TcpListener, Error> {
    let bound = match take_inherited(addr).pop() {
        Some(adopted) => TcpListener::from_std(adopted),
        None => bind(addr),
    };
    bound.map_err(|source| Error::Bind {
        what: purpose.describe(),
        addr,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxconn_follows_the_open_files_limit() {
        assert_eq!(effective_maxconn(None, 256), (96, None), "(256 - 64) / 2");
        assert_eq!(effective_maxconn(Some(50), 256), (50, None));
        let (n, warning) = effective_maxconn(Some(1000), 256);
        assert_eq!(n, 96);
        assert!(warning.is_some_and(|w| w.contains("maxconn 1000 needs about 2064")));
        assert_eq!(effective_maxconn(None, 10), (1, None), "never zero");
    }

    #[test]
    fn a_group_shares_one_port_and_spreads_connections() {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let group = bind_group(Purpose::Metrics, any, 3).expect("bind");
        let port = group[0].local_addr().unwrap().port();
        assert!(group.iter().all(|l| l.local_addr().unwrap().port() == port));
        let single = bind_group(Purpose::Metrics, any, 1).expect("bind");
        assert_eq!(single.len(), 1);
        // A plain (non-reuseport) socket cannot join the group's port.
        assert!(bind_std(SocketAddr::from(([127, 0, 0, 1], port)), false).is_err());
    }

    #[test]
    fn every_address_is_listed_once_with_its_purpose() {
        let config = Config::parse(
            r#"
[global]
stats_socket = "127.0.0.1:9100"
metrics_listen = "127.0.0.1:9101"

[[frontend]]
name = "veza"
bind = ["127.0.0.1:8080"]
default_pool = "api"

[pool.api]
servers = [{ name = "a", addr = "127.0.0.1:9000" }]
"#,
            "test.toml",
        )
        .expect("valid");
        let all = all(&config);
        let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        assert_eq!(
            all,
            vec![
                (Purpose::Http("veza"), port(8080)),
                (Purpose::StatsSocket, port(9100)),
                (Purpose::Metrics, port(9101)),
            ]
        );
        assert_eq!(all[0].0.describe(), "frontend veza");
        assert_eq!(
            all[2].0.config_key(),
            "the metrics endpoint (`metrics_listen`)"
        );
    }
}
