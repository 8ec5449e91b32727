//! `apply` against a temporary `--root` tree, as root: the acceptance of issue 6.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use provision::{Options, Plan, Report, Status, apply};
use support::{
    example, files_named, fresh_root, mode_owner, running_as_root, systemctl_stub, tree_digest,
};

fn options(root: &Path) -> Options {
    Options {
        root: Some(root.to_owned()),
        ..Options::default()
    }
}

fn step<'a>(report: &'a Report, name: &str) -> &'a provision::Step {
    report
        .steps
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no step {name} in {report:#?}"))
}

/// A `--root` tree and options whose `systemctl` is a stub recording its calls.
struct Stubbed {
    root: testkit::TempDir,
    options: Options,
    log: std::path::PathBuf,
    _stub_dir: testkit::TempDir,
}

impl Stubbed {
    fn new() -> Stubbed {
        let (root, stub_dir) = (fresh_root(), testkit::temp_dir());
        let (stub, log) = systemctl_stub(stub_dir.path());
        let options = Options {
            systemctl: Some(stub),
            ..options(root.path())
        };
        Stubbed {
            root,
            options,
            log,
            _stub_dir: stub_dir,
        }
    }

    /// The `systemctl` calls since the last time, one per line.
    fn calls(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        fs::remove_file(&self.log).ok();
        text
    }
}

/// uid/gid of a user in the tree's passwd.
/// `text` written as a role file in a temporary directory (kept alive by the first value),
/// its path, and its plan.
fn role_file(name: &str, text: &str) -> (testkit::TempDir, std::path::PathBuf, Plan) {
    let dir = testkit::temp_dir();
    let file = dir.path().join(name);
    fs::write(&file, text).unwrap();
    let plan = Plan::load(&file).unwrap();
    (dir, file, plan)
}

fn ids(root: &Path, user: &str) -> (u32, u32) {
    let passwd = fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap();
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

#[test]
fn first_run_creates_everything_and_the_second_changes_nothing() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let plan = Plan::load(&example("backend-api")).unwrap();
    let first = apply(&plan, &options(root.path()));
    assert!(!first.failed(), "{first:#?}");

    let passwd = fs::read_to_string(root.path().join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("veza-api:"))
        .expect("user in DIR/etc/passwd");
    assert!(
        line.ends_with(":/opt/veza/backend-api:/usr/sbin/nologin"),
        "{line}"
    );
    let (uid, gid) = ids(root.path(), "veza-api");
    assert!(uid < 1000, "a system user gets a system uid, got {uid}");
    assert!(
        !fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains("veza-api:x:"),
        "the host was touched"
    );

    let tree = |p: &str| root.path().join(p);
    assert_eq!(mode_owner(&tree("opt/veza/backend-api")), (0o755, uid, gid));
    assert_eq!(mode_owner(&tree("var/log/veza")), (0o755, uid, gid));
    assert_eq!(mode_owner(&tree("etc/veza")), (0o750, 0, gid));
    assert_eq!(
        mode_owner(&tree("etc/veza/backend-api.env")),
        (0o640, 0, gid)
    );
    let unit_path = tree("etc/systemd/system/veza-backend-api.service");
    assert_eq!(mode_owner(&unit_path), (0o644, 0, 0));
    let unit = fs::read_to_string(&unit_path).unwrap();
    assert_eq!(
        unit,
        provision::render_unit(&plan, "veza-backend-api").unwrap()
    );
    assert!(
        unit.contains("\nUser=veza-api\n") && unit.contains("\nReadWritePaths=/var/log/veza\n")
    );
    assert_eq!(step(&first, "user veza-api").status, Status::Changed);
    for name in [
        "systemctl daemon-reload",
        "restart veza-backend-api.service",
        "enable veza-backend-api.service",
    ] {
        let s = step(&first, name);
        assert_eq!(s.status, Status::Skipped, "{s}");
        assert!(s.detail.contains("--root"), "{s}");
    }

    let digest = tree_digest(root.path());
    let second = apply(&plan, &options(root.path()));
    assert_eq!(
        second.recap(),
        "ok=6 changed=0 skipped=3 failed=0",
        "{second:#?}"
    );
    assert_eq!(
        tree_digest(root.path()),
        digest,
        "an idempotent run changed the tree"
    );
}

