//! Running `veza-lb` as a process: the runtime, signals, reload, stop and systemd.
//!
//! - Start: the configuration is validated, then every listening address is tried before
//!   anything starts, so all ports already in use are reported at once, each at its place in
//!   the file. systemd gets `READY=1` once the listeners are bound and the first health round
//!   is scheduled.
//! - SIGHUP re-reads and validates the configuration: a bad file is refused with every error
//!   logged and the running configuration untouched. systemd sees `RELOADING=1` then
//!   `READY=1` either way (`Type=notify-reload`).
//! - SIGTERM or SIGINT stops gracefully (`STOPPING=1`); a second one stops at once.
//! - With `WATCHDOG_USEC`, `WATCHDOG=1` is sent at half that period, but only while the
//!   control task answers: a stuck event loop gets the process restarted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};

use super::discovery::{self, Discovery};
use crate::Error;
use crate::config::{Config, ConfigError, Diagnostic, Diagnostics};
use crate::listen;
use crate::observe::ProxyHandle;
use crate::process::notify::Notifier;
use crate::process::workers::Workers;
use crate::supervisor::Proxy;
use tokio::runtime::Handle;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Configuration file.
    pub config_path: PathBuf,
}

/// Loads the configuration, builds the runtime with `[global] threads` workers and runs the
/// proxy until it is stopped.
///
/// # Errors
/// The configuration is invalid or a listener cannot be bound.
pub fn run(options: &RunOptions) -> Result<(), Error> {
    let config = Config::load(&options.config_path)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    raise_open_files_limit();
    for adopted in crate::listen::adopt_inherited() {
        tracing::info!("{adopted}");
    }
    // N event loops, as HAProxy's `nbthread`: this thread's, and N-1 workers. Each is a
    // current-thread runtime, without the work-stealing machinery (and its cross-thread
    // wake-ups) of a multi-thread pool.
    let loops = config
        .global
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime { source })?;
    let workers = Workers::start(loops - 1).map_err(|source| Error::Runtime { source })?;
    // The path this binary was started from, read now: once a new binary replaces the file,
    // `/proc/self/exe` names the old one "(deleted)".
    let exe = std::env::current_exe().map_err(|source| Error::Runtime { source })?;
    let served = runtime.block_on(serve(config, &options.config_path, &exe, workers.handles()));
    drop(workers);
    served
}

/// Resolves the server names of `config` once, as a start would (`veza-lb check
/// --resolve`): each name and its address, or why one does not resolve.
///
/// # Errors
/// A sentence naming what did not resolve, or the runtime that could not start.
pub fn resolve_names(config: &Config) -> Result<Vec<(String, std::net::IpAddr)>, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let (discovery, _) = Discovery::start(config.clone()).await?;
        Ok(discovery.addresses())
    })
}

/// Raises the soft open-files limit to the hard one, as HAProxy does at start: the default soft
/// limit (1024) would cap a proxy at about 480 connections. The effective limit is in
/// `show info` (`Ulimit-n`) and sets the default `maxconn`.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::debug!("open-files limit raised from {soft} to {hard}"),
            Err(e) => {
                tracing::warn!("cannot raise the open-files limit from {soft} to {hard}: {e}")
            }
        },
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open-files limit: {e}"),
    }
}

