//! `veza-lb check` and start-up failures, with the real binary: exit codes, the one-line
//! summary, and `FILE:LINE:COLUMN: sentence` errors on stderr.

mod support;

use support::{Lb, check};

const VALID: &str = r#"[global]
shutdown_grace = "5s"

[[frontend]]
name = "veza"
bind = ["127.0.0.1:0"]
default_pool = "api_pool"
[[frontend.route]]
path_prefix = "/stream/"
pool = "stream_pool"

[pool.api_pool]
balance = "roundrobin"
cookie = { name = "SERVERID", insert = true, indirect = true, nocache = true }
servers = [
  { name = "backend-api-1", addr = "127.0.0.1:18081" },
  { name = "backend-api-2", addr = "127.0.0.1:18082" },
]

[pool.stream_pool]
balance = "jump-hash"
hash_key = { source = "path", depth = 2 }
servers = [{ name = "stream-server-1", addr = "127.0.0.1:18091" }]
"#;

#[test]
fn a_valid_file_exits_0_with_a_one_line_summary() {
    let out = check(VALID);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout,
        "Configuration file is valid: 1 frontend, 2 pools, 3 servers\n"
    );
    assert_eq!(out.stderr, "", "no warnings expected");
}

#[test]
fn every_error_is_reported_with_file_line_column_and_the_line() {
    // Two independent mistakes: a zero `fall` and a route to a pool that does not exist.
    let broken = VALID
        .replace(
            "balance = \"roundrobin\"\n",
            "balance = \"roundrobin\"\nhealth = { path = \"/health\", fall = 0 }\n",
        )
        .replace("pool = \"stream_pool\"", "pool = \"streams\"");
    let out = check(&broken);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stdout, "", "no summary for an invalid file");
    let located: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("veza-lb.toml:"))
        .collect();
    assert_eq!(located.len(), 2, "{}", out.stderr);
    assert!(
        located[0].starts_with("veza-lb.toml:10:8: ") && located[0].contains("streams"),
        "{}",
        out.stderr
    );
    assert!(
        located[1].starts_with("veza-lb.toml:14:")
            && located[1].contains("`fall` must be at least 1"),
        "{}",
        out.stderr
    );
    // The offending line is quoted under each message, with a caret.
    assert!(
        out.stderr.contains("\n  pool = \"streams\"\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains('^'), "{}", out.stderr);
}

#[test]
fn a_missing_file_is_one_readable_line() {
    let dir = support::temp_dir();
    let out = std::process::Command::new(support::binary())
        .args(["check", "-c", "nowhere.toml"])
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("cannot read configuration file nowhere.toml: "),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn ports_in_use_at_start_are_reported_at_their_place_in_the_file() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let config = VALID.replace("127.0.0.1:0", &format!("127.0.0.1:{port}"));
    let mut lb = Lb::start(&config);
    let status = lb.wait_exit().await;
    assert_eq!(status.code(), Some(1), "{}", lb.logs().join("\n"));
    let logs = lb.logs().join("\n");
    assert!(
        logs.contains(&format!(
            "veza-lb.toml:6:10: frontend `veza` cannot listen on 127.0.0.1:{port}: the address is already in use"
        )),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("  bind = [\"127.0.0.1:{port}\"]")),
        "{logs}"
    );
    assert!(!logs.contains("started"), "nothing may start: {logs}");
}
