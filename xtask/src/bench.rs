//! `cargo xtask bench`: veza-lb, HAProxy and nginx as proxies in front of the same backend,
//! driven by the same load, side by side.
//!
//! Measurement only: nothing here asserts on speed. Every proxy gets one worker thread and
//! round-robins over the same two backend ports; `/ws` goes to a `veza-demo-backend` (nginx
//! cannot greet a WebSocket). Rounds alternate between proxies and medians are reported,
//! because this machine is shared and noisy.
//!
//! tidy: long file: the peers' configurations, the load runs and the report, kept in one
//! place so a benchmark is read as one script.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{Resource, getrlimit, setrlimit};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::build::{self, Profile};
use crate::http;
use crate::topology::{self, Kind, Process, find_program};
use crate::{Error, Result, fail, parse_duration};

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rounds; each runs every proxy once, in an order that rotates.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// Length of each load run.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    duration: Duration,
    /// Concurrent connections of the load generator.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connections: u32,
    /// Idle WebSockets opened through each proxy for the memory measurement (0 skips it).
    #[arg(long = "ws", value_name = "N", default_value_t = 10_000)]
    websockets: usize,
    /// Worker threads of each proxy (veza-lb `threads`, HAProxy `nbthread`; nginx stays at
    /// one worker process).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=64))]
    threads: u32,
    /// Pin each proxy to the first `--threads` CPUs and the backends and load generators to
    /// the others, so a proxy's CPU is its own: unpinned, the scheduler may place the load
    /// generator or the backend next to one proxy and not the other (see `preempted/1k`).
    #[arg(long)]
    pin: bool,
    /// Skip counting veza-lb's heap allocations per request (a second, instrumented build).
    #[arg(long)]
    no_allocs: bool,
    /// Also write the results as JSON to FILE, for tracking.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

/// The proxies compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    VezaLb,
    Haproxy,
    Nginx,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Peer::VezaLb => "veza-lb",
            Peer::Haproxy => "haproxy",
            Peer::Nginx => "nginx",
        }
    }
}

/// A running proxy under test.
struct Proxy {
    peer: Peer,
    addr: SocketAddr,
    /// Its HTTPS listener (HTTP/2 by ALPN), when a certificate could be made.
    tls_addr: Option<SocketAddr>,
    process: Process,
}

/// A throwaway certificate for the HTTPS listeners.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    /// Certificate and key in one file, as HAProxy's `crt` wants them.
    combined: PathBuf,
}

/// Makes a self-signed certificate for `localhost` with openssl; `None` (and a note) when
/// openssl is missing or fails.
async fn make_cert(dir: &Path) -> Option<Cert> {
    let openssl = find_program("openssl")?;
    let (cert, key, combined) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("combined.pem"),
    );
    let status = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=localhost", "-days", "1", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .await
        .ok()?;
    if !status.success() {
        println!("openssl could not make a certificate: HTTP/2 over TLS skipped");
        return None;
    }
    let both = std::fs::read_to_string(&cert).ok()? + &std::fs::read_to_string(&key).ok()?;
    std::fs::write(&combined, both).ok()?;
    Some(Cert {
        cert,
        key,
        combined,
    })
}

/// The load generator found on this machine.
#[derive(Debug, Clone)]
enum LoadTool {
    Wrk(PathBuf),
    Oha(PathBuf),
}

/// One load run.
#[derive(Debug, Clone, Copy)]
struct Run {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    /// Requests completed in the run.
    requests: u64,
    /// CPU time (user + system) the proxy's processes spent per request, in microseconds.
    cpu_us_per_req: Option<f64>,
    /// Times per 1000 requests a thread of the proxy was preempted (involuntary context
    /// switches): how often the scheduler made it share its CPU.
    preempted_per_kreq: Option<f64>,
}

impl Run {
    /// Fills in what the proxy spent over this run, from readings before and after it.
    fn spent(&mut self, before: Option<Usage>, after: Option<Usage>) {
        let (Some(before), Some(after), true) = (before, after, self.requests > 0) else {
            return;
        };
        let requests = self.requests as f64;
        // Linux reports CPU time in USER_HZ, 100 per second.
        let seconds = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / 100.0;
        self.cpu_us_per_req = Some(seconds * 1e6 / requests);
        let preempted = after.preempted.saturating_sub(before.preempted) as f64;
        self.preempted_per_kreq = Some(preempted * 1000.0 / requests);
    }
}

/// Everything measured for one proxy.
#[derive(Debug, Default)]
struct Samples {
    keep_alive: Vec<Run>,
    new_conn: Vec<Run>,
    /// HTTP/2 over TLS (h2load).
    h2: Vec<Run>,
    rss_idle_kib: Option<u64>,
    rss_per_ws_bytes: Option<f64>,
    note: Option<String>,
}

