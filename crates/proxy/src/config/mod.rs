//! `veza-lb`'s configuration: the TOML file, parsed and validated in full before anything
//! starts or changes.
//!
//! [`Config::parse`] and [`Config::load`] either return a [`Config`] in which every name
//! resolves, every address is an IP and port, every duration is in range and every pool can
//! serve, or a [`ConfigError::Invalid`] holding *every* problem found, each as a
//! [`Diagnostic`] with `FILE:LINE:COLUMN`, a plain sentence and the offending source line:
//!
//! ```text
//! veza-lb.toml:14:54: `fall` must be at least 1: a server is marked DOWN after `fall` failed checks in a row
//!   health = { path = "/health", interval = "5s", fall = 0, rise = 2 }
//!                                                        ^
//! ```
//!
//! ```
//! use proxy::config::{Balance, Config};
//!
//! let text = r#"
//! [[frontend]]
//! name = "veza"
//! bind = ["127.0.0.1:8080"]
//! default_pool = "api"
//!
//! [pool.api]
//! balance = "roundrobin"
//! servers = [{ name = "api-1", addr = "127.0.0.1:18081" }]
//! "#;
//! let config = Config::parse(text, "veza-lb.toml").unwrap();
//! assert_eq!(config.pool("api").unwrap().balance, Balance::RoundRobin);
//! assert_eq!(config.summary(), "Configuration file is valid: 1 frontend, 1 pool, 1 server");
//!
//! // Every problem is reported, in file order.
//! let err = Config::parse("[global]\nthreads = 0\n", "veza-lb.toml").unwrap_err();
//! let found: Vec<String> = err
//!     .diagnostics()
//!     .iter()
//!     .map(|d| format!("{}:{}: {}", d.line, d.column, d.message))
//!     .collect();
//! assert_eq!(found, [
//!     "1:1: the configuration has no frontend; add a [[frontend]] with a `name`, a `bind` \
//!      address and a `default_pool`",
//!     "2:11: `threads` must be at least 1; remove it to use one thread per core",
//! ]);
//! ```

mod diagnostic;
mod validate;
mod values;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use values::parse_duration;

/// A complete, validated `veza-lb` configuration.
///
/// Every pool named by a frontend or route exists, names are unique, and [`Pool`]s carry their
/// effective settings (the `[defaults]` section already applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Process-wide settings (`[global]`).
    pub global: Global,
    /// Listeners and their routing (`[[frontend]]`), in file order.
    pub frontends: Vec<Frontend>,
    /// Backend server groups (`[pool.NAME]`), in file order.
    pub pools: Vec<Pool>,
    warnings: Vec<Diagnostic>,
}

/// Process-wide settings: the `[global]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// Where the HAProxy-compatible runtime API listens (`stats_socket`: one address or
    /// several), in file order; empty disables it.
    pub stats_sockets: Vec<StatsSocket>,
    /// Where `GET /metrics` and `GET /stats;csv` are served (`metrics_listen`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
    /// How long a graceful stop waits for in-flight requests (`shutdown_grace`, default 30s).
    pub shutdown_grace: Duration,
    /// How long a draining process (graceful stop, binary upgrade) keeps an idle keep-alive
    /// HTTP/1 connection open for its client's next request, answered with `Connection:
    /// close`, before closing it (`drain_window`, default 5s; half of `shutdown_grace` at
    /// most, [`Global::drain_window_in_effect`]). Closing it at once would race a request
    /// the client may already be sending.
    pub drain_window: Duration,
    /// Worker threads (`threads`); `None` means one per available core.
    pub threads: Option<NonZeroUsize>,
    /// Client connections served at once (`maxconn`); `None`: as many as the open-files
    /// limit allows. Above it, listeners stop accepting until connections close.
    pub maxconn: Option<u32>,
    /// The DNS servers asked for servers written `name:port` (`resolvers`, `IP:PORT` each);
    /// empty: the `nameserver`s of /etc/resolv.conf.
    pub resolvers: Vec<SocketAddr>,
    /// How often names are resolved again (`resolve_interval`, default 10s, as HAProxy's
    /// `hold valid`).
    pub resolve_interval: Duration,
    /// One DNS question's deadline, per resolver (`resolve_timeout`, default 1s).
    pub resolve_timeout: Duration,
    /// How long a name that stopped existing (NXDOMAIN) keeps its last address before its
    /// server goes to maintenance (`hold_nx`, default 30s, as HAProxy's).
    pub hold_nx: Duration,
}

