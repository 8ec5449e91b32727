//! What `cargo xtask deploy` reports: each step's status (veza-provision's [`Status`]) and
//! the recap per host.

use std::collections::BTreeMap;
use std::time::Duration;

/// A step's outcome: veza-provision's own, which deploy reads back from its report.
pub use provision::Status;

/// One host's result.
#[derive(Debug, Clone)]
pub struct HostRecap {
    /// Inventory name.
    pub name: String,
    /// Its transport.
    pub transport: String,
    /// Steps per status (deploy's and veza-provision's).
    pub counts: BTreeMap<&'static str, usize>,
    /// Whether a step failed.
    pub failed: bool,
    /// How long the host took.
    pub took: Duration,
}

impl HostRecap {
    /// Steps that ended with `status`.
    pub fn count(&self, status: Status) -> usize {
        self.counts.get(status.word()).copied().unwrap_or(0)
    }
}

/// Every host's result.
#[derive(Debug, Clone, Default)]
pub struct Recap {
    /// In deploy order.
    pub hosts: Vec<HostRecap>,
}

impl Recap {
    /// Whether any host failed.
    pub fn failed(&self) -> bool {
        self.hosts.iter().any(|h| h.failed)
    }

    /// Steps with `status` over all hosts.
    pub fn count(&self, status: Status) -> usize {
        self.hosts.iter().map(|h| h.count(status)).sum()
    }

    pub(super) fn print(&self, total: Duration) {
        let width = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(4);
        println!("\nrecap");
        for h in &self.hosts {
            println!(
                "  {:<width$} : ok={:<3} changed={:<3} skipped={:<3} failed={:<2} {:>6.1}s  {}",
                h.name,
                h.count(Status::Ok),
                h.count(Status::Changed),
                h.count(Status::Skipped),
                h.count(Status::Failed),
                h.took.as_secs_f64(),
                h.transport
            );
        }
        println!(
            "  {} hosts in {:.1}s: {}",
            self.hosts.len(),
            total.as_secs_f64(),
            if self.failed() { "FAILED" } else { "ok" }
        );
    }
}
