//! Replacing the running binary under load (`veza-lb ctl upgrade`, the runtime API's
//! `upgrade`; SIGUSR2 takes the same path): five upgrades in a row with keep-alive and
//! new-connection clients and open WebSocket tunnels, then an upgrade to a binary that exits 1.
//! No request fails or is refused, each tunnel is kept or closed only after `shutdown_grace`,
//! `show info` names each new process, and the failed upgrade leaves the old one serving.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{ApiConfig, Lb, backend, free_port};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

const UPGRADES: usize = 5;
const GRACE: Duration = Duration::from_millis(1500);

fn ctl(socket: &str, command: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_veza-lb"))
        .args(["ctl", "--socket", socket, command])
        .output()
        .expect("run veza-lb ctl");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn pid(stats: &str) -> u32 {
    let (_, info) = ctl(stats, "show info");
    info.lines()
        .find_map(|l| l.strip_prefix("Pid: "))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no Pid in {info}"))
}

/// Whether a process is gone (or a zombie waiting for its new parent to reap it).
fn gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'))
    })
}

#[derive(Default)]
struct Load {
    stop: AtomicBool,
    served: AtomicU64,
    failed: AtomicU64,
    /// Keep-alive requests sent again on a new connection because the server had closed the
    /// idle one (a draining process does that; any HTTP client retries a GET then).
    resent: AtomicU64,
}

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: veza\r\n\r\n";

/// One response on `stream`: `Ok(None)` when the connection was closed before any byte of it.
async fn response(stream: &mut TcpStream) -> std::io::Result<Option<u16>> {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) if raw.is_empty() => return Ok(None),
            Err(e) if raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Ok(None);
            }
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => n,
            Err(e) => return Err(e),
        };
        raw.extend_from_slice(&chunk[..n]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or(std::io::ErrorKind::InvalidData)?;
        if raw.len() >= end + 4 + length {
            return head[9..12]
                .parse()
                .map(Some)
                .map_err(|_| std::io::ErrorKind::InvalidData.into());
        }
    }
}

