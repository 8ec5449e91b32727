//! The runtime API (HAProxy's stats socket): a TCP or unix listener, its line protocol, and
//! the commands it runs against a [`ProxyHandle`].
//!
//! Protocol, as HAProxy's non-interactive mode: the client sends one line; `;` separates
//! several commands on it (`\;` is a literal semicolon); each answer is written in order and
//! ends with an empty line; then the connection closes. A line longer than [`MAX_LINE`] or a
//! client silent for [`IDLE_TIMEOUT`] is dropped without an answer. Unknown commands answer
//! HAProxy's `Unknown command` text with the list of commands, never an error status.
//!
//! This module also owns [`Services`]: the stats socket, the metrics listener
//! ([`crate::metrics`]) and the once-per-second ticker that turns counter totals into rates.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lb_core::AdminState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Global, StatsSocket};
use crate::counters::Counters;
use crate::stats::csv::Filter;
use crate::stats::info::ProcessInfo;
use crate::stats::{FrontendStats, StatsSnapshot, csv, servers_state};
use crate::tls::TlsCounters;
use crate::{AdminCommand, AdminError, Error, ProxyHandle, WeightChange};

/// Longest command line accepted; a longer one is dropped.
pub const MAX_LINE: usize = 16 * 1024;
/// How long a client may stay silent (or not read its answer) before it is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The observability services of a running proxy: stats socket, metrics listener, rate
/// ticker. They stop when the proxy's drain token is cancelled.
#[derive(Debug, Default)]
pub(crate) struct Services {
    stats_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
}

impl Services {
    /// Binds what `global` asks for (all or nothing) and starts serving it. The listeners
    /// run on `tracker`, so a graceful stop waits for the unix socket to be removed.
    pub(crate) fn start(
        global: &Global,
        handle: &ProxyHandle,
        stop: &CancellationToken,
        tracker: &TaskTracker,
    ) -> Result<Self, Error> {
        let stats = match &global.stats_socket {
            None => None,
            Some(StatsSocket::Tcp(addr)) => Some(StatsListener::Tcp(
                crate::frontend::bind(*addr).map_err(|source| Error::Bind {
                    what: "stats socket".to_owned(),
                    addr: *addr,
                    source,
                })?,
            )),
            Some(StatsSocket::Unix(path)) => Some(StatsListener::Unix(
                UnixSocket::bind(path, global.stats_socket_mode).map_err(|source| {
                    Error::BindPath {
                        what: "stats socket".to_owned(),
                        path: path.clone(),
                        source,
                    }
                })?,
            )),
        };
        let metrics = match global.metrics_listen {
            None => None,
            Some(addr) => {
                let listener = crate::frontend::bind(addr).map_err(|source| Error::Bind {
                    what: "metrics listener".to_owned(),
                    addr,
                    source,
                })?;
                let bound = listener.local_addr().unwrap_or(addr);
                Some((listener, bound))
            }
        };
        let source = Arc::new(StatsSource {
            handle: handle.clone(),
            stopping: stop.clone(),
            idle_pct: AtomicU8::new(100),
            threads: tokio::runtime::Handle::current().metrics().num_workers(),
        });
        tokio::spawn(tick(source.clone(), stop.clone()));
        let mut services = Services::default();
        if let Some(listener) = stats {
            if let StatsListener::Tcp(l) = &listener {
                services.stats_addr = l.local_addr().ok();
            }
            tracing::info!("runtime API listening on {}", listener.describe());
            tracker.spawn(serve(listener, source.clone(), stop.clone()));
        }
        if let Some(listener) = metrics {
            let (listener, addr) = listener;
            services.metrics_addr = Some(addr);
            tracing::info!("metrics listening on {addr}");
            tracker.spawn(crate::metrics::serve(listener, source, stop.clone()));
        }
        Ok(services)
    }

    /// The TCP address of the stats socket, with the real port when configured as 0.
    pub(crate) fn stats_addr(&self) -> Option<SocketAddr> {
        self.stats_addr
    }

    /// The address of the metrics listener, with the real port when configured as 0.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }
}