#[test]
fn drift_in_mode_and_owner_is_repaired_and_reported() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let plan = Plan::load(&example("backend-api")).unwrap();
    assert!(!apply(&plan, &options(root.path())).failed());
    let (uid, gid) = ids(root.path(), "veza-api");
    let logs = root.path().join("var/log/veza");
    let env = root.path().join("etc/veza/backend-api.env");
    fs::set_permissions(&logs, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&env, Some(uid), Some(0)).unwrap();
    fs::set_permissions(&env, fs::Permissions::from_mode(0o644)).unwrap();

    let report = apply(&plan, &options(root.path()));
    let logs_step = step(&report, "directory /var/log/veza");
    assert_eq!(logs_step.status, Status::Changed);
    assert!(
        logs_step.detail.contains("mode 0700 -> 0755"),
        "{logs_step}"
    );
    let env_step = step(&report, "env file /etc/veza/backend-api.env");
    assert!(
        env_step.detail.contains("mode 0644 -> 0640")
            && env_step
                .detail
                .contains(&format!("owner {uid}:0 -> 0:{gid}"))
    );
    assert_eq!(report.count(Status::Changed), 2, "{report:#?}");
    assert_eq!(mode_owner(&logs), (0o755, uid, gid));
    assert_eq!(mode_owner(&env), (0o640, 0, gid));
    assert_eq!(
        apply(&plan, &options(root.path())).count(Status::Changed),
        0
    );
}

#[test]
fn check_mode_leaves_the_tree_byte_identical() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let plan = Plan::load(&example("veza-lb")).unwrap();
    let check = Options {
        check: true,
        diff: true,
        ..options(root.path())
    };

    let before = tree_digest(root.path());
    let preview = apply(&plan, &check);
    assert_eq!(
        tree_digest(root.path()),
        before,
        "--check changed a fresh tree"
    );
    assert!(!preview.failed(), "{preview:#?}");
    let unit_step = step(&preview, "unit veza-lb.service");
    assert!(unit_step.detail.starts_with("would install"), "{unit_step}");
    assert!(
        unit_step
            .diff
            .as_deref()
            .is_some_and(|d| d.contains("+Type=notify"))
    );

    let real = apply(&plan, &options(root.path()));
    // --check cannot know that useradd --create-home will make the home directory too.
    assert_eq!(
        preview.count(Status::Changed),
        real.count(Status::Changed) + 1,
        "{preview:#?}\n{real:#?}"
    );
    assert_eq!(
        apply(&plan, &check).count(Status::Changed),
        0,
        "--check after a run sees nothing to do"
    );

    // Drift, an edited unit and an env file missing a key: all previewed, none touched.
    fs::set_permissions(
        root.path().join("var/log/veza-lb"),
        fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let unit_path = root.path().join("etc/systemd/system/veza-lb.service");
    fs::write(
        &unit_path,
        fs::read_to_string(&unit_path)
            .unwrap()
            .replace("WatchdogSec=30s", "WatchdogSec=0"),
    )
    .unwrap();
    fs::write(
        root.path().join("etc/veza-lb/veza-lb.env"),
        "SECRET_TOKEN=abc\n",
    )
    .unwrap();
    let before = tree_digest(root.path());
    let preview = apply(&plan, &check);
    assert_eq!(
        tree_digest(root.path()),
        before,
        "--check changed a drifted tree"
    );
    assert_eq!(preview.count(Status::Changed), 3, "{preview:#?}");
    let diff = step(&preview, "unit veza-lb.service").diff.clone().unwrap();
    assert!(
        diff.contains("-WatchdogSec=0\n+WatchdogSec=30s\n"),
        "{diff}"
    );
    let env_diff = step(&preview, "env file /etc/veza-lb/veza-lb.env")
        .diff
        .clone()
        .unwrap();
    assert!(
        env_diff.contains("+RUST_LOG=<value hidden>") && !env_diff.contains("abc"),
        "{env_diff}"
    );
}

