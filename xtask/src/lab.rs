//! `cargo xtask lab up|test|down` (root): a real systemd host to deploy into. A Debian
//! bookworm tree made once with `debootstrap` (cached as `target/lab/bookworm-base`), copied
//! to `target/lab/machine` and booted with `systemd-nspawn` on the host's network.
//!
//! `lab test` boots a fresh copy, deploys `examples/inventory/lab-nspawn.toml` into it with
//! the `nspawn:` transport (two backend-api and two stream-server demo instances as hardened
//! units, veza-lb in front, all provisioned by `veza-provision`), checks that every unit runs
//! with its hardening in force (`systemctl show`, the kernel's view of the main process,
//! `systemd-analyze security`), that a second deploy changes and restarts nothing, then runs
//! the smoke steps against the real services, killing backend-api-1 with `systemctl kill`,
//! and provisions the nightly load test (`veza-load.service` and its timer) next to them.
//!
//! tidy: long file: the container's life cycle (make, boot, enter, stop) and the checks run
//! inside it, read as one script.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::build::{self, Profile, workspace_root};
use crate::deploy::{self, Inventory, Status};
use crate::topology::find_program;
use crate::transport::{display_command, nspawn_leader, words};
use crate::{Error, Result, fail};

/// The Debian suite and mirror of the lab.
const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// Written into the base tree once debootstrap finished: a tree without it is partial.
const BASE_MARKER: &str = ".veza-lab-base";
/// The inventory `lab test` deploys.
const INVENTORY: &str = "examples/inventory/lab-nspawn.toml";
/// The API server the smoke test kills.
const VICTIM_UNIT: &str = "veza-backend-api-1.service";

/// Options of `cargo xtask lab`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Boot the lab container (debootstrap on first use, then cached in target/lab).
    Up,
    /// A fresh lab: deploy into it, check the hardened units, run the smoke steps, tear down.
    Test {
        /// Leave the lab running afterwards (`cargo xtask lab down` stops it).
        #[arg(long)]
        keep: bool,
        /// Deploy release binaries (slower to build) instead of debug ones.
        #[arg(long)]
        release: bool,
    },
    /// Stop the lab container and remove its working copy (the cached base stays).
    Down,
}

/// Where the lab lives.
struct Paths {
    dir: PathBuf,
    base: PathBuf,
    machine: PathBuf,
    pid_file: PathBuf,
    log: PathBuf,
}

impl Paths {
    fn new() -> Paths {
        let dir = workspace_root().join("target/lab");
        Paths {
            base: dir.join(format!("{SUITE}-base")),
            machine: dir.join("machine"),
            pid_file: dir.join("nspawn.pid"),
            log: dir.join("nspawn.log"),
            dir,
        }
    }
}

/// Runs `cargo xtask lab ...`.
pub async fn run(args: Args) -> Result<ExitCode> {
    if let Err(why) = preflight() {
        return fail(format!("lab: {why}"));
    }
    let paths = Paths::new();
    match args.command {
        Command::Up => {
            let machine = up(&paths).await?;
            println!(
                "lab up: systemd-nspawn pid {}, container systemd pid {}; enter it with\n  \
                 nsenter -t {} -a bash\nstop it with `cargo xtask lab down`",
                machine.nspawn, machine.leader, machine.leader
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Down => {
            down(&paths, None).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { keep, release } => test(&paths, keep, release).await,
    }
}

/// Why the lab cannot run here, if it cannot.
pub fn preflight() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (debootstrap, systemd-nspawn, nsenter)".to_owned());
    }
    for tool in ["debootstrap", "systemd-nspawn", "nsenter", "setsid", "cp"] {
        if find_program(tool).is_none() {
            return Err(format!(
                "{tool} is not installed (Debian: apt-get install debootstrap systemd-container)"
            ));
        }
    }
    Ok(())
}

/// A booted lab.
struct Machine {
    /// systemd-nspawn's pid.
    nspawn: u32,
    /// The container's systemd, as seen from the host.
    leader: u32,
    /// Set when this process started nspawn: it must reap it.
    child: Option<std::process::Child>,
}

pub(crate) async fn command_ok(program: &str, args: &[&str]) -> Result<String> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(Error::io(format!("cannot run {program}")))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut line = words(&[program]);
    line.extend(words(args));
    fail(format!(
        "`{}` failed ({}): {}",
        display_command(&line),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    ))
}