/// What the runtime API and metrics read: the proxy's handle, plus what the ticker measures.
#[derive(Debug)]
pub(crate) struct StatsSource {
    handle: ProxyHandle,
    stopping: CancellationToken,
    idle_pct: AtomicU8,
    threads: usize,
}

/// One consistent reading of everything the renderers print.
pub(crate) struct Report {
    pub(crate) frontends: Vec<FrontendStats>,
    pub(crate) snapshot: StatsSnapshot,
    pub(crate) now_unix: u64,
}

impl StatsSource {
    /// Takes a snapshot; `None` when the proxy is stopping.
    pub(crate) async fn report(&self) -> Option<Report> {
        let (frontends, snapshot) = self.handle.stats().await?;
        Some(Report {
            frontends,
            snapshot,
            now_unix: now_unix(),
        })
    }

    /// `show info` and the `haproxy_process_*` metrics.
    pub(crate) fn process_info(&self, report: &Report) -> ProcessInfo {
        let process = &self.handle.process;
        let sum = |get: fn(&Counters) -> u64| -> u64 {
            report.frontends.iter().map(|f| get(&f.counters)).sum()
        };
        let tls_sum = |get: fn(&TlsCounters) -> u64| -> u64 {
            report
                .frontends
                .iter()
                .filter_map(|f| f.tls.as_deref())
                .map(get)
                .sum()
        };
        ProcessInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            release_date: option_env!("VEZA_LB_RELEASE_DATE")
                .unwrap_or("-")
                .to_owned(),
            threads: self.threads,
            pid: std::process::id(),
            uptime: report.snapshot.uptime,
            start_unix: self
                .handle
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            current_connections: Counters::get(&process.cur_sessions),
            total_connections: Counters::get(&process.total_sessions),
            total_requests: sum(|c| Counters::get(&c.requests)),
            connection_rate: process.session_rate.per_second(),
            max_connection_rate: process.session_rate.max(),
            idle_pct: self.idle_pct.load(Relaxed),
            node: fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            stopping: self.stopping.is_cancelled(),
            total_bytes_out: sum(|c| Counters::get(&c.bytes_out)),
            current_tls_connections: tls_sum(|t| TlsCounters::get(&t.current)),
            total_tls_connections: tls_sum(|t| TlsCounters::get(&t.sessions)),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Once per second: turns every counter set's totals into rates, and measures `Idle_pct`.
/// The hot path never pays for rates.
async fn tick(source: Arc<StatsSource>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = Instant::now();
    let mut cpu = cpu_ticks();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some((frontends, snapshot)) = source.handle.stats().await else {
            return;
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(last);
        last = now;
        let unix = now_unix();
        source.handle.process.tick(elapsed, unix);
        for fe in &frontends {
            fe.counters.tick(elapsed, unix);
        }
        for pool in &snapshot.pools {
            pool.counters.tick(elapsed, unix);
            for server in &pool.servers {
                server.counters.tick(elapsed, unix);
            }
        }
        let now_cpu = cpu_ticks();
        if let (Some(before), Some(after)) = (cpu, now_cpu) {
            // Linux reports CPU time in USER_HZ, 100 per second on every supported target.
            let busy = after.saturating_sub(before) as f64 / 100.0;
            let capacity = elapsed.as_secs_f64() * source.threads.max(1) as f64;
            let idle = 100.0 - 100.0 * busy / capacity.max(f64::EPSILON);
            source.idle_pct.store(idle.clamp(0.0, 100.0) as u8, Relaxed);
        }
        cpu = now_cpu;
    }
}

/// User plus system CPU time of this process, in clock ticks (Linux `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may itself contain spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

enum StatsListener {
    Tcp(TcpListener),
    Unix(UnixSocket),
}

impl StatsListener {
    fn describe(&self) -> String {
        match self {
            Self::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| a.to_string()),
            Self::Unix(u) => format!("unix:{}", u.path.display()),
        }
    }
}

/// A unix stats socket, created with its final permissions under a temporary name and renamed
/// into place, so it replaces a previous instance's socket atomically and is never reachable
/// with looser permissions at its real path.
struct UnixSocket {
    listener: UnixListener,
    path: PathBuf,
    /// Device and inode of the socket file, to remove it at exit only if it is still ours.
    identity: (u64, u64),
}

impl UnixSocket {
    fn bind(path: &Path, mode: u32) -> io::Result<Self> {
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        let mut tmp_name = name.to_os_string();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = fs::remove_file(&tmp);
        let std_listener = std::os::unix::net::UnixListener::bind(&tmp)?;
        let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))
            .and_then(|()| fs::rename(&tmp, path));
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        std_listener.set_nonblocking(true)?;
        let meta = fs::metadata(path)?;
        Ok(Self {
            listener: UnixListener::from_std(std_listener)?,
            path: path.to_owned(),
            identity: (meta.dev(), meta.ino()),
        })
    }

    fn remove(&self) {
        // A newer instance may have replaced the socket: leave its file alone.
        if fs::metadata(&self.path).is_ok_and(|m| (m.dev(), m.ino()) == self.identity) {
            let _ = fs::remove_file(&self.path);
        }
    }
}

