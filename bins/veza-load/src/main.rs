//! `veza-load`: Veza's load test against a deployed edge, as the nightly timer runs it.
//!
//! ```text
//! veza-load run --scenario /etc/veza-load/nightly.toml --target http://10.0.0.10 \
//!     --metrics http://10.0.0.10:9101/metrics --reports /var/lib/veza-load
//! veza-load check --scenario FILE      validate a scenario, print what it will do
//! veza-load print default              a shipped scenario, to start a new one from
//! ```
//!
//! Exit codes: 0 every threshold held; 1 a threshold failed (or a fault could not be
//! applied); 2 the run could not take place (bad scenario, target unreachable, unwritable
//! report directory).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use loadtest::{FaultAction, Options, ShellFaults, Target};

/// Veza's load test: a scenario's traffic mix against a deployed edge, with thresholds,
/// faults and an HTML report.
#[derive(Debug, Parser)]
#[command(name = "veza-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scenario against a target; write report.html and summary.json.
    Run(Box<RunArgs>),
    /// Validate a scenario and print what it will do.
    Check {
        /// A scenario file, or a shipped scenario's name (`default`, `failover`, `chaos`).
        #[arg(long, value_name = "FILE|NAME")]
        scenario: String,
        /// Override the scenario's duration.
        #[arg(long, value_name = "DURATION", value_parser = loadtest::scenario::parse_duration)]
        duration: Option<Duration>,
    },
    /// Print a shipped scenario (`default`, `failover`, `chaos`).
    Print {
        /// Its name.
        name: String,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A scenario file, or a shipped scenario's name (`default`, `failover`, `chaos`).
    #[arg(long, value_name = "FILE|NAME", default_value = "default")]
    scenario: String,
    /// The edge to load: `http://host:port`.
    #[arg(long, value_name = "URL")]
    target: String,
    /// Run this long instead of the scenario's duration.
    #[arg(long, value_name = "DURATION", value_parser = loadtest::scenario::parse_duration)]
    duration: Option<Duration>,
    /// The load balancer's Prometheus endpoint, for traffic per server.
    #[arg(long, value_name = "URL")]
    metrics: Option<String>,
    /// Shell command that stops a server for the scenario's faults; `{server}` is replaced.
    #[arg(long, value_name = "CMD")]
    stop_cmd: Option<String>,
    /// Shell command that starts a server again; `{server}` is replaced.
    #[arg(long, value_name = "CMD")]
    start_cmd: Option<String>,
    /// Shell command that freezes a server (`hang` faults); `{server}` is replaced.
    #[arg(long, value_name = "CMD")]
    hang_cmd: Option<String>,
    /// Shell command that lets a frozen server go on (`resume` faults).
    #[arg(long, value_name = "CMD")]
    resume_cmd: Option<String>,
    /// Shell command that delays a server's link (`delay` faults); `{server}` and
    /// `{delay_ms}` (each way) are replaced.
    #[arg(long, value_name = "CMD")]
    delay_cmd: Option<String>,
    /// Shell command that drops packets on a server's link (`loss` faults); `{server}` and
    /// `{percent}` (each way) are replaced.
    #[arg(long, value_name = "CMD")]
    loss_cmd: Option<String>,
    /// Shell command that takes a delay or a loss off a server's link (`heal` faults).
    #[arg(long, value_name = "CMD")]
    heal_cmd: Option<String>,
    /// Shell command that moves a server's DNS name to a new instance of it (`dns` faults).
    #[arg(long, value_name = "CMD")]
    dns_cmd: Option<String>,
    /// Shell command that upgrades the balancer's binary (`lb = "upgrade"` faults).
    #[arg(long, value_name = "CMD")]
    upgrade_cmd: Option<String>,
    /// Shell command that reloads the balancer (`lb = "reload"` faults).
    #[arg(long, value_name = "CMD")]
    reload_cmd: Option<String>,
    /// Write into this directory exactly.
    #[arg(long, value_name = "DIR", conflicts_with = "reports")]
    out: Option<PathBuf>,
    /// Write into a new directory per run under this one (`SCENARIO-UNIXTIME`).
    #[arg(long, value_name = "DIR", default_value = ".")]
    reports: PathBuf,
    /// Name of the system under test in the report.
    #[arg(long, default_value = "edge")]
    label: String,
    /// No progress display.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Print { name } => match loadtest::shipped(&name) {
            Some(text) => {
                print!("{text}");
                Ok(ExitCode::SUCCESS)
            }
            None => Err(format!(
                "{name}: not a shipped scenario ({})",
                shipped_names()
            )),
        },
        Command::Check { scenario, duration } => check(&scenario, duration),
        Command::Run(args) => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime.block_on(run(*args)),
            Err(e) => Err(format!("cannot start the async runtime: {e}")),
        },
    };
    outcome.unwrap_or_else(|message| {
        eprintln!("veza-load: {message}");
        ExitCode::from(2)
    })
}

fn shipped_names() -> String {
    loadtest::SCENARIOS
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

fn check(name: &str, duration: Option<Duration>) -> Result<ExitCode, String> {
    let scenario = loadtest::load_scenario(name, duration)?;
    let load = &scenario.load;
    println!(
        "{}: {:.0}s, {} executor, from {} to a peak of {} {}",
        scenario.name,
        scenario.duration.as_secs_f64(),
        load.executor.as_str(),
        load.start,
        load.peak(),
        load.executor.unit()
    );
    let total: u32 = scenario.flows.iter().map(|f| f.weight).sum();
    for flow in &scenario.flows {
        let thresholds: Vec<String> = flow.thresholds.iter().map(ToString::to_string).collect();
        println!(
            "  flow {:<12} {:<9} {:>5.1}%  thresholds: {}",
            flow.name,
            flow.kind.as_str(),
            f64::from(flow.weight) * 100.0 / f64::from(total.max(1)),
            if thresholds.is_empty() {
                "none".into()
            } else {
                thresholds.join(", ")
            }
        );
    }
    for fault in &scenario.faults {
        println!(
            "  fault at {:.1}s: {} {}",
            fault.at.as_secs_f64(),
            fault.action.as_str(),
            fault.server
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn run(args: RunArgs) -> Result<ExitCode, String> {
    let scenario = loadtest::load_scenario(&args.scenario, args.duration)?;
    let mut faults = ShellFaults::new(args.stop_cmd, args.start_cmd)
        .with(FaultAction::Hang, args.hang_cmd)
        .with(FaultAction::Delay, args.delay_cmd)
        .with(FaultAction::Loss, args.loss_cmd)
        .with(FaultAction::Dns, args.dns_cmd)
        .with(FaultAction::Heal, args.heal_cmd)
        .with(FaultAction::Resume, args.resume_cmd)
        .with(FaultAction::Upgrade, args.upgrade_cmd)
        .with(FaultAction::Reload, args.reload_cmd);
    faults.covers(&scenario)?;
    let options = Options {
        label: args.label,
        target: Target::parse(&args.target)?,
        metrics: args.metrics,
        progress: !args.quiet,
    };
    let run = loadtest::run(&scenario, &options, &mut faults)
        .await
        .map_err(|e| e.to_string())?;
    let dir = args.out.unwrap_or_else(|| {
        args.reports
            .join(format!("{}-{}", scenario.name, run.started_unix))
    });
    let passed = loadtest::report_and_verdict(std::slice::from_ref(&run), &dir)
        .map_err(|e| format!("cannot write the report into {}: {e}", dir.display()))?;
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