/// The lab's cached base tree (a Debian bookworm with systemd), made the first time.
pub(crate) async fn base() -> Result<PathBuf> {
    preflight().map_err(|e| Error::Message(format!("lab: {e}")))?;
    let paths = Paths::new();
    ensure_base(&paths).await?;
    Ok(paths.base)
}

/// The cached base tree, made with debootstrap the first time.
async fn ensure_base(paths: &Paths) -> Result<()> {
    if paths.base.join(BASE_MARKER).is_file() {
        println!("lab: base tree {} (cached)", paths.base.display());
        return Ok(());
    }
    let partial = paths.dir.join(format!("{SUITE}-base.partial"));
    for stale in [&partial, &paths.base] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)
                .map_err(Error::io(format!("cannot remove {}", stale.display())))?;
        }
    }
    std::fs::create_dir_all(&paths.dir)
        .map_err(Error::io(format!("cannot create {}", paths.dir.display())))?;
    println!(
        "lab: debootstrap {SUITE} into {} (first time only, ~1 min)...",
        partial.display()
    );
    let started = Instant::now();
    let log = paths.dir.join("debootstrap.log");
    let log_file = std::fs::File::create(&log)
        .map_err(Error::io(format!("cannot create {}", log.display())))?;
    let status = tokio::process::Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            SUITE,
        ])
        .arg(&partial)
        .arg(MIRROR)
        .stdin(Stdio::null())
        .stdout(
            log_file
                .try_clone()
                .map_err(Error::io("cannot open the debootstrap log"))?,
        )
        .stderr(log_file)
        .status()
        .await
        .map_err(Error::io("cannot run debootstrap"))?;
    if !status.success() {
        return fail(format!(
            "debootstrap failed ({status}); its log ({}):\n{}",
            log.display(),
            crate::topology::log_tail(&log, 15)
        ));
    }
    std::fs::write(partial.join(BASE_MARKER), format!("{SUITE} {MIRROR}\n"))
        .map_err(Error::io("cannot mark the base tree complete"))?;
    std::fs::rename(&partial, &paths.base)
        .map_err(Error::io(format!("cannot rename {}", partial.display())))?;
    println!(
        "lab: base tree ready in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The running nspawn of the lab, from the pid file, if it still runs.
fn running_nspawn(paths: &Paths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&paths.pid_file)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let alive = stat.contains("(systemd-nspawn)") && !stat.contains(") Z ");
    alive.then_some(pid)
}