async fn serve(listener: StatsListener, source: Arc<StatsSource>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            r = accept(&listener) => r,
            () = stop.cancelled() => break,
        };
        match accepted {
            Ok(Client::Tcp(stream)) => {
                let source = source.clone();
                tokio::spawn(async move { serve_client(stream, &source).await });
            }
            Ok(Client::Unix(stream)) => {
                let source = source.clone();
                tokio::spawn(async move { serve_client(stream, &source).await });
            }
            Err(e) => {
                tracing::warn!("runtime API accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    if let StatsListener::Unix(socket) = &listener {
        socket.remove();
    }
}

enum Client {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &StatsListener) -> io::Result<Client> {
    match listener {
        StatsListener::Tcp(l) => Ok(Client::Tcp(l.accept().await?.0)),
        StatsListener::Unix(u) => Ok(Client::Unix(u.listener.accept().await?.0)),
    }
}

async fn serve_client<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, source: &StatsSource) {
    let line = match read_line(&mut stream, MAX_LINE, IDLE_TIMEOUT).await {
        Ok(line) => line,
        Err(why) => {
            tracing::debug!("runtime API client dropped: {why:?}");
            return;
        }
    };
    for command in split_commands(&line) {
        let command = parse(&command);
        if command == Command::Quit {
            break;
        }
        let answer = execute(command, source).await;
        let written = timeout(IDLE_TIMEOUT, stream.write_all(answer.as_bytes())).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
    let _ = timeout(IDLE_TIMEOUT, stream.shutdown()).await;
}

/// Why a client was dropped before its line was complete.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Dropped {
    /// The line exceeded the limit.
    TooLong,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// The client closed without sending anything, or the socket failed.
    Closed,
}

