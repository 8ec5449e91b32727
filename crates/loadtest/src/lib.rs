//! Veza's load test: the real traffic mix (API calls with the sticky cookie, WebSocket
//! sessions that echo, HLS players fetching Zipf-popular tracks) against a load balancer,
//! with k6-like thresholds and a report a person reads in a browser.
//!
//! ```text
//! scenario (TOML) ──► run: executor ──► flows (per virtual user: keep-alive client, cookies)
//!                          │  faults at their times      │ samples
//!                          │  scrape /metrics ─┐         ▼
//!                          └────────────────── record (HDR histograms, 1 s buckets)
//!                                                        ▼
//!                  summary (thresholds, fault windows, JSON) ─► report (askama, inline SVG)
//! ```
//!
//! `cargo xtask load` runs it against the loopback demo topology (and HAProxy with
//! `--compare-haproxy`); `veza-load` runs it against a deployed edge, nightly from a systemd
//! timer that `veza-provision` installs.

pub mod client;
pub mod draw;
pub mod faults;
pub mod flows;
pub mod progress;
pub mod record;
pub mod report;
pub mod run;
pub mod scenario;
pub mod scrape;
pub mod summary;
pub mod threshold;
pub mod window;

use std::path::{Path, PathBuf};

pub use client::Target;
pub use faults::{Faults, NoFaults, ShellFaults};
pub use report::Report;
pub use run::{Options, Run, RunError, run};
pub use scenario::{Fault, FaultAction, Scenario, ScenarioError};
pub use summary::{Summary, SummaryFile};

/// The scenarios shipped with the project: `(name, TOML)`.
pub const SCENARIOS: [(&str, &str); 3] = [
    ("default", include_str!("../scenarios/default.toml")),
    ("failover", include_str!("../scenarios/failover.toml")),
    ("chaos", include_str!("../scenarios/chaos.toml")),
];

/// A shipped scenario by name.
pub fn shipped(name: &str) -> Option<&'static str> {
    SCENARIOS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A scenario file, or a shipped scenario by name, parsed with `duration` overriding its
/// own; the error says which and why, every problem on its line.
pub fn load_scenario(
    name: &str,
    duration: Option<std::time::Duration>,
) -> Result<Scenario, String> {
    let path = Path::new(name);
    let (text, origin) = if path.is_file() {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {name}: {e}"))?;
        (text, name.to_owned())
    } else if let Some(text) = shipped(name) {
        (text.to_owned(), format!("the shipped scenario {name:?}"))
    } else {
        let names: Vec<&str> = SCENARIOS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "{name}: no such file, and not a shipped scenario ({})",
            names.join(", ")
        ));
    };
    Scenario::parse(&text, duration).map_err(|e| format!("{origin} is not a valid scenario:\n{e}"))
}

/// Where a run's files were written.
#[derive(Debug, Clone)]
pub struct Written {
    /// `report.html`.
    pub report: PathBuf,
    /// `summary.json`.
    pub summary: PathBuf,
}

/// Writes the report and the summary (see [`write_report`]), prints each run's table and
/// where the files are; returns whether the first run passed (the exit status).
pub fn report_and_verdict(runs: &[Run], dir: &Path) -> std::io::Result<bool> {
    let (written, summary) = write_report(runs, dir)?;
    for run in &summary.runs {
        println!("\n{}", run.text());
    }
    println!("report   {}", written.report.display());
    println!("summary  {}", written.summary.display());
    Ok(summary.passed)
}

/// Writes `report.html` and `summary.json` for `runs` (the system under test first) into
/// `dir`, creating it; returns the paths and the summary file (its `passed` is the verdict).
pub fn write_report(runs: &[Run], dir: &Path) -> std::io::Result<(Written, SummaryFile)> {
    std::fs::create_dir_all(dir)?;
    let summaries: Vec<Summary> = runs.iter().map(Summary::of).collect();
    let file = SummaryFile::new(summaries.clone());
    let html = Report::new(runs, summaries)
        .html()
        .map_err(std::io::Error::other)?;
    let written = Written {
        report: dir.join("report.html"),
        summary: dir.join("summary.json"),
    };
    std::fs::write(&written.report, html)?;
    let json = serde_json::to_string_pretty(&file).map_err(std::io::Error::other)?;
    std::fs::write(&written.summary, json + "\n")?;
    Ok((written, file))
}
