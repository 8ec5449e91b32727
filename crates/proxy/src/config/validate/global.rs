//! The `[global]` section: runtime API sockets and their access levels, metrics listener,
//! shutdown grace and drain window, threads, connection limit and resolvers.

use std::num::NonZeroUsize;

use toml::de::DeValue;

use super::Ctx;
use super::fields::{Got, Reported, Section, Value, describe};
use crate::config::{AccessLevel, Global, StatsSocket, StatsSocketAddr};

const GLOBAL_KEYS: &[&str] = &[
    "stats_socket",
    "stats_socket_mode",
    "stats_socket_level",
    "metrics_listen",
    "shutdown_grace",
    "drain_window",
    "threads",
    "maxconn",
    "resolvers",
    "resolve_interval",
    "resolve_timeout",
    "hold_nx",
];

const SOCKET_KEYS: &[&str] = &["addr", "level", "mode"];
const ADDR_HINT: &str =
    "write the address as addr = \"127.0.0.1:9100\" or addr = \"unix:/run/veza-lb/admin.sock\"";
/// Permission bits of a unix stats socket when the configuration does not say.
const DEFAULT_MODE: u32 = 0o600;

/// Longest path of a unix socket on Linux (`sun_path` minus the terminating NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

impl Ctx<'_> {
    pub(super) fn read_global(&mut self, value: &Value<'_>) -> Option<Global> {
        let s = self.section(value, "global", "[global]".to_owned(), GLOBAL_KEYS)?;
        let defaults = Global::default();
        let level = self.access_level(&s, "stats_socket_level");
        let mode = match s.get("stats_socket_mode") {
            None => Ok(None),
            Some(v) => self.permission_bits(v, "stats_socket_mode").map(Some),
        };
        let stats_sockets = match (&level, &mode) {
            (Ok(level), Ok(mode)) => self.stats_sockets(&s, *level, *mode),
            _ => Err(Reported),
        };
        if let (Ok(sockets), Some(v)) = (&stats_sockets, s.get("stats_socket_mode")) {
            let unix = sockets
                .iter()
                .any(|socket| matches!(socket.addr, StatsSocketAddr::Unix(_)));
            if !unix {
                self.warn(
                    v.span().start,
                    "`stats_socket_mode` only applies to a unix `stats_socket`; it is ignored for \
                     TCP",
                );
            }
        }
        let metrics_listen = self.string(&s, "metrics_listen").and_then(|v| match v {
            None => Ok(None),
            Some((text, at)) => {
                let addr = self.address("metrics_listen", text, at).ok_or(Reported)?;
                self.listen(addr, at, "`metrics_listen`".to_owned());
                Ok(Some(addr))
            }
        });
        let shutdown_grace = self.duration(&s, "shutdown_grace", true);
        let drain_window = self.duration(&s, "drain_window", true);
        if let (Ok(Some(window)), Ok(grace), Some(v)) =
            (&drain_window, &shutdown_grace, s.get("drain_window"))
        {
            let grace = grace.unwrap_or(defaults.shutdown_grace);
            if *window > grace / 2 {
                self.warn(
                    v.span().start,
                    format!(
                        "`drain_window` ({window:?}) is longer than half of `shutdown_grace` \
                         ({grace:?}): a draining process keeps idle connections {:?}, so that \
                         the last requests they bring have the other half to complete",
                        grace / 2
                    ),
                );
            }
        }
        let threads = self.integer(
            &s,
            "threads",
            1..=4096,
            "; remove it to use one thread per core",
        );
        let maxconn = self.integer(
            &s,
            "maxconn",
            1..=10_000_000,
            "; remove it to serve as many connections as the open-files limit allows",
        );
        let resolvers = self.addresses(&s, "resolvers");
        let resolve_interval = self.duration(&s, "resolve_interval", false);
        let resolve_timeout = self.duration(&s, "resolve_timeout", false);
        let hold_nx = self.duration(&s, "hold_nx", true);
        Some(Global {
            resolvers: resolvers
                .ok()?
                .unwrap_or_default()
                .into_iter()
                .map(|(a, _)| a)
                .collect(),
            resolve_interval: resolve_interval.ok()?.unwrap_or(defaults.resolve_interval),
            resolve_timeout: resolve_timeout.ok()?.unwrap_or(defaults.resolve_timeout),
            hold_nx: hold_nx.ok()?.unwrap_or(defaults.hold_nx),
            stats_sockets: stats_sockets.ok()?,
            metrics_listen: metrics_listen.ok()?,
            shutdown_grace: shutdown_grace.ok()?.unwrap_or(defaults.shutdown_grace),
            drain_window: drain_window.ok()?.unwrap_or(defaults.drain_window),
            threads: threads
                .ok()?
                .and_then(|n| usize::try_from(n).ok())
                .and_then(NonZeroUsize::new),
            maxconn: maxconn.ok()?.and_then(|n| u32::try_from(n).ok()),
        })
    }

    /// `stats_socket`: one address (a string or a table) or an array of them.
    fn stats_sockets(
        &mut self,
        s: &Section<'_, '_>,
        level: Option<AccessLevel>,
        mode: Option<u32>,
    ) -> Result<Vec<StatsSocket>, Reported> {
        let Some(value) = s.get("stats_socket") else {
            return Ok(Vec::new());
        };
        let entries: Vec<&Value<'_>> = match value.get_ref() {
            DeValue::String(_) | DeValue::Table(_) => vec![value],
            DeValue::Array(items) => items.iter().collect(),
            other => {
                self.error(
                    value.span().start,
                    format!(
                        "`stats_socket` must be an address such as \"127.0.0.1:9100\" or \
                         \"unix:/run/veza-lb/admin.sock\", or an array of them, not {}",
                        describe(other)
                    ),
                );
                return Err(Reported);
            }
        };
        let mut sockets: Vec<StatsSocket> = Vec::new();
        let mut ok = true;
        for entry in entries {
            let at = entry.span().start;
            let Some(socket) = self.stats_socket_entry(entry, level, mode) else {
                ok = false;
                continue;
            };
            if sockets.iter().any(|other| other.addr == socket.addr) {
                self.error(at, "this `stats_socket` address is listed twice");
                ok = false;
                continue;
            }
            if let StatsSocketAddr::Tcp(addr) = socket.addr {
                self.listen(addr, at, "`stats_socket`".to_owned());
            }
            sockets.push(socket);
        }
        if ok { Ok(sockets) } else { Err(Reported) }
    }

    /// One socket: `"ADDR"` (the `stats_socket_level` and `stats_socket_mode` defaults apply)
    /// or `{ addr = "ADDR", level = "...", mode = "0660" }`.
    fn stats_socket_entry(
        &mut self,
        entry: &Value<'_>,
        level: Option<AccessLevel>,
        mode: Option<u32>,
    ) -> Option<StatsSocket> {
        let at = entry.span().start;
        let (addr, level, mode) = match entry.get_ref() {
            DeValue::String(text) => (self.stats_socket_addr(text, at)?, level, mode),
            DeValue::Table(_) => {
                let what = "a `stats_socket` table".to_owned();
                let t = self.section(entry, "stats_socket", what, SOCKET_KEYS)?;
                let addr = self.string(&t, "addr");
                let addr = self.required(&t, "addr", ADDR_HINT, addr);
                let own_level = self.access_level(&t, "level");
                let own_mode = match t.get("mode") {
                    None => Ok(None),
                    Some(v) => self.permission_bits(v, "mode").map(Some),
                };
                let addr = self.stats_socket_addr(addr?.0, at)?;
                if let (StatsSocketAddr::Tcp(_), Some(v)) = (&addr, t.get("mode")) {
                    self.warn(
                        v.span().start,
                        "`mode` only applies to a unix socket; it is ignored for TCP",
                    );
                }
                (addr, own_level.ok()?.or(level), own_mode.ok()?.or(mode))
            }
            other => {
                self.error(
                    at,
                    format!(
                        "each `stats_socket` must be an address string or a table such as \
                         {{ addr = \"127.0.0.1:9100\", level = \"operator\" }}, not {}",
                        describe(other)
                    ),
                );
                return None;
            }
        };
        Some(StatsSocket {
            level: level.unwrap_or_else(|| AccessLevel::default_for(&addr)),
            mode: mode.unwrap_or(DEFAULT_MODE),
            addr,
        })
    }

    fn access_level(&mut self, s: &Section<'_, '_>, key: &str) -> Got<AccessLevel> {
        let Some((name, at)) = self.string(s, key)? else {
            return Ok(None);
        };
        match AccessLevel::from_name(name) {
            Some(level) => Ok(Some(level)),
            None => {
                self.error(
                    at,
                    format!(
                        "`{key}` must be \"user\", \"operator\" or \"admin\" (HAProxy's access \
                         levels), not \"{name}\""
                    ),
                );
                Err(Reported)
            }
        }
    }

    /// Octal permission bits, written `"0660"` or `0o660`.
    fn permission_bits(&mut self, value: &Value<'_>, key: &str) -> Result<u32, Reported> {
        let at = value.span().start;
        let (parsed, hint) = match value.get_ref() {
            DeValue::String(text) => (
                u32::from_str_radix(text, 8).ok(),
                format!("`{key}` must be octal permission bits such as \"0660\" or 0o660"),
            ),
            DeValue::Integer(i) => (
                u32::from_str_radix(i.as_str(), i.radix()).ok(),
                format!("`{key}` must be permission bits from 0o000 to 0o777, such as 0o660"),
            ),
            other => (
                None,
                format!(
                    "`{key}` must be octal permission bits such as 0o660, not {}",
                    describe(other)
                ),
            ),
        };
        match parsed {
            Some(mode) if mode <= 0o777 => Ok(mode),
            _ => {
                self.error(at, hint);
                Err(Reported)
            }
        }
    }

    fn stats_socket_addr(&mut self, text: &str, at: usize) -> Option<StatsSocketAddr> {
        let Some(path) = text.strip_prefix("unix:") else {
            return self
                .address("stats_socket", text, at)
                .map(StatsSocketAddr::Tcp);
        };
        if path.is_empty() {
            self.error(
                at,
                "`stats_socket` has no path after `unix:`; write it as \
                 \"unix:/run/veza-lb/admin.sock\"",
            );
            return None;
        }
        let path = self.resolve(path);
        let len = path.as_os_str().len();
        if len > MAX_UNIX_SOCKET_PATH {
            self.error(
                at,
                format!(
                    "the unix socket path is {len} bytes long, more than the {MAX_UNIX_SOCKET_PATH} \
                     the system allows; use a shorter path"
                ),
            );
            return None;
        }
        Some(StatsSocketAddr::Unix(path))
    }
}
