//! `cargo xtask pair` (root, keepalived): the LB pair for real, in network namespaces.
//!
//! ```text
//!   client 192.0.2.10 ─┐                      ┌─ lb-1 .11 (veza-lb + keepalived, priority 150)
//!                      ├── front 192.0.2.0/24 ┤      virtual address 192.0.2.100
//!                      │                      └─ lb-2 .12 (veza-lb + keepalived, priority 100)
//!   backends 198.51.100.20 ── back 198.51.100.0/24 ── lb-1 .11, lb-2 .12
//! ```
//!
//! Everything comes from `examples/inventory/lb-pair.toml`, rendered by the code `deploy`
//! uses: veza-lb's configuration, and each host's `[vrrp]` section turned into keepalived's
//! configuration by veza-provision's renderer. The LB hosts run veza-lb and keepalived as
//! plain processes (`processes`), or with `--systemd` as the hardened units veza-provision
//! installs, in a booted Debian per host (`containers`: systemd-nspawn joined to the host's
//! namespace). For each advert interval, a client probes the virtual address every 10 ms
//! (`probe`) while the rounds run: the MASTER's veza-lb killed (keepalived's health script,
//! `veza-lb probe`, gives the address away) and started again (it takes the address back:
//! preemption), the MASTER's link pulled, and put back. Each round reports the time from the
//! fault to the first 200 through the virtual address, the failed attempts, and which host
//! holds the address. Both hosts must route every sticky cookie and hash key to the same
//! backend. The namespaces, containers and processes are removed at the end, also on failure.

mod containers;
mod probe;
mod processes;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::build::{self, Profile, workspace_root};
use crate::deploy::Inventory;
use crate::netns::Network;
use crate::topology::{API_SERVERS, COOKIE, Process, find_program};
use crate::{Error, Result, fail, parse_duration};
use probe::{Answer, Probe, get};

const INVENTORY: &str = "examples/inventory/lb-pair.toml";
const VIP: &str = "192.0.2.100";
const FRONT_PORT: u16 = 8080;
const LBS: [(&str, &str, &str); 2] = [
    ("lb-1", "192.0.2.11", "198.51.100.11"),
    ("lb-2", "192.0.2.12", "198.51.100.12"),
];
/// How long any one state change may take before the run fails.
const SETTLE: Duration = Duration::from_secs(20);
/// How long a client retrying an idempotent GET keeps trying (a browser's patience).
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// Options of `cargo xtask pair`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// VRRP advert intervals to run the rounds with, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1s,200ms")]
    adverts: Vec<String>,
    /// Use the binaries in DIR (veza-lb, veza-demo-backend, and veza-provision with
    /// --systemd) instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Build release binaries.
    #[arg(long)]
    release: bool,
    /// Unicast adverts between the two hosts instead of the inventory's multicast.
    #[arg(long)]
    unicast: bool,
    /// Failed health probes before a host gives the address away, instead of the
    /// inventory's.
    #[arg(long, value_name = "N")]
    check_fall: Option<u32>,
    /// Run each LB host as a booted Debian (systemd-nspawn in its namespace) with the units
    /// veza-provision installs: veza-lb.service and the hardened veza-keepalived.service.
    #[arg(long)]
    systemd: bool,
}

/// Why `xtask pair` cannot run here, if it cannot.
pub fn preflight(systemd: bool) -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (network namespaces, keepalived)".into());
    }
    let mut tools = vec![("ip", "iproute2"), ("keepalived", "keepalived")];
    if systemd {
        tools.extend([
            ("systemd-nspawn", "systemd-container"),
            ("debootstrap", "debootstrap"),
        ]);
    }
    for (tool, package) in tools {
        if find_program(tool).is_none() {
            return Err(format!(
                "{tool} is not installed (apt-get install {package})"
            ));
        }
    }
    Ok(())
}

/// What runs on the two LB hosts: plain processes or systemd units.
trait LbHosts {
    /// Kills host `i`'s veza-lb (and keeps it down).
    async fn kill_lb(&mut self, net: &Network, i: usize) -> Result<()>;
    /// Starts host `i`'s veza-lb; returns once it answers.
    async fn start_lb(&mut self, net: &Network, i: usize) -> Result<()>;
    /// keepalived on both hosts with adverts every `advert`.
    async fn start_vrrp(
        &mut self,
        net: &Network,
        inventory: &Inventory,
        advert: &str,
    ) -> Result<()>;
    /// After a series of rounds.
    async fn stop_vrrp(&mut self);
    /// The end of every log, for a failure report.
    async fn logs(&self) -> String;
}