/// Reads one command line (without its `\n` or `\r\n`); a last line without a newline counts
/// when the client half-closes.
pub(crate) async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    idle: Duration,
) -> Result<String, Dropped> {
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 4096];
    loop {
        let n = match timeout(idle, reader.read(&mut chunk)).await {
            Err(_) => return Err(Dropped::Idle),
            Ok(Err(_)) => return Err(Dropped::Closed),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            if line.is_empty() {
                return Err(Dropped::Closed);
            }
            break;
        }
        let newline = chunk[..n].iter().position(|&b| b == b'\n');
        line.extend_from_slice(&chunk[..newline.unwrap_or(n)]);
        if line.len() > max {
            return Err(Dropped::TooLong);
        }
        if newline.is_some() {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

/// Splits a line at `;`, `\;` standing for a literal semicolon. Blank commands are skipped,
/// except that a blank line is one (unknown) command, as in HAProxy.
pub(crate) fn split_commands(line: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&';') => {
                current.push(';');
                chars.next();
            }
            ';' => commands.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    commands.push(current);
    let blank_line = commands.iter().all(|c| c.trim().is_empty());
    if blank_line {
        return vec![String::new()];
    }
    commands.retain(|c| !c.trim().is_empty());
    commands
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Help(Vec<String>),
    ShowInfo,
    ShowStat(Filter),
    ShowServersState(Option<String>),
    GetWeight {
        pool: String,
        server: String,
    },
    SetState(AdminCommand),
    SetWeight {
        pool: String,
        server: String,
        weight: WeightChange,
    },
    Quit,
    /// Answer this text (a usage error found while parsing).
    Reply(String),
    /// Not a command: answer the help list.
    Unknown(Vec<String>),
}

/// The command list, as `help` prints it (HAProxy's layout: name padded to 40 columns).
const HELP: &[(&str, &str)] = &[
    (
        "disable server <bk>/<srv>",
        "disable a server for maintenance (same as 'set server <bk>/<srv> state maint')",
    ),
    (
        "enable server <bk>/<srv>",
        "enable a disabled server (same as 'set server <bk>/<srv> state ready')",
    ),
    ("get weight <bk>/<srv>", "report a server's current weight"),
    (
        "set server <bk>/<srv> [opts]",
        "change a server's state (state ready|drain|maint) or weight (weight <w>[%])",
    ),
    (
        "set weight <bk>/<srv> <w>[%]",
        "change a server's weight (same as 'set server <bk>/<srv> weight')",
    ),
    ("show info", "report information about the running process"),
    (
        "show servers state [<backend>]",
        "dump volatile server information (all or for a single backend)",
    ),
    (
        "show stat [no-maint|up]*",
        "report counters for each proxy and server (also [{<iid>|<proxy>} <type> <sid>])",
    ),
    ("help [<command>]", "list matching or all commands"),
    ("quit", "disconnect"),
];

fn help_lines<'a>(entries: impl Iterator<Item = &'a (&'a str, &'a str)>) -> String {
    entries
        .map(|(usage, what)| format!("  {usage:<40}: {what}\n"))
        .collect()
}

fn help(words: &[String]) -> String {
    let matching: Vec<_> = HELP
        .iter()
        .filter(|(usage, _)| usage.split(' ').zip(words).all(|(u, w)| u == w.as_str()))
        .collect();
    if words.is_empty() || matching.is_empty() {
        format!(
            "The following commands are valid at this level:\n{}\n",
            help_lines(HELP.iter())
        )
    } else {
        format!(
            "The following commands are valid at this level:\n{}\n",
            help_lines(matching.into_iter())
        )
    }
}

fn unknown(words: &[String]) -> String {
    let first = words.first().map(String::as_str);
    let near: Vec<_> = HELP
        .iter()
        .filter(|(usage, _)| first.is_some() && usage.split(' ').next() == first)
        .collect();
    if near.is_empty() {
        format!(
            "Unknown command. Please enter one of the following commands only:\n{}\n",
            help_lines(HELP.iter())
        )
    } else {
        format!(
            "Unknown command, but maybe one of the following ones is a better match:\n{}\n",
            help_lines(near.into_iter())
        )
    }
}

const REQUIRE_SERVER: &str = "Require 'backend/server'.";

fn pool_server(arg: Option<&String>) -> Result<(String, String), Command> {
    arg.and_then(|a| a.split_once('/'))
        .filter(|(p, s)| !p.is_empty() && !s.is_empty())
        .map(|(p, s)| (p.to_owned(), s.to_owned()))
        .ok_or_else(|| Command::Reply(REQUIRE_SERVER.to_owned()))
}

/// HAProxy's weight syntax: `N` (0..=256) or `N%` of the initial weight.
fn parse_weight(text: Option<&String>) -> Result<WeightChange, Command> {
    let text = text.map_or("", String::as_str);
    let digits_end = text
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || (i == 0 && c == '-')))
        .map_or(text.len(), |(i, _)| i);
    let (number, rest) = text.split_at(digits_end);
    let reply = |s: &str| Command::Reply(s.to_owned());
    let Ok(value) = number.parse::<i64>() else {
        return Err(reply("Empty weight string empty or preceded by garbage"));
    };
    match rest {
        "%" if value < 0 => Err(reply("Relative weight must be positive.")),
        "%" => Ok(WeightChange::Percent(value.min(25_600) as u32)),
        _ if !(0..=i64::from(lb_core::MAX_WEIGHT)).contains(&value) => Err(reply(
            "Absolute weight can only be between 0 and 256 inclusive.",
        )),
        "" => Ok(WeightChange::Absolute(value as u32)),
        _ => Err(reply("Trailing garbage in weight string")),
    }
}

