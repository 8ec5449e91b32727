//! Every unit Veza renders must pass `systemd-analyze verify` without a warning and score at
//! most 1.0 in `systemd-analyze security --offline=yes`.

use std::fs;
use std::path::Path;

use systemd_unit::analyze::{self, Security};
use systemd_unit::{
    AbsPath, AccountName, Arg, Command, IpAddressSpec, Role, ServiceSpec, Text, Timespan, Unit,
};

fn systemd_analyze_present() -> bool {
    let found = analyze::available();
    if !found {
        println!(
            "SKIPPED: systemd-analyze is not installed (apt-get install systemd); CI installs it"
        );
    }
    found
}

fn analyze(name: &str, unit: &Unit) -> Security {
    analyze::verify_and_score(name, unit).unwrap_or_else(|e| panic!("{e}"))
}

fn path(s: &str) -> AbsPath {
    AbsPath::new(s).unwrap()
}

/// The three services much as the example role files configure them.
fn veza_specs() -> Vec<(&'static str, ServiceSpec)> {
    let lab_peers: Vec<IpAddressSpec> =
        ["localhost", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    let spec = |role, user: &str, program: &str, args: &[&str]| ServiceSpec {
        role,
        description: Text::new(format!("Veza {}", role.as_str())).unwrap(),
        user: AccountName::new(user).unwrap(),
        exec_start: Command::new(path(program))
            .args(args.iter().copied())
            .unwrap(),
        working_directory: Some(path(Path::new(program).parent().unwrap().to_str().unwrap())),
        env_file: Some(path("/etc/veza/service.env")),
        read_write_paths: vec![path("/var/log/veza")],
        ip_address_allow: Some(lab_peers.clone()),
        listen_ports: vec![8080],
        sockets: Vec::new(),
        jit: false,
        watchdog: (role == Role::Lb).then(|| Timespan::from_secs(30)),
        stop_timeout: Timespan::from_secs(35),
        schedule: None,
        start_timeout: None,
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
        let score = analyze(name, &spec.unit().unwrap()).exposure;
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
    let score = analyze(name, &spec.unit().unwrap()).exposure;
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
    println!(
        "{name} with the JIT relaxation: exposure {:.1}",
        jit.exposure
    );
    assert_eq!(newly_exposed(&jit), ["MemoryDenyWriteExecute="]);
    assert!(jit.exposure <= 1.1, "{}", jit.exposure);

    // Documented in Hardening::allow_bind_below_1024: about 0.4 points above the baseline.
    let mut low = base;
    low.listen_ports = vec![80, 443];
    let low = analyze(name, &low.unit().unwrap());
    println!(
        "{name} with the port-below-1024 relaxation: exposure {:.1}",
        low.exposure
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
        low.exposure <= baseline.exposure + 0.5,
        "low port {} vs {}",
        low.exposure,
        baseline.exposure
    );
}

/// Ports 80 and 443 through a `veza-lb.socket` unit: the service keeps the baseline sandbox
/// (no capability, private users), and both units verify side by side.
#[test]
fn socket_activation_needs_no_capability() {
    if !systemd_analyze_present() {
        return;
    }
    let (name, mut spec) = veza_specs().swap_remove(1);
    spec.listen_ports = vec![80, 443, 9100];
    spec.sockets = vec!["0.0.0.0:80".parse().unwrap(), "[::]:443".parse().unwrap()];
    let unit = spec.unit().unwrap();
    let socket_name = spec.socket_unit_name().unwrap().expect("activated");
    assert_eq!(socket_name.as_str(), "veza-lb.socket");
    let service = systemd_unit::UnitName::new(name).unwrap();
    let socket = spec.socket_unit(&service).unwrap().expect("a socket unit");
    let text = socket.render().unwrap();
    assert!(
        text.contains("\nListenStream=0.0.0.0:80\nListenStream=[::]:443\n"),
        "{text}"
    );
    assert!(text.contains("\nFileDescriptorName=veza-lb\n"), "{text}");
    assert!(text.contains("\nService=veza-lb.service\n"), "{text}");
    analyze::verify_activated(name, &unit, socket_name.as_str(), &socket)
        .unwrap_or_else(|e| panic!("{e}"));
    let rendered = unit.render().unwrap();
    assert!(
        rendered.contains("\nRequires=veza-lb.socket\n"),
        "{rendered}"
    );
    assert!(
        rendered.contains("\nCapabilityBoundingSet=\n"),
        "{rendered}"
    );
    assert!(rendered.contains("\nPrivateUsers=yes\n"), "{rendered}");
    // Scored alone (the socket is the manager's, not the service's): the baseline's score.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    fs::write(&file, &rendered).unwrap();
    let score = analyze::security(&file).unwrap().exposure;
    println!("{name} socket-activated on 80/443: exposure {score:.1}");
    assert!(score <= 1.0, "{score}");
}

/// The nightly load test: a oneshot service with no [Install] (its timer starts it), the
/// timer verified next to it, the service scored as the daemons are.
#[test]
fn scheduled_load_test_verifies_with_its_timer() {
    if !systemd_analyze_present() {
        return;
    }
    let (_, mut spec) = veza_specs().remove(0);
    spec.role = Role::LoadTest;
    spec.user = AccountName::new("veza-load").unwrap();
    spec.exec_start = Command::new(path("/opt/veza/load/veza-load"))
        .args([
            "run",
            "--target",
            "http://10.0.0.10",
            "--reports",
            "/var/lib/veza-load",
        ])
        .unwrap();
    spec.read_write_paths = vec![path("/var/lib/veza-load")];
    spec.listen_ports = Vec::new();
    spec.schedule = Some(systemd_unit::Schedule {
        on_calendar: systemd_unit::CalendarSpec::new("*-*-* 02:30:00").unwrap(),
        randomized_delay: Some(Timespan::from_secs(900)),
        persistent: true,
    });
    spec.start_timeout = Some(Timespan::from_secs(1800));
    let name = "veza-load.service";
    let unit = spec.unit().unwrap();
    let timer_name = spec.timer_unit_name().unwrap().expect("scheduled");
    assert_eq!(timer_name.as_str(), "veza-load.timer");
    let service = systemd_unit::UnitName::new(name).unwrap();
    let timer = spec.timer_unit(&service).unwrap().expect("a timer unit");
    let timer_text = timer.render().unwrap();
    for line in [
        "\nOnCalendar=*-*-* 02:30:00\n",
        "\nRandomizedDelaySec=900s\n",
        "\nPersistent=yes\n",
        "\nUnit=veza-load.service\n",
        "\nWantedBy=timers.target",
    ] {
        assert!(timer_text.contains(line), "{line:?} missing:\n{timer_text}");
    }
    analyze::verify_timed(name, &unit, timer_name.as_str(), &timer)
        .unwrap_or_else(|e| panic!("{e}"));
    let rendered = unit.render().unwrap();
    assert!(rendered.contains("\nType=oneshot\n"), "{rendered}");
    assert!(rendered.contains("\nRestart=no\n"), "{rendered}");
    assert!(rendered.contains("\nTimeoutStartSec=1800s\n"), "{rendered}");
    assert!(!rendered.contains("[Install]"), "{rendered}");
    let score = analyze(name, &unit).exposure;
    println!("{name}: exposure {score:.1}");
    assert!(score <= 1.0, "{score}");
    // systemd reads the schedules the role files use; a typo is refused.
    analyze::calendar("*-*-* 02:30:00").unwrap();
    analyze::calendar("Mon..Fri 03:00").unwrap();
    assert!(analyze::calendar("*-*-* 25:00:00").is_err());
}

/// keepalived for the LB pair: verifies, and its exposure is what the VRRP relaxation says
/// (2.5 here: the capabilities to move an address cost 1.5 points over the baseline).
#[test]
fn keepalived_unit_verifies_and_is_scored() {
    if !systemd_analyze_present() {
        return;
    }
    let spec = systemd_unit::KeepalivedSpec {
        program: path("/usr/sbin/keepalived"),
        config: path("/etc/veza-lb/keepalived.conf"),
        ip_address_allow: Some(
            ["localhost", "224.0.0.18", "192.0.2.0/24"]
                .iter()
                .map(|s| s.parse().unwrap())
                .collect(),
        ),
    };
    let unit = spec.unit().unwrap();
    let text = unit.render().unwrap();
    for line in [
        "\nCapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SETUID CAP_SETGID CAP_KILL\n",
        "\nPrivateUsers=no\n",
        "\nRuntimeDirectory=keepalived\n",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
    let score = analyze(systemd_unit::KeepalivedSpec::UNIT, &unit).exposure;
    println!("veza-keepalived.service: exposure {score:.1}");
    // Debian's stock keepalived.service scores 9.6 (no sandbox at all).
    assert!(score <= 2.5, "{score}");
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
fn verify_fails_on_what_systemd_refuses() {
    if !systemd_analyze_present() {
        return;
    }
    // The model types each value but does not encode every cross-directive rule; verify must
    // catch what it lets through.
    let (name, spec) = veza_specs().remove(0);
    let mut unit = spec.unit().unwrap();
    unit.service.kind = systemd_unit::ServiceType::Oneshot;
    unit.service.restart = systemd_unit::Restart::Always;
    let err = analyze::verify(name, &unit).unwrap_err().to_string();
    assert!(err.contains("oneshot"), "{err}");
}

#[test]
fn debian_haproxy_unit_scores_far_worse() {
    if !systemd_analyze_present() {
        return;
    }
    let dir = testkit::temp_dir();
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
    let score = analyze::security(&file).unwrap().exposure;
    println!("debian haproxy.service: exposure {score:.1}");
    assert!(score >= 9.0, "{score}");
}
