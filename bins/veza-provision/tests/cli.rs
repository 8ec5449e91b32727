//! The `veza-provision` binary: exit codes, located errors, recap lines, diffs.

#[path = "../../../crates/provision/tests/support/mod.rs"]
mod support;

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use support::{example, fresh_root, running_as_root, tree_digest};

fn veza_provision(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veza-provision"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn apply(config: &Path, root: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "apply",
        "-c",
        config.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ];
    args.extend(extra);
    veza_provision(&args)
}

fn recap(out: &Output) -> String {
    text(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn bad_role_files_are_refused_with_a_position_before_anything_changes() {
    let root = fresh_root();
    let dir = testkit::temp_dir();
    let good = fs::read_to_string(example("backend-api")).unwrap();
    let cases = [
        (
            "unknown key",
            "shell = ",
            "colour = \"blue\"\nshell = ",
            "unknown field `colour`",
        ),
        (
            "relative path",
            "path = \"/var/log/veza\"",
            "path = \"var/log/veza\"",
            "relative",
        ),
        (
            "bad user name",
            "name = \"veza-api\"",
            "name = \"Veza API\"",
            "lowercase",
        ),
        (
            "bad mode",
            "mode = \"0750\"",
            "mode = \"0888\"",
            "\"0888\" is not a file mode",
        ),
    ];
    let before = tree_digest(root.path());
    for (what, from, to, expected) in cases {
        let file = dir.path().join("role.toml");
        fs::write(&file, good.replacen(from, to, 1)).unwrap();
        let out = apply(&file, root.path(), &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{what}: {stderr}");
        let line = good
            .replacen(from, to, 1)
            .lines()
            .position(|l| l.contains(to.lines().next().unwrap()))
            .unwrap()
            + 1;
        let position = format!("veza-provision: {}:{line}:", file.display());
        assert!(
            stderr.starts_with(&position) && stderr.contains(expected),
            "{what}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "one readable line: {stderr}");
        assert!(out.stdout.is_empty(), "{what}: nothing may run");
    }
    assert_eq!(tree_digest(root.path()), before);
}

#[test]
fn apply_twice_then_check_and_diff() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let config = example("backend-api");
    let first = apply(&config, root.path(), &[]);
    assert!(
        first.status.success(),
        "{}{}",
        text(&first.stdout),
        text(&first.stderr)
    );
    assert_eq!(
        recap(&first),
        "ok=1 changed=5 skipped=3 failed=0",
        "{}",
        text(&first.stdout)
    );
    assert!(text(&first.stdout).contains("\nskipped  systemctl daemon-reload: --root"));

    let second = apply(&config, root.path(), &[]);
    assert!(second.status.success());
    assert_eq!(recap(&second), "ok=6 changed=0 skipped=3 failed=0");

    let unit = root
        .path()
        .join("etc/systemd/system/veza-backend-api.service");
    fs::write(
        &unit,
        fs::read_to_string(&unit)
            .unwrap()
            .replace("UMask=0077", "UMask=0022"),
    )
    .unwrap();
    let before = tree_digest(root.path());
    let check = apply(&config, root.path(), &["--check", "--diff"]);
    let stdout = text(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert_eq!(tree_digest(root.path()), before, "--check changed the tree");
    assert!(stdout.contains("(check: nothing is changed)"));
    assert!(
        stdout.contains("changed  unit veza-backend-api.service: would update"),
        "{stdout}"
    );
    assert!(
        stdout.contains("+++ /etc/systemd/system/veza-backend-api.service (planned)"),
        "{stdout}"
    );
    assert!(stdout.contains("\n-UMask=0022\n+UMask=0077\n"), "{stdout}");
    assert_eq!(recap(&check), "ok=5 changed=1 skipped=3 failed=0");
}

#[test]
fn a_failed_step_exits_1() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    fs::create_dir_all(root.path().join("etc/systemd")).unwrap();
    fs::write(root.path().join("etc/systemd/system"), "").unwrap();
    let out = apply(&example("veza-lb"), root.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("failed   unit veza-lb.service: cannot"),
        "{stdout}"
    );
    assert!(stdout.contains("stopped: the remaining steps did not run"));
    assert!(recap(&out).ends_with("failed=1"));
}

#[test]
fn render_unit_prints_the_unit_or_names_the_right_one() {
    let config = example("veza-lb");
    let out = veza_provision(&["render-unit", "-c", config.to_str().unwrap(), "veza-lb"]);
    assert!(out.status.success());
    let unit = text(&out.stdout);
    assert!(unit.starts_with("# Rendered by veza systemd-unit"));
    assert!(
        unit.contains("\nType=notify\n")
            && unit
                .contains("\nExecReload=/bin/sh -c \"kill -HUP \\\"$$1\\\"\" reload ${MAINPID}\n")
    );
    assert!(unit.contains("\nWatchdogSec=30s\n") && unit.contains("\nTimeoutStopSec=35s\n"));
    assert!(unit.contains("\nExecStart=/opt/veza/lb/veza-lb run -c /etc/veza-lb/veza-lb.toml\n"));
    let same = veza_provision(&[
        "render-unit",
        "-c",
        config.to_str().unwrap(),
        "veza-lb.service",
    ]);
    assert_eq!(same.stdout, out.stdout);

    let wrong = veza_provision(&["render-unit", "-c", config.to_str().unwrap(), "haproxy"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert_eq!(
        text(&wrong.stderr).trim(),
        "veza-provision: this role file defines veza-lb.service, not haproxy; pass that name"
    );
}

#[test]
fn missing_files_and_roots_are_one_line_errors() {
    let out = veza_provision(&["apply", "-c", "/nonexistent/role.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("veza-provision: cannot read /nonexistent/role.toml: "));
    let config = example("backend-api");
    let out = veza_provision(&[
        "apply",
        "-c",
        config.to_str().unwrap(),
        "--root",
        "/nonexistent/root",
        "--check",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).starts_with("veza-provision: --root /nonexistent/root: ")
            && text(&out.stderr).ends_with("apply without --check creates it\n"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_tree_is_made_with_an_account_database() {
    if !running_as_root() {
        return;
    }
    let dir = testkit::temp_dir();
    let root = dir.path().join("image");
    let out = apply(&example("veza-lb"), &root, &[]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!(
            "changed  tree {}: made etc/passwd and etc/group with root alone",
            root.display()
        )),
        "{stdout}"
    );
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(
        passwd.starts_with("root:x:0:0:") && passwd.contains("\nveza-lb:"),
        "{passwd}"
    );
    let again = text(&apply(&example("veza-lb"), &root, &[]).stdout);
    assert!(!again.contains("tree "), "made once: {again}");
}