fn parse_show_stat(args: &[String]) -> Command {
    let mut filter = Filter::default();
    let mut positional = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "typed" | "json" => {
                return Command::Reply(format!(
                    "'show stat {arg}' is not supported; use the CSV form ('show stat')."
                ));
            }
            "up" => filter.only_up = true,
            "no-maint" => filter.no_maint = true,
            "desc" => {}
            "domain" => {
                args.next();
            }
            _ => positional.push(arg.as_str()),
        }
    }
    match positional[..] {
        [] => {}
        [proxy, kind, sid] => {
            let (Ok(kind), Ok(sid)) = (kind.parse::<i32>(), sid.parse::<i64>()) else {
                return Command::Reply(
                    "Usage: show stat [{<iid>|<proxy>} <type> <sid>]: <type> and <sid> are \
                     numbers, -1 for all."
                        .to_owned(),
                );
            };
            filter.proxy = (proxy != "-1").then(|| proxy.to_owned());
            if kind != -1 {
                filter.types = (kind & 0x7) as u8;
            }
            filter.sid = u32::try_from(sid).ok();
        }
        _ => {
            return Command::Reply(
                "Usage: show stat [{<iid>|<proxy>} <type> <sid>] [up|no-maint]".to_owned(),
            );
        }
    }
    Command::ShowStat(filter)
}

/// Parses one command.
pub(crate) fn parse(command: &str) -> Command {
    let words: Vec<String> = command.split_whitespace().map(str::to_owned).collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    let result = match w[..] {
        ["help", ..] => Ok(Command::Help(words[1..].to_vec())),
        ["quit"] => Ok(Command::Quit),
        ["show", "info", ..] => Ok(Command::ShowInfo),
        ["show", "stat", ..] => Ok(parse_show_stat(&words[2..])),
        ["show", "servers", "state"] => Ok(Command::ShowServersState(None)),
        ["show", "servers", "state", backend] => {
            Ok(Command::ShowServersState(Some(backend.to_owned())))
        }
        ["disable" | "enable", "server", ..] => pool_server(words.get(2)).map(|(pool, server)| {
            Command::SetState(AdminCommand::SetState {
                pool,
                server,
                state: if w[0] == "disable" {
                    AdminState::Maint
                } else {
                    AdminState::Ready
                },
            })
        }),
        ["get", "weight", ..] => {
            pool_server(words.get(2)).map(|(pool, server)| Command::GetWeight { pool, server })
        }
        ["set", "weight", ..] => pool_server(words.get(2)).and_then(|(pool, server)| {
            Ok(Command::SetWeight {
                pool,
                server,
                weight: parse_weight(words.get(3))?,
            })
        }),
        ["set", "server", ..] => {
            pool_server(words.get(2)).and_then(|(pool, server)| match w.get(3..) {
                Some(["state", state]) => {
                    let state = match *state {
                        "ready" => AdminState::Ready,
                        "drain" => AdminState::Drain,
                        "maint" => AdminState::Maint,
                        _ => return Err(state_usage()),
                    };
                    Ok(Command::SetState(AdminCommand::SetState {
                        pool,
                        server,
                        state,
                    }))
                }
                Some(["state", ..]) => Err(state_usage()),
                Some(["weight", ..]) => Ok(Command::SetWeight {
                    pool,
                    server,
                    weight: parse_weight(words.get(4))?,
                }),
                _ => Err(Command::Reply(
                    "usage: set server <backend>/<server> state | weight".to_owned(),
                )),
            })
        }
        _ => Ok(Command::Unknown(words.clone())),
    };
    result.unwrap_or_else(|reply| reply)
}

