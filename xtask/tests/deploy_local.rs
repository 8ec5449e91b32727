//! `cargo xtask deploy --inventory examples/lab-local.toml`, for real: `local:` transports into
//! directory trees under a temporary directory, `veza-provision apply --root` in each. Needs
//! root (useradd --prefix, chown); skipped otherwise. Debug binaries, never a release build.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

mod support;

use support::{binaries, workspace};

fn running_as_root() -> bool {
    support::running_as_root("useradd --prefix, chown")
}

/// Runs `xtask deploy` in `dir` (where the `local:` trees go); returns (success, stdout).
fn deploy(dir: &Path, bin: &Path, extra: &[&str]) -> (bool, String) {
    deploy_inventory("examples/lab-local.toml", dir, bin, extra)
}

/// Runs `xtask deploy` of the workspace's `inventory` in `dir`; returns (success, stdout).
fn deploy_inventory(inventory: &str, dir: &Path, bin: &Path, extra: &[&str]) -> (bool, String) {
    let inventory = workspace().join(inventory);
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("deploy")
        .arg("--inventory")
        .arg(&inventory)
        .arg("--bin-dir")
        .arg(bin)
        .args(extra)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}\n{stderr}");
    (output.status.success(), stdout)
}

/// The recap line of `host`.
fn recap<'a>(stdout: &'a str, host: &str) -> &'a str {
    let recap = stdout.rsplit("\nrecap\n").next().unwrap();
    recap
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{host} ")))
        .unwrap_or_else(|| panic!("no recap line for {host}"))
}