/// Raises RLIMIT_NOFILE to `want` (above the hard limit only when privileged); children
/// inherit it. Returns the soft limit now in force.
fn raise_nofile(want: u64) -> u64 {
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= want {
        return soft;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok() {
        return want;
    }
    let reachable = want.min(hard);
    match setrlimit(Resource::RLIMIT_NOFILE, reachable, hard) {
        Ok(()) => reachable,
        Err(_) => soft,
    }
}

/// Runs the benchmark and prints the table.
pub async fn run(args: Args) -> Result<ExitCode> {
    let nginx = find_program("nginx");
    let haproxy = find_program("haproxy");
    let tool = match (find_program("wrk"), find_program("oha")) {
        (Some(wrk), _) => Some(LoadTool::Wrk(wrk)),
        (None, Some(oha)) => Some(LoadTool::Oha(oha)),
        (None, None) => {
            println!(
                "no load generator: install `wrk` (apt-get install wrk) or `oha` (cargo install \
                 oha); only memory is measured"
            );
            None
        }
    };
    if haproxy.is_none() {
        println!("HAProxy not found: skipped (apt-get install haproxy)");
    }
    if nginx.is_none() {
        println!("nginx not found: skipped as proxy and backend (apt-get install nginx)");
    }

    // Every WebSocket costs a descriptor in us, two in the proxy and one in the backend.
    let mut websockets = args.websockets;
    let limit = raise_nofile(2 * websockets as u64 + 4096);
    let reachable = usize::try_from(limit.saturating_sub(4096) / 2).unwrap_or(0);
    if websockets > reachable {
        println!(
            "open file limit {limit}: measuring {reachable} WebSockets instead of {websockets} \
             (raise `ulimit -Hn` for more)"
        );
        websockets = reachable;
    }

    let binaries = build::build(Profile::Release).await?;
    // Before anything is spawned: every child inherits the load's CPUs, proxies are moved.
    let pinning = if args.pin {
        let pinning = Pinning::split(args.threads as usize)?;
        pinning.pin_self()?;
        println!(
            "pinned: proxies on CPUs {}, backends and load generators on CPUs {}",
            pinning.proxies_list, pinning.load_list
        );
        Some(pinning)
    } else {
        None
    };
    let dir = tempfile::Builder::new()
        .prefix("veza-bench-")
        .tempdir()
        .map_err(Error::io("cannot create a temporary directory"))?;
    let dir = dir.path();

    // Backends: two HTTP ports and one WebSocket server.
    let ports = topology::free_ports(9)?;
    let addr = |i: usize| SocketAddr::from(([127, 0, 0, 1], ports[i]));
    let (http_backends, ws_backend) = ([addr(0), addr(1)], addr(2));
    let mut backends = Vec::new();
    let backend_kind = match &nginx {
        Some(nginx) => {
            let conf = nginx_backend_conf(dir, &http_backends, limit);
            backends.push(start_nginx(nginx, dir, "nginx-backend", &conf, &http_backends).await?);
            "nginx `return 200` (1 worker)"
        }
        None => {
            for (i, backend) in http_backends.iter().enumerate() {
                let name = format!("backend-{}", i + 1);
                backends.push(
                    topology::spawn_demo_backend(&binaries, &name, Kind::Api, *backend, dir)
                        .await?,
                );
            }
            "veza-demo-backend (1 thread each)"
        }
    };
    backends.push(
        topology::spawn_demo_backend(&binaries, "ws-backend", Kind::Api, ws_backend, dir).await?,
    );

    // Proxies.
    let maxconn = websockets + 1024;
    let h2load = find_program("h2load");
    let cert = match &h2load {
        Some(_) => make_cert(dir).await,
        None => {
            println!("h2load not found: HTTP/2 over TLS skipped (apt-get install nghttp2-client)");
            None
        }
    };
    let tls = |i: usize| cert.as_ref().map(|_| addr(i));
    let mut proxies = Vec::new();
    {
        let listen = addr(3);
        let config = dir.join("veza-lb.toml");
        let mut text = veza_lb_conf(listen, &http_backends, ws_backend, args.threads);
        if let (Some(cert), Some(tls)) = (&cert, tls(6)) {
            text = text.replace(
                "default_pool = \"http\"\n",
                &format!(
                    "default_pool = \"http\"\ntls = {{ bind = [\"{tls}\"], cert = \"{}\", key = \"{}\" }}\n",
                    cert.cert.display(),
                    cert.key.display()
                ),
            );
        }
        write(&config, &text)?;
        let mut command = Command::new(&binaries.veza_lb);
        command.arg("-c").arg(&config).args(["--log-level", "warn"]);
        let mut process = Process::spawn("veza-lb", command, &dir.join("veza-lb.log"))?;
        process.wait_listening(listen, "frontend").await?;
        proxies.push(Proxy {
            peer: Peer::VezaLb,
            addr: listen,
            tls_addr: tls(6),
            process,
        });
    }
    if let Some(haproxy) = &haproxy {
        let listen = addr(4);
        let config = dir.join("haproxy.cfg");
        write(
            &config,
            &haproxy_conf(listen, &http_backends, ws_backend, maxconn, args.threads).replace(
                "frontend bench\n",
                &match (&cert, tls(7)) {
                    (Some(cert), Some(tls)) => format!(
                        "frontend bench\n  bind {tls} ssl crt {} alpn h2,http/1.1\n",
                        cert.combined.display()
                    ),
                    _ => "frontend bench\n".to_owned(),
                },
            ),
        )?;
        let mut command = Command::new(haproxy);
        command.arg("-db").arg("-f").arg(&config);
        let mut process = Process::spawn("haproxy", command, &dir.join("haproxy.log"))?;
        process.wait_listening(listen, "frontend").await?;
        proxies.push(Proxy {
            peer: Peer::Haproxy,
            addr: listen,
            tls_addr: tls(7),
            process,
        });
    }
    if let Some(nginx) = &nginx {
        let listen = addr(5);
        let mut conf = nginx_proxy_conf(dir, listen, &http_backends, ws_backend, maxconn, limit);
        if let (Some(cert), Some(tls)) = (&cert, tls(8)) {
            conf = conf.replacen(
                &format!("    listen {listen};\n"),
                &format!(
                    "    listen {listen};\n    listen {tls} ssl http2;\n    ssl_certificate {};\n    ssl_certificate_key {};\n",
                    cert.cert.display(),
                    cert.key.display()
                ),
                1,
            );
        }
        let process = start_nginx(nginx, dir, "nginx-proxy", &conf, &[listen]).await?;
        proxies.push(Proxy {
            peer: Peer::Nginx,
            addr: listen,
            tls_addr: tls(8),
            process,
        });
    }

    if let Some(pinning) = &pinning {
        for proxy in &proxies {
            if let Some(pid) = proxy.process.pid() {
                pinning.pin_proxy(pid)?;
            }
        }
    }
    println!(
        "\nbackend: {backend_kind} on {} and {}; WebSockets: veza-demo-backend on {ws_backend}",
        http_backends[0], http_backends[1]
    );
    for proxy in &proxies {
        println!("  {:<8} http://{}", proxy.peer.name(), proxy.addr);
    }
    let mut samples: Vec<Samples> = proxies.iter().map(|_| Samples::default()).collect();

    // Memory first, on fresh processes.
    if websockets > 0 {
        println!("\nmemory: {websockets} idle WebSockets through each proxy");
        for (proxy, sample) in proxies.iter().zip(&mut samples) {
            match measure_websockets(proxy, websockets).await {
                Ok((idle, per_ws)) => {
                    println!(
                        "  {:<8} RSS {} idle, +{} per WebSocket",
                        proxy.peer.name(),
                        kib(idle as f64 * 1024.0),
                        kib(per_ws)
                    );
                    sample.rss_idle_kib = Some(idle);
                    sample.rss_per_ws_bytes = Some(per_ws);
                }
                Err(e) => {
                    println!("  {:<8} memory not measured: {e}", proxy.peer.name());
                    sample.note = Some(e.to_string());
                }
            }
        }
    }

    if let Some(tool) = &tool {
        let load = Load {
            tool: tool.clone(),
            connections: args.connections,
            duration: args.duration,
        };
        println!(
            "\nload: {} with {} connections, {:?} per run, {} rounds",
            load.tool_name(),
            args.connections,
            args.duration,
            args.rounds
        );
        // A short warm-up so the first measured run is not the one that faults pages in.
        for proxy in &proxies {
            let warm = Load {
                duration: Duration::from_secs(1),
                ..load.clone()
            };
            warm.drive(proxy.addr, false, None).await?;
        }
        let n = proxies.len();
        for round in 0..args.rounds as usize {
            for k in 0..n {
                let i = (round + k) % n;
                let proxy = &proxies[i];
                let pid = proxy.process.pid();
                let keep_alive = load.drive(proxy.addr, false, pid).await?;
                let new_conn = load.drive(proxy.addr, true, pid).await?;
                println!(
                    "  round {} {:<8} keep-alive {:>9.0} req/s p50 {} p99 {} cpu {}/req \
                     preempted {}/1k{} | new-conn {:>8.0} req/s cpu {}/req{}",
                    round + 1,
                    proxy.peer.name(),
                    keep_alive.requests_per_sec,
                    ms(keep_alive.p50_ms),
                    ms(keep_alive.p99_ms),
                    or_dash(keep_alive.cpu_us_per_req.map(us)),
                    or_dash(keep_alive.preempted_per_kreq.map(|v| format!("{v:.0}"))),
                    errors(keep_alive.errors),
                    new_conn.requests_per_sec,
                    or_dash(new_conn.cpu_us_per_req.map(us)),
                    errors(new_conn.errors),
                );
                samples[i].keep_alive.push(keep_alive);
                samples[i].new_conn.push(new_conn);
            }
        }
    }
    if let Some(h2load) = &h2load {
        println!(
            "\nHTTP/2 over TLS: h2load with {} connections x 10 streams, {:?} per run",
            args.connections, args.duration
        );
        let n = proxies.len();
        for round in 0..args.rounds as usize {
            for k in 0..n {
                let i = (round + k) % n;
                let proxy = &proxies[i];
                let Some(tls) = proxy.tls_addr else { continue };
                let run = drive_h2(
                    h2load,
                    tls,
                    args.connections,
                    args.duration,
                    proxy.process.pid(),
                )
                .await?;
                println!(
                    "  round {} {:<8} h2 {:>9.0} req/s cpu {}/req{}",
                    round + 1,
                    proxy.peer.name(),
                    run.requests_per_sec,
                    or_dash(run.cpu_us_per_req.map(us)),
                    errors(run.errors),
                );
                samples[i].h2.push(run);
            }
        }
    }

    let allocs = match (&tool, args.no_allocs) {
        (Some(tool), false) => {
            let load = Load {
                tool: tool.clone(),
                connections: args.connections,
                duration: args.duration,
            };
            let listen = SocketAddr::from(([127, 0, 0, 1], topology::free_ports(1)?[0]));
            let config = veza_lb_conf(listen, &http_backends, ws_backend, args.threads);
            match allocations_per_request(&load, dir, listen, &config).await {
                Ok(per_request) => {
                    println!(
                        "
heap allocations per keep-alive request (veza-lb, dhat): {per_request:.2}"
                    );
                    Some(per_request)
                }
                Err(e) => {
                    println!(
                        "
allocations not measured: {e}"
                    );
                    None
                }
            }
        }
        _ => None,
    };
    for proxy in &mut proxies {
        if let Some(status) = proxy.process.exited() {
            println!(
                "warning: {} exited during the benchmark ({status}); its log:\n{}",
                proxy.peer.name(),
                proxy.process.log_tail(10)
            );
        }
    }

    let rows: Vec<Row> = proxies
        .iter()
        .zip(&samples)
        .map(|(p, s)| Row::of(p.peer, s))
        .collect();
    println!("\n{}", table(&rows, &args, websockets));
    if let Some(path) = &args.json {
        let mut json = json(&rows, &args, websockets, backend_kind, tool.as_ref());
        json["veza_lb_allocations_per_request"] = serde_json::json!(allocs);
        let text = serde_json::to_string_pretty(&json)
            .map_err(|e| Error::Message(format!("cannot render JSON: {e}")))?;
        write(path, &(text + "\n"))?;
        println!("results written to {}", path.display());
    }
    drop(backends);
    Ok(ExitCode::SUCCESS)
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(Error::io(format!("cannot write {}", path.display())))
}

/// Starts nginx with `conf` (prefix `dir`), waits for every address in `listens`.
async fn start_nginx(
    nginx: &Path,
    dir: &Path,
    name: &str,
    conf: &str,
    listens: &[SocketAddr],
) -> Result<Process> {
    let path = dir.join(format!("{name}.conf"));
    write(&path, conf)?;
    std::fs::create_dir_all(dir.join(format!("{name}-temp")))
        .map_err(Error::io("cannot create nginx's temp directory"))?;
    let mut command = Command::new(nginx);
    command
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join(format!("{name}.error.log")));
    let mut process = Process::spawn(name, command, &dir.join(format!("{name}.log")))?;
    for addr in listens {
        process.wait_listening(*addr, name).await?;
    }
    Ok(process)
}

