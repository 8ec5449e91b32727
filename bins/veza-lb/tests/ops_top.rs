//! `veza-lb ctl top --once` against a running veza-lb: the live view's table, from the real
//! runtime API.

mod support;

use std::process::Command;

use support::{ApiConfig, HEALTH_100MS, Lb, backend, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_once_prints_frontends_servers_and_pools() {
    let a = backend("api-1").await;
    let config = ApiConfig::new(&[a.addr()])
        .global(r#"stats_socket = "127.0.0.1:0""#)
        .pool(HEALTH_100MS)
        .render();
    let mut lb = Lb::start(&config);
    let addr = lb.frontend_addr("veza").await;
    let stats = lb.runtime_api_addr().await;
    assert_eq!(get(addr, "/").await.expect("request").status, 200);

    let top_once = || {
        let out = Command::new(env!("CARGO_BIN_EXE_veza-lb"))
            .args(["ctl", "--socket", &stats, "top", "--once"])
            .output()
            .expect("run veza-lb ctl top");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The first check runs within its interval; until then the server shows `INI`.
    let mut text = top_once();
    for _ in 0..50 {
        if text.contains("L7OK") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        text = top_once();
    }
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("STATUS"),
        "{text}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("veza (frontend)") && l.contains("OPEN")),
        "{text}"
    );
    let server = lines
        .iter()
        .find(|l| l.starts_with("  api/api-1"))
        .unwrap_or_else(|| panic!("no server line:\n{text}"));
    assert!(
        server.contains(" UP") && server.contains("L7OK"),
        "{server}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("api (backend)")),
        "{text}"
    );

    // A mistyped option is refused, not ignored.
    let bad = Command::new(env!("CARGO_BIN_EXE_veza-lb"))
        .args(["ctl", "--socket", &stats, "top", "--onec"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));

    // The TCP socket is `operator` by default: ctl says which level a refused command needs.
    let refused = Command::new(env!("CARGO_BIN_EXE_veza-lb"))
        .args(["ctl", "--socket", &stats, "disable", "server", "api/api-1"])
        .output()
        .expect("run");
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&refused.stdout),
        "Permission denied\n\n"
    );
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(
        why.contains("`disable server api/api-1` needs the admin level"),
        "{why}"
    );
    drop(a);
}
