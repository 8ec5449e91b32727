//! systemd's service notification protocol (`sd_notify(3)`), without libsystemd.
//!
//! Under `Type=notify` (or `Type=notify-reload`) systemd passes a datagram socket in
//! `NOTIFY_SOCKET` and waits for `READY=1` before it considers the service started. A reload
//! is bracketed by `RELOADING=1` (with `MONOTONIC_USEC`, the time it began on
//! `CLOCK_MONOTONIC`) and `READY=1`; a stop starts with `STOPPING=1`. With `WatchdogSec=`,
//! systemd sets `WATCHDOG_USEC` and restarts the service when no `WATCHDOG=1` arrives within
//! that period: [`Notifier::watchdog_period`] says how often to send one (half the timeout).
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op, so callers never branch.
//!
//! ```
//! let notifier = proxy::notify::Notifier::disabled(); // or `Notifier::from_env()`
//! notifier.ready("Serving: 1 frontend, 2 pools, 4 servers");
//! notifier.reloading();
//! notifier.ready("Serving");
//! notifier.stopping("Stopping: finishing in-flight requests");
//! assert!(!notifier.is_enabled());
//! ```

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// The variable naming the socket a binary started by an upgrade reports readiness to.
pub(crate) const UPGRADE_NOTIFY: &str = "VEZA_LB_UPGRADE_NOTIFY";

/// How long a notification may block when systemd is slow to read its socket: a stuck
/// notification must not stall the event loop that sends it.
const SEND_TIMEOUT: Duration = Duration::from_millis(200);

/// Sends service state changes to systemd, when it asked for them.
#[derive(Debug)]
pub struct Notifier {
    target: Option<Target>,
    watchdog: Option<Duration>,
    /// Set in a binary started by an upgrade (`VEZA_LB_UPGRADE_NOTIFY`): its first `READY=1`
    /// goes to the process it replaces, which then hands it the service (`MAINPID=`).
    upgrade: std::sync::Mutex<Option<Target>>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// `NOTIFY_SOCKET` as given, for messages.
    name: String,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    ///
    /// A socket that cannot be used is logged once and notifications are then skipped: the
    /// service still runs, as it would under `Type=simple`.
    #[must_use]
    pub fn from_env() -> Notifier {
        let target = std::env::var("NOTIFY_SOCKET")
            .ok()
            .filter(|s| !s.is_empty())
            .and_then(|name| match Target::open(&name) {
                Ok(target) => Some(target),
                Err(e) => {
                    tracing::warn!(
                        "NOTIFY_SOCKET={name} cannot be used, not notifying systemd: {e}"
                    );
                    None
                }
            });
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        let upgrade = std::env::var(UPGRADE_NOTIFY)
            .ok()
            .and_then(|name| Target::open(&name).ok());
        Notifier {
            // Without a socket to send to, the watchdog cannot be fed either.
            watchdog: watchdog.filter(|_| target.is_some()),
            target,
            upgrade: std::sync::Mutex::new(upgrade),
        }
    }

    /// A notifier that never sends anything.
    #[must_use]
    pub fn disabled() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            upgrade: std::sync::Mutex::new(None),
        }
    }

    /// Whether systemd is listening (`NOTIFY_SOCKET` was set and usable).
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when the watchdog is on for
    /// this process.
    #[must_use]
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog
    }

    /// `READY=1`: startup or a reload is complete; `status` is shown by `systemctl status`.
    pub fn ready(&self, status: &str) {
        let handover = self
            .upgrade
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(old) = handover {
            // Started by an upgrade: the process being replaced tells systemd (MAINPID=).
            if let Err(e) = old.socket.send_to_addr(b"READY=1", &old.addr) {
                tracing::warn!(
                    "cannot tell the process being replaced that this one is ready: {e}"
                );
            }
            return;
        }
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`: a reload has begun. Follow with [`ready`](Self::ready).
    pub fn reloading(&self) {
        let state = match monotonic_usec() {
            Ok(usec) => format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=Reloading"),
            Err(e) => {
                tracing::debug!("CLOCK_MONOTONIC unavailable: {e}");
                "RELOADING=1\nSTATUS=Reloading".to_owned()
            }
        };
        self.send(&state);
    }

    /// `STOPPING=1`: a stop has begun.
    pub fn stopping(&self, status: &str) {
        self.send(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: the service is alive.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STATUS=...` alone.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// Sends one raw notification (newline-separated `KEY=VALUE` assignments).
    pub fn send(&self, state: &str) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(e) = target.socket.send_to_addr(state.as_bytes(), &target.addr) {
            tracing::warn!("cannot notify systemd at {}: {e}", target.name);
        }
    }
}

