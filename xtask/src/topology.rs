//! The loopback topology of the seed: two API backends, two stream servers and `veza-lb` in
//! front, on free ports (or the seed's), with a generated configuration; plus the stats
//! socket client other subcommands reuse. Its processes are [`crate::process`]'s.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

pub use proxy::stats::StatTable;

use crate::build::Binaries;
use crate::dns::{self, Dns};
pub use crate::process::{Process, alive, find_program, free_ports, log_tail, stop_signal};
use crate::process::{send, stop_pid};
use crate::relay::Relay;
use crate::{Error, Result, fail};

pub use crate::lbconfig::{API_POOL, COOKIE, STREAM_POOL};
use crate::lbconfig::{SeedTopology, ServerList};

/// The API servers, in configuration order.
pub const API_SERVERS: [&str; 2] = ["backend-api-1", "backend-api-2"];
/// The stream servers, in configuration order.
pub const STREAM_SERVERS: [&str; 2] = ["stream-server-1", "stream-server-2"];

impl Drop for Topology {
    /// The processes an upgrade started are not our children, so `kill_on_drop` does not
    /// reach them: a run that ends early (an error, Ctrl-C) must not leave them serving.
    fn drop(&mut self) {
        for pid in self.serving.iter().chain(&self.replaced) {
            if alive(*pid) {
                let _ = send(*pid, Signal::SIGKILL, "veza-lb");
            }
        }
    }
}

/// Health check settings of the generated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Check interval (the seed: 5s; smoke default 1s).
    pub interval: Duration,
    /// Failed checks before DOWN.
    pub fall: u32,
    /// Passed checks before UP.
    pub rise: u32,
    /// Slow start after recovery.
    pub slowstart: Duration,
    /// veza-lb worker threads (HAProxy's nbthread).
    pub threads: usize,
    /// Which load balancer runs in front.
    pub balancer: Balancer,
    /// Open a Prometheus endpoint (`/metrics`) on a free port.
    pub metrics: bool,
    /// Servers reached through a relay whose link a `delay` fault slows ([`Relay`]).
    pub relayed: Vec<String>,
    /// Listen on the seed's ports ([`SEED_PORTS`], as `examples/veza-lb.toml` does) instead
    /// of free ones.
    pub seed_ports: bool,
    /// Servers written by name (`backend-api-2.veza.test:PORT`), resolved through a DNS
    /// server of the topology's own ([`Dns`]) that a `dns` fault changes.
    pub named: Vec<String>,
}

/// The loopback addresses a server written by name moves between (same port).
const NAMED_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
];

/// How long the old instance of a server moved by DNS keeps serving: the balancer asks every
/// second.
const MOVED_GRACE: Duration = Duration::from_secs(5);

/// The seed's ports, in the topology's order: the frontend, the runtime API, the two API
/// servers, the two stream servers, `/metrics` and the stats page.
pub const SEED_PORTS: [u16; 7] = [8080, 9100, 18081, 18082, 18091, 18092, 9101];

/// [`SEED_PORTS`], each checked free; the error names the ones taken and what to do.
fn seed_ports() -> Result<Vec<u16>> {
    let taken: Vec<String> = SEED_PORTS
        .iter()
        .filter(|p| TcpListener::bind(("127.0.0.1", **p)).is_err())
        .map(u16::to_string)
        .collect();
    if taken.is_empty() {
        Ok(SEED_PORTS.to_vec())
    } else {
        fail(format!(
            "port {} on 127.0.0.1 is taken (another veza-lb, HAProxy or demo?): stop what \
             listens there (`ss -ltnp`), or use free ports (--free-ports)",
            taken.join(", ")
        ))
    }
}

/// The load balancer in front of the backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Balancer {
    /// veza-lb (the built binary).
    VezaLb,
    /// HAProxy (this executable) with the seed's configuration, for comparisons.
    Haproxy(PathBuf),
}