#[test]
fn deploys_the_lab_into_local_trees_then_changes_nothing() {
    if !running_as_root() {
        return;
    }
    let tmp = testkit::temp_dir();
    let trees = tmp.path().join("target/lab-local");
    let bin = binaries(tmp.path());

    let (ok, stdout) = deploy(tmp.path(), &bin, &[]);
    assert!(ok, "first deploy failed");
    for host in [
        "backend-api-1",
        "backend-api-2",
        "stream-server-1",
        "stream-server-2",
        "veza-lb",
    ] {
        let line = recap(&stdout, host);
        assert!(line.contains("failed=0"), "{line}");
        assert!(!line.contains("changed=0 "), "{line}");
        let tree = trees.join(host);
        let provision = tree.join("usr/local/sbin/veza-provision");
        assert_eq!(provision.metadata().unwrap().mode() & 0o7777, 0o755);
        assert!(
            tree.join(format!("var/lib/veza-deploy/roles/{host}.toml"))
                .is_file()
        );
    }

    // Binaries where the role files' ExecStart points, units rendered per instance.
    let api1 = trees.join("backend-api-1");
    assert!(
        api1.join("opt/veza/backend-api/veza-demo-backend")
            .is_file()
    );
    let unit = std::fs::read_to_string(api1.join("etc/systemd/system/veza-backend-api-1.service"))
        .unwrap();
    assert!(
        unit.contains(
            "ExecStart=/opt/veza/backend-api/veza-demo-backend --listen 127.0.0.1:28081 --name \
             backend-api-1 --kind api"
        ),
        "{unit}"
    );
    assert!(unit.contains("User=veza-api"), "{unit}");
    assert!(unit.contains("ProtectSystem=strict"), "{unit}");
    let stream2 = trees.join("stream-server-2");
    assert!(
        stream2
            .join("opt/veza/stream-server/veza-demo-backend")
            .is_file()
    );
    assert!(
        stream2
            .join("etc/systemd/system/veza-stream-server-2.service")
            .is_file()
    );
    assert!(
        std::fs::read_to_string(stream2.join("etc/passwd"))
            .unwrap()
            .contains("veza-stream:")
    );

    // veza-lb: binary, unit, and a configuration rendered from the inventory's groups.
    let lb = trees.join("veza-lb");
    assert!(lb.join("opt/veza/lb/veza-lb").is_file());
    assert!(lb.join("etc/systemd/system/veza-lb.service").is_file());
    let config_path = lb.join("etc/veza-lb/veza-lb.toml");
    let config = std::fs::read_to_string(&config_path).unwrap();
    for server in [
        r#"{ name = "backend-api-1", addr = "127.0.0.1:28081" }"#,
        r#"{ name = "backend-api-2", addr = "127.0.0.1:28082" }"#,
        r#"{ name = "stream-server-1", addr = "127.0.0.1:28091" }"#,
        r#"{ name = "stream-server-2", addr = "127.0.0.1:28092" }"#,
    ] {
        assert!(config.contains(server), "{server} missing from\n{config}");
    }
    assert!(config.contains(r#"bind = ["127.0.0.1:28080"]"#), "{config}");
    let etc_veza_lb = lb.join("etc/veza-lb").metadata().unwrap();
    assert_eq!(etc_veza_lb.mode() & 0o7777, 0o750);

    // Second run: every step ok.
    let (ok, stdout) = deploy(tmp.path(), &bin, &[]);
    assert!(ok, "second deploy failed");
    let summary = stdout.rsplit("\nrecap\n").next().unwrap();
    assert_eq!(
        summary.matches("changed=0 ").count(),
        5,
        "the second run changed something:\n{summary}"
    );

    // Drift: --check reports it and changes nothing; a real run repairs it.
    std::fs::write(&config_path, "# edited by hand\n").unwrap();
    let (ok, stdout) = deploy(tmp.path(), &bin, &["--check"]);
    assert!(ok, "check failed");
    assert!(
        stdout.contains("changed  push veza-lb config: would push /etc/veza-lb/veza-lb.toml"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        "# edited by hand\n"
    );
    let (ok, _) = deploy(tmp.path(), &bin, &[]);
    assert!(ok, "repairing deploy failed");
    assert_eq!(std::fs::read_to_string(&config_path).unwrap(), config);
}

/// The LB pair's inventory (`[lb_pair]`) deployed into local trees: the BACKUP (lb-2,
/// priority 100) first, and the MASTER left as it was when the BACKUP's deploy fails; then
/// each LB host gets keepalived's configuration with its own priority, the other host as
/// neither master nor peer of itself, veza-lb's configuration with the monitor_uri the health
/// script asks, and veza-keepalived.service; a second deploy changes nothing.
#[test]
fn deploys_the_lb_pair_with_keepalived_then_changes_nothing() {
    if !running_as_root() {
        return;
    }
    let tmp = testkit::temp_dir();
    let bin = binaries(tmp.path());
    let inventory = "examples/inventory/lb-pair.toml";
    let trees = tmp.path().join("target/pair-deploy");

    // A file where the BACKUP's configuration directory goes: its deploy fails.
    std::fs::create_dir_all(trees.join("lb-2/etc")).unwrap();
    std::fs::write(trees.join("lb-2/etc/veza-lb"), "in the way").unwrap();
    let (ok, stdout) = deploy_inventory(inventory, tmp.path(), &bin, &[]);
    assert!(!ok, "the BACKUP's deploy fails");
    let summary = stdout.rsplit("\nrecap\n").next().unwrap();
    let order: Vec<&str> = (summary.lines())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("lb-"))
        .collect();
    assert_eq!(order, ["lb-2", "lb-1"], "BACKUP first:\n{summary}");
    assert!(recap(&stdout, "lb-2").contains("failed=1"), "{summary}");
    assert!(recap(&stdout, "lb-1").contains("skipped=1"), "{summary}");
    assert!(
        !trees.join("lb-1/etc/veza-lb").exists(),
        "the MASTER was not touched"
    );
    std::fs::remove_file(trees.join("lb-2/etc/veza-lb")).unwrap();

    let (ok, stdout) = deploy_inventory(inventory, tmp.path(), &bin, &[]);
    assert!(ok, "first whole deploy failed");
    for (host, priority) in [("lb-1", 150), ("lb-2", 100)] {
        let tree = trees.join(host);
        let conf = std::fs::read_to_string(tree.join("etc/veza-lb/keepalived.conf")).unwrap();
        assert!(
            conf.contains(&format!("\n  priority {priority}\n")),
            "{conf}"
        );
        assert!(conf.contains("    192.0.2.100/24 dev eth0\n"), "{conf}");
        assert!(
            conf.contains(
                "script \"/opt/veza/lb/veza-lb probe http://127.0.0.1:8080/veza-lb/health"
            ),
            "{conf}"
        );
        assert!(
            tree.join("etc/systemd/system/veza-keepalived.service")
                .is_file()
        );
        let config = std::fs::read_to_string(tree.join("etc/veza-lb/veza-lb.toml")).unwrap();
        assert!(
            config.contains("monitor_uri = \"/veza-lb/health\""),
            "{config}"
        );
        let line = recap(&stdout, host);
        assert!(line.contains("failed=0"), "{line}");
    }
    let (ok, stdout) = deploy_inventory(inventory, tmp.path(), &bin, &[]);
    assert!(ok, "second deploy failed");
    let summary = stdout.rsplit("\nrecap\n").next().unwrap();
    assert_eq!(
        summary.matches("changed=0 ").count(),
        6,
        "the second run changed something:\n{summary}"
    );
}
