//! Every unit Veza renders must pass `systemd-analyze verify` without a warning and score at
//! most 1.0 in `systemd-analyze security --offline=yes`.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command as Process;

use systemd_unit::{
    AbsPath, AccountName, Arg, Command, IpAddressSpec, Role, ServiceSpec, Text, Timespan, Unit,
};

fn systemd_analyze_present() -> bool {
    let found = Process::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!(
            "SKIPPED: systemd-analyze is not installed (apt-get install systemd); CI installs it"
        );
    }
    found
}

/// A throwaway root holding the distribution's units (for the default dependencies) and an
/// executable at every program path the unit runs, so `verify` checks our unit only.
fn verify_root(unit: &Unit) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let units = root.path().join("usr/lib/systemd");
    fs::create_dir_all(&units).unwrap();
    let copied = Process::new("cp")
        .arg("-a")
        .arg("/usr/lib/systemd/system")
        .arg(&units)
        .status()
        .unwrap();
    assert!(copied.success(), "copying /usr/lib/systemd/system failed");
    let programs =
        std::iter::once(&unit.service.exec_start).chain(unit.service.exec_reload.as_ref());
    for command in programs {
        let path = root
            .path()
            .join(command.program().as_str().trim_start_matches('/'));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    }
    fs::create_dir_all(root.path().join("etc/systemd/system")).unwrap();
    root
}

/// What `systemd-analyze security` says about a unit.
struct Security {
    score: f64,
    /// Names of the checks marked ✗ (exposed), e.g. `PrivateNetwork=`.
    exposed: BTreeSet<String>,
}

/// Runs verify and security on `unit` installed as `name`.
fn analyze(name: &str, unit: &Unit) -> Security {
    let text = unit.render().unwrap();
    let root = verify_root(unit);
    let file = root.path().join("etc/systemd/system").join(name);
    fs::write(&file, &text).unwrap();

    let verify = Process::new("systemd-analyze")
        .args(["verify", "--man=no", "--generators=no"])
        .arg(format!("--root={}", root.path().display()))
        .arg(name)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && stderr.trim().is_empty(),
        "verify {name} failed:\n{stderr}\n--- unit ---\n{text}"
    );

    security_score(&file)
}

fn security_score(file: &Path) -> Security {
    let out = Process::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score in:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let after_colon = line.rsplit(':').next().unwrap().trim();
    let score = after_colon
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let exposed = stdout
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('✗'))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    Security { score, exposed }
}

fn path(s: &str) -> AbsPath {
    AbsPath::new(s).unwrap()
}

