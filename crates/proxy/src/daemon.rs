//! Running `veza-lb` as a process: the runtime, signals, reload and stop.
//!
//! SIGHUP re-reads and validates the configuration: a bad file is refused with every error
//! logged and the running configuration untouched. SIGTERM or SIGINT stops gracefully; a
//! second one stops at once.

use std::path::{Path, PathBuf};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::Config;
use crate::{Error, Proxy};

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Configuration file.
    pub config_path: PathBuf,
}

/// Loads the configuration, builds the runtime with `[global] threads` workers and runs the
/// proxy until it is stopped.
///
/// # Errors
/// The configuration is invalid or a listener cannot be bound.
pub fn run(options: &RunOptions) -> Result<(), Error> {
    let config = Config::load(&options.config_path)?;
    for warning in config.warnings() {
        tracing::warn!("{warning}");
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = config.global.threads {
        runtime.worker_threads(threads.get());
    }
    let runtime = runtime
        .enable_all()
        .thread_name("veza-lb-worker")
        .build()
        .map_err(|source| Error::Runtime { source })?;
    runtime.block_on(serve(config, &options.config_path))
}

async fn serve(config: Config, path: &Path) -> Result<(), Error> {
    let signals = Signals::install()?;
    let mut proxy = Proxy::start(config).await?;
    tracing::info!(
        "veza-lb {} started, pid {}",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    let mut signals = signals;
    loop {
        match signals.next().await {
            Signal::Reload => reload(&mut proxy, path).await,
            Signal::Stop => break,
        }
    }
    tracing::info!("stopping: no longer accepting, finishing in-flight requests");
    let stop = proxy.shutdown();
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        _ = signals.next() => tracing::warn!("second stop signal: stopping now"),
    }
    tracing::info!("stopped");
    Ok(())
}

async fn reload(proxy: &mut Proxy, path: &Path) {
    tracing::info!("reloading {}", path.display());
    match Config::load(path) {
        Err(e) => tracing::error!("reload refused, configuration unchanged:\n{e}"),
        Ok(config) => match proxy.reload(config).await {
            Ok(()) => tracing::info!("reload complete"),
            Err(e) => tracing::error!("reload failed, configuration unchanged: {e}"),
        },
    }
}

enum Signal {
    Reload,
    Stop,
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, Error> {
        let sig = |kind| signal(kind).map_err(|source| Error::Runtime { source });
        Ok(Self {
            hup: sig(SignalKind::hangup())?,
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
        }
    }
}
