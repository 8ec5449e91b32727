//! `cargo xtask demo`: the smoke topology, left running until Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use crate::build::{self, Profile};
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
}

/// Starts the topology, prints how to use it and waits for Ctrl-C.
pub async fn run(args: Args) -> Result<ExitCode> {
    let profile = if args.release {
        Profile::Release
    } else {
        Profile::Dev
    };
    let binaries = build::build(profile).await?;
    let settings = Settings {
        interval: args.interval,
        ..Settings::default()
    };
    let topology = Topology::start(&binaries, settings).await?;
    let lb = topology.lb_addr;
    let stats = topology.stats_addr;
    let veza_lb = binaries.veza_lb.display();
    println!(
        "\nveza-lb is running (pid {}):",
        topology.lb_pid().unwrap_or(0)
    );
    println!("  API          http://{lb}/api/v1/health");
    println!("  echo         http://{lb}/hello");
    println!("  WebSocket    ws://{lb}/ws");
    println!("  HLS          http://{lb}/stream/42/index.m3u8");
    println!("  runtime API  {stats}");
    println!("  config       {}", topology.config_path.display());
    println!("  log          {}", topology.lb_log().display());
    println!(
        "  health       every {:?}, fall {}, rise {}, slow start {:?}",
        topology.settings.interval,
        topology.settings.fall,
        topology.settings.rise,
        topology.settings.slowstart
    );
    println!("backends:");
    for backend in &topology.backends {
        println!("  {:<16} http://{}", backend.name, backend.addr);
    }
    println!("try:");
    println!("  curl -si http://{lb}/api/v1/health");
    println!("  {veza_lb} ctl --socket {stats} show stat");
    println!(
        "  {veza_lb} ctl --socket {} set server {API_POOL}/{} state drain",
        topology.admin_socket(),
        API_SERVERS[0]
    );
    println!(
        "  curl -X POST 'http://{}/admin/health?status=503'   # fail {}'s checks",
        topology.backends[0].addr, API_SERVERS[0]
    );
    println!("\nCtrl-C stops everything.");
    let outcome = topology::stop_signal().await;
    println!("\nstopping veza-lb and the backends...");
    topology.stop().await;
    outcome?;
    println!("stopped.");
    Ok(ExitCode::SUCCESS)
}
