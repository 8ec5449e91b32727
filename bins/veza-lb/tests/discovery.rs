//! Servers written `name:port`, against a real DNS server: Debian's dnsmasq on 127.0.0.1 and
//! a random port, its hosts file rewritten and reloaded (SIGHUP) by the test. Skipped with
//! the reason where dnsmasq is absent (CI installs it).

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use support::{Lb, WAIT, free_port, get, temp_dir};
use veza_demo_backend::{BackendConfig, RunningBackend};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";
const NAME: &str = "api.veza.test";

/// dnsmasq answering from `hosts` only, on 127.0.0.1:`port`; killed on drop.
struct Dns {
    child: Child,
    hosts: PathBuf,
    port: u16,
}

impl Dns {
    fn start(dir: &Path, port: u16, hosts: &str) -> Dns {
        Dns::start_with(dir, port, hosts, &[])
    }

    /// With more options (`--srv-host=...`).
    fn start_with(dir: &Path, port: u16, hosts: &str, extra: &[String]) -> Dns {
        let path = dir.join("hosts");
        std::fs::write(&path, hosts).unwrap();
        let child = Command::new(DNSMASQ)
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
            ])
            .args([
                "--listen-address=127.0.0.1",
                "--user=root",
                "--pid-file=",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--addn-hosts={}", path.display()))
            .arg("--local-ttl=1")
            // Authoritative for veza.test: a name not in `hosts` is NXDOMAIN, not REFUSED.
            .arg("--local=/veza.test/")
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dnsmasq");
        let dns = Dns {
            child,
            hosts: path,
            port,
        };
        dns.wait_answering();
        dns
    }

    /// Waits until dnsmasq answers a question.
    fn wait_answering(&self) {
        let deadline = std::time::Instant::now() + WAIT;
        let question = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03api\x04veza\x04test\x00\x00\x01\x00\x01";
        while std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| {
                s.set_read_timeout(Some(Duration::from_millis(100)))?;
                s.connect(("127.0.0.1", self.port))?;
                s.send(question)?;
                s.recv(&mut [0u8; 512])
            })
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "dnsmasq does not answer on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// New records, read again (SIGHUP).
    fn set(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn backend_at(ip: &str, port: u16, name: &str) -> RunningBackend {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    veza_demo_backend::spawn(addr, BackendConfig::new(name))
        .await
        .expect("backend")
}

/// veza-lb asking dnsmasq on `dns_port` every 300 ms, one pool `api` holding `servers`.
fn config_with(dns_port: u16, hold_nx: &str, servers: &str) -> String {
    format!(
        r#"
[global]
resolvers = ["127.0.0.1:{dns_port}"]
resolve_interval = "300ms"
resolve_timeout = "200ms"
hold_nx = "{hold_nx}"
shutdown_grace = "1s"
stats_socket = "127.0.0.1:0"
[defaults]
timeout_connect = "1s"
[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api"
[pool.api]
health = {{ path = "/health", interval = "200ms", timeout = "200ms", fall = 2, rise = 1 }}
{servers}
"#
    )
}

/// The pool's one server `api-1` written `api.veza.test:port`.
fn config(dns_port: u16, port: u16, hold_nx: &str) -> String {
    config_with(
        dns_port,
        hold_nx,
        &format!("servers = [{{ name = \"api-1\", addr = \"{NAME}:{port}\" }}]"),
    )
}

/// Clients GETting `/` back to back until [`Load::finish`].
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<(usize, usize)>>,
}

impl Load {
    /// `n` clients on `addr`.
    fn start(addr: SocketAddr, n: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..n)
            .map(|_| {
                let stop = stop.clone();
                tokio::spawn(async move {
                    let (mut sent, mut failed) = (0, 0);
                    while !stop.load(Ordering::Relaxed) {
                        sent += 1;
                        match get(addr, "/").await {
                            Ok(r) if r.status == 200 => {}
                            _ => failed += 1,
                        }
                    }
                    (sent, failed)
                })
            })
            .collect();
        Load { stop, clients }
    }

    /// Stops the clients: (requests sent, failed).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut sent, mut failed) = (0, 0);
        for client in self.clients {
            let (s, f) = client.await.unwrap();
            sent += s;
            failed += f;
        }
        (sent, failed)
    }
}