/// The part of an nginx configuration that makes it a foreground single-process user daemon.
fn nginx_main(dir: &Path, name: &str, nofile: u64, connections: usize) -> String {
    let dir = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/{name}.pid;\n\
         error_log {dir}/{name}.error.log warn;\nworker_rlimit_nofile {nofile};\n\
         events {{ worker_connections {connections}; }}\n"
    )
}

fn nginx_http_common(dir: &Path, name: &str) -> String {
    let temp = format!("{}/{name}-temp", dir.display());
    format!(
        "  access_log off;\n  default_type text/plain;\n  keepalive_requests 1000000;\n\
         \x20 client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n\
         \x20 fastcgi_temp_path {temp}/fastcgi;\n  uwsgi_temp_path {temp}/uwsgi;\n\
         \x20 scgi_temp_path {temp}/scgi;\n"
    )
}

fn nginx_backend_conf(dir: &Path, listens: &[SocketAddr; 2], nofile: u64) -> String {
    let name = "nginx-backend";
    format!(
        "{}http {{\n{}  server {{\n    listen {};\n    listen {};\n    \
         location / {{ return 200 \"ok\\n\"; }}\n  }}\n}}\n",
        nginx_main(dir, name, nofile, 8192),
        nginx_http_common(dir, name),
        listens[0],
        listens[1]
    )
}