impl Global {
    /// The drain window a draining process uses: `drain_window`, at most half of
    /// `shutdown_grace`, so that a request an idle connection brings late in the window has
    /// the other half to complete before the hard stop cuts what is left.
    #[must_use]
    pub fn drain_window_in_effect(&self) -> Duration {
        self.drain_window.min(self.shutdown_grace / 2)
    }
}

impl Default for Global {
    fn default() -> Self {
        Global {
            stats_sockets: Vec::new(),
            metrics_listen: None,
            shutdown_grace: Duration::from_secs(30),
            drain_window: Duration::from_secs(5),
            threads: None,
            maxconn: None,
            resolvers: Vec::new(),
            resolve_interval: Duration::from_secs(10),
            resolve_timeout: Duration::from_secs(1),
            hold_nx: Duration::from_secs(30),
        }
    }
}

/// One runtime API socket: where it listens, what its clients may do, and (unix) who may
/// connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSocket {
    /// The address (`addr`, or the string itself).
    pub addr: StatsSocketAddr,
    /// What its clients may do (`level`, else `stats_socket_level`, else
    /// [`AccessLevel::default_for`] the address).
    pub level: AccessLevel,
    /// Permission bits of a unix socket (`mode`, else `stats_socket_mode`, else `0o600`).
    pub mode: u32,
}

/// HAProxy's access levels of a runtime API socket, from the least to the most trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AccessLevel {
    /// Reads only: `show stat`, `show info`, `get weight`...
    User,
    /// Reads, plus what changes no server's state: `clear counters` (the maxima).
    Operator,
    /// Everything: `disable server`, `set server`, `set weight`, `clear counters all`.
    Admin,
}

impl AccessLevel {
    /// The level a socket gets when the configuration does not say: `operator` on TCP (anyone
    /// who reaches the port), `admin` on a unix socket (guarded by its file permissions), as
    /// HAProxy's examples set them up.
    pub fn default_for(addr: &StatsSocketAddr) -> Self {
        match addr {
            StatsSocketAddr::Tcp(_) => AccessLevel::Operator,
            StatsSocketAddr::Unix(_) => AccessLevel::Admin,
        }
    }

    /// The name HAProxy uses (`user`, `operator`, `admin`).
    pub fn name(self) -> &'static str {
        match self {
            AccessLevel::User => "user",
            AccessLevel::Operator => "operator",
            AccessLevel::Admin => "admin",
        }
    }

    /// Reads a level by its HAProxy name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "user" => Some(AccessLevel::User),
            "operator" => Some(AccessLevel::Operator),
            "admin" => Some(AccessLevel::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a runtime API socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsSocketAddr {
    /// A TCP address, written `"127.0.0.1:9100"`.
    Tcp(SocketAddr),
    /// A unix socket, written `"unix:/run/veza-lb/admin.sock"` (relative paths are resolved
    /// against the configuration file's directory).
    Unix(PathBuf),
}

/// One `[[frontend]]`: listening addresses and how requests are routed to pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frontend {
    /// Unique frontend name (`name`), used in stats as `pxname`.
    pub name: String,
    /// Plain HTTP listening addresses (`bind`).
    pub bind: Vec<SocketAddr>,
    /// The pool that serves requests no route matches (`default_pool`).
    pub default_pool: String,
    /// Path-prefix routes (`[[frontend.route]]`), in file order.
    pub routes: Vec<Route>,
    /// HTTPS listeners and certificates (`tls`), if any.
    pub tls: Option<FrontendTls>,
    /// Requests per client address allowed over a period (`rate_limit`), for every request
    /// of the frontend.
    pub rate_limit: Option<RateLimit>,
    /// A path the frontend answers itself with 200, never forwarded (`monitor_uri`, as
    /// HAProxy's `monitor-uri`): proof that veza-lb accepts and answers, for keepalived's
    /// `vrrp_script` or an external load balancer.
    pub monitor_uri: Option<String>,
}

