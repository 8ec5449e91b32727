//! Replacing the running binary under load (`veza-lb ctl upgrade`, the runtime API's
//! `upgrade`; SIGUSR2 takes the same path): twenty upgrades in a row under the client mix
//! (64 keep-alive connections, new-connection clients, HTTP/2 over TLS) with a WebSocket
//! opened before each, then an upgrade to a binary that exits 1.
//!
//! No request fails: a keep-alive connection of the draining process is closed only after an
//! answer that says `Connection: close` (or when idle at the end of the drain window, which
//! these busy clients never are), HTTP/2 connections get GOAWAY and finish every stream they
//! started, and a TLS handshake under way when the drain starts completes. Each WebSocket is
//! kept until `shutdown_grace` after its process began draining; `show info` names each new
//! process; every replaced process exits; the failed upgrade leaves the old one serving.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{Lb, UnderLoad, WAIT, free_port, websocket};
use testkit::traffic::Kind;
use tokio::time::Instant;

const UPGRADES: usize = 20;
const GRACE: Duration = Duration::from_millis(1500);
/// How early a WebSocket may see its close: the drain starts a little after `ctl upgrade`
/// returns, never before it was sent.
const SLACK: Duration = Duration::from_millis(50);

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

/// The processes upgrades started (not the test's children): killed when the test ends, even
/// when it fails, so that a failed run leaves none serving.
#[derive(Default)]
struct Started(Vec<u32>);

impl Drop for Started {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !gone(pid) {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
        }
    }
}

/// Waits until `show info` names `new`.
async fn serves(stats: &str, new: u32) {
    let deadline = Instant::now() + WAIT;
    while pid(stats) != new {
        assert!(Instant::now() < deadline, "show info never named pid {new}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_upgrades_under_the_client_mix_lose_nothing_and_a_broken_binary_changes_nothing() {
    let stats = format!("127.0.0.1:{}", free_port());
    let edge = UnderLoad::new(&format!(
        "stats_socket = [\"unix:admin.sock\", \"{stats}\"]\nshutdown_grace = \"{}ms\"\nthreads = 2",
        GRACE.as_millis()
    ))
    .await;
    // A copy of the binary the test may replace, as a deployment replaces /opt/veza/lb/veza-lb.
    let bin_dir = testkit::temp_dir();
    let exe = bin_dir.path().join("veza-lb");
    std::fs::copy(env!("CARGO_BIN_EXE_veza-lb"), &exe).expect("copy the binary");
    let mut lb = Lb::start_program(exe.to_str().expect("path"), &[], &edge.config, &[]);
    lb.frontend_addr("veza").await;
    let admin = format!("unix:{}", lb.dir().join("admin.sock").display());

    let traffic = edge.traffic();
    traffic.flows(100).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Each WebSocket and when its process began draining.
    let mut tunnels = Vec::new();
    let mut pids = vec![pid(&stats)];
    let mut started = Started::default();
    for round in 0..UPGRADES {
        let tunnel = websocket(edge.web, stop.clone()).await;
        let old = *pids.last().expect("a pid");
        let asked = Instant::now();
        let (ok, answer) = ctl(&admin, "upgrade");
        assert!(ok, "upgrade {round}: {answer}");
        assert!(
            answer.starts_with(&format!("Upgraded: pid {old} -> ")),
            "{answer}"
        );
        tunnels.push((round, asked, tunnel));
        let new: u32 = answer
            .trim()
            .rsplit(' ')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("pid");
        started.0.push(new);
        serves(&stats, new).await;
        pids.push(new);
        // The replaced process accepts for a moment after answering (its answer must reach
        // ctl first): the next round's WebSocket must land on the new one. Meanwhile the
        // clients keep the new process busy.
        traffic.flows(200).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
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
    traffic.flows(100).await;

    let report = traffic.stop().await;
    stop.store(true, Ordering::Relaxed);
    assert_eq!(report.total_failed(), 0, "{report}");
    for kind in [Kind::KeepAlive, Kind::NewConnection, Kind::Http2] {
        assert!(report.served_of(kind) > 100, "{kind:?}: {report}");
    }
    for (round, asked, tunnel) in tunnels {
        if let Some(closed) = tunnel.await.expect("tunnel") {
            let lived = closed - asked;
            assert!(
                lived >= GRACE - SLACK,
                "the WebSocket of round {round} closed {lived:?} after its upgrade was asked \
                 for, before shutdown_grace ({GRACE:?})"
            );
        }
    }
    // Every replaced process finished and exited.
    assert!(
        lb.wait_exit().await.success(),
        "the first process exited cleanly"
    );
    let deadline = Instant::now() + GRACE + WAIT;
    for &old in &pids[..pids.len() - 1] {
        while !gone(old) {
            assert!(Instant::now() < deadline, "pid {old} still runs");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(!gone(last), "the last one serves");
    let _ = kill(Pid::from_raw(last as i32), Signal::SIGTERM);
    println!("{UPGRADES} upgrades: {report}");
}