fn nginx_proxy_conf(
    dir: &Path,
    listen: SocketAddr,
    backends: &[SocketAddr; 2],
    ws: SocketAddr,
    maxconn: usize,
    nofile: u64,
) -> String {
    let name = "nginx-proxy";
    // worker_connections counts both sides of a proxied connection.
    format!(
        "{main}http {{\n{common}\
         \x20 upstream http_pool {{ server {b1}; server {b2}; keepalive 64; \
         keepalive_requests 1000000; }}\n\
         \x20 upstream ws_pool {{ server {ws}; }}\n\
         \x20 server {{\n    listen {listen};\n\
         \x20   location / {{ proxy_pass http://http_pool; proxy_http_version 1.1; \
         proxy_set_header Connection \"\"; {NGINX_FORWARDING} }}\n\
         \x20   location /ws {{ proxy_pass http://ws_pool; proxy_http_version 1.1; \
         proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection \"upgrade\"; \
         proxy_read_timeout 1h; proxy_send_timeout 1h; }}\n  }}\n}}\n",
        main = nginx_main(dir, name, nofile, 2 * maxconn + 64),
        common = nginx_http_common(dir, name),
        b1 = backends[0],
        b2 = backends[1],
    )
}

/// The fields veza-lb adds to every request it forwards (`X-Forwarded-For`,
/// `X-Forwarded-Proto`, `Forwarded`), added by the peers too so that every proxy does the
/// same work and sends servers the same bytes.
const HAPROXY_FORWARDING: &str = "  option forwardfor\n\
     \x20 http-request set-header X-Forwarded-Proto http\n\
     \x20 http-request set-header Forwarded \"for=%[src];proto=http\"\n";
/// nginx's spelling of the same fields, for its `location /`.
const NGINX_FORWARDING: &str = "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; \
     proxy_set_header X-Forwarded-Proto $scheme; \
     proxy_set_header Forwarded \"for=$remote_addr;proto=$scheme\";";

fn haproxy_conf(
    listen: SocketAddr,
    backends: &[SocketAddr; 2],
    ws: SocketAddr,
    maxconn: usize,
    threads: u32,
) -> String {
    format!(
        "global\n  nbthread {threads}\n  maxconn {maxconn}\n\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n\
         \x20 timeout server 30s\n  timeout tunnel 1h\n\n\
         frontend bench\n  bind {listen}\n{forwarding}\
         \x20 use_backend ws if {{ path_beg /ws }}\n  default_backend http\n\n\
         backend http\n  balance roundrobin\n  server b1 {}\n  server b2 {}\n\n\
         backend ws\n  server ws {ws}\n",
        backends[0],
        backends[1],
        forwarding = HAPROXY_FORWARDING,
    )
}

fn veza_lb_conf(
    listen: SocketAddr,
    backends: &[SocketAddr; 2],
    ws: SocketAddr,
    threads: u32,
) -> String {
    format!(
        r#"# Written by `cargo xtask bench`: worker threads as HAProxy's nbthread.
[global]
threads = {threads}
shutdown_grace = "1s"

[defaults]
timeout_connect = "5s"
timeout_client = "30s"
timeout_server = "30s"
timeout_tunnel = "1h"

[[frontend]]
name = "bench"
bind = ["{listen}"]
default_pool = "http"
[[frontend.route]]
path_prefix = "/ws"
pool = "ws"

[pool.http]
balance = "roundrobin"
servers = [
  {{ name = "b1", addr = "{}" }},
  {{ name = "b2", addr = "{}" }},
]

[pool.ws]
balance = "roundrobin"
servers = [{{ name = "ws", addr = "{ws}" }}]
"#,
        backends[0], backends[1]
    )
}

/// One h2load run against an HTTPS listener, with the proxy's CPU time per request.
async fn drive_h2(
    h2load: &Path,
    addr: SocketAddr,
    connections: u32,
    duration: Duration,
    pid: Option<u32>,
) -> Result<Run> {
    let before = pid.and_then(usage);
    let output = Command::new(h2load)
        .arg(format!("-c{connections}"))
        .args(["-m10", "-t1"])
        .arg(format!("-D{}", duration.as_secs().max(1)))
        .arg(format!("https://{addr}/"))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(Error::io("cannot run h2load"))?;
    let after = pid.and_then(usage);
    let text = String::from_utf8_lossy(&output.stdout);
    let mut run = parse_h2load(&text)?;
    run.spent(before, after);
    Ok(run)
}

/// h2load's summary: `finished in 5.00s, 38421.40 req/s, ...` and
/// `requests: N total, N started, N done, N succeeded, F failed, E errored, T timeout`.
fn parse_h2load(text: &str) -> Result<Run> {
    let parsed = (|| {
        let finished = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("finished in "))?;
        let requests_per_sec = finished
            .split(", ")
            .nth(1)?
            .strip_suffix(" req/s")?
            .parse()
            .ok()?;
        let counts = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("requests: "))?;
        let count = |what: &str| -> Option<u64> {
            counts
                .split(", ")
                .find_map(|part| part.strip_suffix(what))?
                .trim()
                .parse()
                .ok()
        };
        let succeeded = count(" succeeded")?;
        let errors = count(" failed")? + count(" errored")? + count(" timeout")?;
        Some(Run {
            requests_per_sec,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
            errors,
            requests: succeeded,
            cpu_us_per_req: None,
            preempted_per_kreq: None,
        })
    })();
    parsed.ok_or_else(|| Error::Message(format!("cannot read h2load's output:\n{text}")))
}

