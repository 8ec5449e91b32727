//! Child processes the subcommands start: each killed when dropped, its output in a log file,
//! waited for until ready; signals and liveness for processes that are not our children (the
//! veza-lb an upgrade starts); free ports and programs on the `PATH`.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

use crate::{Error, Result, fail};

/// How long a started process may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits for SIGINT, SIGTERM or SIGHUP and names it.
pub async fn stop_signal() -> Result<&'static str> {
    let install = |kind| signal(kind).map_err(Error::io("cannot handle signals"));
    let mut interrupt = install(SignalKind::interrupt())?;
    let mut terminate = install(SignalKind::terminate())?;
    let mut hangup = install(SignalKind::hangup())?;
    Ok(tokio::select! {
        _ = interrupt.recv() => "SIGINT",
        _ = terminate.recv() => "SIGTERM",
        _ = hangup.recv() => "SIGHUP",
    })
}

/// Finds a program in PATH, then in the sbin directories Debian puts daemons in.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// `n` distinct free TCP ports on 127.0.0.1. Each is bound to port 0 and released just before
/// returning, so the kernel will not hand it out again right away.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").map_err(Error::io("cannot find a free port")))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| {
            l.local_addr()
                .map(|a| a.port())
                .map_err(Error::io("cannot read a bound port"))
        })
        .collect()
}

/// A child process that is killed (SIGKILL) when this value is dropped: on success, on
/// failure, on panic and when Ctrl-C drops the task holding it. Its stdout and stderr go to a
/// log file.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command`, output appended to `log`.
    pub fn spawn(name: &str, mut command: Command, log: &Path) -> Result<Process> {
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .map_err(Error::io(format!("cannot open {}", log.display())))
        };
        let child = command
            // Plain logs: they are read in files, not on a terminal.
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(open()?)
            .stderr(open()?)
            .kill_on_drop(true)
            .spawn()
            .map_err(Error::io(format!("cannot start {name}")))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// The log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGKILL, then reap.
    pub async fn kill(&mut self) -> Result<()> {
        if let Some(pid) = self.pid() {
            send(pid, Signal::SIGKILL, &self.name)?;
        }
        self.child
            .wait()
            .await
            .map_err(Error::io(format!("cannot reap {}", self.name)))?;
        Ok(())
    }

    /// SIGTERM (a graceful stop), then wait up to `grace` before SIGKILL.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(pid) = self.pid() {
            let _ = send(pid, Signal::SIGTERM, &self.name);
            if tokio::time::timeout(grace, self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.kill().await;
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }

    /// Polls `ready` every 20 ms until it holds; fails if the process exits or `READY_TIMEOUT`
    /// passes, with the end of its log.
    pub async fn wait_until<F, Fut>(&mut self, what: &str, mut ready: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        loop {
            if ready().await {
                return Ok(());
            }
            if let Some(status) = self.exited() {
                return fail(format!(
                    "{} exited ({status}) before {what}; its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                ));
            }
            if start.elapsed() > READY_TIMEOUT {
                return fail(format!(
                    "{} not {what} after {READY_TIMEOUT:?}; its log ({}):\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(20)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until something accepts TCP connections on `addr` (`what` it is, for errors).
    pub async fn wait_listening(&mut self, addr: SocketAddr, what: &str) -> Result<()> {
        self.wait_until(&format!("listening on {addr} ({what})"), || async move {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await
    }
}

/// Sends `signal` to `pid` (`what` it is, for the error).
pub fn send(pid: u32, signal: Signal, what: &str) -> Result<()> {
    let raw = i32::try_from(pid).map_err(|_| Error::Message(format!("pid {pid} out of range")))?;
    kill(Pid::from_raw(raw), signal)
        .map_err(|errno| Error::Message(format!("cannot send {signal} to {what} ({pid}): {errno}")))
}

/// Whether `pid` runs (a zombie does not: it only waits to be reaped).
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| !s.trim_start().starts_with('Z'))
    })
}

/// SIGTERM a process that is not our child, then SIGKILL if it still runs after `grace`.
pub async fn stop_pid(pid: u32, grace: Duration) {
    if send(pid, Signal::SIGTERM, "veza-lb").is_err() {
        return;
    }
    let deadline = Instant::now() + grace;
    while alive(pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if alive(pid) {
        let _ = send(pid, Signal::SIGKILL, "veza-lb");
    }
}

/// The last `lines` lines of a file (empty if unreadable).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
