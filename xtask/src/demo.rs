//! `cargo xtask demo`: the one-command tour. The smoke topology (two API servers, two stream
//! servers, veza-lb in front, its stats page, `/metrics` and runtime API open) on the seed's
//! ports (those of `examples/veza-lb.toml`: the frontend on 8080, the stats page on
//! 9101) is left running until Ctrl-C, with every URL to open and commands to try printed,
//! each runnable as printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::build::{self, Binaries, Profile};
use crate::topology::{self, API_POOL, API_SERVERS, Settings, Topology};
use crate::{Result, parse_duration};

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Health check interval in the generated configuration.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    interval: Duration,
    /// Build and run release binaries.
    #[arg(long)]
    release: bool,
    /// Use the binaries in DIR (veza-lb, veza-demo-backend) instead of building them.
    #[arg(long, value_name = "DIR", conflicts_with = "release")]
    bin_dir: Option<PathBuf>,
    /// Listen on free ports instead of the seed's (8080, 9100, 9101, 18081-18092).
    #[arg(long)]
    free_ports: bool,
}

/// Starts the topology, prints the tour and waits for Ctrl-C.
pub async fn run(args: Args) -> Result<ExitCode> {
    let binaries = match &args.bin_dir {
        Some(dir) => Binaries {
            veza_lb: dir.join("veza-lb"),
            demo_backend: dir.join("veza-demo-backend"),
        },
        None => {
            let profile = if args.release {
                Profile::Release
            } else {
                Profile::Dev
            };
            build::build(profile).await?
        }
    };
    let settings = Settings {
        interval: args.interval,
        metrics: true,
        seed_ports: !args.free_ports,
        ..Settings::default()
    };
    let topology = Topology::start(&binaries, settings).await?;
    print!("{}", tour(&topology, &binaries));
    let outcome = topology::stop_signal().await;
    println!("\nstopping veza-lb and the backends...");
    topology.stop().await;
    outcome?;
    println!("stopped.");
    Ok(ExitCode::SUCCESS)
}

/// What the demo prints: where everything is, and commands to try, each runnable as printed
/// (the lines under `try:` start with a command, comments after `#`).
fn tour(topology: &Topology, binaries: &Binaries) -> String {
    let lb = topology.lb_addr;
    let stats = topology.stats_addr;
    let admin = topology.admin_socket();
    let veza_lb = binaries.veza_lb.display();
    let metrics = topology
        .metrics_addr
        .map_or_else(|| "(none)".to_owned(), |m| m.to_string());
    let mut out = format!(
        "\nveza-lb is running (pid {}) in front of two API and two stream servers:\n",
        topology.lb_pid().unwrap_or(0)
    );
    let mut line = |label: &str, value: String| out.push_str(&format!("  {label:<13}{value}\n"));
    line(
        "stats page",
        format!("http://{metrics}/stats   <- open it in a browser"),
    );
    line(
        "metrics",
        format!("http://{metrics}/metrics   (Prometheus)"),
    );
    line(
        "runtime API",
        format!("{stats} (operator: reads) and {admin} (admin: changes)"),
    );
    line("API", format!("http://{lb}/api/v1/health"));
    line("echo", format!("http://{lb}/hello"));
    line("WebSocket", format!("ws://{lb}/ws"));
    line("HLS", format!("http://{lb}/stream/42/index.m3u8"));
    line("config", topology.config_path.display().to_string());
    line("log", topology.lb_log().display().to_string());
    line(
        "health",
        format!(
            "every {:?}, fall {}, rise {}, slow start {:?}",
            topology.settings.interval,
            topology.settings.fall,
            topology.settings.rise,
            topology.settings.slowstart
        ),
    );
    out.push_str("backends:\n");
    for backend in &topology.backends {
        out.push_str(&format!("  {:<16} http://{}\n", backend.name, backend.addr));
    }
    let admin_path = admin.trim_start_matches("unix:");
    let (pool, server) = (API_POOL, API_SERVERS[0]);
    out.push_str("try:\n");
    for command in [
        format!("curl -si http://{lb}/api/v1/health"),
        format!("{veza_lb} ctl --socket {stats} show stat   # HAProxy's CSV"),
        format!("{veza_lb} ctl --socket {stats} top   # live table, Ctrl-C to leave"),
        format!("hatop -s {admin_path}   # HAProxy's console (apt-get install hatop)"),
        format!(
            "{veza_lb} ctl --socket {admin} set server {pool}/{server} state drain   # watch it on the stats page"
        ),
        format!("{veza_lb} ctl --socket {admin} set server {pool}/{server} state ready"),
        format!(
            "curl -X POST 'http://{}/admin/health?status=503'   # fail {server}'s checks: DOWN",
            topology.backends[0].addr
        ),
        format!(
            "curl -X POST 'http://{}/admin/health?status=200'   # and UP again, after slow start",
            topology.backends[0].addr
        ),
        format!(
            "cargo xtask load --target http://{lb} --metrics http://{metrics}/metrics --duration 30s   # the traffic mix, HTML report"
        ),
    ] {
        out.push_str(&format!("  {command}\n"));
    }
    out.push_str("\nCtrl-C stops everything.\n");
    out
}
