//! Helpers for tests that run the real `veza-lb` binary.
//!
//! - [`Lb`]: a `veza-lb` process started on a configuration written to its own temporary
//!   directory, with its stderr (the logs) captured line by line; signals, log waits, the
//!   port a frontend bound, and a config rewrite for reloads.
//! - [`ApiConfig`]: the one-frontend, one-pool configuration most tests run.
//! - [`check`]: runs `veza-lb check -c FILE` and returns the exit code and output.
//! - [`HeldBackend`]: a backend that reports each request it receives and holds `/hold`
//!   requests until the test releases them, for "while a request is in flight" tests.
//! - [`AccessLine`]: one access-log line, parsed.
//! - [`UnderLoad`]: the setup of the tests of changes under load: a backend, a frontend with a
//!   plain and a TLS listener, the client mix ([`testkit::traffic`]) and WebSockets.
//!
//! The HTTP client, free ports and temporary directories come from the workspace's test kit
//! (re-exported here). Use it from a test file with `mod support;`. Waits are bounded by
//! [`WAIT`] so a broken build fails instead of hanging; no test asserts on how fast anything
//! is.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

#[allow(unused_imports)] // each test binary uses its own subset
pub use testkit::http::{Response as HttpResponse, get, parse as parse_response, request};
#[allow(unused_imports)]
pub use testkit::{TempDir, WAIT, free_port, temp_dir};

/// Signals to send with [`Lb::signal`].
#[allow(unused_imports)] // not every test binary sends signals
pub use nix::sys::signal::Signal as Sig;

/// Path of the `veza-lb` binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_veza-lb")
}

/// What `veza-lb check` answered.
#[derive(Debug)]
pub struct CheckOutput {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Writes `config` to `veza-lb.toml` in a temporary directory and runs
/// `veza-lb check -c veza-lb.toml` from that directory (so messages start with
/// `veza-lb.toml:`).
pub fn check(config: &str) -> CheckOutput {
    let dir = temp_dir();
    std::fs::write(dir.path().join("veza-lb.toml"), config).expect("write config");
    let out = Command::new(binary())
        .args(["check", "-c", "veza-lb.toml"])
        .current_dir(dir.path())
        .output()
        .expect("run veza-lb check");
    CheckOutput {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A running `veza-lb run -c veza-lb.toml`, killed on drop if still running.
#[derive(Debug)]
pub struct Lb {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    dir: TempDir,
}

impl Lb {
    /// Starts `veza-lb` on `config` with INFO logs.
    pub fn start(config: &str) -> Lb {
        Lb::start_with_env(config, &[])
    }

    /// Starts `veza-lb` on `config` with extra environment variables (`NOTIFY_SOCKET`...).
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Lb {
        Lb::start_under(&[], config, env)
    }

    /// Starts `veza-lb` on `config` through `wrapper` (e.g. `prlimit --nofile=256:256 --`).
    pub fn start_under(wrapper: &[&str], config: &str, env: &[(&str, &str)]) -> Lb {
        Lb::start_program(binary(), wrapper, config, env)
    }

    /// Starts the veza-lb binary at `program` (a copy the test may replace, for upgrades).
    pub fn start_program(
        program: &str,
        wrapper: &[&str],
        config: &str,
        env: &[(&str, &str)],
    ) -> Lb {
        Lb::spawn(program, wrapper, config, env, |_| {})
    }

    /// Starts `veza-lb` on `config` with `sockets` passed as a service manager passes them
    /// (`LISTEN_FDS` from descriptor 3; the test keeps its copies, as systemd keeps a socket
    /// unit's across the service's stops and starts).
    pub fn start_with_sockets(config: &str, sockets: &[&std::net::TcpListener]) -> Lb {
        use std::os::fd::AsFd;
        Lb::spawn(binary(), &[], config, &[], |command| {
            let mappings = (sockets.iter().enumerate())
                .map(|(i, socket)| command_fds::FdMapping {
                    parent_fd: socket.as_fd().try_clone_to_owned().expect("dup a socket"),
                    child_fd: 3 + i32::try_from(i).expect("few sockets"),
                })
                .collect();
            command
                .env("LISTEN_FDS", sockets.len().to_string())
                .env_remove("LISTEN_PID");
            command_fds::CommandFdExt::fd_mappings(command, mappings).expect("pass the sockets");
        })
    }

    fn spawn(
        program: &str,
        wrapper: &[&str],
        config: &str,
        env: &[(&str, &str)],
        adjust: impl FnOnce(&mut Command),
    ) -> Lb {
        let dir = temp_dir();
        let path = dir.path().join("veza-lb.toml");
        std::fs::write(&path, config).expect("write config");
        let mut command = match wrapper.split_first() {
            Some((wrapper, args)) => {
                let mut command = Command::new(wrapper);
                command.args(args).arg(program);
                command
            }
            None => Command::new(program),
        };
        command
            .args(["run", "-c", "veza-lb.toml", "--log-level", "info"])
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        adjust(&mut command);
        let mut child = command.spawn().expect("start veza-lb");
        let stderr = child.stderr.take().expect("stderr");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("logs").push(line);
            }
        });
        Lb { child, logs, dir }
    }

