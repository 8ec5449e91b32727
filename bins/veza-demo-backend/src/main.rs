//! `veza-demo-backend`: the command line over the `veza_demo_backend` library.

#![forbid(unsafe_code)]

use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use veza_demo_backend::{BackendConfig, Kind};

/// A small real backend for Veza edge demos, tests and benchmarks.
///
/// Every answer carries `X-Served-By: NAME`. Health: `/health`, `/api/v1/health`
/// (switch with `POST /admin/health?status=503`). WebSocket echo on `/ws`.
#[derive(Debug, Parser)]
#[command(name = "veza-demo-backend", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port (the startup line prints the real one).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// Name sent in `X-Served-By`, echo lines and the first WebSocket message.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// `stream` also serves HLS under `/stream/<track_id>/`.
    #[arg(long, value_enum, default_value_t = KindArg::Api)]
    kind: KindArg,
    /// Worker threads of the async runtime; 1 runs everything on the main thread.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Bytes in each stream segment.
    #[arg(long, value_name = "BYTES", default_value_t = 16384,
          value_parser = clap::value_parser!(u32).range(0..=64 * 1024 * 1024))]
    segment_size: u32,
    /// Segments listed in each playlist.
    #[arg(long, value_name = "N", default_value_t = BackendConfig::DEFAULT_PLAYLIST_SEGMENTS,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    playlist_segments: u32,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Api,
    Stream,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(cli.threads))
            .enable_all()
            .build()
    };
    let outcome = match runtime {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(err) => Err(format!("cannot start the async runtime: {err}")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("veza-demo-backend: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Serves until SIGTERM or SIGINT; the error is the one line to show the user.
async fn run(cli: Cli) -> Result<(), String> {
    let mut config = BackendConfig::new(cli.name).with_kind(match cli.kind {
        KindArg::Api => Kind::Api,
        KindArg::Stream => Kind::Stream,
    });
    config.playlist_segments = cli.playlist_segments;
    config = config.with_segment_size(cli.segment_size as usize);
    config.validate().map_err(|err| err.to_string())?;

    let listener = TcpListener::bind(cli.listen)
        .await
        .map_err(|err| format!("cannot listen on {}: {err}", cli.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|err| format!("cannot read the bound address: {err}"))?;
    // Installed before the startup line: whoever reads it may signal us at once.
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|err| format!("cannot handle SIGTERM: {err}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|err| format!("cannot handle SIGINT: {err}"))?;
    announce(&config.name, addr).map_err(|err| format!("cannot write to stdout: {err}"))?;

    tokio::select! {
        served = veza_demo_backend::serve(listener, config) => {
            served.map_err(|err| format!("stopped serving {addr}: {err}"))
        }
        _ = terminate.recv() => Ok(()),
        _ = interrupt.recv() => Ok(()),
    }
}

/// The one startup line that scripts and tests wait for to learn the port.
fn announce(name: &str, addr: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "veza-demo-backend {name} listening on {addr}")?;
    stdout.flush()
}