#[test]
fn env_values_already_there_are_never_overwritten() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let plan = Plan::load(&example("backend-api")).unwrap();
    assert!(!apply(&plan, &options(root.path())).failed());
    let env = root.path().join("etc/veza/backend-api.env");
    fs::write(
        &env,
        "APP_ENV=staging\nDATABASE_URL=postgres://veza:s3cret@db/veza\n",
    )
    .unwrap();

    let report = apply(&plan, &options(root.path()));
    let env_step = step(&report, "env file /etc/veza/backend-api.env");
    assert_eq!(env_step.status, Status::Changed);
    assert!(
        env_step.detail.contains("added LOG_DIR, PORT"),
        "{env_step}"
    );
    assert_eq!(
        fs::read_to_string(&env).unwrap(),
        "APP_ENV=staging\nDATABASE_URL=postgres://veza:s3cret@db/veza\nLOG_DIR=/var/log/veza\nPORT=8080\n"
    );
}

#[test]
fn restart_happens_only_when_the_unit_or_env_changed() {
    if !running_as_root() {
        return;
    }
    let plan = Plan::load(&example("stream-server")).unwrap();
    let stubbed = Stubbed::new();
    let (root, opts, calls) = (&stubbed.root, &stubbed.options, || stubbed.calls());

    assert!(!apply(&plan, opts).failed());
    assert_eq!(
        calls(),
        "daemon-reload\nrestart veza-stream-server.service\nis-enabled veza-stream-server.service\nenable veza-stream-server.service\n"
    );

    let report = apply(&plan, opts);
    assert_eq!(
        report.recap(),
        "ok=9 changed=0 skipped=0 failed=0",
        "{report:#?}"
    );
    assert_eq!(calls(), "is-enabled veza-stream-server.service\n");

    // Only the env file changed: restart, but no daemon-reload.
    fs::write(
        root.path().join("etc/veza-stream-server/stream-server.env"),
        "PORT=9000\n",
    )
    .unwrap();
    let report = apply(&plan, opts);
    assert!(
        step(&report, "restart veza-stream-server.service")
            .detail
            .contains("the env file changed")
    );
    assert_eq!(
        calls(),
        "restart veza-stream-server.service\nis-enabled veza-stream-server.service\n"
    );

    // Owner drift on the env file is fixed without a restart.
    fs::set_permissions(
        root.path().join("etc/veza-stream-server/stream-server.env"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let report = apply(&plan, opts);
    assert_eq!(report.count(Status::Changed), 1, "{report:#?}");
    assert_eq!(calls(), "is-enabled veza-stream-server.service\n");
}

#[test]
fn a_failed_step_stops_the_run_and_leaves_no_half_written_file() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    fs::create_dir_all(root.path().join("etc/systemd")).unwrap();
    fs::write(root.path().join("etc/systemd/system"), "not a directory").unwrap();
    let plan = Plan::load(&example("backend-api")).unwrap();
    let report = apply(&plan, &options(root.path()));
    assert!(report.failed());
    let last = report.steps.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.status),
        ("unit veza-backend-api.service", Status::Failed),
        "{report:#?}"
    );
    // The home directory comes from useradd --create-home, hence ok=1.
    assert_eq!(report.recap(), "ok=1 changed=4 skipped=0 failed=1");
    assert!(
        files_named(root.path(), ".veza-provision").is_empty(),
        "temporary files left behind"
    );
    assert_eq!(
        fs::read_to_string(root.path().join("etc/systemd/system")).unwrap(),
        "not a directory"
    );
}

#[test]
fn a_symlinked_directory_is_refused_not_followed() {
    if !running_as_root() {
        return;
    }
    let root = fresh_root();
    let outside = testkit::temp_dir();
    fs::create_dir_all(root.path().join("var/log")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("var/log/veza")).unwrap();
    let before = support::mode_owner(outside.path());
    let report = apply(
        &Plan::load(&example("backend-api")).unwrap(),
        &options(root.path()),
    );
    let s = step(&report, "directory /var/log/veza");
    assert_eq!(s.status, Status::Failed);
    assert!(s.detail.contains("symlink"), "{s}");
    assert_eq!(support::mode_owner(outside.path()), before);
}