async fn serve(config: Config, path: &Path, exe: &Path, workers: Vec<Handle>) -> Result<(), Error> {
    let notifier = Arc::new(Notifier::from_env());
    let mut signals = Signals::install()?;
    check_ports(&config, path)?;
    let status = serving_status(&config);
    let (mut discovery, config) = Discovery::start(config).await.map_err(Error::Resolve)?;
    let mut proxy = Proxy::start_on(config, workers).await?;
    Discovery::set_maintenance(&proxy.handle(), discovery.take_pending()).await;
    for addr in listen::close_unused_inherited() {
        tracing::warn!(
            "the service manager passed a socket on {addr} that no bind address of the \
             configuration uses: closed"
        );
    }
    tracing::info!(
        "veza-lb {} started, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    notifier.ready(&status);
    spawn_watchdog(notifier.clone(), proxy.handle());
    let (upgrade_tx, mut upgrade_rx) = tokio::sync::mpsc::channel(1);
    let _ = proxy.handle().upgrades.set(upgrade_tx);
    loop {
        let (requested, reply) = tokio::select! {
            signal = signals.next() => (signal, None),
            Some(reply) = upgrade_rx.recv() => (Signal::Upgrade, Some(reply)),
            round = discovery.round(), if discovery.active() => {
                apply_round(&mut proxy, round).await;
                continue;
            }
        };
        match requested {
            Signal::Reload => {
                notifier.reloading();
                let status = reload(&mut proxy, &mut discovery, path).await;
                notifier.ready(&status);
            }
            Signal::Stop => break,
            Signal::Upgrade => {
                if upgrade(&proxy, exe, &notifier, reply).await {
                    break;
                }
            }
        }
    }
    tracing::info!("stopping: no longer accepting, finishing in-flight requests");
    notifier.stopping("Stopping: finishing in-flight requests");
    let stop = proxy.shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            signal = signals.next() => match signal {
                Signal::Stop => {
                    tracing::warn!("second stop signal: stopping now");
                    break;
                }
                Signal::Reload => tracing::warn!("reload ignored: stopping"),
                Signal::Upgrade => tracing::warn!("upgrade ignored: stopping"),
            },
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the binary now at `exe` with the listeners (`upgrade::start`). Ready: hands it the
/// service (`MAINPID=`) and returns true, for this process to stop gracefully. Otherwise
/// says why and keeps serving.
async fn upgrade(
    proxy: &Proxy,
    exe: &Path,
    notifier: &Notifier,
    reply: Option<crate::observe::UpgradeRequest>,
) -> bool {
    tracing::info!("upgrade: starting {}", exe.display());
    let outcome = super::upgrade::start(proxy, exe).await;
    let done = outcome.is_ok();
    let answer = match outcome {
        Ok(pid) => {
            notifier.send(&format!(
                "MAINPID={pid}\nSTATUS=Upgraded: pid {pid} serves, pid {} finishes its requests",
                std::process::id()
            ));
            tracing::info!(
                "upgrade: pid {pid} serves; this process (pid {}) stops accepting and finishes \
                 its requests",
                std::process::id()
            );
            Ok(format!("Upgraded: pid {} -> {pid}", std::process::id()))
        }
        Err(why) => {
            tracing::error!("upgrade failed, still serving: {why}");
            Err(why)
        }
    };
    if let Some(reply) = reply {
        let _ = reply.send(answer);
        // Let the runtime API session write its answer before this process stops.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    done
}

/// Applies what a round of name resolution changed: new addresses as a reload, and the
/// maintenance of servers whose name went away or came back.
async fn apply_round(proxy: &mut Proxy, round: discovery::Round) {
    if let Some(config) = round.changed
        && let Err(e) = proxy.reload(config).await
    {
        tracing::error!("new server addresses not applied: {e}");
    }
    Discovery::set_maintenance(&proxy.handle(), round.maintenance).await;
}

/// Re-reads the file and applies it; returns the status to show in `systemctl status`.
async fn reload(proxy: &mut Proxy, discovery: &mut Discovery, path: &Path) -> String {
    tracing::info!("reloading {}", path.display());
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("reload refused, configuration unchanged:\n{e}");
            return "Reload refused: invalid configuration (see the log); serving the previous one"
                .to_owned();
        }
    };
    let config = match discovery.adopt(config).await {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("reload refused, configuration unchanged: {e}");
            return format!("Reload refused: {e}; serving the previous configuration");
        }
    };
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let status = serving_status(&config);
    match proxy.reload(config).await {
        Ok(()) => {
            Discovery::set_maintenance(&proxy.handle(), discovery.take_pending()).await;
            tracing::info!("reload complete");
            status
        }
        Err(e) => {
            let _ = discovery.take_pending();
            tracing::error!("reload failed, configuration unchanged: {e}");
            format!("Reload failed: {e}; serving the previous configuration")
        }
    }
}

/// `Serving 1 frontend, 2 pools, 4 servers`.
fn serving_status(config: &Config) -> String {
    let servers: usize = config.pools.iter().map(|p| p.servers.len()).sum();
    let plural = |n: usize, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
    format!(
        "Serving {}, {}, {}",
        plural(config.frontends.len(), "frontend"),
        plural(config.pools.len(), "pool"),
        plural(servers, "server"),
    )
}