    /// The configuration file the process was started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("veza-lb.toml")
    }

    /// The process's temporary directory (its working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the configuration file atomically (write then rename), as an editor or a
    /// deployment tool would; send [`Sig::SIGHUP`] afterwards to apply it.
    pub fn write_config(&self, config: &str) {
        let tmp = self.dir.path().join("veza-lb.toml.new");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(&tmp, self.config_path()).expect("rename config");
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: Signal) {
        let pid = Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        kill(pid, signal).expect("send signal");
    }

    /// Every log line so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// Log lines so far that contain `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.logs()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }

    /// Waits until at least `n` log lines contain `needle`; returns the `n`th.
    ///
    /// # Panics
    /// After [`WAIT`], or when the process exits first, with every log line in the message.
    pub async fn wait_for_nth(&mut self, needle: &str, n: usize) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let found = self.lines_with(needle);
            if found.len() >= n {
                return found[n - 1].clone();
            }
            let exited = self.child.try_wait().expect("try_wait");
            if exited.is_some() || tokio::time::Instant::now() > deadline {
                // Let the reader thread catch up with the last lines before reporting.
                tokio::time::sleep(Duration::from_millis(50)).await;
                panic!(
                    "no {n}th log line containing {needle:?} (process status: {exited:?}); logs:\n{}",
                    self.logs().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the first log line containing `needle`.
    pub async fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_nth(needle, 1).await
    }

    /// The first address frontend `name` listens on, from its `listening on` log line (so
    /// configurations can bind port 0).
    pub async fn frontend_addr(&mut self, name: &str) -> SocketAddr {
        let needle = format!("frontend {name} listening on ");
        let line = self.wait_for(&needle).await;
        let rest = &line[line.find(&needle).expect("needle") + needle.len()..];
        let rest = rest
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let addr = rest.split_whitespace().next().unwrap_or_default();
        addr.parse()
            .unwrap_or_else(|e| panic!("bad address {addr:?} in {line:?}: {e}"))
    }

    /// The address of the first TCP runtime API socket, from its `runtime API listening on`
    /// log line (so configurations can use port 0; the line also means it accepts commands).
    pub async fn runtime_api_addr(&mut self) -> String {
        let needle = "runtime API listening on ";
        let line = self.wait_for(needle).await;
        let rest = &line[line.find(needle).expect("needle") + needle.len()..];
        let addr = rest.split_whitespace().next().unwrap_or_default();
        assert!(
            addr.parse::<SocketAddr>().is_ok(),
            "the first runtime API socket is not TCP: {line:?}"
        );
        addr.to_owned()
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    /// After [`WAIT`], with the logs.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "veza-lb did not exit; logs:\n{}",
                self.logs().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Access-log lines so far, parsed.
    pub fn access_lines(&self) -> Vec<AccessLine> {
        self.logs()
            .iter()
            .filter_map(|l| AccessLine::from_log(l))
            .collect()
    }

    /// Waits for the access-log line of `request_line` (e.g. `GET /x HTTP/1.1`).
    pub async fn wait_access(&mut self, request_line: &str) -> AccessLine {
        let line = self.wait_for(&format!("\"{request_line}\"")).await;
        AccessLine::from_log(&line).unwrap_or_else(|| panic!("not an access line: {line}"))
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Active checks every 100 ms, one result to change state: for `[pool.api]` in tests that
/// wait for servers to be UP.
pub const HEALTH_100MS: &str =
    r#"health = { path = "/health", interval = "100ms", fall = 1, rise = 1 }"#;

/// The configuration most tests run: one frontend `veza` in front of one pool `api` whose
/// servers are `api-1`, `api-2`, ... at the given addresses. Each setter appends lines to its
/// table; [`ApiConfig::render`] gives the TOML text.
#[derive(Debug)]
pub struct ApiConfig {
    servers: Vec<SocketAddr>,
    bind: String,
    global: String,
    defaults: String,
    frontend: String,
    pool: String,
    server: String,
}

impl ApiConfig {
    /// Frontend bound to `127.0.0.1:0`, servers at `servers`, nothing else set.
    pub fn new(servers: &[SocketAddr]) -> Self {
        Self {
            servers: servers.to_vec(),
            bind: "127.0.0.1:0".into(),
            global: String::new(),
            defaults: String::new(),
            frontend: String::new(),
            pool: String::new(),
            server: String::new(),
        }
    }

    /// The frontend's one bind address.
    pub fn bind(mut self, addr: &str) -> Self {
        self.bind = addr.into();
        self
    }

    /// Lines for `[global]`.
    pub fn global(mut self, lines: &str) -> Self {
        self.global = lines.into();
        self
    }

    /// Lines for `[defaults]`.
    pub fn defaults(mut self, lines: &str) -> Self {
        self.defaults = lines.into();
        self
    }

    /// Lines for the frontend's table.
    pub fn frontend(mut self, lines: &str) -> Self {
        self.frontend = lines.into();
        self
    }

    /// A TLS listener on `bind` for the frontend, serving `leaf` (HTTP/2 and HTTP/1.1).
    pub fn tls(mut self, bind: &str, leaf: &testkit::tls::Leaf) -> Self {
        self.frontend.push_str(&format!(
            "\ntls = {{ bind = [\"{bind}\"], cert = \"{}\", key = \"{}\" }}\n",
            leaf.cert.display(),
            leaf.key.display()
        ));
        self
    }

    /// Lines for `[pool.api]`.
    pub fn pool(mut self, lines: &str) -> Self {
        self.pool = lines.into();
        self
    }

    /// Keys added to every server's inline table, e.g. `maxconn = 2`.
    pub fn server(mut self, keys: &str) -> Self {
        self.server = format!(", {keys}");
        self
    }

    /// The TOML text.
    pub fn render(&self) -> String {
        let servers: Vec<String> = (self.servers.iter().enumerate())
            .map(|(i, addr)| {
                format!(
                    "{{ name = \"api-{}\", addr = \"{addr}\"{} }}",
                    i + 1,
                    self.server
                )
            })
            .collect();
        format!(
            "[global]\n{}\n[defaults]\n{}\n[[frontend]]\nname = \"veza\"\nbind = [\"{}\"]\n\
             default_pool = \"api\"\n{}\n[pool.api]\nservers = [{}]\n{}\n",
            self.global,
            self.defaults,
            self.bind,
            self.frontend,
            servers.join(", "),
            self.pool
        )
    }
}

/// A demo backend (`veza-demo-backend`, API kind) named `name`, on a free loopback port.
pub async fn backend(name: &str) -> veza_demo_backend::RunningBackend {
    veza_demo_backend::spawn(
        "127.0.0.1:0".parse().expect("addr"),
        veza_demo_backend::BackendConfig::new(name),
    )
    .await
    .expect("backend")
}

/// A backend for in-flight tests: answers every request at once with `200` and body
/// `held-backend PATH`, except paths starting with `/hold`, answered only after
/// [`HeldBackend::release`]. Each request's path is reported on [`HeldBackend::received`].
#[derive(Debug)]
pub struct HeldBackend {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<String>,
    release: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl HeldBackend {
    /// Listens on a free loopback port.
    pub async fn start() -> HeldBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, received) = mpsc::unbounded_channel();
        let release = Arc::new(Notify::new());
        let released = release.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(held_connection(stream, tx.clone(), released.clone()));
            }
        });
        HeldBackend {
            addr,
            received,
            release,
            task,
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits for the next request and returns its path.
    pub async fn received(&mut self) -> String {
        tokio::time::timeout(WAIT, self.received.recv())
            .await
            .expect("no request reached the held backend")
            .expect("held backend stopped")
    }

    /// Lets every held request (and future ones) be answered.
    pub fn release(&self) {
        // `notify_waiters` misses connections not yet waiting; a stored permit per
        // connection would only release one. Both together cover "now and later" well
        // enough for one-shot tests.
        self.release.notify_waiters();
        self.release.notify_one();
    }
}

impl Drop for HeldBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn held_connection(
    mut stream: TcpStream,
    tx: mpsc::UnboundedSender<String>,
    release: Arc<Notify>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
        let _ = tx.send(path.clone());
        if path.starts_with("/hold") {
            release.notified().await;
        }
        let body = format!("held-backend {path}\n");
        let answer = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// One access-log line, in the layout of `proxy`'s access log:
///
/// ```text
/// 127.0.0.1:51234 veza api_pool/backend-api-1 0/0/1/2/3 200 118 - - --NI 1/1/1/1/0 0/0 "GET / HTTP/1.1"
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLine {
    /// Client address and port.
    pub client: SocketAddr,
    /// Frontend name.
    pub frontend: String,
    /// Pool name.
    pub pool: String,
    /// Server name, `<NOSRV>` when none was picked.
    pub server: String,
    /// `Tq/Tw/Tc/Tr/Tt` in milliseconds, `-1` for phases that never happened.
    pub timers: [i64; 5],
    /// HTTP status sent to the client.
    pub status: u16,
    /// Bytes sent to the client.
    pub bytes: u64,
    /// Termination state, 2 characters (`--` for a normal end).
    pub termination: String,
    /// Sticky cookie state, 2 characters.
    pub cookie: String,
    /// `actconn/feconn/beconn/srv_conn`.
    pub conns: [u64; 4],
    /// Retries.
    pub retries: u32,
    /// `srv_queue/backend_queue`.
    pub queues: [u32; 2],
    /// The request line, unquoted.
    pub request_line: String,
}

impl AccessLine {
    /// Parses a log line of target `access` (human format: `... INFO access: <fields>`);
    /// `None` for any other line.
    pub fn from_log(line: &str) -> Option<AccessLine> {
        let fields = &line[line.find(" access: ")? + " access: ".len()..];
        AccessLine::parse(fields)
    }

    /// Parses the fields themselves.
    pub fn parse(fields: &str) -> Option<AccessLine> {
        let (head, request) = fields.split_once(" \"")?;
        let request_line = request.strip_suffix('"')?.to_owned();
        let f: Vec<&str> = head.split(' ').collect();
        let [
            client,
            frontend,
            pool_server,
            timers,
            status,
            bytes,
            _,
            _,
            state,
            conns,
            queues,
        ] = f.as_slice()
        else {
            return None;
        };
        let (pool, server) = pool_server.split_once('/')?;
        let timers: Vec<i64> = timers
            .split('/')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let conns: Vec<u64> = conns
            .split('/')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let (srv_queue, backend_queue) = queues.split_once('/')?;
        if state.len() != 4 || conns.len() != 5 {
            return None;
        }
        Some(AccessLine {
            client: client.parse().ok()?,
            frontend: (*frontend).to_owned(),
            pool: pool.to_owned(),
            server: server.to_owned(),
            timers: timers.try_into().ok()?,
            status: status.parse().ok()?,
            bytes: bytes.parse().ok()?,
            termination: state[..2].to_owned(),
            cookie: state[2..].to_owned(),
            conns: [conns[0], conns[1], conns[2], conns[3]],
            retries: u32::try_from(conns[4]).ok()?,
            queues: [srv_queue.parse().ok()?, backend_queue.parse().ok()?],
            request_line,
        })
    }
}

/// The setup of the tests of changes under load (upgrade, reload, stop and start): a demo
/// backend, and a frontend `veza` with a plain listener and a TLS one (`lb.test`) on fixed
/// free ports, so that the addresses outlive the process serving them.
pub struct UnderLoad {
    /// The backend every request reaches.
    pub backend: veza_demo_backend::RunningBackend,
    /// The plain listener.
    pub web: SocketAddr,
    /// The TLS listener.
    pub tls: SocketAddr,
    /// The configuration's text, `global` lines included.
    pub config: String,
    ca: testkit::tls::TestCa,
}

impl UnderLoad {
    /// Keep-alive HTTP/1.1 connections in the mix: as many as the issue's upgrade test asks.
    pub const KEEP_ALIVE: usize = 64;

    /// A backend and a configuration with `global` lines.
    pub async fn new(global: &str) -> UnderLoad {
        let backend = backend("api-1").await;
        let ca = testkit::tls::TestCa::new();
        let leaf = ca.leaf("lb", &["lb.test"], testkit::tls::Key::Ecdsa);
        let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let config = ApiConfig::new(&[backend.addr()])
            .bind(&web.to_string())
            .tls(&tls.to_string(), &leaf)
            .global(global)
            .render();
        UnderLoad {
            backend,
            web,
            tls,
            config,
            ca,
        }
    }

    /// The client mix: [`Self::KEEP_ALIVE`] keep-alive connections, 3 clients opening a
    /// connection per request, 4 HTTP/2 connections over TLS with 4 streams each.
    pub fn traffic(&self) -> testkit::traffic::Traffic {
        testkit::traffic::Traffic::start(&testkit::traffic::Mix {
            addr: self.web,
            keep_alive: Self::KEEP_ALIVE,
            new_connection: 3,
            http2: Some(testkit::traffic::Http2 {
                addr: self.tls,
                server_name: "lb.test",
                client: self.ca.client(&[b"h2"], None),
                connections: 4,
                streams: 4,
            }),
        })
    }
}

/// Opens a WebSocket through veza-lb at `addr` and keeps it echoing every 100 ms, on a task
/// of its own, until it closes or `stop` is set. Returns once it is open and greeted; the
/// task ends with the instant it saw it close (`None`: still open when stopped).
///
/// # Panics
/// When the WebSocket cannot be opened or greeted.
pub async fn websocket(
    addr: SocketAddr,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Option<tokio::time::Instant>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/ws")),
    )
    .await
    .expect("websocket opened in time")
    .expect("websocket");
    assert!(
        matches!(
            tokio::time::timeout(WAIT, ws.next()).await,
            Ok(Some(Ok(Message::Text(_))))
        ),
        "greeting"
    );
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if ws.send(Message::text("ping")).await.is_err() {
                return Some(tokio::time::Instant::now());
            }
            match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
                Ok(Some(Ok(_))) => {}
                _ => return Some(tokio::time::Instant::now()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    })
}