impl Balancer {
    /// Its name in reports.
    pub fn label(&self) -> &'static str {
        match self {
            Balancer::VezaLb => "veza-lb",
            Balancer::Haproxy(_) => "HAProxy",
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            interval: Duration::from_secs(1),
            fall: 3,
            rise: 2,
            slowstart: Duration::from_secs(30),
            threads: 2,
            balancer: Balancer::VezaLb,
            metrics: false,
            relayed: Vec::new(),
            seed_ports: false,
            named: Vec::new(),
        }
    }
}

/// Which demo backend flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--kind api`.
    Api,
    /// `--kind stream`.
    Stream,
}

/// One demo backend and its process (None while killed).
#[derive(Debug)]
pub struct Backend {
    /// Server name in the configuration, also the backend's `--name`.
    pub name: &'static str,
    /// What it serves.
    pub kind: Kind,
    /// Its fixed address: a restart comes back on the same port.
    pub addr: SocketAddr,
    process: Option<Process>,
    /// The relay the balancer reaches it through, if [`Settings::relayed`] names it.
    relay: Option<Relay>,
    /// Written by name ([`Settings::named`]).
    named: bool,
}

impl Backend {
    /// Where the balancer reaches it, as its configuration says: its relay, its DNS name, or
    /// its address.
    pub fn route(&self) -> String {
        match (&self.relay, self.named) {
            (Some(relay), _) => relay.addr.to_string(),
            (None, true) => format!("{}:{}", dns::name_of(self.name), self.addr.port()),
            (None, false) => self.addr.to_string(),
        }
    }
}

/// Demo backends and `veza-lb` on loopback.
pub struct Topology {
    /// Frontend address of veza-lb.
    pub lb_addr: SocketAddr,
    /// Runtime API address.
    pub stats_addr: SocketAddr,
    /// The Prometheus endpoint's address, when `settings.metrics`.
    pub metrics_addr: Option<SocketAddr>,
    /// The settings the configuration was written with.
    pub settings: Settings,
    /// The backends.
    pub backends: Vec<Backend>,
    /// veza-lb's configuration file.
    pub config_path: PathBuf,
    lb: Process,
    /// The DNS server of the servers written by name, if any.
    dns: Option<Dns>,
    /// The process serving now when it is not `lb`: veza-lb's after an upgrade (a child of
    /// the process it replaced, not ours).
    serving: Option<u32>,
    /// Every veza-lb process an upgrade replaced: each must exit once drained.
    replaced: Vec<u32>,
    binaries: Binaries,
    // Last field: dropped after the processes, whose logs live in it.
    dir: tempfile::TempDir,
}