/// Heap allocations veza-lb makes per keep-alive request: an instrumented build (feature
/// `dhat-heap`) runs two loads of different lengths; the difference in allocated blocks over
/// the difference in requests cancels start-up and per-connection allocations.
async fn allocations_per_request(
    load: &Load,
    dir: &Path,
    listen: SocketAddr,
    config: &str,
) -> Result<f64> {
    let target = build::workspace_root().join("target").join("dhat");
    println!(
        "
building veza-lb with dhat-heap (allocation counting) in {}...",
        target.display()
    );
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .current_dir(build::workspace_root())
        .args([
            "build",
            "--release",
            "-p",
            "veza-lb",
            "--features",
            "veza-lb/dhat-heap",
        ])
        .arg("--target-dir")
        .arg(&target)
        .status()
        .await
        .map_err(Error::io("cannot run cargo build"))?;
    if !status.success() {
        return fail(format!("the dhat-heap build failed ({status})"));
    }
    let binary = target.join("release").join("veza-lb");
    let path = dir.join("veza-lb-dhat.toml");
    write(&path, config)?;
    let mut runs = Vec::new();
    for seconds in [1, 3] {
        let log = dir.join(format!("veza-lb-dhat-{seconds}.log"));
        let mut command = Command::new(&binary);
        command.arg("-c").arg(&path).args(["--log-level", "warn"]);
        let mut process = Process::spawn("veza-lb (dhat)", command, &log)?;
        process.wait_listening(listen, "frontend").await?;
        let run = Load {
            duration: Duration::from_secs(seconds),
            ..load.clone()
        }
        .drive(listen, false, None)
        .await?;
        process.stop(Duration::from_secs(10)).await;
        let text = std::fs::read_to_string(&log).map_err(Error::io("cannot read the dhat log"))?;
        let blocks = dhat_blocks(&text)
            .ok_or_else(|| Error::Message(format!("no dhat totals in {}", log.display())))?;
        runs.push((run.requests, blocks));
    }
    let (r1, b1) = runs[0];
    let (r2, b2) = runs[1];
    if r2 <= r1 {
        return fail("the longer run served no more requests than the shorter one");
    }
    Ok(b2.saturating_sub(b1) as f64 / (r2 - r1) as f64)
}

/// `M` of dhat's `dhat: Total: N bytes in M blocks` (digits may be grouped with commas).
fn dhat_blocks(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.contains("dhat: Total:"))?;
    let blocks = line.split(" in ").nth(1)?.split_whitespace().next()?;
    blocks.replace(',', "").parse().ok()
}

/// What a proxy's processes have spent so far: `pid` and its direct children (an nginx
/// master's workers), every thread of each, from /proc.
#[derive(Debug, Clone, Copy)]
struct Usage {
    /// User plus system CPU time, in clock ticks.
    cpu_ticks: u64,
    /// Involuntary context switches.
    preempted: u64,
}

/// `pid` and its direct children.
fn process_tree(pid: u32) -> Vec<u32> {
    let parent = |stat: &str| -> Option<u32> {
        // Fields after the command name, which may contain spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut tree = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        tree.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter(|child| {
                    std::fs::read_to_string(format!("/proc/{child}/stat"))
                        .is_ok_and(|stat| parent(&stat) == Some(pid))
                }),
        );
    }
    tree
}

/// The threads of process `pid`.
fn threads(pid: u32) -> Vec<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn usage(pid: u32) -> Option<Usage> {
    let cpu_ticks = |stat: &str| -> Option<u64> {
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    };
    let mut total = Usage {
        cpu_ticks: 0,
        preempted: 0,
    };
    for process in process_tree(pid) {
        // A process's own stat counts all its threads' time.
        total.cpu_ticks +=
            cpu_ticks(&std::fs::read_to_string(format!("/proc/{process}/stat")).ok()?)?;
        for thread in threads(process) {
            let status = std::fs::read_to_string(format!("/proc/{process}/task/{thread}/status"));
            total.preempted += status
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
                .unwrap_or(0);
        }
    }
    Some(total)
}

/// Which CPUs the proxies run on and which the rest (backends, load generators, this
/// process) run on, for `--pin`.
struct Pinning {
    proxies: CpuSet,
    load: CpuSet,
    proxies_list: String,
    load_list: String,
}

impl Pinning {
    /// The first `threads` CPUs this process may use go to the proxies, the others to the
    /// load.
    fn split(threads: usize) -> Result<Pinning> {
        let allowed = sched_getaffinity(Pid::from_raw(0))
            .map_err(|e| Error::Message(format!("cannot read this process's CPUs: {e}")))?;
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| allowed.is_set(c).unwrap_or(false))
            .collect();
        Self::of(&cpus, threads)
    }

    /// The split of the CPUs in `cpus`.
    fn of(cpus: &[usize], threads: usize) -> Result<Pinning> {
        if cpus.len() <= threads {
            return fail(format!(
                "--pin needs more CPUs than the proxies' {threads} thread(s), to run the load \
                 apart; this process may use {} CPU(s)",
                cpus.len()
            ));
        }
        let (proxy_cpus, load_cpus) = cpus.split_at(threads);
        let set = |list: &[usize]| -> Result<CpuSet> {
            let mut set = CpuSet::new();
            for &cpu in list {
                set.set(cpu)
                    .map_err(|e| Error::Message(format!("CPU {cpu}: {e}")))?;
            }
            Ok(set)
        };
        let name = |list: &[usize]| {
            list.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        Ok(Pinning {
            proxies: set(proxy_cpus)?,
            load: set(load_cpus)?,
            proxies_list: name(proxy_cpus),
            load_list: name(load_cpus),
        })
    }

    /// Moves every thread of this process to the load's CPUs; what it spawns inherits them.
    fn pin_self(&self) -> Result<()> {
        for thread in threads(std::process::id()) {
            pin(thread, &self.load)?;
        }
        Ok(())
    }

    /// Moves every thread of a proxy (and of its child processes) to the proxies' CPUs.
    fn pin_proxy(&self, pid: u32) -> Result<()> {
        for process in process_tree(pid) {
            for thread in threads(process) {
                pin(thread, &self.proxies)?;
            }
        }
        Ok(())
    }
}

fn pin(thread: u32, cpus: &CpuSet) -> Result<()> {
    let tid = i32::try_from(thread)
        .map_err(|_| Error::Message(format!("thread id {thread} out of range")))?;
    sched_setaffinity(Pid::from_raw(tid), cpus)
        .map_err(|e| Error::Message(format!("cannot pin thread {thread}: {e}")))
}