async fn keep_alive_client(addr: std::net::SocketAddr, load: Arc<Load>) {
    let mut conn: Option<TcpStream> = None;
    while !load.stop.load(Ordering::Relaxed) {
        let reused = conn.is_some();
        let mut stream = match conn.take() {
            Some(stream) => stream,
            None => match TcpStream::connect(addr).await {
                Ok(stream) => stream,
                Err(_) => {
                    load.failed.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let sent = stream.write_all(REQUEST).await;
        match (sent, response(&mut stream).await) {
            (Ok(()), Ok(Some(200))) => {
                load.served.fetch_add(1, Ordering::Relaxed);
                conn = Some(stream);
            }
            (_, Ok(None)) | (Err(_), _) if reused => {
                load.resent.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                load.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn new_connection_client(addr: std::net::SocketAddr, load: Arc<Load>) {
    while !load.stop.load(Ordering::Relaxed) {
        match support::get(addr, "/").await {
            Ok(r) if r.status == 200 => load.served.fetch_add(1, Ordering::Relaxed),
            _ => load.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A WebSocket through veza-lb, echoing every 100 ms until it is closed: how long it lived
/// after `upgraded` (`None`: still open when the test ended).
async fn tunnel(
    addr: std::net::SocketAddr,
    upgraded: Arc<tokio::sync::Notify>,
    stop: Arc<Load>,
) -> Option<Duration> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .expect("websocket");
    assert!(
        matches!(ws.next().await, Some(Ok(Message::Text(_)))),
        "greeting"
    );
    upgraded.notified().await;
    let since = Instant::now();
    while !stop.stop.load(Ordering::Relaxed) {
        if ws.send(Message::text("ping")).await.is_err() {
            return Some(since.elapsed());
        }
        match tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
            Ok(Some(Ok(_))) => {}
            _ => return Some(since.elapsed()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_upgrades_under_load_lose_nothing_and_a_broken_binary_changes_nothing() {
    let backend = backend("api-1").await;
    let web = format!("127.0.0.1:{}", free_port());
    let stats = format!("127.0.0.1:{}", free_port());
    let global = format!(
        "stats_socket = [\"unix:admin.sock\", \"{stats}\"]\nshutdown_grace = \"{}ms\"\nthreads = 2",
        GRACE.as_millis()
    );
    let config = ApiConfig::new(&[backend.addr()])
        .bind(&web)
        .global(&global)
        .render();
    // A copy of the binary the test may replace, as a deployment replaces /opt/veza/lb/veza-lb.
    let bin_dir = testkit::temp_dir();
    let exe = bin_dir.path().join("veza-lb");
    std::fs::copy(env!("CARGO_BIN_EXE_veza-lb"), &exe).expect("copy the binary");
    let mut lb = Lb::start_program(exe.to_str().expect("path"), &[], &config, &[]);
    let addr = lb.frontend_addr("veza").await;
    let admin = format!("unix:{}", lb.dir().join("admin.sock").display());

    let load = Arc::new(Load::default());
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(tokio::spawn(keep_alive_client(addr, load.clone())));
        clients.push(tokio::spawn(new_connection_client(addr, load.clone())));
    }
    let mut tunnels = Vec::new();
    let mut pids = vec![pid(&stats)];
    for round in 0..UPGRADES {
        let upgraded = Arc::new(tokio::sync::Notify::new());
        tunnels.push(tokio::spawn(tunnel(addr, upgraded.clone(), load.clone())));
        tokio::time::sleep(Duration::from_millis(400)).await;
        let (ok, answer) = ctl(&admin, "upgrade");
        upgraded.notify_waiters();
        let old = *pids.last().expect("a pid");
        assert!(ok, "upgrade {round}: {answer}");
        assert!(
            answer.starts_with(&format!("Upgraded: pid {old} -> ")),
            "{answer}"
        );
        let new: u32 = answer
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("pid");
        let deadline = Instant::now() + Duration::from_secs(5);
        while pid(&stats) != new {
            assert!(Instant::now() < deadline, "show info never named pid {new}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pids.push(new);
        // The replaced process accepts for a moment after answering (its answer must reach
        // ctl first): the next round's tunnel must land on the new one, whose grace it measures.
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let last = *pids.last().expect("a pid");

    // A new binary that exits 1: the running one keeps serving, and says why.
    std::fs::write(bin_dir.path().join("broken"), "#!/bin/sh\nexit 1\n").expect("write");
    std::fs::set_permissions(
        bin_dir.path().join("broken"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    std::fs::rename(bin_dir.path().join("broken"), &exe).expect("replace the binary");
    let (ok, answer) = ctl(&admin, "upgrade");
    assert!(!ok, "ctl upgrade exits non-zero when the upgrade fails");
    assert!(
        answer.starts_with("Upgrade failed: the new binary"),
        "{answer}"
    );
    assert!(answer.contains("exit status: 1"), "{answer}");
    assert_eq!(pid(&stats), last, "the old process still serves");
    tokio::time::sleep(Duration::from_millis(300)).await;

    load.stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let (served, failed) = (
        load.served.load(Ordering::Relaxed),
        load.failed.load(Ordering::Relaxed),
    );
    assert!(served > 1000, "{served} requests served");
    assert_eq!(
        failed, 0,
        "no request failed or was refused ({served} served)"
    );
    for (round, t) in tunnels.into_iter().enumerate() {
        if let Some(lived) = t.await.expect("tunnel") {
            assert!(
                lived >= GRACE - Duration::from_millis(200),
                "tunnel {round} closed {lived:?} after its upgrade, before shutdown_grace"
            );
        }
    }
    // Every replaced process finished and exited.
    assert!(
        lb.wait_exit().await.success(),
        "the first process exited cleanly"
    );
    let deadline = Instant::now() + GRACE + Duration::from_secs(5);
    for &old in &pids[..pids.len() - 1] {
        while !gone(old) {
            assert!(Instant::now() < deadline, "pid {old} still runs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(!gone(last), "the last one serves");
    let _ = kill(Pid::from_raw(last as i32), Signal::SIGTERM);
    println!(
        "{UPGRADES} upgrades: {served} requests, 0 failed, {} keep-alive requests resent after \
         an idle close",
        load.resent.load(Ordering::Relaxed)
    );
    drop(backend);
}