impl Topology {
    /// Starts the four backends, writes the configuration and starts the load balancer
    /// (veza-lb, or HAProxy with the equivalent configuration); returns when every process
    /// listens.
    pub async fn start(binaries: &Binaries, settings: Settings) -> Result<Topology> {
        let dir = tempfile::Builder::new()
            .prefix("veza-xtask-")
            .tempdir()
            .map_err(Error::io("cannot create a temporary directory"))?;
        let ports = if settings.seed_ports {
            seed_ports()?
        } else {
            free_ports(7)?
        };
        let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
        let mut backends = Vec::new();
        for (i, name) in API_SERVERS.into_iter().enumerate() {
            backends.push(Backend {
                name,
                kind: Kind::Api,
                addr: addr(2 + i),
                process: None,
                relay: None,
                named: false,
            });
        }
        for (i, name) in STREAM_SERVERS.into_iter().enumerate() {
            backends.push(Backend {
                name,
                kind: Kind::Stream,
                addr: addr(4 + i),
                process: None,
                relay: None,
                named: false,
            });
        }
        let mut records = std::collections::BTreeMap::new();
        for backend in &mut backends {
            if settings.named.iter().any(|n| n == backend.name) {
                // Its own loopback address: a move goes to another one, same port.
                backend.named = true;
                backend.addr.set_ip(NAMED_ADDRESSES[0]);
                records.insert(dns::name_of(backend.name), NAMED_ADDRESSES[0]);
            }
            backend.process = Some(start_backend(binaries, backend, dir.path()).await?);
            if settings.relayed.iter().any(|r| r == backend.name) {
                if backend.named {
                    return fail(format!(
                        "{} cannot be both delayed and moved by DNS in one run",
                        backend.name
                    ));
                }
                backend.relay = Some(Relay::start(backend.addr).await?);
            }
        }
        let dns = if records.is_empty() {
            None
        } else {
            Some(Dns::start(dir.path(), records).await?)
        };
        let (lb_addr, stats_addr) = (addr(0), addr(1));
        let metrics_addr = settings.metrics.then(|| addr(6));
        let admin_path = dir.path().join("admin.sock");
        let seed = seed_topology(
            lb_addr,
            stats_addr,
            &admin_path,
            metrics_addr,
            &backends,
            &settings,
            dns.as_ref().map(|d| d.addr),
        );
        let (name, config_path, config, mut command) = match &settings.balancer {
            Balancer::VezaLb => {
                let path = dir.path().join("veza-lb.toml");
                let mut command = Command::new(&binaries.veza_lb);
                command
                    .arg("-c")
                    .arg(&path)
                    .args(["--log-level", "info,access=warn"]);
                ("veza-lb", path, seed.render(), command)
            }
            Balancer::Haproxy(haproxy) => {
                let path = dir.path().join("haproxy.cfg");
                let mut command = Command::new(haproxy);
                // Master-worker, in the foreground: a reload (SIGUSR2 to the master) starts new
                // workers on the same listening sockets, as `systemctl reload haproxy` does.
                command.args(["-W", "-db", "-f"]).arg(&path);
                ("haproxy", path, seed.render_haproxy(), command)
            }
        };
        std::fs::write(&config_path, config)
            .map_err(Error::io(format!("cannot write {}", config_path.display())))?;
        command.kill_on_drop(true);
        let mut lb = Process::spawn(name, command, &dir.path().join(format!("{name}.log")))?;
        lb.wait_listening(lb_addr, "frontend").await?;
        lb.wait_listening(stats_addr, "runtime API").await?;
        if let Some(metrics) = metrics_addr {
            lb.wait_listening(metrics, "metrics").await?;
        }
        Ok(Topology {
            lb_addr,
            stats_addr,
            metrics_addr,
            settings,
            backends,
            config_path,
            lb,
            dns,
            serving: None,
            replaced: Vec::new(),
            binaries: binaries.clone(),
            dir,
        })
    }

    /// The admin runtime API's address (`unix:/path`), for state changes.
    pub fn admin_socket(&self) -> String {
        format!("unix:{}", self.dir.path().join("admin.sock").display())
    }

    /// The runtime API client (level `operator`: reads).
    pub fn stats(&self) -> StatsSocket {
        StatsSocket::new(self.stats_addr.to_string())
    }

    /// The directory holding the configuration and the logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The balancer's process id: veza-lb's serving process (the one an upgrade started, if
    /// any); HAProxy's master.
    pub fn lb_pid(&self) -> Option<u32> {
        self.serving.or_else(|| self.lb.pid())
    }

    /// veza-lb's log file.
    pub fn lb_log(&self) -> &Path {
        self.lb.log()
    }