#[test]
fn every_example_applies_and_its_unit_verifies_with_systemd() {
    if !running_as_root() {
        return;
    }
    for name in ["backend-api", "veza-lb", "stream-server", "veza-load"] {
        let root = fresh_root();
        let plan = Plan::load(&example(name)).unwrap();
        let report = apply(&plan, &options(root.path()));
        assert!(!report.failed(), "{name}: {report:#?}");
        if !systemd_unit::analyze::available() {
            println!("SKIPPED systemd-analyze checks: not installed");
            continue;
        }
        let unit_name = plan.unit_name();
        let security =
            systemd_unit::analyze::verify_and_score(&unit_name, &plan.service_spec.unit().unwrap())
                .unwrap_or_else(|e| panic!("{e}"));
        let installed = systemd_unit::analyze::security(
            &root.path().join("etc/systemd/system").join(&unit_name),
        )
        .unwrap();
        println!("{name}: {unit_name} exposure {:.1}", installed.exposure);
        assert_eq!(security.exposure, installed.exposure);
        assert!(
            installed.exposure <= 1.0,
            "{unit_name}: {}",
            installed.exposure
        );
    }
}

/// veza-lb on ports 80 and 443 through a `veza-lb.socket` unit: both units installed,
/// enabled, the service without `CAP_NET_BIND_SERVICE`; a second run changes nothing; new
/// addresses stop the service and the socket and start them again.
#[test]
fn a_socket_activated_lb_gets_its_socket_unit() {
    if !running_as_root() {
        return;
    }
    let role = fs::read_to_string(example("veza-lb")).unwrap();
    let activated = role.replace(
        "listen_ports = [8080, 9100, 9101]",
        "listen_ports = [80, 443, 9100, 9101]\nsockets = [\"0.0.0.0:80\", \"0.0.0.0:443\"]",
    );
    assert_ne!(activated, role, "the example's listen_ports line moved");
    let (_dir, file, plan) = role_file("veza-lb.toml", &activated);
    let stubbed = Stubbed::new();
    let (root, opts, calls) = (&stubbed.root, &stubbed.options, || stubbed.calls());
    let first = apply(&plan, opts);
    assert!(!first.failed(), "{first:#?}");
    // A new socket unit: the service starts after its socket (stopping them first is a
    // no-op on a first install).
    assert_eq!(
        calls(),
        "daemon-reload\nstop veza-lb.service veza-lb.socket\nstart veza-lb.socket veza-lb.service\n\
         is-enabled veza-lb.socket\nenable veza-lb.socket\nis-enabled veza-lb.service\n\
         enable veza-lb.service\n"
    );
    let units = root.path().join("etc/systemd/system");
    let socket = fs::read_to_string(units.join("veza-lb.socket")).unwrap();
    assert_eq!(
        socket,
        provision::render_unit(&plan, "veza-lb.socket").unwrap()
    );
    assert!(socket.contains("\nListenStream=0.0.0.0:80\nListenStream=0.0.0.0:443\n"));
    let service = fs::read_to_string(units.join("veza-lb.service")).unwrap();
    assert!(service.contains("\nRequires=veza-lb.socket\n"), "{service}");
    assert!(service.contains("\nCapabilityBoundingSet=\n"), "{service}");
    if systemd_unit::analyze::available() {
        let spec = &plan.service_spec;
        let name = systemd_unit::UnitName::new(plan.unit_name()).unwrap();
        systemd_unit::analyze::verify_activated(
            &plan.unit_name(),
            &spec.unit().unwrap(),
            "veza-lb.socket",
            &spec.socket_unit(&name).unwrap().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let score = systemd_unit::analyze::security(&units.join("veza-lb.service"))
            .unwrap()
            .exposure;
        assert!(score <= 1.0, "{score}");
    }

    let second = apply(&plan, opts);
    assert_eq!(second.count(Status::Changed), 0, "{second:#?}");
    assert_eq!(
        calls(),
        "is-enabled veza-lb.socket\nis-enabled veza-lb.service\n"
    );

    fs::write(&file, activated.replace("0.0.0.0:443", "0.0.0.0:8443")).unwrap();
    let moved = Plan::load(&file).unwrap();
    assert!(!apply(&moved, opts).failed());
    assert_eq!(
        calls(),
        "daemon-reload\nstop veza-lb.service veza-lb.socket\nstart veza-lb.socket veza-lb.service\n\
         is-enabled veza-lb.socket\nis-enabled veza-lb.service\n"
    );
}

/// The nightly load test: the oneshot service and its timer installed; only the timer is
/// enabled and (re)started, and only when the schedule changed; a new command line reloads
/// systemd and applies to the next run without starting one.
#[test]
fn a_scheduled_load_test_gets_its_timer() {
    if !running_as_root() {
        return;
    }
    let role = fs::read_to_string(example("veza-load")).unwrap();
    let (_dir, file, plan) = role_file("veza-load.toml", &role);
    let stubbed = Stubbed::new();
    let (root, opts, calls) = (&stubbed.root, &stubbed.options, || stubbed.calls());
    let first = apply(&plan, opts);
    assert!(!first.failed(), "{first:#?}");
    assert_eq!(
        calls(),
        "daemon-reload\nrestart veza-load.timer\nis-enabled veza-load.timer\nenable veza-load.timer\n"
    );
    let units = root.path().join("etc/systemd/system");
    let timer = fs::read_to_string(units.join("veza-load.timer")).unwrap();
    assert_eq!(
        timer,
        provision::render_unit(&plan, "veza-load.timer").unwrap()
    );
    assert!(timer.contains("\nOnCalendar=*-*-* 02:30:00\nRandomizedDelaySec=900s\nPersistent=yes\nUnit=veza-load.service\n"), "{timer}");
    let service = fs::read_to_string(units.join("veza-load.service")).unwrap();
    assert!(
        service.contains("\nType=oneshot\n") && !service.contains("[Install]"),
        "{service}"
    );
    if systemd_unit::analyze::available() {
        let spec = &plan.service_spec;
        let name = systemd_unit::UnitName::new(plan.unit_name()).unwrap();
        systemd_unit::analyze::verify_timed(
            &plan.unit_name(),
            &spec.unit().unwrap(),
            "veza-load.timer",
            &spec.timer_unit(&name).unwrap().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    }

    let second = apply(&plan, opts);
    assert_eq!(second.count(Status::Changed), 0, "{second:#?}");
    assert_eq!(calls(), "is-enabled veza-load.timer\n");

    fs::write(&file, role.replace("--quiet", "--label=edge")).unwrap();
    let new_command = Plan::load(&file).unwrap();
    let third = apply(&new_command, opts);
    assert!(!third.failed());
    assert_eq!(calls(), "daemon-reload\nis-enabled veza-load.timer\n");
    assert_eq!(
        step(&third, "restart veza-load.timer").detail,
        "timer unchanged; the next run uses the new unit and env file"
    );

    fs::write(&file, role.replace("02:30:00", "04:00:00")).unwrap();
    let rescheduled = Plan::load(&file).unwrap();
    assert!(!apply(&rescheduled, opts).failed());
    assert_eq!(
        calls(),
        "daemon-reload\nrestart veza-load.timer\nis-enabled veza-load.timer\n"
    );
}

#[test]
fn a_schedule_belongs_to_the_load_test_only() {
    let lb = fs::read_to_string(example("veza-lb")).unwrap();
    let scheduled = lb.replace(
        "watchdog = \"30s\"",
        "watchdog = \"30s\"\nschedule = { on_calendar = \"daily\" }",
    );
    let error = Plan::parse("lb.toml", &scheduled).unwrap_err().to_string();
    assert!(error.contains("schedule is only for veza-load"), "{error}");
    let load = fs::read_to_string(example("veza-load")).unwrap();
    let unscheduled: String = load
        .lines()
        .filter(|l| !l.starts_with("schedule"))
        .map(|l| format!("{l}\n"))
        .collect();
    let error = Plan::parse("load.toml", &unscheduled)
        .unwrap_err()
        .to_string();
    assert!(error.contains("veza-load runs on a schedule"), "{error}");
    let bad = load.replace("*-*-* 02:30:00", "02:30 %H");
    let error = Plan::parse("load.toml", &bad).unwrap_err().to_string();
    assert!(
        error.contains("not allowed in a calendar expression"),
        "{error}"
    );
}

/// One side of the LB pair: `[vrrp]` in veza-lb's role file adds keepalived's configuration
/// and its hardened unit; a second run changes nothing; a new priority reloads keepalived
/// (the address stays put) without touching veza-lb; `[vrrp]` elsewhere is refused.
#[test]
fn an_lb_pair_host_gets_keepalived() {
    if !running_as_root() {
        return;
    }
    let role = fs::read_to_string(example("veza-lb")).unwrap();
    let pair = format!(
        "{role}\n[vrrp]\ninterface = \"eth0\"\nvirtual_router_id = 51\npriority = 150\n\
         advert_interval = \"200ms\"\nvirtual_ipaddress = [\"192.0.2.100/24\"]\n\
         check = {{ url = \"http://127.0.0.1:8080/veza-lb/health\" }}\n"
    );
    let (_dir, file, plan) = role_file("veza-lb.toml", &pair);
    let stubbed = Stubbed::new();
    let (root, opts, calls) = (&stubbed.root, &stubbed.options, || stubbed.calls());
    let first = apply(&plan, opts);
    assert!(!first.failed(), "{first:#?}");
    assert_eq!(
        calls(),
        "daemon-reload\nrestart veza-lb.service\nis-enabled veza-lb.service\nenable veza-lb.service\n\
         restart veza-keepalived.service\nis-enabled veza-keepalived.service\nenable veza-keepalived.service\n"
    );
    let conf = fs::read_to_string(root.path().join("etc/veza-lb/keepalived.conf")).unwrap();
    assert_eq!(
        conf,
        provision::render_unit(&plan, "keepalived.conf").unwrap()
    );
    assert!(conf.contains("script \"/opt/veza/lb/veza-lb probe http://127.0.0.1:8080/veza-lb/health --timeout 500ms --for 800ms --every 100ms\""), "{conf}");
    assert!(conf.contains("  script_user veza-lb\n"), "{conf}");
    let units = root.path().join("etc/systemd/system");
    let unit = fs::read_to_string(units.join("veza-keepalived.service")).unwrap();
    assert!(
        unit.contains("--use-file /etc/veza-lb/keepalived.conf"),
        "{unit}"
    );
    assert!(
        unit.contains("\nIPAddressAllow=localhost 224.0.0.18/32 192.0.2.0/24\n"),
        "{unit}"
    );
    if systemd_unit::analyze::available() {
        let spec = plan.keepalived_spec().unwrap();
        let security = systemd_unit::analyze::verify_and_score(
            systemd_unit::KeepalivedSpec::UNIT,
            &spec.unit().unwrap(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        println!("veza-keepalived.service exposure {:.1}", security.exposure);
    }

    let second = apply(&plan, opts);
    assert_eq!(second.count(Status::Changed), 0, "{second:#?}");
    assert_eq!(
        calls(),
        "is-enabled veza-lb.service\nis-enabled veza-keepalived.service\n"
    );

    fs::write(&file, pair.replace("priority = 150", "priority = 100")).unwrap();
    let lower = Plan::load(&file).unwrap();
    let third = apply(&lower, opts);
    assert!(!third.failed());
    assert_eq!(
        calls(),
        "is-enabled veza-lb.service\nreload veza-keepalived.service\nis-enabled veza-keepalived.service\n"
    );
    assert_eq!(
        step(&third, "restart veza-keepalived.service").detail,
        "reloaded: the configuration changed"
    );

    let api = fs::read_to_string(example("backend-api")).unwrap();
    let vrrp_section = &pair[role.len()..];
    let error = Plan::parse("api.toml", &format!("{api}{vrrp_section}"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("[vrrp] is only for veza-lb"), "{error}");
    let error = Plan::parse("lb.toml", &pair.replace("priority = 150", "priority = 0"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("vrrp.priority: must be 1 to 254"), "{error}");
}