fn state_usage() -> Command {
    Command::Reply("'set server <srv> state' expects 'ready', 'drain' and 'maint'.".to_owned())
}

fn reply(text: impl std::fmt::Display) -> String {
    format!("{text}\n\n")
}

const STOPPING: &str = "The proxy is shutting down.";

/// Runs one command and returns its answer, empty line included.
pub(crate) async fn execute(command: Command, source: &StatsSource) -> String {
    match command {
        Command::Help(words) => help(&words),
        Command::Unknown(words) => unknown(&words),
        Command::Reply(text) => reply(text),
        Command::Quit => String::new(),
        Command::ShowInfo => match source.report().await {
            Some(report) => source.process_info(&report).render(),
            None => reply(STOPPING),
        },
        Command::ShowStat(filter) => match source.report().await {
            Some(r) => csv::render(&r.frontends, &r.snapshot, r.now_unix, &filter),
            None => reply(STOPPING),
        },
        Command::ShowServersState(backend) => match source.report().await {
            Some(r) => servers_state::render(r.frontends.len(), &r.snapshot, backend.as_deref()),
            None => reply(STOPPING),
        },
        Command::GetWeight { pool, server } => match source.report().await {
            Some(r) => match weights(&r.snapshot, &pool, &server) {
                Ok((current, initial)) => reply(format!("{current} (initial {initial})")),
                Err(e) => reply(e),
            },
            None => reply(STOPPING),
        },
        Command::SetState(admin) => match source.handle.admin(admin).await {
            Ok(()) => "\n".to_owned(),
            Err(e) => reply(e),
        },
        Command::SetWeight {
            pool,
            server,
            weight,
        } => {
            // HAProxy's relative weights are a share of the initial weight, capped at 256.
            let absolute = match weight {
                WeightChange::Absolute(w) => Ok(w),
                WeightChange::Percent(pct) => match source.report().await {
                    Some(r) => weights(&r.snapshot, &pool, &server).map(|(_, initial)| {
                        (u32::from(initial) * pct / 100).min(u32::from(lb_core::MAX_WEIGHT))
                    }),
                    None => Err(AdminError::Stopped),
                },
            };
            let done = match absolute {
                Ok(w) => {
                    source
                        .handle
                        .admin(AdminCommand::SetWeight {
                            pool,
                            server,
                            weight: WeightChange::Absolute(w),
                        })
                        .await
                }
                Err(e) => Err(e),
            };
            match done {
                Ok(()) => "\n".to_owned(),
                Err(e) => reply(e),
            }
        }
    }
}