impl Target {
    fn open(name: &str) -> io::Result<Target> {
        let addr = notify_addr(name)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Target {
            socket,
            addr,
            name: name.to_owned(),
        })
    }
}

/// `NOTIFY_SOCKET`'s address: a path, or `@name` for a Linux abstract socket.
fn notify_addr(name: &str) -> io::Result<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        SocketAddr::from_abstract_name(abstract_name.as_bytes())
    } else if name.starts_with('/') {
        SocketAddr::from_pathname(name)
    } else {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "only absolute paths and @abstract names are supported",
        ))
    }
}

/// Half the watchdog timeout, when `WATCHDOG_USEC` is set for this process (`WATCHDOG_PID`
/// absent or equal to `pid`).
fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd expects in `MONOTONIC_USEC`.
fn monotonic_usec() -> nix::Result<u64> {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)?;
    let secs = u64::try_from(now.tv_sec()).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec()).unwrap_or(0);
    Ok(secs * 1_000_000 + nanos / 1_000)
}

/// A status must stay on one line: a newline would start a new assignment.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_half_the_timeout_and_only_for_this_pid() {
        let half = Some(Duration::from_millis(500));
        assert_eq!(watchdog_from(Some("1000000"), None, 7), half);
        assert_eq!(watchdog_from(Some("1000000"), Some("7"), 7), half);
        assert_eq!(watchdog_from(Some("1000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, None, 7), None);
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        let path = notify_addr("/run/systemd/notify").expect("path");
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abs = notify_addr("@veza/notify").expect("abstract");
        assert_eq!(abs.as_abstract_name(), Some(&b"veza/notify"[..]));
        assert!(notify_addr("vsock:2:1234").is_err());
    }

    #[test]
    fn sends_datagrams_to_an_abstract_socket() {
        let name = format!("veza-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind");
        let notifier = Notifier {
            target: Some(Target::open(&format!("@{name}")).expect("open")),
            watchdog: None,
            upgrade: std::sync::Mutex::new(None),
        };
        notifier.reloading();
        notifier.ready("Serving\nagain");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).expect("recv");
        let reloading = std::str::from_utf8(&buf[..n]).expect("utf8");
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading}"
        );
        let n = receiver.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=Serving again");
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec().expect("clock");
        let b = monotonic_usec().expect("clock");
        assert!(a > 0 && b >= a);
    }

    #[test]
    fn disabled_sends_nothing() {
        let n = Notifier::disabled();
        assert!(!n.is_enabled());
        n.ready("x");
        n.watchdog();
    }

    /// A binary started by an upgrade reports its first `READY=1` to the process it replaces,
    /// not to systemd (which only listens to the main process); later ones go to systemd.
    #[test]
    fn the_first_ready_of_an_upgrade_goes_to_the_old_process() {
        let id = std::process::id();
        let (systemd_name, old_name) = (format!("veza-sd-{id}"), format!("veza-old-{id}"));
        let bind = |name: &str| {
            let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("addr");
            let socket = UnixDatagram::bind_addr(&addr).expect("bind");
            socket.set_nonblocking(true).expect("nonblocking");
            socket
        };
        let (systemd, old) = (bind(&systemd_name), bind(&old_name));
        let notifier = Notifier {
            target: Some(Target::open(&format!("@{systemd_name}")).expect("open")),
            watchdog: None,
            upgrade: std::sync::Mutex::new(Some(
                Target::open(&format!("@{old_name}")).expect("open"),
            )),
        };
        notifier.ready("Serving");
        let mut buf = [0u8; 64];
        let n = old.recv(&mut buf).expect("the old process hears it");
        assert_eq!(&buf[..n], b"READY=1");
        assert!(systemd.recv(&mut buf).is_err(), "systemd does not");
        notifier.ready("Serving after a reload");
        let n = systemd.recv(&mut buf).expect("systemd hears the next one");
        assert!(buf[..n].starts_with(b"READY=1\nSTATUS="));
    }
}