async fn up(paths: &Paths) -> Result<Machine> {
    if let Some(pid) = running_nspawn(paths) {
        return fail(format!(
            "the lab is already up (systemd-nspawn pid {pid}); `cargo xtask lab down` first"
        ));
    }
    ensure_base(paths).await?;
    if paths.machine.exists() {
        std::fs::remove_dir_all(&paths.machine).map_err(Error::io(format!(
            "cannot remove {}",
            paths.machine.display()
        )))?;
    }
    let started = Instant::now();
    let (base, machine) = (
        paths.base.display().to_string(),
        paths.machine.display().to_string(),
    );
    command_ok("cp", &["-a", "--reflink=auto", &base, &machine]).await?;
    std::fs::write(paths.machine.join("etc/hostname"), "veza-lab\n")
        .map_err(Error::io("cannot write the lab's hostname"))?;
    println!(
        "lab: copied the base to {} in {:.1}s",
        paths.machine.display(),
        started.elapsed().as_secs_f64()
    );
    let log = std::fs::File::create(&paths.log)
        .map_err(Error::io(format!("cannot create {}", paths.log.display())))?;
    // setsid: the container outlives `lab up` and ignores the terminal's Ctrl-C.
    let child = std::process::Command::new("setsid")
        .args(["systemd-nspawn", "--quiet", "--directory"])
        .arg(&paths.machine)
        .args([
            "--machine=veza-lab",
            // No systemd on the host bus to register with or to create a scope.
            "--register=no",
            "--keep-unit",
            "--console=passive",
            "--boot",
        ])
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(Error::io("cannot open the nspawn log"))?,
        )
        .stderr(log)
        .spawn()
        .map_err(Error::io("cannot start systemd-nspawn"))?;
    let nspawn = child.id();
    std::fs::write(&paths.pid_file, format!("{nspawn}\n")).map_err(Error::io(format!(
        "cannot write {}",
        paths.pid_file.display()
    )))?;
    let mut machine = Machine {
        nspawn,
        leader: 0,
        child: Some(child),
    };
    let boot = Instant::now();
    loop {
        match nspawn_leader(&paths.machine) {
            Ok(pid) => {
                machine.leader = pid;
                break;
            }
            Err(why) => {
                let exited = machine
                    .child
                    .as_mut()
                    .and_then(|c| c.try_wait().ok().flatten());
                if exited.is_some() || boot.elapsed() > Duration::from_secs(30) {
                    let _ = down(paths, Some(&mut machine)).await;
                    return fail(format!(
                        "the container did not start: {why}; nspawn's log ({}):\n{}",
                        paths.log.display(),
                        crate::topology::log_tail(&paths.log, 15)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let leader = machine.leader.to_string();
    let state = match wait_booted(&leader).await {
        Ok(state) => state,
        Err(e) => {
            let _ = down(paths, Some(&mut machine)).await;
            return Err(e);
        }
    };
    println!(
        "lab: booted in {:.1}s (system {}), systemd-nspawn pid {nspawn}, container systemd pid {}",
        boot.elapsed().as_secs_f64(),
        state.trim(),
        machine.leader
    );
    Ok(machine)
}

/// Waits until the container's systemd has booted: `running`, or `degraded` (a unit that
/// needs hardware or a host service failed; the lab does not need it).
pub(crate) async fn wait_booted(leader: &str) -> Result<String> {
    let start = Instant::now();
    loop {
        let output = tokio::process::Command::new("nsenter")
            .args([
                "-t",
                leader,
                "-a",
                "systemctl",
                "is-system-running",
                "--wait",
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .map_err(Error::io("cannot run nsenter"))?;
        let state = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        match state.as_str() {
            "running" => return Ok(state),
            "degraded" => {
                let failed = command_ok(
                    "nsenter",
                    &[
                        "-t",
                        leader,
                        "-a",
                        "systemctl",
                        "--failed",
                        "--plain",
                        "--no-legend",
                    ],
                )
                .await
                .unwrap_or_default();
                let units: Vec<&str> = failed
                    .lines()
                    .filter_map(|l| l.split_whitespace().next())
                    .collect();
                return Ok(format!("degraded; failed units: {}", units.join(" ")));
            }
            // Until systemd's bus is up, systemctl cannot ask it anything.
            _ if start.elapsed() < Duration::from_secs(90) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                return fail(format!(
                    "the container's systemd did not finish booting within 90s (state {state:?}: {})",
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
}

/// Stops the container (SIGTERM to nspawn: an orderly poweroff inside) and removes the
/// working copy.
async fn down(paths: &Paths, machine: Option<&mut Machine>) -> Result<()> {
    let pid = machine
        .as_ref()
        .map(|m| m.nspawn)
        .or_else(|| running_nspawn(paths));
    let mut child = machine.and_then(|m| m.child.take());
    if let Some(pid) = pid {
        let target = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        let _ = kill(target, Signal::SIGTERM);
        let start = Instant::now();
        let mut killed = false;
        loop {
            let gone = match child.as_mut() {
                Some(c) => c.try_wait().ok().flatten().is_some(),
                None => running_nspawn(paths).is_none(),
            };
            if gone {
                break;
            }
            if start.elapsed() > Duration::from_secs(30) && !killed {
                let _ = kill(target, Signal::SIGKILL);
                killed = true;
            }
            if start.elapsed() > Duration::from_secs(40) {
                return fail(format!("systemd-nspawn {pid} did not stop"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "lab: container stopped in {:.1}s{}",
            start.elapsed().as_secs_f64(),
            if killed { " (SIGKILL)" } else { "" }
        );
    } else {
        println!("lab: no container running");
    }
    let _ = std::fs::remove_file(&paths.pid_file);
    if paths.machine.exists() {
        std::fs::remove_dir_all(&paths.machine).map_err(Error::io(format!(
            "cannot remove {}",
            paths.machine.display()
        )))?;
    }
    Ok(())
}

/// One lab check, printed when it ends.
struct Checks {
    results: Vec<(String, bool)>,
}

impl Checks {
    fn record(&mut self, title: &str, outcome: Result<String>) -> bool {
        let passed = outcome.is_ok();
        let detail = match outcome {
            Ok(d) => d,
            Err(e) => e.to_string(),
        };
        println!(
            "[{}] lab    {title}: {detail}",
            if passed { "PASS" } else { "FAIL" }
        );
        self.results.push((title.to_owned(), passed));
        passed
    }
}

async fn test(paths: &Paths, keep: bool, release: bool) -> Result<ExitCode> {
    let wall = Instant::now();
    let root = workspace_root();
    let mut inventory = Inventory::load(&root.join(INVENTORY), &root)?;
    if ports_free(&inventory).is_err() {
        // The container shares the host's network: take free ports instead of busy ones.
        let mut fresh = crate::topology::free_ports(16)?.into_iter();
        let mut moved = std::collections::BTreeMap::new();
        inventory.remap_ports(|old| {
            *moved
                .entry(old)
                .or_insert_with(|| fresh.next().unwrap_or(old))
        })?;
        println!(
            "lab: ports of {INVENTORY} in use on this host; using free ones instead: {}",
            moved
                .iter()
                .map(|(a, b)| format!("{a}->{b}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        ports_free(&inventory)?;
    }
    let profile = if release {
        Profile::Release
    } else {
        Profile::Dev
    };
    let mut packages = deploy::packages(&inventory);
    // The load-test host's binary: the nightly check provisions it in the same container.
    packages.push("veza-load");
    let bin_dir = build::build_packages(profile, &packages).await?;
    if running_nspawn(paths).is_some() {
        println!("lab: a lab is running; stopping it for a fresh one");
        down(paths, None).await?;
    }
    let mut machine = up(paths).await?;
    let outcome = test_in(&inventory, &bin_dir, &machine, &paths.machine).await;
    if keep {
        // Reaped by init once we exit; `lab down` finds it through the pid file.
        machine.child = None;
        println!(
            "lab: left running (--keep): nsenter -t {} -a bash; `cargo xtask lab down` stops it",
            machine.leader
        );
    } else {
        down(paths, Some(&mut machine)).await?;
    }
    let passed = outcome?;
    println!(
        "\nlab test: {} in {:.1}s wall time",
        if passed { "PASS" } else { "FAIL" },
        wall.elapsed().as_secs_f64()
    );
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Every address the lab's services bind is free on the host (the container shares its
/// network).
fn ports_free(inventory: &Inventory) -> Result<()> {
    let mut addrs: Vec<String> = inventory.lb.bind.clone();
    addrs.push(inventory.lb.stats_socket.clone());
    if !inventory.lb.metrics_listen.is_empty() {
        addrs.push(inventory.lb.metrics_listen.clone());
    }
    for group in &inventory.groups {
        addrs.extend(group.instances.iter().filter_map(|i| i.addr.clone()));
    }
    for addr in addrs {
        if let Err(e) = TcpListener::bind(&addr) {
            return fail(format!(
                "{addr} (from {INVENTORY}) is not free on this host ({e}); the lab shares the \
                 host's network: stop what uses it or change the port in the inventory"
            ));
        }
    }
    Ok(())
}

async fn test_in(
    inventory: &Inventory,
    bin_dir: &Path,
    machine: &Machine,
    machine_root: &Path,
) -> Result<bool> {
    let mut checks = Checks {
        results: Vec::new(),
    };
    let options = deploy::Options {
        check: false,
        diff: false,
        bin_dir: bin_dir.to_path_buf(),
    };
    let units: Vec<String> = inventory
        .instances()
        .map(|(_, i)| i.plan.unit_name())
        .collect();
    let leader = machine.leader.to_string();
    let inside = |args: &[&str]| {
        let mut line = vec!["-t", leader.as_str(), "-a"];
        line.extend_from_slice(args);
        line.iter()
            .map(|s| (*s).to_owned())
            .collect::<Vec<String>>()
    };

    println!("\nlab: deploy {INVENTORY} (first run)");
    let first = deploy::deploy(inventory, &options).await?;
    let deployed = if first.failed() {
        fail("the first deploy failed (see above)")
    } else {
        Ok(format!(
            "{} hosts, {} changes, every unit started",
            first.hosts.len(),
            first.count(Status::Changed)
        ))
    };
    if !checks.record("first deploy", deployed) {
        return Ok(false);
    }

    let lb = inventory.lb.bind[0].clone();
    let answered = async {
        let start = Instant::now();
        loop {
            match crate::http::get(&lb, "/api/v1/health", &[]).await {
                Ok(r) if r.status == 200 => {
                    return Ok(format!(
                        "GET http://{lb}/api/v1/health: 200 from {} through veza-lb",
                        r.served_by()
                    ));
                }
                other if start.elapsed() > Duration::from_secs(20) => {
                    return fail(format!("veza-lb at {lb} does not answer 200: {other:?}"));
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    .await;
    checks.record("services answer", answered);

    let activated = socket_activated(&inside, &lb).await;
    checks.record("socket activation", activated);

    let mut main_pids = Vec::new();
    for unit in &units {
        let hardened = hardening(&inside, unit).await;
        if let Ok((pid, _)) = &hardened {
            main_pids.push((unit.clone(), pid.clone()));
        }
        checks.record(
            &format!("{unit} hardened"),
            hardened.map(|(_, detail)| detail),
        );
    }

    println!("\nlab: deploy {INVENTORY} again (must change nothing)");
    let second = deploy::deploy(inventory, &options).await?;
    let mut restarted = Vec::new();
    for (unit, pid) in &main_pids {
        let now = show(&inside, unit, &["MainPID"]).await.unwrap_or_default();
        if now.first().map(|(_, v)| v) != Some(pid) {
            restarted.push(unit.clone());
        }
    }
    let idempotent = if second.failed() {
        fail("the second deploy failed")
    } else if second.count(Status::Changed) > 0 {
        fail(format!(
            "the second deploy changed {} things",
            second.count(Status::Changed)
        ))
    } else if !restarted.is_empty() {
        fail(format!("restarted without cause: {}", restarted.join(", ")))
    } else {
        Ok(format!(
            "changed=0 on {} hosts, every main PID unchanged",
            second.hosts.len()
        ))
    };
    checks.record("second deploy", idempotent);

    // The seed's failover steps against the real services. systemctl kill is SIGKILL as
    // `incus stop --force` was; the stop right after keeps Restart=on-failure from bringing
    // it back before veza-lb marks it DOWN, as a stopped container stays down.
    let nsenter = format!("nsenter -t {leader} -a systemctl");
    let kill_cmd =
        format!("{nsenter} kill --signal=SIGKILL {VICTIM_UNIT} && {nsenter} stop {VICTIM_UNIT}");
    let start_cmd = format!("{nsenter} start {VICTIM_UNIT}");
    let interval = inventory.lb.health_interval.clone();
    let smoke_args = SmokeCli::try_parse_from([
        "smoke",
        "--lb",
        &lb,
        "--stats",
        &inventory.lb.stats_socket,
        "--interval",
        &interval,
        "--kill-cmd",
        &kill_cmd,
        "--start-cmd",
        &start_cmd,
    ])
    .map_err(|e| Error::Message(format!("cannot build the smoke arguments: {e}")))?;
    println!(
        "\nlab: smoke against the deployed services\n  kill: {kill_cmd}\n  start: {start_cmd}"
    );
    let smoke = crate::smoke::run(smoke_args.args).await?;
    let smoke_passed = smoke == ExitCode::SUCCESS;
    checks.record(
        "smoke",
        if smoke_passed {
            Ok("every smoke check passed (summary above)".to_owned())
        } else {
            fail("a smoke check failed (summary above)")
        },
    );
    let victim_state = show(&inside, VICTIM_UNIT, &["ActiveState", "NRestarts"]).await;
    checks.record(
        "victim back",
        victim_state.and_then(|props| {
            let text = props
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            if props.first().map(|(_, v)| v.as_str()) == Some("active") {
                Ok(format!("{VICTIM_UNIT}: {text}"))
            } else {
                fail(format!("{VICTIM_UNIT}: {text}"))
            }
        }),
    );

    let upgraded = upgrade_in_place(&inside, &nsenter, &lb).await;
    checks.record("binary upgrade", upgraded);
    let redeployed = deploy_new_binary_under_load(inventory, bin_dir, &inside, &lb).await;
    checks.record("deploy of a new veza-lb binary under load", redeployed);
    let nightly = nightly_load_test(
        machine_root,
        bin_dir,
        &inside,
        &lb,
        &inventory.lb.metrics_listen,
    )
    .await;
    checks.record("nightly load test (veza-load.timer)", nightly);

    let passed = checks.results.iter().filter(|(_, p)| *p).count();
    println!(
        "\nlab checks: {passed}/{} passed: {}",
        checks.results.len(),
        checks
            .results
            .iter()
            .map(|(t, p)| format!("{t} {}", if *p { "ok" } else { "FAILED" }))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(passed == checks.results.len())
}

/// The load-test host's role, provisioned in the lab: `examples/provision/veza-load.toml`
/// pointed at the lab's veza-lb, its run shortened to 10 s. The timer must be enabled and
/// waiting; then the service is started as the timer would start it, under its hardened
/// unit, and must exit 0 with a passing `summary.json` and a report next to it.
async fn nightly_load_test(
    machine_root: &Path,
    bin_dir: &Path,
    inside: &impl Fn(&[&str]) -> Vec<String>,
    lb: &str,
    metrics: &str,
) -> Result<String> {
    let io = |what: &str| Error::io(format!("nightly load test: {what}"));
    let binary = machine_root.join("opt/veza/load/veza-load");
    std::fs::create_dir_all(binary.parent().unwrap_or(machine_root)).map_err(io("mkdir"))?;
    std::fs::copy(bin_dir.join("veza-load"), &binary).map_err(io("copy veza-load"))?;
    let example = workspace_root().join("examples/provision/veza-load.toml");
    let role = std::fs::read_to_string(&example).map_err(io("read the example role"))?;
    let lab_role = role
        .replace("http://10.0.0.10:8080", &format!("http://{lb}"))
        .replace(
            "http://10.0.0.10:9101/metrics",
            &format!("http://{metrics}/metrics"),
        )
        .replace("\"--quiet\",", "\"--quiet\", \"--duration\", \"10s\",");
    if !lab_role.contains("\"10s\"") || !lab_role.contains(lb) {
        return fail("the example role's target or flags moved: update the lab's edit of it");
    }
    std::fs::write(machine_root.join("root/veza-load.toml"), lab_role)
        .map_err(io("write the role"))?;
    let provision = inside(&[
        deploy::PROVISION_PATH,
        "apply",
        "-c",
        "/root/veza-load.toml",
    ]);
    command_ok("nsenter", &to_refs(&provision)).await?;
    let timer = show(
        inside,
        "veza-load.timer",
        &["ActiveState", "UnitFileState", "NextElapseUSecRealtime"],
    )
    .await?;
    let value = |props: &[(String, String)], key: &str| {
        props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if value(&timer, "ActiveState") != "active" || value(&timer, "UnitFileState") != "enabled" {
        return fail(format!(
            "veza-load.timer is not active and enabled: {timer:?}"
        ));
    }
    // A oneshot: `systemctl start` returns when the run has ended.
    let started = inside(&["systemctl", "start", "veza-load.service"]);
    let run = command_ok("nsenter", &to_refs(&started)).await;
    let service = show(inside, "veza-load.service", &["Result", "ExecMainStatus"]).await?;
    let reports = machine_root.join("var/lib/veza-load");
    let summary = std::fs::read_dir(&reports)
        .map_err(io("list /var/lib/veza-load"))?
        .filter_map(|e| e.ok().map(|e| e.path().join("summary.json")))
        .find(|p| p.is_file());
    let Some(summary) = summary else {
        return fail(format!(
            "no summary.json under /var/lib/veza-load after the run ({run:?}, {service:?})"
        ));
    };
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).map_err(io("read summary.json"))?)
            .map_err(|e| Error::Message(format!("{}: {e}", summary.display())))?;
    let requests = json["runs"][0]["all"]["requests"].as_u64().unwrap_or(0);
    let passed = json["passed"].as_bool() == Some(true);
    let report = summary.with_file_name("report.html");
    if run.is_err() || value(&service, "Result") != "success" || !passed || !report.is_file() {
        return fail(format!(
            "the scheduled run failed: {service:?}, passed={passed}, failures {}",
            json["runs"][0]["failures"]
        ));
    }
    Ok(format!(
        "timer enabled, next run {}; one run under the hardened unit: exit {}, {requests} requests, every threshold held, {}",
        value(&timer, "NextElapseUSecRealtime"),
        value(&service, "ExecMainStatus"),
        report
            .strip_prefix(machine_root)
            .unwrap_or(&report)
            .display()
    ))
}

/// The lab's veza-lb is socket-activated: `veza-lb.socket` listens on the frontend address and
/// veza-lb adopted that socket instead of binding it (its log says so).
async fn socket_activated(inside: &impl Fn(&[&str]) -> Vec<String>, lb: &str) -> Result<String> {
    let socket = show(inside, "veza-lb.socket", &["ActiveState", "Listen"]).await?;
    let value = |key: &str| {
        socket
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if value("ActiveState") != "active" || !value("Listen").contains(lb) {
        return fail(format!("veza-lb.socket: {socket:?}"));
    }
    let journal = inside(&[
        "journalctl",
        "-u",
        "veza-lb.service",
        "--no-pager",
        "-o",
        "cat",
    ]);
    let log = command_ok("nsenter", &to_refs(&journal)).await?;
    let adopted = format!("adopted listening socket {lb}");
    match log.lines().find(|l| l.contains(&adopted)) {
        Some(line) => Ok(format!(
            "veza-lb.socket listens on {}; {}",
            value("Listen"),
            line.trim()
        )),
        None => fail(format!("no `{adopted}` in veza-lb's journal")),
    }
}

/// veza-lb replaces its binary inside the hardened unit (`ctl upgrade` on the admin socket):
/// systemd follows the new main process (`MAINPID=`), the unit stays active without a
/// restart, and the new process serves.
async fn upgrade_in_place(
    inside: &impl Fn(&[&str]) -> Vec<String>,
    nsenter_systemctl: &str,
    lb: &str,
) -> Result<String> {
    const UNIT: &str = "veza-lb.service";
    let before = show(inside, UNIT, &["MainPID"]).await?;
    let ctl = inside(&[
        "/opt/veza/lb/veza-lb",
        "ctl",
        "--socket",
        "unix:/run/veza-lb/admin.sock",
        "upgrade",
    ]);
    let answer = command_ok("nsenter", &to_refs(&ctl)).await?;
    if !answer.starts_with("Upgraded: pid") {
        return fail(format!("ctl upgrade answered: {}", answer.trim()));
    }
    // The old process drains and exits; systemd follows the new one.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = show(inside, UNIT, &["MainPID", "ActiveState", "NRestarts"]).await?;
        let value = |key: &str| {
            now.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let served = crate::http::get(lb, "/api/v1/health", &[]).await;
        let moved = Some(&value("MainPID")) != before.first().map(|(_, v)| v);
        if moved
            && value("ActiveState") == "active"
            && value("NRestarts") == "0"
            && matches!(&served, Ok(r) if r.status == 200)
        {
            return Ok(format!(
                "{}; {UNIT} MainPID {} -> {}, still active, not restarted; GET 200",
                answer.trim(),
                before.first().map_or("?", |(_, v)| v.as_str()),
                value("MainPID")
            ));
        }
        if Instant::now() > deadline {
            return fail(format!(
                "after `{}`: {now:?}, GET {served:?} ({nsenter_systemctl})",
                answer.trim()
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `cargo xtask deploy` of a changed veza-lb binary while clients keep requesting: deploy
/// replaces the binary in place (`ctl upgrade`), not by a restart (the unit's main process
/// changes, its invocation (`InvocationID`) does not), and no request fails.
async fn deploy_new_binary_under_load(
    inventory: &Inventory,
    bin_dir: &Path,
    inside: &impl Fn(&[&str]) -> Vec<String>,
    lb: &str,
) -> Result<String> {
    const UNIT: &str = "veza-lb.service";
    let changed = tempfile::tempdir().map_err(Error::io("cannot create a temporary directory"))?;
    for entry in std::fs::read_dir(bin_dir).map_err(Error::io("cannot list the binaries"))? {
        let path = entry.map_err(Error::io("cannot list the binaries"))?.path();
        if path.is_file() {
            let name = path.file_name().unwrap_or_default();
            std::fs::copy(&path, changed.path().join(name))
                .map_err(Error::io(format!("cannot copy {}", path.display())))?;
        }
    }
    // Another build of veza-lb, as far as deploy can tell: bytes after the ELF image change
    // its digest, not what it runs.
    let veza_lb = changed.path().join("veza-lb");
    let mut bytes = std::fs::read(&veza_lb).map_err(Error::io("cannot read veza-lb"))?;
    bytes.extend_from_slice(b"\nveza-lab-rebuild\n");
    std::fs::write(&veza_lb, bytes).map_err(Error::io("cannot write veza-lb"))?;

    let before = show(inside, UNIT, &["MainPID", "InvocationID"]).await?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (served, failed) = (
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
    );
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, served, failed, lb) =
                (stop.clone(), served.clone(), failed.clone(), lb.to_owned());
            tokio::spawn(async move {
                use std::sync::atomic::Ordering::Relaxed;
                while !stop.load(Relaxed) {
                    match crate::http::get(&lb, "/api/v1/health", &[]).await {
                        Ok(r) if r.status == 200 => served.fetch_add(1, Relaxed),
                        _ => failed.fetch_add(1, Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let options = deploy::Options {
        check: false,
        diff: false,
        bin_dir: changed.path().to_path_buf(),
    };
    println!("\nlab: deploy a rebuilt veza-lb under load");
    let recap = deploy::deploy(inventory, &options).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let recap = recap?;
    let after = show(inside, UNIT, &["MainPID", "InvocationID", "ActiveState"]).await?;
    let get = |props: &[(String, String)], key: &str| {
        props
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (served, failed) = (
        served.load(std::sync::atomic::Ordering::Relaxed),
        failed.load(std::sync::atomic::Ordering::Relaxed),
    );
    let summary = format!(
        "{served} requests, {failed} failed; MainPID {} -> {}, {}",
        get(&before, "MainPID"),
        get(&after, "MainPID"),
        get(&after, "ActiveState")
    );
    if recap.failed() {
        return fail(format!("the deploy failed (see above); {summary}"));
    }
    if failed > 0 || served == 0 {
        return fail(summary);
    }
    if get(&before, "MainPID") == get(&after, "MainPID") {
        return fail(format!("the binary was not replaced: {summary}"));
    }
    if get(&before, "InvocationID") != get(&after, "InvocationID") {
        return fail(format!("restarted, not upgraded in place: {summary}"));
    }
    Ok(format!("{summary}, replaced in place (no restart)"))
}

/// `smoke`'s own arguments, parsed as its command line would be.
#[derive(Debug, Parser)]
struct SmokeCli {
    #[command(flatten)]
    args: crate::smoke::Args,
}

/// `systemctl show UNIT -p ...` inside the lab, as (property, value) in the order asked.
async fn show(
    inside: &impl Fn(&[&str]) -> Vec<String>,
    unit: &str,
    properties: &[&str],
) -> Result<Vec<(String, String)>> {
    let mut args = vec!["systemctl", "show", unit];
    for p in properties {
        args.extend(["-p", p]);
    }
    let line = inside(&args);
    let refs: Vec<&str> = line.iter().map(String::as_str).collect();
    let text = command_ok("nsenter", &refs).await?;
    let values: std::collections::BTreeMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once('=')).collect();
    Ok(properties
        .iter()
        .map(|p| {
            (
                (*p).to_owned(),
                values.get(p).copied().unwrap_or("").to_owned(),
            )
        })
        .collect())
}

/// What systemd reports in force for a unit, and what the kernel says of its main process.
/// Returns the main PID and a one-line summary.
async fn hardening(
    inside: &impl Fn(&[&str]) -> Vec<String>,
    unit: &str,
) -> Result<(String, String)> {
    // (property, value systemd must report)
    let expected = [
        ("ActiveState", "active"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("PrivateUsers", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectControlGroups", "yes"),
        ("RestrictNamespaces", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectProc", "invisible"),
    ];
    let mut properties: Vec<&str> = expected.iter().map(|(p, _)| *p).collect();
    properties.extend(["MainPID", "User", "IPAddressDeny"]);
    let props = show(inside, unit, &properties).await?;
    let get = |name: &str| {
        props
            .iter()
            .find(|(p, _)| p == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(p, v)| get(p) != *v)
        .map(|(p, v)| format!("{p}={} (want {v:?})", get(p)))
        .collect();
    if !wrong.is_empty() {
        return fail(format!("systemctl show {unit}: {}", wrong.join(", ")));
    }
    let pid = get("MainPID").to_owned();
    let status_file = format!("/proc/{pid}/status");
    let status = command_ok("nsenter", &to_refs(&inside(&["cat", &status_file]))).await?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    let (nnp, seccomp, cap_eff, uid) = (
        field("NoNewPrivs:"),
        field("Seccomp:"),
        field("CapEff:"),
        field("Uid:"),
    );
    if nnp != "1" || seccomp != "2" || !cap_eff.trim_start_matches('0').is_empty() {
        return fail(format!(
            "{unit} main process {pid}: NoNewPrivs {nnp}, Seccomp {seccomp}, CapEff {cap_eff}: \
             the sandbox is not in force"
        ));
    }
    if uid.split_whitespace().next() == Some("0") {
        return fail(format!("{unit} main process {pid} runs as root"));
    }
    let security = command_ok(
        "nsenter",
        &to_refs(&inside(&[
            "systemd-analyze",
            "security",
            "--no-pager",
            unit,
        ])),
    )
    .await?;
    let exposure = security
        .lines()
        .find_map(|l| {
            l.contains("Overall exposure level")
                .then(|| l.rsplit(':').next().unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let score: f64 = exposure
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::MAX);
    if score > 1.0 {
        return fail(format!(
            "systemd-analyze security {unit}: exposure {exposure:?}, above 1.0"
        ));
    }
    Ok((
        pid.clone(),
        format!(
            "active as {} (pid {pid}: NoNewPrivs 1, Seccomp 2, CapEff 0), ProtectSystem=strict, \
             PrivateUsers=yes, IPAddressDeny={}, systemd-analyze security {exposure}",
            get("User"),
            get("IPAddressDeny"),
        ),
    ))
}

fn to_refs(line: &[String]) -> Vec<&str> {
    line.iter().map(String::as_str).collect()
}
