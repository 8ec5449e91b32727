//! `cargo xtask load`: the load test the seed planned ("Day 20, k6 nightly load test"). A
//! scenario of weighted flows runs against the loopback demo topology (veza-lb on release or
//! debug binaries, its `/metrics` scraped), or with `--target` against a deployed edge;
//! faults stop and start backends on the way (on loopback by killing the demo backend, as
//! `smoke` does; elsewhere through `--stop-cmd`/`--start-cmd`). Writes `report.html` and
//! `summary.json`; exits 1 when a threshold fails.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use loadtest::{Fault, FaultAction, Faults, Options, Run, Scenario, ShellFaults, Target};

use crate::build::{self, Profile};
use crate::leftovers::{self, Footprint};
use crate::topology::{Balancer, Settings, Topology, find_program};
use crate::{Error, Result, fail, parse_duration};

/// Options of `cargo xtask load`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A scenario file, or a shipped scenario's name: `default` (the traffic mix),
    /// `failover` (the mix with backend-api-1 killed and restarted mid-run) or `chaos` (the
    /// mix through upgrades, reloads, server kills and hangs, delayed and lossy links, each
    /// fault's window reported; root, for the loss).
    #[arg(long, value_name = "FILE|NAME", default_value = "default")]
    scenario: String,
    /// Run this long instead of the scenario's duration (stages and faults given in
    /// percent scale with it).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Load a deployed edge at URL (`http://host:port`) instead of a loopback topology.
    #[arg(long, value_name = "URL")]
    target: Option<String>,
    /// With --target: its Prometheus endpoint, for traffic per server
    /// (`http://host:port/metrics`).
    #[arg(long, value_name = "URL", requires = "target")]
    metrics: Option<String>,
    /// With --target: a shell command that stops a server; `{server}` is replaced by its
    /// name (e.g. `incus stop --force {server}`).
    #[arg(long, value_name = "CMD", requires = "target")]
    stop_cmd: Option<String>,
    /// With --target: a shell command that starts a server again (`incus start {server}`).
    #[arg(long, value_name = "CMD", requires = "target")]
    start_cmd: Option<String>,
    /// With --target: a shell command that freezes a server (`incus pause {server}`).
    #[arg(long, value_name = "CMD", requires = "target")]
    hang_cmd: Option<String>,
    /// With --target: a shell command that lets a frozen server go on (`incus resume
    /// {server}`).
    #[arg(long, value_name = "CMD", requires = "target")]
    resume_cmd: Option<String>,
    /// With --target: a shell command that delays a server's link by `{delay_ms}`
    /// milliseconds each way (`ssh {server} tc qdisc ...`, or a relay's control).
    #[arg(long, value_name = "CMD", requires = "target")]
    delay_cmd: Option<String>,
    /// With --target: a shell command that drops `{percent}` of the packets on a server's
    /// link, each way.
    #[arg(long, value_name = "CMD", requires = "target")]
    loss_cmd: Option<String>,
    /// With --target: a shell command that takes a delay or a loss off a server's link.
    #[arg(long, value_name = "CMD", requires = "target")]
    heal_cmd: Option<String>,
    /// With --target: a shell command that moves a server's DNS name to a new instance of it
    /// (`dns` faults).
    #[arg(long, value_name = "CMD", requires = "target")]
    dns_cmd: Option<String>,
    /// With --target: a shell command that upgrades the balancer's binary (`ssh lb veza-lb
    /// ctl --socket unix:/run/veza-lb/admin.sock upgrade`).
    #[arg(long, value_name = "CMD", requires = "target")]
    upgrade_cmd: Option<String>,
    /// With --target: a shell command that reloads the balancer (`ssh lb systemctl reload
    /// veza-lb`).
    #[arg(long, value_name = "CMD", requires = "target")]
    reload_cmd: Option<String>,
    /// Run the same scenario against HAProxy 2.6 with the equivalent configuration, after
    /// veza-lb, and report both side by side (release binaries).
    #[arg(long, conflicts_with = "target")]
    compare_haproxy: bool,
    /// Where to write report.html and summary.json (default: target/load/SCENARIO-TIME).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Build and run release binaries (the default is a debug build: quick, for checks).
    #[arg(long)]
    release: bool,
    /// veza-lb's worker threads (HAProxy's nbthread) on loopback.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Runs the load test; exit code 1 when a threshold fails, a fault could not be applied, or