/// A per-source request rate limit (`rate_limit = { key = "src", requests = N, per = "10s" }`),
/// as HAProxy's stick table tracking `http_req_rate`: a client above `requests` per `per`
/// gets 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per period (`requests`, 1 to 65535).
    pub requests: u32,
    /// The period (`per`).
    pub per: Duration,
    /// Client addresses tracked at most (`table_size`, default 100000); the least active are
    /// forgotten first when it fills up.
    pub table_size: usize,
}

/// One `[[frontend.route]]`: requests whose path starts with `path_prefix` go to `pool`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Path prefix, always starting with `/`.
    pub path_prefix: String,
    /// Name of the pool that serves matching requests; always names a configured pool.
    pub pool: String,
    /// A rate limit for the requests of this route only (`rate_limit`), on top of the
    /// frontend's.
    pub rate_limit: Option<RateLimit>,
}

/// A frontend's TLS settings (`tls = { ... }`).
///
/// Relative certificate and key paths are resolved against the configuration file's directory.
/// The files are read when the listener starts or reloads, not at validation time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontendTls {
    /// HTTPS listening addresses (`tls.bind`).
    pub bind: Vec<SocketAddr>,
    /// PEM certificate chain served by default (`tls.cert`).
    pub cert: PathBuf,
    /// PEM private key of `cert` (`tls.key`).
    pub key: PathBuf,
    /// Extra certificates selected by SNI (`tls.sni = [{ server_names, cert, key }]`).
    pub sni: Vec<SniCert>,
    /// Answer plain HTTP requests on this frontend with a redirect to HTTPS
    /// (`tls.redirect_http`, default false).
    pub redirect_http: bool,
    /// `Strict-Transport-Security` max-age to send on HTTPS responses (`tls.hsts`), if any.
    pub hsts: Option<Duration>,
}

/// A certificate served to clients asking for one of `server_names` via SNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Host names this certificate answers for, lowercase; `*.example.com` wildcards allowed.
    pub server_names: Vec<String>,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// One `[pool.NAME]`: a group of servers and how requests are spread over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique pool name (the `NAME` of `[pool.NAME]`), used in stats as `pxname`.
    pub name: String,
    /// Balancing algorithm (`balance`, default round-robin).
    pub balance: Balance,
    /// Sticky-cookie settings (`cookie`); only on round-robin pools.
    pub cookie: Option<CookieConfig>,
    /// What a jump-hash pool hashes (`hash_key`); always present on jump-hash pools and absent
    /// on round-robin pools.
    pub hash_key: Option<HashKey>,
    /// Active health checks (`health`); `None` means servers are never checked.
    pub health: Option<HealthConfig>,
    /// Ramp-up time of a server's weight after it comes back UP (`slowstart`).
    pub slowstart: Option<Duration>,
    /// What to do with a server's connections when it is marked DOWN (`on_marked_down`).
    pub on_marked_down: OnMarkedDown,
    /// The servers, in file order (jump hash depends on this order).
    pub servers: Vec<ServerConfig>,
    /// Effective timeouts (`timeout_*`, inherited from `[defaults]`).
    pub timeouts: Timeouts,
    /// How many times a failed connection is retried (`retries`, default 3).
    pub retries: u32,
    /// Whether a retry may go to another server than the sticky/hashed one (`redispatch`,
    /// default true).
    pub redispatch: bool,
    /// Whether an idempotent request may be resent after the server failed mid-response
    /// (`retry_idempotent`, default true).
    pub retry_idempotent: bool,
    /// Consecutive failed requests (connect errors, 5xx from a dead server) after which a
    /// server is marked DOWN without waiting for the health check (`passive_error_limit`,
    /// default: the health check's `fall`, or 3); 0 turns passive checks off.
    pub passive_error_limit: u32,
    /// Whether an open WebSocket (or other upgraded) tunnel holds one of its server's
    /// `maxconn` slots until it closes (`maxconn_counts_tunnels`, default true, as HAProxy
    /// counts every stream); false frees the slot once the tunnel is set up.
    pub maxconn_counts_tunnels: bool,
    /// Consistent hashing with bounded loads (`hash_balance_factor`, a percentage above 100,
    /// jump-hash pools): a key leaves its server while that server has more than this share
    /// of the average in-flight load. `None`: plain jump hash.
    pub hash_balance_factor: Option<u32>,
}