/// The three services as the example role files configure them.
fn veza_specs() -> Vec<(&'static str, ServiceSpec)> {
    let lab_peers: Vec<IpAddressSpec> =
        ["localhost", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    let spec = |role, user: &str, program: &str, args: &[&str]| ServiceSpec {
        role,
        description: Text::new(format!(
            "Veza {}",
            match role {
                Role::BackendApi => "backend API",
                Role::Lb => "load balancer",
                Role::StreamServer => "stream server",
            }
        ))
        .unwrap(),
        user: AccountName::new(user).unwrap(),
        exec_start: Command::new(path(program))
            .args(args.iter().copied())
            .unwrap(),
        working_directory: Some(path(Path::new(program).parent().unwrap().to_str().unwrap())),
        env_file: Some(path("/etc/veza/service.env")),
        read_write_paths: vec![path("/var/log/veza")],
        ip_address_allow: Some(lab_peers.clone()),
        listen_ports: vec![8080],
        jit: false,
        watchdog: (role == Role::Lb).then(|| Timespan::from_secs(30)),
        stop_timeout: Timespan::from_secs(35),
    };
    vec![
        (
            "veza-backend-api.service",
            spec(
                Role::BackendApi,
                "veza-api",
                "/opt/veza/backend-api/veza-backend-api",
                &[],
            ),
        ),
        (
            "veza-lb.service",
            spec(
                Role::Lb,
                "veza-lb",
                "/opt/veza/lb/veza-lb",
                &["run", "-c", "/etc/veza-lb/veza-lb.toml"],
            ),
        ),
        (
            "veza-stream-server.service",
            spec(
                Role::StreamServer,
                "veza-stream",
                "/opt/veza/stream-server/stream-server",
                &[],
            ),
        ),
    ]
}

#[test]
fn veza_units_verify_and_score_at_most_1_0() {
    if !systemd_analyze_present() {
        return;
    }
    for (name, spec) in veza_specs() {
        let score = analyze(name, &spec.unit().unwrap()).score;
        println!("{name}: systemd-analyze security exposure {score:.1}");
        assert!(score <= 1.0, "{name} scores {score}");
    }
}

#[test]
fn localhost_only_services_score_lower_still() {
    if !systemd_analyze_present() {
        return;
    }
    let (name, mut spec) = veza_specs().remove(0);
    spec.ip_address_allow = Some(vec![IpAddressSpec::Localhost]);
    let score = analyze(name, &spec.unit().unwrap()).score;
    println!("{name} (localhost only): exposure {score:.1}");
    assert!(score <= 0.9, "{score}");
}

#[test]
fn relaxations_verify_and_cost_what_their_docs_say() {
    if !systemd_analyze_present() {
        return;
    }
    let (name, base) = veza_specs().remove(1);
    let baseline = analyze(name, &base.unit().unwrap());
    let newly_exposed = |other: &Security| -> Vec<String> {
        other
            .exposed
            .difference(&baseline.exposed)
            .cloned()
            .collect()
    };

    let mut jit = base.clone();
    jit.jit = true;
    let jit = analyze(name, &jit.unit().unwrap());
    println!("{name} with the JIT relaxation: exposure {:.1}", jit.score);
    assert_eq!(newly_exposed(&jit), ["MemoryDenyWriteExecute="]);
    assert!(jit.score <= 1.1, "{}", jit.score);

    // Documented in Hardening::allow_bind_below_1024: about 0.4 points above the baseline.
    let mut low = base;
    low.listen_ports = vec![80, 443];
    let low = analyze(name, &low.unit().unwrap());
    println!(
        "{name} with the port-below-1024 relaxation: exposure {:.1}",
        low.score
    );
    assert_eq!(
        newly_exposed(&low),
        [
            "AmbientCapabilities=",
            "CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)",
            "PrivateUsers="
        ]
    );
    assert!(
        low.score <= baseline.score + 0.5,
        "low port {} vs {}",
        low.score,
        baseline.score
    );
}

#[test]
fn awkward_values_still_verify() {
    if !systemd_analyze_present() {
        return;
    }
    let (name, mut spec) = veza_specs().remove(0);
    spec.exec_start = Command::new(path("/opt/veza/my app/api"))
        .args([
            "--greeting",
            "100% \"ok\"",
            "$NOT_EXPANDED",
            "tab\there",
            "it's",
        ])
        .unwrap();
    spec.read_write_paths.push(path("/var/lib/veza state"));
    spec.description = Text::new("Veza API at 100%").unwrap();
    let unit = spec.unit().unwrap();
    analyze(name, &unit);
    let words = systemd_unit::parse::command_words(&unit.service.exec_start.to_string()).unwrap();
    let expected: Vec<String> =
        std::iter::once(unit.service.exec_start.program().as_str().to_owned())
            .chain(unit.service.exec_start.arguments().iter().map(|a| match a {
                Arg::Literal(s) => s.clone(),
                Arg::Var(v) => format!("${{{v}}}"),
            }))
            .collect();
    assert_eq!(words, expected);
}

#[test]
fn debian_haproxy_unit_scores_far_worse() {
    if !systemd_analyze_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("haproxy.service");
    // The stock Debian bookworm haproxy.service, trimmed to the directives security reads.
    fs::write(
        &file,
        "[Unit]\nDescription=HAProxy Load Balancer\n\n[Service]\nEnvironmentFile=-/etc/default/haproxy\n\
         ExecStart=/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg -p /run/haproxy.pid\n\
         ExecReload=/bin/kill -USR2 $MAINPID\nKillMode=mixed\nRestart=always\nType=notify\n\n\
         [Install]\nWantedBy=multi-user.target\n",
    )
    .unwrap();
    let score = security_score(&file).score;
    println!("debian haproxy.service: exposure {score:.1}");
    assert!(score >= 9.0, "{score}");
}