/// veza-lb did not come back to its footprint before the run ([`leftovers`]).
pub async fn run(args: Args) -> Result<ExitCode> {
    let scenario =
        loadtest::load_scenario(&args.scenario, args.duration).map_err(Error::Message)?;
    let lossy = scenario
        .faults
        .iter()
        .any(|f| f.action == FaultAction::Loss);
    if lossy && args.target.is_none() && !crate::loss::isolated() {
        return crate::loss::run_isolated(&format!("{} has loss faults", scenario.name)).await;
    }
    let (runs, left_behind) = match &args.target {
        Some(url) => (vec![remote(&scenario, &args, url).await?], Vec::new()),
        None => local(&scenario, &args).await?,
    };
    let out = args.out.clone().unwrap_or_else(|| {
        let stamp = runs.first().map_or(0, |r| r.started_unix);
        build::workspace_root()
            .join("target/load")
            .join(format!("{}-{stamp}", scenario.name))
    });
    let passed = loadtest::report_and_verdict(&runs, &out).map_err(Error::io(format!(
        "cannot write the report into {}",
        out.display()
    )))?;
    for problem in &left_behind {
        println!("  FAILED: {problem}");
    }
    Ok(if passed && left_behind.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn remote(scenario: &Scenario, args: &Args, url: &str) -> Result<Run> {
    let target = Target::parse(url).map_err(Error::Message)?;
    let mut faults = ShellFaults::new(args.stop_cmd.clone(), args.start_cmd.clone())
        .with(FaultAction::Hang, args.hang_cmd.clone())
        .with(FaultAction::Resume, args.resume_cmd.clone())
        .with(FaultAction::Delay, args.delay_cmd.clone())
        .with(FaultAction::Loss, args.loss_cmd.clone())
        .with(FaultAction::Heal, args.heal_cmd.clone())
        .with(FaultAction::Dns, args.dns_cmd.clone())
        .with(FaultAction::Upgrade, args.upgrade_cmd.clone())
        .with(FaultAction::Reload, args.reload_cmd.clone());
    faults.covers(scenario).map_err(Error::Message)?;
    let options = Options {
        label: "edge".into(),
        target,
        metrics: args.metrics.clone(),
        progress: true,
    };
    loadtest::run(scenario, &options, &mut faults)
        .await
        .map_err(|e| Error::Message(e.to_string()))
}

/// The runs, and what each balancer left behind (one sentence each; empty when nothing).
async fn local(scenario: &Scenario, args: &Args) -> Result<(Vec<Run>, Vec<String>)> {
    let mut left_behind = Vec::new();
    let mut balancers = vec![Balancer::VezaLb];
    if args.compare_haproxy {
        match find_program("haproxy") {
            Some(haproxy) => balancers.push(Balancer::Haproxy(haproxy)),
            None => {
                return fail(
                    "--compare-haproxy: haproxy is not installed (apt-get install haproxy)",
                );
            }
        }
    }
    let profile = if args.release || args.compare_haproxy {
        Profile::Release
    } else {
        Profile::Dev
    };
    let binaries = build::build(profile).await?;
    let mut runs = Vec::new();
    for balancer in balancers {
        let label = balancer.label();
        let settings = Settings {
            balancer,
            metrics: true,
            threads: args.threads,
            relayed: owned(scenario.servers_faulted_by(FaultAction::Delay)),
            named: owned(scenario.servers_faulted_by(FaultAction::Dns)),
            ..Settings::default()
        };
        let mut topology = Topology::start(&binaries, settings).await?;
        for server in scenario.faulted_servers() {
            topology.backend(server)?;
        }
        println!(
            "load: {} for {:.0}s against {label} at {} ({:?} build)",
            scenario.name,
            scenario.duration.as_secs_f64(),
            topology.lb_addr,
            profile
        );
        let options = Options {
            label: label.into(),
            target: Target::parse(&format!("http://{}", topology.lb_addr))
                .map_err(Error::Message)?,
            metrics: topology.metrics_addr.map(|m| format!("http://{m}/metrics")),
            progress: true,
        };
        // veza-lb's footprint before the run, warmed up (its pools to the servers open, its
        // buffers allocated): what the run must not leave it above.
        let before = match (&topology.settings.balancer, topology.lb_pid()) {
            (Balancer::VezaLb, Some(pid)) => {
                leftovers::warm_up(&topology.lb_addr.to_string()).await?;
                leftovers::idle(&topology.stats()).await?;
                Some((pid, Footprint::read(pid, &topology.stats()).await?))
            }
            _ => None,
        };
        // Memory's baseline: the most held under the run's own traffic before any fault.
        let calm = before.map(|(pid, _)| {
            let until = scenario.faults.first().map_or(scenario.duration, |f| f.at);
            leftovers::CalmPeak::watch(pid, until)
        });
        let outcome = loadtest::run(scenario, &options, &mut TopologyFaults(&mut topology)).await;
        let before = before.map(|(_, b)| b.with_rss_at_least(calm.as_ref().map_or(0, |c| c.kib())));
        let run = match outcome {
            Ok(run) => run,
            Err(e) => {
                return fail(format!("{e}\n{}", topology.log_tails(20)));
            }
        };
        if !topology.lb_running() {
            return fail(format!(
                "{label} exited during the run:\n{}",
                topology.log_tails(30)
            ));
        }
        if let Some(before) = before {
            match leftovers::settle(&topology, &before).await {
                Ok(after) => {
                    println!("load: {label} left nothing behind: before {before}; after {after}");
                }
                Err(e) => left_behind.push(format!("{label}: {e}")),
            }
        }
        topology.stop().await;
        runs.push(run);
    }
    Ok((runs, left_behind))
}

fn owned(names: Vec<&str>) -> Vec<String> {
    names.into_iter().map(str::to_owned).collect()
}

/// Faults on the loopback topology: SIGKILL a demo backend and start it again on its port,
/// freeze it (SIGSTOP) and let it go on (SIGCONT), slow its link (through its relay) and heal
/// it; upgrade or reload the balancer.
struct TopologyFaults<'a>(&'a mut Topology);

impl Faults for TopologyFaults<'_> {
    fn apply<'a>(
        &'a mut self,
        fault: &'a Fault,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), String>> + 'a>> {
        Box::pin(async move {
            let outcome = match fault.action {
                FaultAction::Stop => self.0.kill(&fault.server).await,
                FaultAction::Start => self.0.restart(&fault.server).await,
                FaultAction::Hang => self.0.hang(&fault.server),
                FaultAction::Resume => self.0.resume(&fault.server),
                FaultAction::Delay => self.0.delay(&fault.server, fault.by.unwrap_or_default()),
                FaultAction::Loss => {
                    self.0
                        .loss(&fault.server, fault.percent.unwrap_or_default())
                        .await
                }
                FaultAction::Heal => self.0.heal(&fault.server).await,
                FaultAction::Dns => self.0.move_dns(&fault.server).await,
                FaultAction::Upgrade => self.0.upgrade().await,
                FaultAction::Reload => self.0.reload(),
            };
            outcome.map_err(|e| e.to_string())
        })
    }
}