/// Runs the pair's rounds; exit 1 when a check fails.
pub async fn run(args: Args) -> Result<ExitCode> {
    preflight(args.systemd).map_err(|e| Error::Message(format!("pair: {e}")))?;
    for advert in &args.adverts {
        parse_duration(advert).map_err(|e| Error::Message(format!("--adverts: {e}")))?;
    }
    let root = workspace_root();
    let mut inventory = Inventory::load(&root.join(INVENTORY), &root)?;
    if let Some(pair) = inventory.lb_pair.as_mut() {
        pair.unicast |= args.unicast;
        pair.check_fall = args.check_fall.or(pair.check_fall);
    }
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => {
            let profile = if args.release {
                Profile::Release
            } else {
                Profile::Dev
            };
            let packages = ["veza-lb", "veza-demo-backend", "veza-provision"];
            build::build_packages(profile, &packages).await?
        }
    };
    let work = tempfile::Builder::new()
        .prefix("veza-pair-")
        .tempdir()
        .map_err(Error::io("cannot create a temporary directory"))?;
    let mut net = Network::new()?;
    build_network(&mut net)?;
    let mut backends = start_backends(&net, &inventory, &bin_dir, work.path()).await?;
    let (rounds, passed) = if args.systemd {
        let mut hosts =
            containers::Containers::start(&net, &inventory, &bin_dir, work.path()).await?;
        let (mut rounds, mut passed) =
            run_rounds(&mut hosts, &net, &inventory, &args.adverts).await;
        if passed {
            match hosts.rolling_deploy(&net, &inventory, &bin_dir).await {
                Ok(rolled) => {
                    passed &= rolled.passed();
                    rounds.extend(rolled.rounds(&containers::inventory_advert(&inventory)));
                }
                Err(e) => {
                    passed = false;
                    println!("[FAIL] rolling deploy: {e}");
                    println!("{}", hosts.logs().await);
                }
            }
        }
        hosts.stop().await;
        (rounds, passed)
    } else {
        let mut hosts =
            processes::Processes::start(&net, &inventory, &bin_dir, work.path()).await?;
        let outcome = run_rounds(&mut hosts, &net, &inventory, &args.adverts).await;
        hosts.stop().await;
        outcome
    };
    for backend in &mut backends {
        backend.stop(Duration::from_secs(3)).await;
    }
    print_report(&rounds);
    drop(net);
    Ok(if passed && !rounds.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The routing check, then the rounds for every advert interval; whether all passed.
async fn run_rounds(
    hosts: &mut impl LbHosts,
    net: &Network,
    inventory: &Inventory,
    adverts: &[String],
) -> (Vec<Round>, bool) {
    let mut passed = true;
    match same_routing(net).await {
        Ok(detail) => println!("[PASS] both LBs route alike: {detail}"),
        Err(e) => {
            passed = false;
            println!("[FAIL] both LBs route alike: {e}");
        }
    }
    let mut rounds = Vec::new();
    for advert in adverts {
        match rounds_with(hosts, net, inventory, advert).await {
            Ok(done) => rounds.extend(done),
            Err(e) => {
                passed = false;
                println!("[FAIL] rounds with adverts every {advert}: {e}");
                println!("{}", hosts.logs().await);
                break;
            }
        }
    }
    (rounds, passed)
}

fn build_network(net: &mut Network) -> Result<()> {
    for ns in ["sw", "client", "lb-1", "lb-2", "backends"] {
        net.namespace(ns)?;
    }
    net.bridge("sw", "front")?;
    net.bridge("sw", "back")?;
    net.plug("client", "eth0", "192.0.2.10/24", "sw", "front", "c0")?;
    for (i, (lb, front, back)) in LBS.iter().enumerate() {
        net.plug(
            lb,
            "eth0",
            &format!("{front}/24"),
            "sw",
            "front",
            &format!("f{i}"),
        )?;
        net.plug(
            lb,
            "eth1",
            &format!("{back}/24"),
            "sw",
            "back",
            &format!("b{i}"),
        )?;
    }
    net.plug("backends", "eth0", "198.51.100.20/24", "sw", "back", "be")
}

/// The demo backends of the inventory's groups, in the backends' namespace.
async fn start_backends(
    net: &Network,
    inventory: &Inventory,
    bin_dir: &Path,
    dir: &Path,
) -> Result<Vec<Process>> {
    let demo = bin_dir.join("veza-demo-backend");
    let mut backends = Vec::new();
    for (_, instance) in inventory.instances() {
        let Some(addr) = &instance.addr else { continue };
        if !addr.starts_with("198.51.100.") {
            continue;
        }
        let name = instance.host.name.clone();
        let kind = if name.starts_with("stream") {
            "stream"
        } else {
            "api"
        };
        let mut command = net.command("backends", &demo.display().to_string());
        command.args([
            "--listen",
            addr,
            "--name",
            &name,
            "--kind",
            kind,
            "--threads",
            "1",
        ]);
        let mut process = Process::spawn(&name, command, &dir.join(format!("{name}.log")))?;
        let log = process.log().to_path_buf();
        let line = format!("{name} listening on");
        process
            .wait_until("listening", || {
                let (log, line) = (log.clone(), line.clone());
                async move {
                    std::fs::read_to_string(&log)
                        .map(|t| t.contains(&line))
                        .unwrap_or(false)
                }
            })
            .await?;
        backends.push(process);
    }
    Ok(backends)
}

/// Waits until host `i`'s veza-lb answers its monitor_uri, asked from the client.
async fn wait_lb_ready(net: &Network, i: usize) -> Result<()> {
    let (name, front, _) = LBS[i];
    let addr: SocketAddr = format!("{front}:{FRONT_PORT}")
        .parse()
        .map_err(|_| Error::Message(format!("{front} is not an address")))?;
    let ready = net.thread("client", move || {
        let start = Instant::now();
        while start.elapsed() < SETTLE {
            let answer = get(addr, crate::lbpair::MONITOR_URI, None);
            if matches!(answer, Ok(Answer { status: 200, .. })) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    })?;
    match tokio::task::spawn_blocking(move || ready.join().unwrap_or(false)).await {
        Ok(true) => Ok(()),
        _ => fail(format!("veza-lb on {name} does not answer on {addr}")),
    }
}

/// One round's outcome.
struct Round {
    advert: String,
    title: &'static str,
    /// The longest time without a 200 through the virtual address around failures: for a
    /// fault, from the fault to the first 200; zero when no request failed.
    to_first_200: Duration,
    failed: usize,
    /// Failed attempts a client retrying for up to [`RETRY_BUDGET`] would still have seen
    /// fail (no 200 within the budget after them).
    failed_with_retries: usize,
    holder: &'static str,
}

/// The rounds with adverts every `advert`.
async fn rounds_with(
    hosts: &mut impl LbHosts,
    net: &Network,
    inventory: &Inventory,
    advert: &str,
) -> Result<Vec<Round>> {
    println!("\npair: keepalived with VRRPv3 adverts every {advert}");
    hosts.start_vrrp(net, inventory, advert).await?;
    wait_holder(net, "lb-1").await?;
    let probe = Probe::start(net)?;
    probe.wait_success_after(Instant::now()).await?;
    let mut rounds = Vec::new();
    let mut round = |title, t0: Instant, holder| {
        let (to_first_200, failed, failed_with_retries) = probe.outcome_since(t0);
        println!(
            "  {title}: {:.0} ms without a 200, {failed} failed attempts \
             ({failed_with_retries} with retries), address on {holder}",
            to_first_200.as_secs_f64() * 1000.0
        );
        rounds.push(Round {
            advert: advert.to_owned(),
            title,
            to_first_200,
            failed,
            failed_with_retries,
            holder,
        });
    };

    let t0 = Instant::now();
    hosts.kill_lb(net, 0).await?;
    wait_holder(net, "lb-2").await?;
    probe.wait_success_after(t0).await?;
    probe.settle().await;
    round("veza-lb killed on the MASTER", t0, "lb-2");

    let t0 = Instant::now();
    hosts.start_lb(net, 0).await?;
    wait_holder(net, "lb-1").await?;
    probe.settle().await;
    round("veza-lb back: lb-1 takes the address back", t0, "lb-1");

    let t0 = Instant::now();
    net.link("lb-1", "eth0", false)?;
    wait_holder(net, "lb-2").await?;
    probe.wait_success_after(t0).await?;
    probe.settle().await;
    round("MASTER's link down", t0, "lb-2");

    let t0 = Instant::now();
    net.link("lb-1", "eth0", true)?;
    wait_holder(net, "lb-1").await?;
    probe.settle().await;
    round("link back: lb-1 takes the address back", t0, "lb-1");

    probe.stop();
    hosts.stop_vrrp().await;
    Ok(rounds)
}

/// Waits until `host` alone holds the virtual address.
async fn wait_holder(net: &Network, host: &'static str) -> Result<()> {
    let start = Instant::now();
    loop {
        let holders: Vec<&str> = LBS
            .iter()
            .map(|l| l.0)
            .filter(|lb| net.holds(lb, VIP))
            .collect();
        if holders == [host] {
            return Ok(());
        }
        if start.elapsed() > SETTLE {
            return fail(format!(
                "the virtual address is on {holders:?}, not on {host} alone, after {SETTLE:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// keepalived's configuration for host `name`: its `[vrrp]` section as the inventory renders
/// it, adverts every `advert`.
fn vrrp_config(
    inventory: &Inventory,
    name: &str,
    advert: &str,
) -> Result<provision::vrrp::VrrpConfig> {
    let section = vrrp_section(inventory, name, advert)?;
    let body = section.split_once("[vrrp]\n").map_or("", |(_, b)| b);
    let vrrp: provision::vrrp::VrrpConfig =
        toml::from_str(body).map_err(|e| Error::Message(format!("{name}'s [vrrp]: {e}")))?;
    let problems = vrrp.problems();
    if problems.is_empty() {
        Ok(vrrp)
    } else {
        fail(format!("{name}'s [vrrp]: {}", problems.join("; ")))
    }
}

/// Host `name`'s `[vrrp]` section, adverts every `advert`.
fn vrrp_section(inventory: &Inventory, name: &str, advert: &str) -> Result<String> {
    let mut pair = inventory
        .lb_pair
        .clone()
        .ok_or_else(|| Error::Message(format!("{INVENTORY} has no [lb_pair]")))?;
    advert.clone_into(&mut pair.advert_interval);
    let url = crate::lbpair::check_url(&inventory.lb.bind[0]);
    pair.vrrp_section(name, &url)
        .ok_or_else(|| Error::Message(format!("{name} is not in [lb_pair]")))
}

/// Every sticky cookie and hash key reaches the same backend through either host.
async fn same_routing(net: &Network) -> Result<String> {
    let job = net.thread("client", || -> Result<String, String> {
        let lb = |i: usize| -> SocketAddr {
            format!("{}:{FRONT_PORT}", LBS[i].1)
                .parse()
                .unwrap_or_else(|_| unreachable!("literal addresses"))
        };
        let served = |i: usize, path: &str, cookie: Option<&str>| -> Result<Answer, String> {
            get(lb(i), path, cookie).map_err(|e| format!("{path} via {}: {e}", LBS[i].0))
        };
        let mut same = 0;
        for server in API_SERVERS {
            let cookie = format!("{COOKIE}={server}");
            let (a, b) = (
                served(0, "/api/v1/me", Some(&cookie))?,
                served(1, "/api/v1/me", Some(&cookie))?,
            );
            if a.served_by != server || b.served_by != server {
                return Err(format!(
                    "cookie {cookie}: lb-1 sent it to {}, lb-2 to {}",
                    a.served_by, b.served_by
                ));
            }
            same += 1;
        }
        // A cookie set by one host is honoured by the other.
        let first = served(0, "/api/v1/me", None)?;
        let set = first.set_cookie.clone().ok_or("lb-1 set no cookie")?;
        let replay = served(1, "/api/v1/me", Some(&set))?;
        if replay.served_by != first.served_by {
            return Err(format!(
                "{set} from lb-1 went to {} through lb-2",
                replay.served_by
            ));
        }
        same += 1;
        for track in 1..=100 {
            let path = format!("/stream/{track}/seg-0.ts");
            let (a, b) = (served(0, &path, None)?, served(1, &path, None)?);
            if a.served_by != b.served_by || a.status != 200 {
                return Err(format!(
                    "{path}: lb-1 chose {}, lb-2 {}",
                    a.served_by, b.served_by
                ));
            }
            same += 1;
        }
        Ok(format!(
            "{same}/{same} cookies and hash keys reach the same backend through lb-1 and lb-2"
        ))
    })?;
    tokio::task::spawn_blocking(move || job.join())
        .await
        .map_err(|e| Error::Message(e.to_string()))?
        .map_err(|_| Error::Message("the routing check panicked".into()))?
        .map_err(Error::Message)
}

fn print_report(rounds: &[Round]) {
    println!("\npair: failover through the virtual address {VIP} (client probing every 10 ms)");
    println!(
        "  {:<7} {:<46} {:>14} {:>7} {:>13} {:>7}",
        "adverts", "round", "no 200 for (ms)", "failed", "with retries", "holder"
    );
    for r in rounds {
        println!(
            "  {:<7} {:<46} {:>14.0} {:>7} {:>13} {:>7}",
            r.advert,
            r.title,
            r.to_first_200.as_secs_f64() * 1000.0,
            r.failed,
            r.failed_with_retries,
            r.holder
        );
    }
    println!(
        "  failed: attempts refused or cut while the address moved; with retries: those a \
         client retrying for {}s would still have seen fail",
        RETRY_BUDGET.as_secs()
    );
}
