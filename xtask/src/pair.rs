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
//! configuration by veza-provision's renderer. For each advert interval, a client probes the
//! virtual address every 10 ms while the rounds run: the MASTER's veza-lb killed (keepalived's
//! health script, `veza-lb probe`, gives the address away) and started again (it takes the
//! address back: preemption), the MASTER's link pulled, and put back. Each round reports the
//! time from the fault to the first 200 through the virtual address, the failed attempts,
//! and which host holds the address. Both hosts must route every sticky cookie and hash key
//! to the same backend. The namespaces and every process are removed at the end, also on
//! failure.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::build::{self, Profile, workspace_root};
use crate::deploy::Inventory;
use crate::netns::Network;
use crate::topology::{API_SERVERS, COOKIE, Process, find_program};
use crate::{Error, Result, fail, parse_duration};

const INVENTORY: &str = "examples/inventory/lb-pair.toml";
const VIP: &str = "192.0.2.100";
const FRONT_PORT: u16 = 8080;
const LBS: [(&str, &str, &str); 2] = [
    ("lb-1", "192.0.2.11", "198.51.100.11"),
    ("lb-2", "192.0.2.12", "198.51.100.12"),
];
/// How long any one state change may take before the run fails.
const SETTLE: Duration = Duration::from_secs(20);

/// Options of `cargo xtask pair`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// VRRP advert intervals to run the rounds with, one after the other.
    #[arg(long, value_delimiter = ',', default_value = "1s,200ms")]
    adverts: Vec<String>,
    /// Use the veza-lb and veza-demo-backend binaries in DIR instead of building them.
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Build release binaries.
    #[arg(long)]
    release: bool,
    /// Unicast adverts between the two hosts instead of the inventory's multicast.
    #[arg(long)]
    unicast: bool,
    /// Failed health probes before a host gives the address away, instead of the
    /// inventory's (1 halves the time a killed veza-lb keeps the address).
    #[arg(long, value_name = "N")]
    check_fall: Option<u32>,
}

/// Why `xtask pair` cannot run here, if it cannot.
pub fn preflight() -> Result<(), String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root (network namespaces, keepalived)".into());
    }
    for (tool, package) in [("ip", "iproute2"), ("keepalived", "keepalived")] {
        if find_program(tool).is_none() {
            return Err(format!(
                "{tool} is not installed (apt-get install {package})"
            ));
        }
    }
    Ok(())
}

