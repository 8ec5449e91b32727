//! `cargo xtask`: Veza edge's project automation, in Rust (matklad's xtask pattern).
//!
//! ```text
//! cargo xtask smoke   the seed's failover acceptance on loopback (the README's main job)
//! cargo xtask demo    the smoke topology, left running until Ctrl-C
//! cargo xtask bench   veza-lb side by side with HAProxy and nginx, same backend and load
//! cargo xtask deploy  push binaries, provision and restart the inventory's hosts
//! cargo xtask lab     a systemd-nspawn host to deploy into and smoke-test (root)
//! cargo xtask load    the traffic mix with thresholds, faults and an HTML report
//! cargo xtask pair    two veza-lb behind keepalived in network namespaces, failover measured (root)
//! ```
//!
//! Every subcommand builds what it needs, runs the real binaries as child processes on free
//! loopback ports and stops every process it started when it ends, fails or is interrupted.

#![forbid(unsafe_code)]

mod bench;
mod build;
mod demo;
mod deploy;
mod dns;
mod http;
mod lab;
mod lbconfig;
mod lbpair;
mod leftovers;
mod load;
mod loss;
mod netns;
mod pair;
mod process;
mod relay;
mod smoke;
mod topology;
mod transport;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Veza edge's project automation.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The seed's failover acceptance (test_backend_failover.sh) against veza-lb on loopback,
    /// or against a deployed environment with --lb/--stats/--kill-cmd/--start-cmd.
    Smoke(smoke::Args),
    /// The tour: veza-lb and demo API and stream servers on the seed's ports, its stats page,
    /// /metrics and runtime API open, every URL and commands to try printed; until Ctrl-C.
    Demo(demo::Args),
    /// veza-lb against HAProxy and nginx on the same backend and load: req/s, latency, memory.
    Bench(bench::Args),
    /// Build, push binaries and veza-lb's config to the inventory's hosts, run veza-provision
    /// there, restart what changed; an LB pair's address moves off each host before it changes.
    Deploy(deploy::Args),
    /// A real systemd host in systemd-nspawn (root): up, test (deploy + smoke), down.
    Lab(lab::Args),
    /// The load test: a scenario's traffic mix (API, WebSocket, HLS) with thresholds and
    /// faults (kills, hangs, slow and lossy links, upgrades, reloads), against the loopback
    /// topology or a deployed edge; writes an HTML report.
    Load(Box<load::Args>),
    /// The LB pair (root, keepalived): two veza-lb behind a VRRP virtual address in network
    /// namespaces; kills, link cuts and returns, failover measured.
    Pair(pair::Args),
}

/// Why a subcommand could not do its job; printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Anything else, as a sentence for the user.
    #[error("{0}")]
    Message(String),
}

impl Error {
    /// An I/O error with what was being attempted.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// The result type of every xtask helper.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a failure with a message.
pub fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(Error::Message(message.into()))
}

/// Parses `500ms`, `30s`, `2m`, `1.5s`, `1h` (a unit is required): the load test's parser,
/// so every xtask flag and scenario file reads durations alike.
pub use loadtest::scenario::parse_duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("xtask: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            // The demo waits for Ctrl-C itself: it is how it ends normally.
            Command::Demo(args) => demo::run(args).await,
            Command::Smoke(args) => until_interrupted(smoke::run(args)).await,
            Command::Bench(args) => until_interrupted(bench::run(args)).await,
            Command::Deploy(args) => until_interrupted(deploy::run(args)).await,
            Command::Lab(args) => until_interrupted(lab::run(args)).await,
            Command::Load(args) => until_interrupted(load::run(*args)).await,
            Command::Pair(args) => until_interrupted(pair::run(args)).await,
        }
    });
    // Dropping the runtime drops whatever tasks still hold child processes: they are killed.
    drop(runtime);
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `job`; on SIGINT, SIGTERM or SIGHUP drops it (which kills every child it started,
/// see `topology::Process`) and exits 130.
async fn until_interrupted(
    job: impl std::future::Future<Output = Result<ExitCode>>,
) -> Result<ExitCode> {
    tokio::select! {
        outcome = job => outcome,
        signal = topology::stop_signal() => {
            let name = signal?;
            eprintln!("xtask: {name}: stopping everything started");
            Ok(ExitCode::from(130))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