/// Waits until a GET is served by `name`.
async fn wait_served_by(addr: SocketAddr, name: &str) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        if let Ok(r) = get(addr, "/").await
            && r.header("x-served-by") == Some(name)
        {
            return start.elapsed();
        }
        assert!(start.elapsed() < WAIT, "never served by {name}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dnsmasq_present() -> bool {
    let present = Path::new(DNSMASQ).exists();
    if !present {
        println!("SKIPPED: dnsmasq is not installed (apt-get install dnsmasq); CI installs it");
    }
    present
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_record_moves_traffic_without_failing_a_request() {
    if !dnsmasq_present() {
        return;
    }
    let dir = temp_dir();
    let port = free_port();
    let old = backend_at("127.0.0.2", port, "old").await;
    let new = backend_at("127.0.0.3", port, "new").await;
    let dns = Dns::start(dir.path(), free_port(), &format!("127.0.0.2 {NAME}\n"));
    let mut lb = Lb::start(&config(dns.port, port, "30s"));
    let front = lb.frontend_addr("veza").await;
    wait_served_by(front, "old").await;

    let load = Load::start(front, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    dns.set(&format!("127.0.0.3 {NAME}\n"));
    let moved_after = wait_served_by(front, "new").await;
    lb.wait_for(&format!("{NAME} now resolves to 127.0.0.3 (was 127.0.0.2)"))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The resolver goes away for ten rounds: the last address keeps serving (for ever: the
    // rule is lb-core's, tested over hours with a fake clock).
    drop(dns);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (sent, failed) = load.finish().await;
    println!("moved after {moved_after:?}; {sent} requests, {failed} failed");
    assert!(sent > 100, "{sent}");
    assert_eq!(failed, 0, "requests failed while the address moved");
    assert_eq!(
        get(front, "/").await.unwrap().header("x-served-by"),
        Some("new")
    );
    let runtime = lb.runtime_api_addr().await;
    let stat = testkit::runtime_api::command(runtime.parse().unwrap(), "show stat")
        .await
        .unwrap();
    let row = stat.lines().find(|l| l.starts_with("api,api-1,")).unwrap();
    assert!(row.contains("127.0.0.3:"), "{row}");
    assert!(
        !lb.lines_with("cannot resolve api.veza.test: no resolver answered")
            .is_empty(),
        "the resolver outage is logged"
    );
    // The old address had no connection left once shutdown_grace was over: nothing to say
    // (the server's sessions at its new address are not the old address's).
    assert!(
        lb.lines_with("was removed").is_empty() && lb.lines_with("moved from").is_empty(),
        "{:?}",
        lb.lines_with("Server api/api-1")
    );
    let state = testkit::runtime_api::command(runtime.parse().unwrap(), "show servers state")
        .await
        .unwrap();
    let row = state.lines().find(|l| l.contains(" api-1 ")).unwrap();
    let fields: Vec<&str> = row.split(' ').collect();
    assert_eq!(
        (fields[17], fields[18], fields[19]),
        (NAME, port.to_string().as_str(), "-"),
        "srv_fqdn, srv_port, srvrecord: {row}"
    );
    drop((old, new));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_that_disappears_is_held_then_put_in_maintenance_until_it_returns() {
    if !dnsmasq_present() {
        return;
    }
    let dir = temp_dir();
    let port = free_port();
    let _backend = backend_at("127.0.0.2", port, "old").await;
    let dns = Dns::start(dir.path(), free_port(), &format!("127.0.0.2 {NAME}\n"));
    let mut lb = Lb::start(&config(dns.port, port, "1s"));
    let front = lb.frontend_addr("veza").await;
    wait_served_by(front, "old").await;
    dns.set("127.0.0.9 other.veza.test\n");
    lb.wait_for(&format!("{NAME} has not existed for 1s (NXDOMAIN)"))
        .await;
    let runtime = lb.runtime_api_addr().await;
    let stat = testkit::runtime_api::command(runtime.parse().unwrap(), "show stat")
        .await
        .unwrap();
    let row = stat.lines().find(|l| l.starts_with("api,api-1,")).unwrap();
    assert!(row.contains(",MAINT,"), "{row}");
    assert_eq!(get(front, "/").await.unwrap().status, 503);
    lb.wait_for(&format!(
        "Server api/api-1 is going DOWN for maintenance ({NAME}: NXDOMAIN)."
    ))
    .await;
    dns.set(&format!("127.0.0.2 {NAME}\n"));
    lb.wait_for(&format!("{NAME} resolves again")).await;
    lb.wait_for(&format!(
        "Server api/api-1 is leaving maintenance ({NAME} resolves again)."
    ))
    .await;
    wait_served_by(front, "old").await;
    assert!(
        lb.lines_with("by the runtime API").is_empty(),
        "discovery is not the runtime API"
    );
}

#[test]
fn a_name_that_does_not_resolve_stops_the_start() {
    if !dnsmasq_present() {
        return;
    }
    let dir = temp_dir();
    let dns = Dns::start(dir.path(), free_port(), "127.0.0.9 other.veza.test\n");
    let out = Command::new(support::binary())
        .arg("-c")
        .arg(write(dir.path(), &config(dns.port, 8080, "30s")))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("cannot resolve {NAME} (NXDOMAIN)")),
        "{stderr}"
    );
    // A name outside the resolver's domain, with nothing to forward to: it refuses.
    let outside = config(dns.port, 8080, "30s").replace(NAME, "api.elsewhere.test");
    let out = Command::new(support::binary())
        .arg("-c")
        .arg(write(dir.path(), &outside))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot resolve api.elsewhere.test (the resolver answered REFUSED)"),
        "{stderr}"
    );
}

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("veza-lb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_resolve_names_each_name_or_the_one_that_fails() {
    if !dnsmasq_present() {
        return;
    }
    let dir = temp_dir();
    let dns = Dns::start(dir.path(), free_port(), &format!("127.0.0.2 {NAME}\n"));
    let path = write(dir.path(), &config(dns.port, 8080, "30s"));
    let run = |extra: &[&str]| {
        Command::new(support::binary())
            .arg("check")
            .arg("-c")
            .arg(&path)
            .args(extra)
            .output()
            .unwrap()
    };
    // Without --resolve the name is only checked for its form: no DNS needed.
    let plain = run(&[]);
    assert!(plain.status.success());
    assert!(!String::from_utf8_lossy(&plain.stdout).contains("resolves"));
    let resolved = run(&["--resolve"]);
    assert!(
        resolved.status.success(),
        "{}",
        String::from_utf8_lossy(&resolved.stderr)
    );
    assert!(
        String::from_utf8_lossy(&resolved.stdout)
            .contains(&format!("{NAME} resolves to 127.0.0.2")),
        "{}",
        String::from_utf8_lossy(&resolved.stdout)
    );
    dns.set("127.0.0.9 other.veza.test\n");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let failed = run(&["--resolve"]);
        let stderr = String::from_utf8_lossy(&failed.stderr).into_owned();
        if !failed.status.success() {
            assert!(
                stderr.contains(&format!("cannot resolve {NAME} (NXDOMAIN)")),
                "{stderr}"
            );
            break;
        }
        // dnsmasq rereads its hosts file asynchronously after SIGHUP.
        assert!(
            std::time::Instant::now() < deadline,
            "the name kept resolving"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `show stat`'s row of `api/server`.
async fn stat_row(lb: &mut Lb, server: &str) -> String {
    let runtime = lb.runtime_api_addr().await;
    let stat = testkit::runtime_api::command(runtime.parse().unwrap(), "show stat")
        .await
        .unwrap();
    stat.lines()
        .find(|l| l.starts_with(&format!("api,{server},")))
        .unwrap_or_else(|| panic!("no row for {server}:\n{stat}"))
        .to_owned()
}

/// Waits until `server`'s row contains `needle`.
async fn wait_row(lb: &mut Lb, server: &str, needle: &str) -> String {
    let start = tokio::time::Instant::now();
    loop {
        let row = stat_row(lb, server).await;
        if row.contains(needle) {
            return row;
        }
        assert!(
            start.elapsed() < WAIT,
            "{server} never showed {needle}: {row}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_fill_template_slots_and_traffic_follows_them() {
    if !dnsmasq_present() {
        return;
    }
    let dir = temp_dir();
    let (port_a, port_b, dns_port) = (free_port(), free_port(), free_port());
    let _a = backend_at("127.0.0.2", port_a, "a").await;
    let _b = backend_at("127.0.0.3", port_b, "b").await;
    let hosts = "127.0.0.2 a.veza.test\n127.0.0.3 b.veza.test\n";
    let srv =
        |target: &str, port: u16| format!("--srv-host=_api._tcp.veza.test,{target},{port},0,10");
    let dns = Dns::start_with(dir.path(), dns_port, hosts, &[srv("a.veza.test", port_a)]);
    let config = config_with(
        dns_port,
        "1s",
        "server_template = { prefix = \"api-\", count = 3, srv = \"_api._tcp.veza.test\" }",
    );
    let mut lb = Lb::start(&config);
    let front = lb.frontend_addr("veza").await;
    wait_served_by(front, "a").await;
    let one = stat_row(&mut lb, "api-1").await;
    assert!(one.contains(&format!("127.0.0.2:{port_a}")), "{one}");
    for empty in ["api-2", "api-3"] {
        wait_row(&mut lb, empty, ",MAINT,").await;
    }
    let runtime = lb.runtime_api_addr().await;
    let state = testkit::runtime_api::command(runtime.parse().unwrap(), "show servers state")
        .await
        .unwrap();
    let slot = |name: &str| -> Vec<String> {
        let row = state
            .lines()
            .find(|l| l.contains(&format!(" {name} ")))
            .unwrap();
        row.split(' ').map(str::to_owned).collect()
    };
    assert_eq!(
        (slot("api-1")[17].as_str(), slot("api-1")[19].as_str()),
        ("a.veza.test", "_api._tcp.veza.test"),
        "srv_fqdn is the record's target, srvrecord its SRV name"
    );
    assert_eq!(
        (slot("api-2")[17].as_str(), slot("api-2")[19].as_str()),
        ("-", "_api._tcp.veza.test"),
        "an empty slot has no target"
    );
    lb.wait_for(
        "Server api/api-2 is going DOWN for maintenance (no record of _api._tcp.veza.test fills the slot).",
    )
    .await;

    let load = Load::start(front, 4);
    // A record appears: a free slot takes it, and it gets traffic.
    drop(dns);
    let both = [srv("a.veza.test", port_a), srv("b.veza.test", port_b)];
    let dns = Dns::start_with(dir.path(), dns_port, hosts, &both);
    wait_served_by(front, "b").await;
    let two = wait_row(&mut lb, "api-2", &format!("127.0.0.3:{port_b}")).await;
    assert!(!two.contains("MAINT"), "{two}");
    let filled = lb
        .wait_for("Server api/api-2 is leaving maintenance (b.veza.test of _api._tcp.veza.test).")
        .await;
    assert!(
        filled.contains("INFO"),
        "a slot filled is news, not a warning: {filled}"
    );
    // a's record goes: its slot drains into maintenance, b keeps its slot and the traffic.
    drop(dns);
    let _dns = Dns::start_with(dir.path(), dns_port, hosts, &[srv("b.veza.test", port_b)]);
    wait_row(&mut lb, "api-1", ",MAINT,").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..20 {
        assert_eq!(
            get(front, "/").await.unwrap().header("x-served-by"),
            Some("b")
        );
    }
    let (sent, failed) = load.finish().await;
    println!("{sent} requests, {failed} failed while records came and went");
    assert!(sent > 100, "{sent}");
    assert_eq!(failed, 0);
    assert!(
        stat_row(&mut lb, "api-2")
            .await
            .contains(&format!("127.0.0.3:{port_b}")),
        "b kept its slot"
    );
}