/// Runs the pair's rounds; exit 1 when a check fails.
pub async fn run(args: Args) -> Result<ExitCode> {
    preflight().map_err(|e| Error::Message(format!("pair: {e}")))?;
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
            build::build_packages(profile, &["veza-lb", "veza-demo-backend"]).await?
        }
    };
    let work = tempfile::Builder::new()
        .prefix("veza-pair-")
        .tempdir()
        .map_err(Error::io("cannot create a temporary directory"))?;
    let mut net = Network::new()?;
    build_network(&mut net)?;
    let mut pair = Pair::start(&net, &inventory, &bin_dir, work.path()).await?;
    let mut rounds = Vec::new();
    let mut passed = true;
    let routing = pair.same_routing(&net).await;
    match &routing {
        Ok(detail) => println!("[PASS] both LBs route alike: {detail}"),
        Err(e) => {
            passed = false;
            println!("[FAIL] both LBs route alike: {e}");
        }
    }
    for advert in &args.adverts {
        match pair.rounds(&net, &inventory, advert).await {
            Ok(done) => rounds.extend(done),
            Err(e) => {
                passed = false;
                println!("[FAIL] rounds with adverts every {advert}: {e}");
                println!("{}", pair.log_tails(15));
                break;
            }
        }
    }
    pair.stop().await;
    print_report(&rounds);
    drop(net);
    Ok(if passed && !rounds.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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

/// One round's outcome.
struct Round {
    advert: String,
    title: &'static str,
    /// From the fault to the first 200 through the virtual address after a failure; zero
    /// when no request failed.
    to_first_200: Duration,
    failed: usize,
    /// Failed attempts a client retrying for up to [`RETRY_BUDGET`] would still have seen
    /// fail (no 200 within the budget after them).
    failed_with_retries: usize,
    holder: &'static str,
}

/// How long a client retrying an idempotent GET keeps trying (a browser's patience).
const RETRY_BUDGET: Duration = Duration::from_secs(5);

/// The running pair: backends, both veza-lb and both keepalived.
struct Pair {
    backends: Vec<Process>,
    lbs: Vec<Option<Process>>,
    keepalived: Vec<Option<Process>>,
    bin_dir: PathBuf,
    dir: PathBuf,
}

/// What a veza-demo-backend logs once it listens.
async fn wait_logged(process: &mut Process, line: &str) -> Result<()> {
    let log = process.log().to_path_buf();
    process
        .wait_until(&format!("logging {line:?}"), || {
            let (log, line) = (log.clone(), line.to_owned());
            async move {
                std::fs::read_to_string(&log)
                    .map(|t| t.contains(&line))
                    .unwrap_or(false)
            }
        })
        .await
}

impl Pair {
    async fn start(
        net: &Network,
        inventory: &Inventory,
        bin_dir: &Path,
        dir: &Path,
    ) -> Result<Pair> {
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
            wait_logged(&mut process, &format!("{name} listening on")).await?;
            backends.push(process);
        }
        let config = dir.join("veza-lb.toml");
        std::fs::write(&config, inventory.render_lb_config())
            .map_err(Error::io("cannot write veza-lb's configuration"))?;
        let mut pair = Pair {
            backends,
            lbs: vec![None, None],
            keepalived: vec![None, None],
            bin_dir: bin_dir.to_path_buf(),
            dir: dir.to_path_buf(),
        };
        for i in 0..LBS.len() {
            pair.start_lb(net, i).await?;
        }
        Ok(pair)
    }

    /// Starts veza-lb on host `i`; returns once its frontend answers its monitor_uri.
    async fn start_lb(&mut self, net: &Network, i: usize) -> Result<()> {
        let (name, front, _) = LBS[i];
        let veza_lb = self.bin_dir.join("veza-lb");
        let mut command = net.command(name, &veza_lb.display().to_string());
        command
            .arg("-c")
            .arg(self.dir.join("veza-lb.toml"))
            .args(["--log-level", "info,access=warn"]);
        let log = self.dir.join(format!("{name}-veza-lb.log"));
        self.lbs[i] = Some(Process::spawn(
            &format!("veza-lb on {name}"),
            command,
            &log,
        )?);
        let addr: SocketAddr = format!("{front}:{FRONT_PORT}")
            .parse()
            .map_err(|_| Error::Message("address".into()))?;
        let ready = net.thread("client", move || {
            let start = Instant::now();
            while start.elapsed() < SETTLE {
                if matches!(get(addr, crate::lbpair::MONITOR_URI, None), Ok(answer) if answer.status == 200) {
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

    /// keepalived on both hosts with adverts every `advert`, from each host's `[vrrp]`
    /// section as the inventory renders it.
    fn start_keepalived(
        &mut self,
        net: &Network,
        inventory: &Inventory,
        advert: &str,
    ) -> Result<()> {
        let pair = inventory
            .lb_pair
            .as_ref()
            .ok_or_else(|| Error::Message(format!("{INVENTORY} has no [lb_pair]")))?;
        let veza_lb = systemd_unit::AbsPath::new(self.bin_dir.join("veza-lb"))
            .map_err(|e| Error::Message(e.to_string()))?;
        let user =
            systemd_unit::AccountName::new("nobody").map_err(|e| Error::Message(e.to_string()))?;
        for (i, (name, _, _)) in LBS.iter().enumerate() {
            let url = crate::lbpair::check_url(&inventory.lb.bind[0]);
            let section = pair
                .vrrp_section(name, &url)
                .ok_or_else(|| Error::Message(format!("{name} is not in [lb_pair]")))?;
            let body = section.split_once("[vrrp]\n").map_or("", |(_, b)| b);
            let mut vrrp: provision::vrrp::VrrpConfig = toml::from_str(body)
                .map_err(|e| Error::Message(format!("{name}'s [vrrp]: {e}")))?;
            vrrp.advert_interval = advert
                .parse()
                .map_err(|e: systemd_unit::Error| Error::Message(e.to_string()))?;
            let problems = vrrp.problems();
            if !problems.is_empty() {
                return fail(format!("{name}'s [vrrp]: {}", problems.join("; ")));
            }
            let text = provision::vrrp::render(&vrrp, &veza_lb, &user).map_err(Error::Message)?;
            let conf = self.dir.join(format!("{name}-keepalived.conf"));
            std::fs::write(&conf, text)
                .map_err(Error::io("cannot write keepalived's configuration"))?;
            let mut command = net.command(name, "keepalived");
            command
                .args([
                    "--dont-fork",
                    "--vrrp",
                    "--log-console",
                    "--log-detail",
                    "--use-file",
                ])
                .arg(&conf)
                .arg("--pid")
                .arg(self.dir.join(format!("{name}-keepalived.pid")))
                .arg("--vrrp_pid")
                .arg(self.dir.join(format!("{name}-vrrp.pid")));
            let log = self.dir.join(format!("{name}-keepalived.log"));
            self.keepalived[i] = Some(Process::spawn(
                &format!("keepalived on {name}"),
                command,
                &log,
            )?);
        }
        Ok(())
    }

    async fn stop_keepalived(&mut self) {
        for process in self.keepalived.iter_mut().filter_map(Option::take) {
            let mut process = process;
            process.stop(Duration::from_secs(3)).await;
        }
    }

    /// The rounds with adverts every `advert`.
    async fn rounds(
        &mut self,
        net: &Network,
        inventory: &Inventory,
        advert: &str,
    ) -> Result<Vec<Round>> {
        println!("\npair: keepalived with VRRPv3 adverts every {advert}");
        self.start_keepalived(net, inventory, advert)?;
        wait_holder(net, "lb-1").await?;
        let probe = Probe::start(net)?;
        probe.wait_success_after(Instant::now()).await?;
        let mut rounds = Vec::new();
        let mut round = |title, t0: Instant, holder| {
            let (to_first_200, failed, failed_with_retries) = probe.outcome_since(t0);
            println!(
                "  {title}: first 200 after {:.0} ms, {failed} failed attempts \
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
        if let Some(mut lb) = self.lbs[0].take() {
            lb.kill().await?;
        }
        wait_holder(net, "lb-2").await?;
        probe.wait_success_after(t0).await?;
        probe.settle().await;
        round("veza-lb killed on the MASTER", t0, "lb-2");

        let t0 = Instant::now();
        self.start_lb(net, 0).await?;
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
        self.stop_keepalived().await;
        Ok(rounds)
    }

    /// Every sticky cookie and hash key reaches the same backend through either host.
    async fn same_routing(&self, net: &Network) -> Result<String> {
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

    fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "log") {
                out.push_str(&format!(
                    "--- {}:\n{}\n",
                    path.display(),
                    crate::topology::log_tail(&path, lines)
                ));
            }
        }
        out
    }

    async fn stop(mut self) {
        self.stop_keepalived().await;
        for process in self
            .lbs
            .iter_mut()
            .filter_map(Option::as_mut)
            .chain(self.backends.iter_mut())
        {
            process.stop(Duration::from_secs(3)).await;
        }
    }
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

/// What a backend answered.
struct Answer {
    status: u16,
    served_by: String,
    set_cookie: Option<String>,
}

/// One GET on a fresh connection (`Connection: close`), within 1 s.
fn get(addr: SocketAddr, path: &str, cookie: Option<&str>) -> Result<Answer, String> {
    let timeout = Duration::from_millis(1000);
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{cookie}Connection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut text = Vec::new();
    stream.read_to_end(&mut text).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&text);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {:?}", head.lines().next()))?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    Ok(Answer {
        status,
        served_by: header("x-served-by").unwrap_or_default(),
        set_cookie: header("set-cookie")
            .map(|c| c.split(';').next().unwrap_or_default().to_owned()),
    })
}

/// The client: a GET through the virtual address every 10 ms, each attempt recorded.
struct Probe {
    attempts: Arc<Mutex<Vec<(Instant, bool)>>>,
    stop: Arc<AtomicBool>,
}

impl Probe {
    fn start(net: &Network) -> Result<Probe> {
        let attempts: Arc<Mutex<Vec<(Instant, bool)>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (record, halt) = (attempts.clone(), stop.clone());
        let vip: SocketAddr = format!("{VIP}:{FRONT_PORT}")
            .parse()
            .map_err(|_| Error::Message("address".into()))?;
        net.thread("client", move || {
            while !halt.load(Ordering::Relaxed) {
                let ok = matches!(get(vip, "/api/v1/health", None), Ok(a) if a.status == 200);
                if let Ok(mut attempts) = record.lock() {
                    attempts.push((Instant::now(), ok));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })?;
        Ok(Probe { attempts, stop })
    }

    fn since(&self, t0: Instant) -> Vec<(Instant, bool)> {
        self.attempts
            .lock()
            .map(|a| a.iter().copied().filter(|(t, _)| *t >= t0).collect())
            .unwrap_or_default()
    }

    /// Waits for a 200 after `t0` that follows every failure since `t0`.
    async fn wait_success_after(&self, t0: Instant) -> Result<()> {
        let start = Instant::now();
        loop {
            if self.since(t0).last().is_some_and(|(_, ok)| *ok) {
                return Ok(());
            }
            if start.elapsed() > SETTLE {
                return fail(format!("no 200 through {VIP} within {SETTLE:?}"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Lets a second of traffic through, so late failures are counted in their round.
    async fn settle(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// From `t0`: the time to the first success after the first failure (zero without
    /// failure), the failed attempts, and those not followed by a success within
    /// [`RETRY_BUDGET`] (what a retrying client would have seen fail).
    fn outcome_since(&self, t0: Instant) -> (Duration, usize, usize) {
        let attempts = self.since(t0);
        let failed = attempts.iter().filter(|(_, ok)| !ok).count();
        let first_failure = attempts.iter().position(|(_, ok)| !ok);
        let recovered = first_failure
            .and_then(|i| attempts[i..].iter().find(|(_, ok)| *ok))
            .map_or(Duration::ZERO, |(t, _)| t.duration_since(t0));
        let hopeless = attempts
            .iter()
            .enumerate()
            .filter(|(i, (t, ok))| {
                !ok && !attempts[i + 1..]
                    .iter()
                    .any(|(later, ok)| *ok && later.duration_since(*t) <= RETRY_BUDGET)
            })
            .count();
        (recovered, failed, hopeless)
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop();
    }
}

fn print_report(rounds: &[Round]) {
    println!("\npair: failover through the virtual address {VIP} (client probing every 10 ms)");
    println!(
        "  {:<7} {:<46} {:>14} {:>7} {:>13} {:>7}",
        "adverts", "round", "first 200 (ms)", "failed", "with retries", "holder"
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
