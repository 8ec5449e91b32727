//! Replacing the running binary without refusing a connection (SIGUSR2, `veza-lb ctl
//! upgrade`), as HAProxy's `expose-fd listeners` and Pingora's `--upgrade` do it, with the
//! socket-activation protocol systemd already speaks.
//!
//! The running process starts the executable now at its path, with the same arguments, and
//! hands it every listening socket (each frontend's whole `SO_REUSEPORT` group, the runtime
//! API's and metrics' TCP sockets) as inherited descriptors (`LISTEN_FDS` from descriptor 3,
//! without `LISTEN_PID`, which cannot be known before the new process exists). The new process
//! adopts them (`listen::adopt_inherited`), so no socket is closed and no queue is dropped:
//! both processes accept from the same sockets until the old one stops. When the new process
//! is ready it says so on a private socket (`VEZA_LB_UPGRADE_NOTIFY`) instead of to systemd;
//! the old one then hands it the service (`MAINPID=`, so the unit keeps watching the process
//! that serves), stops accepting, finishes its requests and exits. A new binary that exits or
//! is not ready within [`READY_TIMEOUT`] is stopped, and the old one keeps serving.
//!
//! Why `MAINPID=` rather than a supervisor process surviving upgrades (HAProxy's
//! master-worker): the unit keeps exactly one veza-lb process in the common case, with no
//! extra process to harden, and systemd already supports a service changing its main
//! process; outside systemd nothing needs to follow.

use std::os::linux::net::SocketAddrExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use command_fds::{CommandFdExt, FdMapping};

use super::notify::UPGRADE_NOTIFY;
use crate::supervisor::Proxy;

/// How long a new binary has to start serving.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts `exe` with this process's arguments and listening sockets, and waits until it is
/// ready. Returns its pid; the caller hands over the service and stops.
///
/// # Errors
/// Why the new binary is not serving (it could not start, exited, or was not ready in time);
/// it has been stopped, and nothing changed for the running process.
pub(crate) async fn start(proxy: &Proxy, exe: &Path) -> Result<u32, String> {
    let sockets = proxy
        .listening_sockets()
        .map_err(|e| format!("cannot duplicate the listening sockets: {e}"))?;
    let channel_name = format!("veza-lb-upgrade-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(channel_name.as_bytes())
        .map_err(|e| format!("cannot name the readiness socket: {e}"))?;
    let channel = std::os::unix::net::UnixDatagram::bind_addr(&addr)
        .and_then(|s| {
            s.set_nonblocking(true)?;
            tokio::net::UnixDatagram::from_std(s)
        })
        .map_err(|e| format!("cannot open the readiness socket: {e}"))?;

    let mut command = std::process::Command::new(exe);
    command
        .args(std::env::args_os().skip(1))
        .env("LISTEN_FDS", sockets.len().to_string())
        .env("LISTEN_FDNAMES", vec!["upgrade"; sockets.len()].join(":"))
        .env_remove("LISTEN_PID")
        // The watchdog is for whichever process is the service's main one: the new one, once
        // handed over (`WATCHDOG_PID` names this one).
        .env_remove("WATCHDOG_PID")
        .env(UPGRADE_NOTIFY, format!("@{channel_name}"))
        .stdin(Stdio::null());
    let mappings = sockets
        .into_iter()
        .enumerate()
        .map(|(i, (_, fd))| FdMapping {
            parent_fd: fd,
            child_fd: 3 + i as i32,
        })
        .collect();
    command
        .fd_mappings(mappings)
        .map_err(|e| format!("cannot pass the listening sockets: {e}"))?;
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let pid = child.id();
    let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
    let mut buf = [0u8; 256];
    loop {
        tokio::select! {
            received = channel.recv(&mut buf) => {
                if matches!(received, Ok(n) if buf[..n].starts_with(b"READY=1")) {
                    return Ok(pid);
                }
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "the new binary ({}, pid {pid}) exited ({status}) before it was ready; \
                         its log says why",
                        exe.display()
                    ));
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the new binary (pid {pid}) was not ready within {}s: stopped it",
                    READY_TIMEOUT.as_secs()
                ));
            }
        }
    }
}