/// RSS in KiB of a process (`VmRSS` in /proc/PID/status).
fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(Error::io(format!("cannot read {path}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error::Message(format!("no VmRSS in {path}")))
}

/// Opens `n` WebSockets through the proxy (each greeted by the backend, so the tunnel is
/// complete), measures the proxy's RSS growth, closes them. Returns (idle RSS KiB, bytes per
/// WebSocket).
async fn measure_websockets(proxy: &Proxy, n: usize) -> Result<(u64, f64)> {
    let Some(pid) = proxy.process.pid() else {
        return fail("the proxy is not running");
    };
    let before = rss_kib(pid)?;
    let addr = proxy.addr.to_string();
    let opened: Vec<Result<http::Greeted>> = futures_util::stream::iter(0..n)
        .map(|_| http::websocket(&addr, None))
        .buffer_unordered(128)
        .collect()
        .await;
    let mut sockets = Vec::with_capacity(n);
    let mut first_error = None;
    for outcome in opened {
        match outcome {
            Ok(greeted) => sockets.push(greeted.socket),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return fail(format!(
            "{} of {n} WebSockets failed to open, first: {e}",
            n - sockets.len()
        ));
    }
    // Let the proxy settle: buffers of the handshake are released, tunnels idle.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    drop(sockets);
    // Let the closes go through before the next proxy is measured.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let per_ws = (after.saturating_sub(before) as f64 * 1024.0) / n as f64;
    Ok((before, per_ws))
}

/// One load configuration.
#[derive(Debug, Clone)]
struct Load {
    tool: LoadTool,
    connections: u32,
    duration: Duration,
}

impl Load {
    fn tool_name(&self) -> &'static str {
        match self.tool {
            LoadTool::Wrk(_) => "wrk -t1",
            LoadTool::Oha(_) => "oha",
        }
    }

    /// One run against `addr`; `close` sends `Connection: close` (a new connection each
    /// request).
    async fn drive(&self, addr: SocketAddr, close: bool, pid: Option<u32>) -> Result<Run> {
        let before = pid.and_then(usage);
        let mut run = self.drive_tool(addr, close).await?;
        let after = pid.and_then(usage);
        run.spent(before, after);
        Ok(run)
    }

    async fn drive_tool(&self, addr: SocketAddr, close: bool) -> Result<Run> {
        let url = format!("http://{addr}/");
        let seconds = self.duration.as_secs().max(1);
        let mut command = match &self.tool {
            LoadTool::Wrk(wrk) => {
                let mut command = Command::new(wrk);
                command
                    .args(["-t1", "--latency"])
                    .arg(format!("-c{}", self.connections))
                    .arg(format!("-d{seconds}s"));
                if close {
                    command.args(["-H", "Connection: close"]);
                }
                command
            }
            LoadTool::Oha(oha) => {
                let mut command = Command::new(oha);
                command
                    .args(["--no-tui", "--json"])
                    .arg("-c")
                    .arg(self.connections.to_string())
                    .arg("-z")
                    .arg(format!("{seconds}s"));
                if close {
                    command.arg("--disable-keepalive");
                }
                command
            }
        };
        let output = command
            .arg(&url)
            .kill_on_drop(true)
            .output()
            .await
            .map_err(Error::io(format!("cannot run {}", self.tool_name())))?;
        let text = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return fail(format!(
                "{} against {url} failed ({}): {}{}",
                self.tool_name(),
                output.status,
                text,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        match self.tool {
            LoadTool::Wrk(_) => parse_wrk(&text),
            LoadTool::Oha(_) => parse_oha(&text),
        }
    }
}

/// A wrk duration: `523.00us`, `1.20ms`, `2.00s`, in milliseconds.
fn wrk_ms(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

fn parse_wrk(text: &str) -> Result<Run> {
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(str::trim)
    };
    let parsed = (|| {
        let requests_per_sec = field("Requests/sec:")?.parse().ok()?;
        let p50_ms = wrk_ms(field("50%")?)?;
        let p99_ms = wrk_ms(field("99%")?)?;
        let mut errors = field("Non-2xx or 3xx responses:")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if let Some(socket) = field("Socket errors:") {
            errors += socket
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
        let requests = text
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or(0);
        Some(Run {
            requests_per_sec,
            p50_ms,
            p99_ms,
            errors,
            requests,
            cpu_us_per_req: None,
            preempted_per_kreq: None,
        })
    })();
    parsed.ok_or_else(|| Error::Message(format!("cannot read wrk's output:\n{text}")))
}

fn parse_oha(text: &str) -> Result<Run> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::Message(format!("cannot read oha's JSON: {e}")))?;
    let parsed = (|| {
        let summary = &value["summary"];
        let percentiles = &value["latencyPercentiles"];
        let total = summary["total"].as_f64()?;
        let success = summary["successRate"].as_f64().unwrap_or(1.0);
        Some(Run {
            requests_per_sec: summary["requestsPerSec"].as_f64()?,
            p50_ms: percentiles["p50"].as_f64()? * 1000.0,
            p99_ms: percentiles["p99"].as_f64()? * 1000.0,
            errors: ((1.0 - success) * total).round() as u64,
            requests: total as u64,
            cpu_us_per_req: None,
            preempted_per_kreq: None,
        })
    })();
    parsed.ok_or_else(|| Error::Message("oha's JSON lacks summary or latencyPercentiles".into()))
}

fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut values: Vec<f64> = values.collect();
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The medians of one proxy.
#[derive(Debug, Clone)]
struct Row {
    peer: Peer,
    keep_alive_rps: Option<f64>,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    new_conn_rps: Option<f64>,
    cpu_us_per_req: Option<f64>,
    preempted_per_kreq: Option<f64>,
    new_conn_cpu_us_per_req: Option<f64>,
    h2_rps: Option<f64>,
    h2_cpu_us_per_req: Option<f64>,
    errors: u64,
    rss_idle_kib: Option<u64>,
    rss_per_ws_bytes: Option<f64>,
}

impl Row {
    fn of(peer: Peer, s: &Samples) -> Row {
        Row {
            peer,
            keep_alive_rps: median(s.keep_alive.iter().map(|r| r.requests_per_sec)),
            p50_ms: median(s.keep_alive.iter().map(|r| r.p50_ms)),
            p99_ms: median(s.keep_alive.iter().map(|r| r.p99_ms)),
            new_conn_rps: median(s.new_conn.iter().map(|r| r.requests_per_sec)),
            cpu_us_per_req: median(s.keep_alive.iter().filter_map(|r| r.cpu_us_per_req)),
            preempted_per_kreq: median(s.keep_alive.iter().filter_map(|r| r.preempted_per_kreq)),
            new_conn_cpu_us_per_req: median(s.new_conn.iter().filter_map(|r| r.cpu_us_per_req)),
            h2_rps: median(s.h2.iter().map(|r| r.requests_per_sec)),
            h2_cpu_us_per_req: median(s.h2.iter().filter_map(|r| r.cpu_us_per_req)),
            errors: s
                .keep_alive
                .iter()
                .chain(&s.new_conn)
                .chain(&s.h2)
                .map(|r| r.errors)
                .sum(),
            rss_idle_kib: s.rss_idle_kib,
            rss_per_ws_bytes: s.rss_per_ws_bytes,
        }
    }
}

fn ms(value: f64) -> String {
    if value < 1.0 {
        format!("{:.0}us", value * 1000.0)
    } else {
        format!("{value:.2}ms")
    }
}

fn us(value: f64) -> String {
    format!("{value:.1}us")
}

fn kib(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / 1024.0 / 1024.0)
    } else {
        format!("{:.1} KiB", bytes / 1024.0)
    }
}

fn errors(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} errors)")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

