//! Progress while a run goes on: indicatif's bar on a terminal; on a log (CI), one line
//! every 5 seconds.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::run::Live;
use crate::scenario::Scenario;

/// The progress display of one run; stops when finished or dropped.
pub struct Progress {
    task: JoinHandle<()>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing the progress of `scenario` against `label`.
    pub fn start(scenario: &Scenario, label: &str, live: Arc<Live>, start: Instant) -> Progress {
        let total = scenario.duration;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total.as_secs().max(1));
            let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len}s {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(format!("{} → {label}", scenario.name));
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let period = if shown.is_some() {
                Duration::from_millis(250)
            } else {
                Duration::from_secs(5)
            };
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            let mut last = (Instant::now(), 0u64);
            loop {
                tick.tick().await;
                let now = Instant::now();
                let requests = live.requests.load(Ordering::Relaxed);
                let rate = (requests - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
                last = (now, requests);
                let message = format!(
                    "{rate:.0} req/s, {requests} requests, {} errors, {} busy users",
                    live.errors.load(Ordering::Relaxed),
                    live.active.load(Ordering::Relaxed)
                );
                let elapsed = now.duration_since(start).min(total);
                match &shown {
                    Some(bar) => {
                        bar.set_position(elapsed.as_secs());
                        bar.set_message(message);
                    }
                    None => eprintln!(
                        "load: {:>4}s/{}s {message}",
                        elapsed.as_secs(),
                        total.as_secs()
                    ),
                }
            }
        });
        Progress { task, bar }
    }

    /// Stops the display.
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
