//! The `[global]` section: runtime API, metrics listener, shutdown grace and threads.

use std::num::NonZeroUsize;

use serde_spanned::Spanned;
use toml::de::DeValue;

use super::Ctx;
use super::fields::{Reported, Value, describe};
use crate::config::{Global, StatsSocket};

const GLOBAL_KEYS: &[&str] = &[
    "stats_socket",
    "stats_socket_mode",
    "metrics_listen",
    "shutdown_grace",
    "threads",
];

/// Longest path of a unix socket on Linux (`sun_path` minus the terminating NUL).
const MAX_UNIX_SOCKET_PATH: usize = 107;

impl Ctx<'_> {
    pub(super) fn read_global(&mut self, value: &Value<'_>) -> Option<Global> {
        let s = self.section(value, "global", "[global]".to_owned(), GLOBAL_KEYS)?;
        let defaults = Global::default();
        let stats_socket = self.string(&s, "stats_socket").and_then(|v| match v {
            None => Ok(None),
            Some((text, at)) => self.stats_socket(text, at).map(Some).ok_or(Reported),
        });
        if let (Ok(Some(StatsSocket::Tcp(addr))), Some(v)) = (&stats_socket, s.get("stats_socket"))
        {
            self.listen(*addr, v.span().start, "`stats_socket`".to_owned());
        }
        let mode_at = s.get("stats_socket_mode").map(|v| v.span().start);
        let mode = match s.get("stats_socket_mode").map(Spanned::get_ref) {
            Some(DeValue::String(text)) => match u32::from_str_radix(text, 8) {
                Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
                _ => {
                    self.error(
                        mode_at.unwrap_or(0),
                        "`stats_socket_mode` must be octal permission bits such as \"0660\" or \
                         0o660",
                    );
                    Err(Reported)
                }
            },
            Some(DeValue::Integer(i)) => match u32::from_str_radix(i.as_str(), i.radix()) {
                Ok(mode) if mode <= 0o777 => Ok(Some(mode)),
                _ => {
                    self.error(
                        mode_at.unwrap_or(0),
                        "`stats_socket_mode` must be permission bits from 0o000 to 0o777, such \
                         as 0o660",
                    );
                    Err(Reported)
                }
            },
            Some(other) => {
                self.error(
                    mode_at.unwrap_or(0),
                    format!(
                        "`stats_socket_mode` must be octal permission bits such as 0o660, not {}",
                        describe(other)
                    ),
                );
                Err(Reported)
            }
            None => Ok(None),
        };
        if let (Ok(Some(StatsSocket::Tcp(_))), Ok(Some(_)), Some(at)) =
            (&stats_socket, &mode, mode_at)
        {
            self.warn(
                at,
                "`stats_socket_mode` only applies to a unix `stats_socket`; it is ignored for TCP",
            );
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
        let threads = self.integer(
            &s,
            "threads",
            1..=4096,
            "; remove it to use one thread per core",
        );
        Some(Global {
            stats_socket: stats_socket.ok()?,
            stats_socket_mode: mode.ok()?.unwrap_or(defaults.stats_socket_mode),
            metrics_listen: metrics_listen.ok()?,
            shutdown_grace: shutdown_grace.ok()?.unwrap_or(defaults.shutdown_grace),
            threads: threads
                .ok()?
                .and_then(|n| usize::try_from(n).ok())
                .and_then(NonZeroUsize::new),
        })
    }

    fn stats_socket(&mut self, text: &str, at: usize) -> Option<StatsSocket> {
        let Some(path) = text.strip_prefix("unix:") else {
            return self.address("stats_socket", text, at).map(StatsSocket::Tcp);
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
        Some(StatsSocket::Unix(path))
    }
}