fn table(rows: &[Row], args: &Args, websockets: usize) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "medians of {} rounds, {} connections, {} worker thread(s) per proxy; memory with \
         {websockets} idle WebSockets; cpu/req: user+system time of the proxy's processes per \
         request; preempted/1k: involuntary context switches of its threads per 1000 \
         keep-alive requests; {}",
        args.rounds,
        args.connections,
        args.threads,
        if args.pin {
            "pinned: proxies and load on separate CPUs"
        } else {
            "not pinned: the scheduler places proxies and load"
        }
    );
    let header = [
        "proxy",
        "keep-alive req/s",
        "p50",
        "p99",
        "cpu/req",
        "preempted/1k",
        "new-conn req/s",
        "new-conn cpu/req",
        "h2 req/s",
        "h2 cpu/req",
        "RSS idle",
        "RSS/idle WS",
        "errors",
    ];
    let mut lines: Vec<[String; 13]> = vec![header.map(String::from)];
    for row in rows {
        lines.push([
            row.peer.name().into(),
            or_dash(row.keep_alive_rps.map(|v| format!("{v:.0}"))),
            or_dash(row.p50_ms.map(ms)),
            or_dash(row.p99_ms.map(ms)),
            or_dash(row.cpu_us_per_req.map(us)),
            or_dash(row.preempted_per_kreq.map(|v| format!("{v:.0}"))),
            or_dash(row.new_conn_rps.map(|v| format!("{v:.0}"))),
            or_dash(row.new_conn_cpu_us_per_req.map(us)),
            or_dash(row.h2_rps.map(|v| format!("{v:.0}"))),
            or_dash(row.h2_cpu_us_per_req.map(us)),
            or_dash(row.rss_idle_kib.map(|v| kib(v as f64 * 1024.0))),
            or_dash(row.rss_per_ws_bytes.map(kib)),
            row.errors.to_string(),
        ]);
    }
    let veza = rows.iter().find(|r| r.peer == Peer::VezaLb);
    for other in rows.iter().filter(|r| r.peer != Peer::VezaLb) {
        let Some(veza) = veza else { break };
        lines.push([
            format!("veza-lb/{}", other.peer.name()),
            ratio(veza.keep_alive_rps, other.keep_alive_rps),
            ratio(veza.p50_ms, other.p50_ms),
            ratio(veza.p99_ms, other.p99_ms),
            ratio(veza.cpu_us_per_req, other.cpu_us_per_req),
            String::new(),
            ratio(veza.new_conn_rps, other.new_conn_rps),
            ratio(veza.new_conn_cpu_us_per_req, other.new_conn_cpu_us_per_req),
            ratio(veza.h2_rps, other.h2_rps),
            ratio(veza.h2_cpu_us_per_req, other.h2_cpu_us_per_req),
            ratio(
                veza.rss_idle_kib.map(|v| v as f64),
                other.rss_idle_kib.map(|v| v as f64),
            ),
            ratio(veza.rss_per_ws_bytes, other.rss_per_ws_bytes),
            String::new(),
        ]);
    }
    let mut widths = [0; 13];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len());
        }
    }
    for line in &lines {
        let mut text = format!("{:<w$}", line[0], w = widths[0]);
        for (cell, w) in line.iter().zip(widths).skip(1) {
            let _ = write!(text, "  {cell:>w$}");
        }
        let _ = writeln!(out, "{}", text.trim_end());
    }
    if let (Some(veza), Some(haproxy)) = (veza, rows.iter().find(|r| r.peer == Peer::Haproxy)) {
        let verdict = |ok: Option<bool>| match ok {
            Some(true) => "met",
            Some(false) => "not met",
            None => "not measured",
        };
        let both = |a: Option<f64>, b: Option<f64>| a.zip(b);
        let _ = writeln!(
            out,
            "target vs HAProxy (same threads): keep-alive req/s >= 1.2x HAProxy: {}; p99 <= \
             HAProxy: {}; cpu/req <= 0.8x HAProxy: {}; less memory per idle WebSocket: {}",
            verdict(both(veza.keep_alive_rps, haproxy.keep_alive_rps).map(|(v, h)| v >= 1.2 * h)),
            verdict(both(veza.p99_ms, haproxy.p99_ms).map(|(v, h)| v <= h)),
            verdict(both(veza.cpu_us_per_req, haproxy.cpu_us_per_req).map(|(v, h)| v <= 0.8 * h)),
            verdict(both(veza.rss_per_ws_bytes, haproxy.rss_per_ws_bytes).map(|(v, h)| v < h)),
        );
    }
    out
}

