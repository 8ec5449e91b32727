//! Replacing the running binary under load (`veza-lb ctl upgrade`, the runtime API's
//! `upgrade`): the new process takes the listening sockets over, the old one finishes and
//! exits, and no request fails; a new binary that cannot start leaves the old one serving and
//! says why.

mod support;

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use support::{Lb, free_port, get};
use veza_demo_backend::{BackendConfig, spawn};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_under_load_loses_no_request() {
    let backend = spawn(
        "127.0.0.1:0".parse().expect("addr"),
        BackendConfig::new("api-1"),
    )
    .await
    .expect("backend");
    let web = format!("127.0.0.1:{}", free_port());
    let stats = format!("127.0.0.1:{}", free_port());
    let config = format!(
        r#"[global]
stats_socket = ["unix:admin.sock", "{stats}"]
shutdown_grace = "5s"
threads = 2
[[frontend]]
name = "veza"
bind = ["{web}"]
default_pool = "api"
[pool.api]
servers = [{{ name = "api-1", addr = "{}" }}]
"#,
        backend.addr()
    );
    let mut lb = Lb::start(&config);
    let addr = lb.frontend_addr("veza").await;
    let admin = format!("unix:{}", lb.dir().join("admin.sock").display());
    let old = pid(&stats);

    // A new binary that cannot start (its configuration is broken): the old one keeps serving.
    lb.write_config("this is not TOML [");
    let (ok, answer) = ctl(&admin, "upgrade");
    assert!(!ok, "ctl upgrade exits non-zero on failure");
    assert!(
        answer.starts_with("Upgrade failed: the new binary"),
        "{answer}"
    );
    assert_eq!(pid(&stats), old);
    assert_eq!(get(addr, "/").await.expect("still served").status, 200);
    lb.write_config(&config);

    // Load on fresh connections while the binary is replaced.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match get(addr, "/").await {
                        Ok(r) if r.status == 200 => served.fetch_add(1, Ordering::Relaxed),
                        _ => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (ok, answer) = ctl(&admin, "upgrade");
    assert!(ok, "{answer}");
    assert!(
        answer.starts_with(&format!("Upgraded: pid {old} -> ")),
        "{answer}"
    );
    let new: u32 = answer
        .trim()
        .rsplit(' ')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("new pid");
    assert_ne!(new, old);

    // The old process finishes its requests and exits; the new one goes on serving.
    let status = lb.wait_exit().await;
    assert!(status.success(), "the old process exited cleanly: {status}");
    let before = served.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let after = served.load(Ordering::Relaxed);
    assert!(
        after > before,
        "the new process serves ({before} -> {after})"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "no request failed ({after} served)"
    );
    assert_eq!(pid(&stats), new, "show info names the process now serving");
    assert!(
        lb.lines_with("adopted listening socket").len() >= 3,
        "frontend sockets (one per loop), runtime API and stats: {:#?}",
        lb.logs()
    );
    let _ = kill(Pid::from_raw(new as i32), Signal::SIGTERM);
    drop(backend);
}