    /// The end of every log, for a failure report.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = format!(
            "--- veza-lb ({}):\n{}\n",
            self.lb.log().display(),
            self.lb.log_tail(lines)
        );
        for backend in &self.backends {
            let log = backend_log(self.dir.path(), backend.name);
            out.push_str(&format!(
                "--- {} ({}):\n{}\n",
                backend.name,
                log.display(),
                log_tail(&log, lines)
            ));
        }
        out
    }

    /// Whether the balancer is still running (after an upgrade: the process serving now).
    pub fn lb_running(&mut self) -> bool {
        match self.serving {
            Some(pid) => alive(pid),
            None => self.lb.exited().is_none(),
        }
    }

    /// Replaces the balancer's binary under traffic: veza-lb's runtime API `upgrade` (the new
    /// process takes the listening sockets, the old one drains and exits); HAProxy's
    /// master-worker reload (SIGUSR2: new workers on the same sockets, the old ones drain).
    pub async fn upgrade(&mut self) -> Result<()> {
        match self.settings.balancer {
            Balancer::VezaLb => {
                let answer = StatsSocket::new(self.admin_socket())
                    .command("upgrade")
                    .await?;
                let new = answer
                    .trim()
                    .strip_prefix("Upgraded: pid ")
                    .and_then(|rest| rest.rsplit(' ').next())
                    .and_then(|pid| pid.parse::<u32>().ok());
                let Some(new) = new else {
                    return fail(format!("upgrade refused: {}", answer.trim()));
                };
                if let Some(old) = self.lb_pid() {
                    self.replaced.push(old);
                }
                self.serving = Some(new);
                Ok(())
            }
            Balancer::Haproxy(_) => self.signal_lb(Signal::SIGUSR2),
        }
    }

    /// Reloads the balancer's configuration: veza-lb's SIGHUP; HAProxy's master-worker reload
    /// (SIGUSR2), its only kind of reload.
    pub fn reload(&self) -> Result<()> {
        match self.settings.balancer {
            Balancer::VezaLb => self.signal_lb(Signal::SIGHUP),
            Balancer::Haproxy(_) => self.signal_lb(Signal::SIGUSR2),
        }
    }

    fn signal_lb(&self, signal: Signal) -> Result<()> {
        let Some(pid) = self.lb_pid() else {
            return fail("the balancer is not running");
        };
        send(pid, signal, self.settings.balancer.label())
    }

    /// The veza-lb processes an upgrade replaced that still run (drained, each must exit).
    pub fn replaced_running(&self) -> Vec<u32> {
        self.replaced
            .iter()
            .copied()
            .filter(|&p| alive(p))
            .collect()
    }

    /// Freezes a backend (SIGSTOP): it keeps its sockets and answers nothing.
    pub fn hang(&self, name: &str) -> Result<()> {
        self.signal_backend(name, Signal::SIGSTOP)
    }

    /// Lets a frozen backend go on (SIGCONT).
    pub fn resume(&self, name: &str) -> Result<()> {
        self.signal_backend(name, Signal::SIGCONT)
    }

    fn signal_backend(&self, name: &str, signal: Signal) -> Result<()> {
        let backend = self.backend(name)?;
        match backend.process.as_ref().and_then(Process::pid) {
            Some(pid) => send(pid, signal, name),
            None => fail(format!("{name} is not running")),
        }
    }

    /// A backend by name.
    pub fn backend(&self, name: &str) -> Result<&Backend> {
        match self.backends.iter().find(|b| b.name == name) {
            Some(backend) => Ok(backend),
            None => fail(format!("no backend named {name}")),
        }
    }

    fn backend_mut(&mut self, name: &str) -> Result<&mut Backend> {
        match self.backends.iter_mut().find(|b| b.name == name) {
            Some(backend) => Ok(backend),
            None => fail(format!("no backend named {name}")),
        }
    }

    /// SIGKILLs a backend, as `incus stop --force` did in the seed.
    pub async fn kill(&mut self, name: &str) -> Result<()> {
        let backend = self.backend_mut(name)?;
        match backend.process.take() {
            Some(mut process) => process.kill().await,
            None => fail(format!("{name} is not running")),
        }
    }

    /// Delays the link to a backend by `by`, each way (zero: heals it); only a backend
    /// [`Settings::relayed`] named has a link to slow.
    pub fn delay(&self, name: &str, by: Duration) -> Result<()> {
        match &self.backend(name)?.relay {
            Some(relay) => {
                relay.set_delay(by);
                Ok(())
            }
            None => fail(format!(
                "{name} is reached without a relay: nothing can delay its link"
            )),
        }
    }

    /// Drops `percent` of the packets on a backend's link, each way (zero: none); only in
    /// the load test's own network namespace ([`crate::loss`]).
    pub async fn loss(&self, name: &str, percent: u8) -> Result<()> {
        crate::loss::set_loss(self.backend(name)?.addr.port(), percent).await
    }

    /// Takes any delay and loss off a backend's link.
    pub async fn heal(&self, name: &str) -> Result<()> {
        if self.backend(name)?.relay.is_some() {
            self.delay(name, Duration::ZERO)?;
        }
        if crate::loss::isolated() {
            self.loss(name, 0).await?;
        }
        Ok(())
    }

    /// Moves a backend written by name: a new instance of it starts on its other loopback
    /// address (same port), its name resolves there from now on, and the old instance stops
    /// [`MOVED_GRACE`] later, once the balancer has followed the name (requests still on it
    /// then are cut, as a decommissioned host's would be).
    pub async fn move_dns(&mut self, name: &str) -> Result<()> {
        let binaries = self.binaries.clone();
        let dir = self.dir.path().to_path_buf();
        let Some(dns) = self.dns.as_mut() else {
            return fail(format!(
                "{name} is not written by name: nothing resolves it"
            ));
        };
        let backend = match self.backends.iter_mut().find(|b| b.name == name) {
            Some(b) if b.named => b,
            _ => {
                return fail(format!(
                    "{name} is not written by name: nothing resolves it"
                ));
            }
        };
        let to = if backend.addr.ip() == NAMED_ADDRESSES[0] {
            NAMED_ADDRESSES[1]
        } else {
            NAMED_ADDRESSES[0]
        };
        let old = backend.process.take();
        backend.addr.set_ip(to);
        backend.process = Some(start_backend(&binaries, backend, &dir).await?);
        dns.set(&dns::name_of(name), to)?;
        let (pool, new_addr) = match backend.kind {
            Kind::Api => (API_POOL, backend.addr),
            Kind::Stream => (STREAM_POOL, backend.addr),
        };
        // The move is done when the balancer shows the new address (both print it in `show
        // stat`); the old instance stops after the grace.
        let followed = self.wait_address(pool, name, new_addr).await;
        if let Some(mut old) = old {
            tokio::spawn(async move {
                tokio::time::sleep(MOVED_GRACE).await;
                old.stop(Duration::from_secs(3)).await;
            });
        }
        followed
    }

    /// Waits until `show stat` gives `pool/server` the address `addr`.
    async fn wait_address(&self, pool: &str, server: &str, addr: SocketAddr) -> Result<()> {
        let start = Instant::now();
        let row = format!("{pool},{server},");
        let mut last = String::new();
        while start.elapsed() < MOVED_GRACE {
            if let Ok(stat) = self.stats().command("show stat").await {
                last = stat
                    .lines()
                    .find(|l| l.starts_with(&row))
                    .unwrap_or("")
                    .to_owned();
                if last.contains(&format!(",{addr},")) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fail(format!(
            "{} did not follow {server}'s name to {addr} within {MOVED_GRACE:?}: {last}",
            self.settings.balancer.label()
        ))
    }

    /// Starts a killed backend again, on the same port.
    pub async fn restart(&mut self, name: &str) -> Result<()> {
        let binaries = self.binaries.clone();
        let dir = self.dir.path().to_path_buf();
        let backend = self.backend_mut(name)?;
        if backend.process.is_some() {
            return fail(format!("{name} is already running"));
        }
        backend.process = Some(start_backend(&binaries, backend, &dir).await?);
        Ok(())
    }

    /// Stops everything gracefully (veza-lb first), as the demo does on Ctrl-C.
    pub async fn stop(mut self) {
        if let Some(pid) = self.serving {
            stop_pid(pid, Duration::from_secs(3)).await;
        }
        for pid in self.replaced_running() {
            stop_pid(pid, Duration::from_secs(3)).await;
        }
        self.lb.stop(Duration::from_secs(3)).await;
        for backend in &mut self.backends {
            if let Some(process) = backend.process.as_mut() {
                process.stop(Duration::from_secs(3)).await;
            }
        }
    }
}

fn backend_log(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.log"))
}

async fn start_backend(binaries: &Binaries, backend: &Backend, dir: &Path) -> Result<Process> {
    spawn_demo_backend(binaries, backend.name, backend.kind, backend.addr, dir).await
}

/// Starts `veza-demo-backend` on a fixed address, output in `DIR/NAME.log`; returns once it
/// printed its startup line.
pub async fn spawn_demo_backend(
    binaries: &Binaries,
    name: &str,
    kind: Kind,
    addr: SocketAddr,
    dir: &Path,
) -> Result<Process> {
    let mut command = Command::new(&binaries.demo_backend);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .args(["--name", name, "--threads", "1", "--kind"])
        .arg(match kind {
            Kind::Api => "api",
            Kind::Stream => "stream",
        });
    let log = backend_log(dir, name);
    // The log is appended to across restarts: remember where this run's output starts.
    let offset = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
    let mut process = Process::spawn(name, command, &log)?;
    let line = format!("veza-demo-backend {name} listening on");
    process
        .wait_until("ready", || {
            let log = log.clone();
            let line = line.clone();
            async move {
                std::fs::read(&log)
                    .map(|text| {
                        let start = usize::try_from(offset).unwrap_or(0).min(text.len());
                        String::from_utf8_lossy(&text[start..]).contains(&line)
                    })
                    .unwrap_or(false)
            }
        })
        .await?;
    Ok(process)
}

fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// The topology's configuration: the seed's haproxy.cfg, rendered as veza-lb's TOML or
/// back as HAProxy's.
fn seed_topology(
    lb: SocketAddr,
    stats: SocketAddr,
    admin: &Path,
    metrics: Option<SocketAddr>,
    backends: &[Backend],
    settings: &Settings,
    resolvers: Option<SocketAddr>,
) -> SeedTopology {
    let servers = |kind: Kind| ServerList {
        servers: backends
            .iter()
            .filter(|b| b.kind == kind)
            .map(|b| (b.name.to_owned(), b.route()))
            .collect(),
        comment: None,
    };
    SeedTopology {
        header: "Written by `cargo xtask`: the seed's HAProxy setup on loopback.".into(),
        binds: vec![lb.to_string()],
        stats_socket: stats.to_string(),
        admin_socket: Some(format!("unix:{}", admin.display())),
        metrics_listen: metrics.map(|m| m.to_string()),
        threads: Some(settings.threads),
        shutdown_grace: "2s".into(),
        timeout_connect: "2s".into(),
        interval: duration(settings.interval),
        timeout: duration(settings.interval.min(Duration::from_secs(2))),
        fall: settings.fall,
        rise: settings.rise,
        slowstart: duration(settings.slowstart),
        api: servers(Kind::Api),
        stream: servers(Kind::Stream),
        monitor_uri: None,
        resolvers: resolvers.map(|r| r.to_string()),
    }
}

/// A client of veza-lb's (or HAProxy's) runtime API: `host:port` or `unix:/path`.
#[derive(Debug, Clone)]
pub struct StatsSocket {
    addr: String,
}

impl StatsSocket {
    /// A client for `addr`.
    pub fn new(addr: impl Into<String>) -> StatsSocket {
        StatsSocket { addr: addr.into() }
    }

    /// Sends one command line and reads the answer until the socket closes.
    pub async fn command(&self, command: &str) -> Result<String> {
        let exchange = async {
            let mut answer = Vec::new();
            let line = format!("{command}\n");
            if let Some(path) = self.addr.strip_prefix("unix:") {
                let mut socket = tokio::net::UnixStream::connect(path).await?;
                socket.write_all(line.as_bytes()).await?;
                socket.read_to_end(&mut answer).await?;
            } else {
                let mut socket = tokio::net::TcpStream::connect(&self.addr).await?;
                socket.write_all(line.as_bytes()).await?;
                socket.read_to_end(&mut answer).await?;
            }
            Ok::<_, std::io::Error>(answer)
        };
        match tokio::time::timeout(Duration::from_secs(5), exchange).await {
            Ok(Ok(answer)) => Ok(String::from_utf8_lossy(&answer).into_owned()),
            Ok(Err(e)) => fail(format!(
                "runtime API at {}: `{command}` failed: {e}",
                self.addr
            )),
            Err(_) => fail(format!(
                "runtime API at {}: no answer to `{command}` within 5s",
                self.addr
            )),
        }
    }

    /// `show stat`, parsed.
    pub async fn show_stat(&self) -> Result<StatTable> {
        StatTable::parse(&self.command("show stat").await?)
            .map_err(|e| Error::Message(format!("runtime API at {}: {e}", self.addr)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let mut ports = free_ports(8).unwrap();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 8);
    }
}