/// Sends `WATCHDOG=1` every half watchdog period while the control task answers within that
/// period: a round trip through it proves the event loop and the pools' owner both turn.
fn spawn_watchdog(notifier: Arc<Notifier>, handle: ProxyHandle) {
    let Some(period) = notifier.watchdog_period() else {
        return;
    };
    tracing::info!("systemd watchdog on: pinging every {period:?}");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match tokio::time::timeout(period, handle.stats()).await {
                Ok(Some(_)) => notifier.watchdog(),
                Ok(None) => return, // the proxy is gone
                Err(_) => tracing::warn!(
                    "the control task did not answer within {period:?}: withholding WATCHDOG=1"
                ),
            }
        }
    });
}

/// Tries every listening address of `config` (port 0 aside) before anything starts, so that
/// every address already in use is reported at once, at its place in the file.
fn check_ports(config: &Config, path: &Path) -> Result<(), Error> {
    let failures: Vec<(String, SocketAddr, std::io::Error)> = listen::all(config)
        .into_iter()
        .filter(|(_, addr)| addr.port() != 0 && !listen::is_inherited(*addr))
        .filter_map(|(what, addr)| {
            // Same socket options as the real listeners, so TIME_WAIT leftovers do not count.
            listen::bind(addr)
                .err()
                .map(|e| (what.config_key(), addr, e))
        })
        .collect();
    if failures.is_empty() {
        return Ok(());
    }
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let diagnostics = failures
        .iter()
        .map(|(what, addr, e)| {
            Diagnostic::at(
                &origin,
                &text,
                locate_addr(&text, *addr).unwrap_or(0),
                format!("{what} cannot listen on {addr}: {}", explain_bind_error(e)),
            )
        })
        .collect();
    Err(Error::Config(ConfigError::Invalid(Diagnostics::new(
        diagnostics,
    ))))
}

/// Byte offset of the string that configures `addr` (`"127.0.0.1:8080"`), if it is written
/// that way.
fn locate_addr(text: &str, addr: SocketAddr) -> Option<usize> {
    text.find(&format!("\"{addr}\"")).map(|i| i + 1)
}

fn explain_bind_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "the address is already in use; stop the process that \
             holds this port (`ss -ltnp`) or choose another address"
            .to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied; ports below 1024 need \
             CAP_NET_BIND_SERVICE (AmbientCapabilities= in the unit) or root"
            .to_owned(),
        std::io::ErrorKind::AddrNotAvailable => {
            "this host has no such address; use one of its addresses, or 0.0.0.0".to_owned()
        }
        _ => e.to_string(),
    }
}

enum Signal {
    Reload,
    Stop,
    /// SIGUSR2, or the runtime API's `upgrade`.
    Upgrade,
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, Error> {
        let sig = |kind| signal(kind).map_err(|source| Error::Runtime { source });
        Ok(Self {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            usr2: sig(SignalKind::user_defined2())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.usr2.recv() => Signal::Upgrade,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[[frontend]]\nname = \"veza\"\nbind = [\"127.0.0.1:PORT\"]\n\
                          default_pool = \"api\"\n\n[pool.api]\n\
                          servers = [{ name = \"api-1\", addr = \"127.0.0.1:18081\" }]\n";

    #[tokio::test]
    async fn ports_in_use_are_reported_at_their_place_in_the_file() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(format!("veza-daemon-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("veza-lb.toml");
        std::fs::write(&path, CONFIG.replace("PORT", &port.to_string())).expect("write");
        let config = Config::load(&path).expect("valid");
        let err = check_ports(&config, &path).expect_err("port in use");
        let d = &err_diagnostics(&err)[0];
        assert_eq!((d.line, d.column), (3, 10));
        assert!(
            d.message.starts_with(&format!(
                "frontend `veza` cannot listen on 127.0.0.1:{port}: the address is already in use"
            )),
            "{}",
            d.message
        );
        drop(held);
        check_ports(&config, &path).expect("free again");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    fn err_diagnostics(err: &Error) -> &[Diagnostic] {
        match err {
            Error::Config(e) => e.diagnostics(),
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn status_line_counts_what_is_served() {
        let config = Config::parse(&CONFIG.replace("PORT", "0"), "t.toml").expect("valid");
        assert_eq!(
            serving_status(&config),
            "Serving 1 frontend, 1 pool, 1 server"
        );
    }
}