fn json(
    rows: &[Row],
    args: &Args,
    websockets: usize,
    backend: &str,
    tool: Option<&LoadTool>,
) -> serde_json::Value {
    let proxies: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "proxy": r.peer.name(),
                "keep_alive_rps": r.keep_alive_rps,
                "p50_ms": r.p50_ms,
                "p99_ms": r.p99_ms,
                "new_conn_rps": r.new_conn_rps,
                "cpu_us_per_req": r.cpu_us_per_req,
                "preempted_per_1k_req": r.preempted_per_kreq,
                "new_conn_cpu_us_per_req": r.new_conn_cpu_us_per_req,
                "h2_rps": r.h2_rps,
                "h2_cpu_us_per_req": r.h2_cpu_us_per_req,
                "errors": r.errors,
                "rss_idle_kib": r.rss_idle_kib,
                "rss_per_idle_ws_bytes": r.rss_per_ws_bytes,
            })
        })
        .collect();
    serde_json::json!({
        "rounds": args.rounds,
        "duration_s": args.duration.as_secs_f64(),
        "connections": args.connections,
        "websockets": websockets,
        "backend": backend,
        "load_tool": tool.map(|t| match t {
            LoadTool::Wrk(_) => "wrk",
            LoadTool::Oha(_) => "oha",
        }),
        "threads_per_proxy": args.threads,
        "pinned": args.pin,
        "proxies": proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 5s test @ http://127.0.0.1:8080/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  250.11us   9.10ms   91.00%
    Req/Sec    62.81k     2.10k   66.00k    80.00%
  Latency Distribution
     50%  980.00us
     75%    1.10ms
     90%    1.30ms
     99%    2.05ms
  312345 requests in 5.00s, 30.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  62469.00
Transfer/sec:      6.00MB
";

    #[test]
    fn reads_wrk_output() {
        let run = parse_wrk(WRK).unwrap();
        assert_eq!(run.requests_per_sec, 62469.0);
        assert!((run.p50_ms - 0.98).abs() < 1e-9);
        assert!((run.p99_ms - 2.05).abs() < 1e-9);
        assert_eq!(run.errors, 7);
        assert_eq!(run.requests, 312_345);
        assert!(parse_wrk("nothing").is_err());
        assert_eq!(wrk_ms("2.00s"), Some(2000.0));
    }

    #[test]
    fn reads_oha_json() {
        let text = r#"{"summary":{"successRate":1.0,"total":5.0,"requestsPerSec":1000.5},
                      "latencyPercentiles":{"p50":0.001,"p99":0.004}}"#;
        let run = parse_oha(text).unwrap();
        assert_eq!(run.requests_per_sec, 1000.5);
        assert!((run.p99_ms - 4.0).abs() < 1e-9);
        assert_eq!(run.errors, 0);
        assert_eq!(run.requests, 5);
    }

    #[test]
    fn reads_h2load_output() {
        let text = "finished in 5.00s, 38421.40 req/s, 1.23MB/s\nrequests: 192107 total, 192171 started, 192107 done, 192100 succeeded, 5 failed, 2 errored, 0 timeout\n";
        let run = parse_h2load(text).unwrap();
        assert_eq!(run.requests_per_sec, 38421.40);
        assert_eq!((run.requests, run.errors), (192_100, 7));
        assert!(parse_h2load("nothing").is_err());
    }

    #[test]
    fn reads_dhat_totals() {
        let log = "dhat: Total:     1,234,567 bytes in 8,901 blocks\ndhat: At t-gmax: 10 bytes in 1 blocks\n";
        assert_eq!(dhat_blocks(log), Some(8901));
        assert_eq!(dhat_blocks("nothing"), None);
    }

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median([3.0, 1.0, 2.0].into_iter()), Some(2.0));
        assert_eq!(median([4.0, 1.0].into_iter()), Some(2.5));
        assert_eq!(median(std::iter::empty()), None);
        assert_eq!(ratio(Some(3.0), Some(2.0)), "1.50x");
        assert_eq!(ratio(Some(3.0), None), "-");
    }

    #[test]
    fn a_run_is_charged_what_the_proxy_spent_per_request() {
        let mut run = parse_wrk(
            "  Latency Distribution\n     50%  500.00us\n     99%    1.00ms\n  \
             200000 requests in 2.00s, 1.00MB read\nRequests/sec: 100000.00\n",
        )
        .expect("parsed");
        let before = Usage {
            cpu_ticks: 1000,
            preempted: 50,
        };
        let after = Usage {
            cpu_ticks: 1190,
            preempted: 2050,
        };
        run.spent(Some(before), Some(after));
        // 1.9 s of CPU over 200,000 requests; 2000 preemptions over 200 thousand.
        assert_eq!(run.cpu_us_per_req.map(|v| (v * 10.0).round()), Some(95.0));
        assert_eq!(run.preempted_per_kreq, Some(10.0));
        let mut unread = run;
        unread.cpu_us_per_req = None;
        unread.spent(None, Some(after));
        assert_eq!(
            unread.cpu_us_per_req, None,
            "no reading before: nothing charged"
        );
    }

    #[test]
    fn pinning_keeps_cpus_for_the_load() {
        let pinning = Pinning::of(&[0, 1, 2, 3], 1).expect("split");
        assert_eq!(
            (pinning.proxies_list.as_str(), pinning.load_list.as_str()),
            ("0", "1,2,3")
        );
        let pinning = Pinning::of(&[2, 5, 7], 2).expect("split");
        assert_eq!(
            (pinning.proxies_list.as_str(), pinning.load_list.as_str()),
            ("2,5", "7")
        );
        let too_few = Pinning::of(&[0, 1], 2).err().expect("refused");
        assert!(too_few.to_string().contains("more CPUs"), "{too_few}");
    }

    #[test]
    fn a_pinned_proxy_runs_only_on_its_cpus() {
        let allowed = sched_getaffinity(Pid::from_raw(0)).expect("affinity");
        let cpus: Vec<usize> = (0..CpuSet::count())
            .filter(|&c| allowed.is_set(c).unwrap_or(false))
            .collect();
        let mut child = std::process::Command::new("sleep")
            .arg("10")
            .spawn()
            .expect("sleep");
        let pid = child.id();
        // The last allowed CPU for the proxies (and, as a machine may have one CPU, the load).
        let last = *cpus.last().expect("a CPU");
        let pinning = Pinning::of(&[last, last], 1).ok();
        let result = pinning.as_ref().map(|p| p.pin_proxy(pid));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let _ = child.kill();
        let _ = child.wait();
        result.expect("pinning").expect("pinned");
        let list = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(str::trim);
        assert_eq!(list, Some(cpus.last().expect("a CPU").to_string().as_str()));
        let spent = usage(pid);
        assert!(spent.is_none(), "a process gone has no usage: {spent:?}");
    }
}