impl Pool {
    /// The server called `name`, if this pool has one.
    pub fn server(&self, name: &str) -> Option<&ServerConfig> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// How a pool picks a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Balance {
    /// Smooth weighted round-robin (`"roundrobin"`), optionally with a sticky cookie.
    RoundRobin,
    /// Jump consistent hash of the request's [`HashKey`] (`"jump-hash"`).
    JumpHash,
}

/// Sticky-cookie settings, as HAProxy's `cookie NAME insert indirect nocache`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// Cookie name (`name`), an RFC 9110 token.
    pub name: String,
    /// Insert the cookie in responses (`insert`, default true).
    pub insert: bool,
    /// Strip the cookie before forwarding and do not re-set a valid one (`indirect`).
    pub indirect: bool,
    /// Protect responses that set the cookie from shared caches (`nocache`).
    pub nocache: bool,
    /// Add `HttpOnly` to the cookie (`httponly`).
    pub httponly: bool,
    /// Add `Secure` to the cookie (`secure`).
    pub secure: bool,
}

/// What part of a request a jump-hash pool hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The first `depth` segments of the path: `{ source = "path", depth = 2 }` hashes
    /// `/stream/<track_id>` of `/stream/<track_id>/seg-1.ts`.
    Path {
        /// Number of leading path segments (at least 1).
        depth: usize,
    },
    /// A query-string parameter: `{ source = "query", param = "track_id" }`.
    Query {
        /// Parameter name.
        param: String,
    },
    /// A request header: `{ source = "header", name = "X-Track" }`.
    Header {
        /// Header name, an RFC 9110 token.
        name: String,
    },
}

/// Active HTTP health checks of a pool's servers (`health = { ... }`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// Request method (`method`, default `GET`).
    pub method: String,
    /// Request path (`path`), starting with `/`.
    pub path: String,
    /// Time between checks (`interval`, default 2s).
    pub interval: Duration,
    /// How long a check may take (`timeout`, default 2s or `interval` if shorter); never more
    /// than `interval`.
    pub timeout: Duration,
    /// Consecutive failures that mark a server DOWN (`fall`, default 3, at least 1).
    pub fall: u32,
    /// Consecutive successes that mark a server UP (`rise`, default 2, at least 1).
    pub rise: u32,
    /// Status codes that count as success (`expect_status`, default `[200]`).
    pub expect_status: Vec<u16>,
    /// `Host` header of check requests (`host`); default: the server's address.
    pub host: Option<String>,
}

/// What happens to a server's established connections when it is marked DOWN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMarkedDown {
    /// Leave them alone (`"none"`, the default).
    Nothing,
    /// Close every connection and tunnel to the server at once (`"shutdown-sessions"`).
    ShutdownSessions,
}

/// One backend server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Name, unique in its pool; also the sticky-cookie value, so it is made of RFC 6265
    /// cookie-octets.
    pub name: String,
    /// IP address and port: as written, or the address `host` resolved to (port as written,
    /// `0.0.0.0` until resolved).
    pub addr: SocketAddr,
    /// The DNS name of a server written `name:port` (lowercase, no final dot), resolved at
    /// start and again every `resolve_interval`; `None` for an IP address.
    pub host: Option<String>,
    /// For a slot of a `server_template`: the SRV name whose records fill the pool's slots
    /// (its address, port and weight come from a record; without one it is in maintenance).
    pub srv: Option<String>,
    /// Relative weight, 0..=256 (default 1); 0 means the server gets no new balanced traffic.
    pub weight: u16,
    /// Whether the pool's health check applies to this server (`check`, default true).
    pub check: bool,
    /// Requests (and, with `maxconn_counts_tunnels`, tunnels) in flight to this server at
    /// most (`maxconn`, else the pool's); `None`: no limit. The excess waits in a queue.
    pub maxconn: Option<u32>,
}