/// A server's current and initial (configured) weight.
fn weights(snapshot: &StatsSnapshot, pool: &str, server: &str) -> Result<(u16, u16), AdminError> {
    let p = snapshot
        .pools
        .iter()
        .find(|p| p.name == pool)
        .ok_or(AdminError::NoSuchPool)?;
    let s = p
        .servers
        .iter()
        .find(|s| s.name == server)
        .ok_or(AdminError::NoSuchServer)?;
    let initial = p.settings.server(server).map_or(s.weight, |c| c.weight);
    Ok((s.weight, initial))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn commands_split_on_semicolons_with_escapes() {
        assert_eq!(
            split_commands("show info;show stat ; help"),
            ["show info", "show stat ", " help"]
        );
        assert_eq!(split_commands(r"help a\;b"), ["help a;b"]);
        assert_eq!(split_commands("show info;"), ["show info"]);
        assert_eq!(split_commands("  "), [""]);
    }

    #[test]
    fn parses_server_commands() {
        let set = |pool: &str, server: &str, state| {
            Command::SetState(AdminCommand::SetState {
                pool: pool.to_owned(),
                server: server.to_owned(),
                state,
            })
        };
        assert_eq!(
            parse("disable server api/a1"),
            set("api", "a1", AdminState::Maint)
        );
        assert_eq!(
            parse("enable server api/a1"),
            set("api", "a1", AdminState::Ready)
        );
        assert_eq!(
            parse("set server api/a1 state drain"),
            set("api", "a1", AdminState::Drain)
        );
        assert_eq!(
            parse("set weight api/a1 50%"),
            Command::SetWeight {
                pool: "api".to_owned(),
                server: "a1".to_owned(),
                weight: WeightChange::Percent(50)
            }
        );
        assert_eq!(
            parse("set server api/a1 weight 7"),
            Command::SetWeight {
                pool: "api".to_owned(),
                server: "a1".to_owned(),
                weight: WeightChange::Absolute(7)
            }
        );
    }

    /// Error answers are HAProxy 2.6's, word for word.
    #[test]
    fn usage_errors_are_haproxy_s() {
        let reply_of = |c: &str| match parse(c) {
            Command::Reply(text) => text,
            other => panic!("{c}: {other:?}"),
        };
        assert_eq!(reply_of("disable server"), "Require 'backend/server'.");
        assert_eq!(
            reply_of("disable server api_pool"),
            "Require 'backend/server'."
        );
        assert_eq!(reply_of("set weight api_pool"), "Require 'backend/server'.");
        assert_eq!(
            reply_of("set server api/a state bogus"),
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'."
        );
        assert_eq!(
            reply_of("set server api/a state"),
            "'set server <srv> state' expects 'ready', 'drain' and 'maint'."
        );
        assert_eq!(
            reply_of("set weight api/a 300"),
            "Absolute weight can only be between 0 and 256 inclusive."
        );
        assert_eq!(
            reply_of("set weight api/a -1"),
            "Absolute weight can only be between 0 and 256 inclusive."
        );
        assert_eq!(
            reply_of("set weight api/a abc"),
            "Empty weight string empty or preceded by garbage"
        );
        assert_eq!(
            reply_of("set weight api/a -5%"),
            "Relative weight must be positive."
        );
        assert_eq!(
            reply_of("set weight api/a 5x"),
            "Trailing garbage in weight string"
        );
    }

    #[test]
    fn unknown_commands_list_the_nearest_or_all() {
        let near = unknown(&words("show bogus"));
        assert!(near.starts_with(
            "Unknown command, but maybe one of the following ones is a better match:\n"
        ));
        assert!(near.contains("\n  show info                               : report"));
        assert!(!near.contains("disable server"));
        assert!(near.ends_with("\n\n"));
        let all = unknown(&words("foo bar"));
        assert!(
            all.starts_with("Unknown command. Please enter one of the following commands only:\n")
        );
        assert!(all.contains("  disable server <bk>/<srv>"));
        assert_eq!(parse("show bogus"), Command::Unknown(words("show bogus")));
        assert_eq!(parse(""), Command::Unknown(Vec::new()));
    }

    #[test]
    fn show_stat_filters() {
        assert_eq!(
            parse("show stat -1 4 -1"),
            Command::ShowStat(Filter {
                types: Filter::SERVERS,
                ..Filter::default()
            })
        );
        assert_eq!(
            parse("show stat api 2 -1 no-maint"),
            Command::ShowStat(Filter {
                proxy: Some("api".to_owned()),
                types: Filter::BACKENDS,
                no_maint: true,
                ..Filter::default()
            })
        );
        assert!(matches!(parse("show stat json"), Command::Reply(_)));
    }

    #[tokio::test]
    async fn lines_are_limited_in_size_and_idle_time() {
        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(b"show info\r\nignored\n").await.unwrap();
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Ok("show info".to_owned())
        );

        let (mut client, mut server) = tokio::io::duplex(64 * 1024);
        client.write_all(&[b'a'; 101]).await.unwrap();
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Err(Dropped::TooLong)
        );

        let (_client, mut server) = tokio::io::duplex(1024);
        assert_eq!(
            read_line(&mut server, 100, Duration::from_millis(20)).await,
            Err(Dropped::Idle)
        );

        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"help").await.unwrap();
        drop(client);
        assert_eq!(
            read_line(&mut server, 100, Duration::from_secs(5)).await,
            Ok("help".to_owned()),
            "a last line without newline counts"
        );
    }
}