/// A pool's effective timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection to a server (`timeout_connect`, default 5s).
    pub connect: Duration,
    /// Client inactivity (`timeout_client`, default 30s).
    pub client: Duration,
    /// Server inactivity (`timeout_server`, default 30s).
    pub server: Duration,
    /// Inactivity of upgraded connections such as WebSocket (`timeout_tunnel`, default 1h).
    pub tunnel: Duration,
    /// Receiving a complete request head from a client (`timeout_http_request`, default: the
    /// client timeout).
    pub http_request: Duration,
    /// Waiting in a queue for a server under its `maxconn` (`timeout_queue`, default: the
    /// connect timeout, as HAProxy's); a request still waiting then gets 503 (`sQ`).
    pub queue: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(5),
            client: Duration::from_secs(30),
            server: Duration::from_secs(30),
            tunnel: Duration::from_secs(3600),
            http_request: Duration::from_secs(30),
            queue: Duration::from_secs(5),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration; every problem found is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The diagnostics of an [`Invalid`](ConfigError::Invalid) configuration; empty for I/O
    /// errors.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Io { .. } => &[],
            ConfigError::Invalid(diagnostics) => diagnostics.as_slice(),
        }
    }
}

impl Config {
    /// The distinct `(pool, SRV name)` of the pools' `server_template`s, in file order.
    pub fn srv_templates(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for pool in &self.pools {
            for srv in pool.servers.iter().filter_map(|s| s.srv.as_ref()) {
                let entry = (pool.name.clone(), srv.clone());
                if !out.contains(&entry) {
                    out.push(entry);
                }
            }
        }
        out
    }

    /// The distinct DNS names of the servers written `name:port`, sorted.
    pub fn server_names(&self) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = self
            .pools
            .iter()
            .flat_map(|p| p.servers.iter().filter_map(|s| s.host.as_ref()))
            .collect();
        names.into_iter().cloned().collect()
    }

    /// This configuration with every server written `name:port` at the address `resolved`
    /// gives its name (a name it does not give keeps its server's address).
    #[must_use]
    pub fn with_resolved(
        &self,
        resolved: &std::collections::HashMap<String, std::net::IpAddr>,
    ) -> Config {
        let mut config = self.clone();
        for server in config.pools.iter_mut().flat_map(|p| p.servers.iter_mut()) {
            if let Some(ip) = server.host.as_ref().and_then(|h| resolved.get(h)) {
                server.addr.set_ip(*ip);
            }
        }
        config
    }

    /// Reads, parses and validates the configuration file at `path`.
    ///
    /// Diagnostics name the file as `path` is written; relative paths inside the file are
    /// resolved against `path`'s directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        match String::from_utf8(bytes) {
            Ok(text) => Config::parse(&text, &origin),
            Err(err) => {
                let valid = err.utf8_error().valid_up_to();
                let bytes = err.into_bytes();
                // The prefix before the first invalid byte is valid UTF-8 by definition.
                let prefix = String::from_utf8_lossy(&bytes[..valid]);
                let diagnostic = Diagnostic::at(
                    &origin,
                    &prefix,
                    valid,
                    "the file is not valid UTF-8; save it as UTF-8 text".to_owned(),
                );
                Err(ConfigError::Invalid(Diagnostics::new(vec![diagnostic])))
            }
        }
    }

    /// Parses and validates configuration `text`.
    ///
    /// `origin` is the file name used in diagnostics; relative paths inside the configuration
    /// (certificates, unix sockets) are resolved against its directory.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        validate::parse(text, origin).map_err(ConfigError::Invalid)
    }

    /// The pool called `name`, if any.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The frontend called `name`, if any.
    pub fn frontend(&self, name: &str) -> Option<&Frontend> {
        self.frontends.iter().find(|f| f.name == name)
    }

    /// Things that are valid but probably not intended (an unused pool, a pool whose servers
    /// all have weight 0, ...), in file order, in the same format as errors.
    pub fn warnings(&self) -> &[Diagnostic] {
        &self.warnings
    }

    /// A one-line summary for `veza-lb check`, such as
    /// `Configuration file is valid: 1 frontend, 2 pools, 4 servers`.
    pub fn summary(&self) -> String {
        let servers: usize = self.pools.iter().map(|p| p.servers.len()).sum();
        format!(
            "Configuration file is valid: {}, {}, {}",
            plural(self.frontends.len(), "frontend"),
            plural(self.pools.len(), "pool"),
            plural(servers, "server"),
        )
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
