//! What a load run must not leave behind in veza-lb: its open descriptors, its tasks (`show
//! info` `Tasks`) and its resident memory back within [`TOLERANCE`] of where they were
//! before the run, and no process an upgrade replaced still running. A leak of any of them
//! grows with every change and fault until the process falls over, long after the change.
//!
//! Descriptors and tasks are compared with the idle process after a warm-up. Memory is
//! compared with the most the process held while serving the run's own traffic before the
//! first fault ([`CalmPeak`]): the allocator keeps the pages it freed for reuse, so a process
//! settles after a load at that load's high water, not at its idle size; what a change or a
//! fault leaks comes on top of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::topology::{StatsSocket, Topology};
use crate::{Result, fail};

/// How far above its value before the run a reading may settle.
pub const TOLERANCE: f64 = 0.10;
/// How long the readings may take to settle once traffic stops: idle connections close
/// (clients', and the servers' pooled ones), draining processes exit, memory is returned.
const SETTLE: Duration = Duration::from_secs(30);

/// One reading of a process's footprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// Open file descriptors (`/proc/PID/fd`).
    pub fds: u64,
    /// Tasks alive on its event loops (`show info` `Tasks`).
    pub tasks: u64,
    /// Resident memory in KiB (`/proc/PID/status` `VmRSS`).
    pub rss_kib: u64,
}

impl Footprint {
    /// Reads the footprint of `pid`, `Tasks` through `stats`.
    pub async fn read(pid: u32, stats: &StatsSocket) -> Result<Footprint> {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(crate::Error::io(format!(
                "cannot list the descriptors of pid {pid}"
            )))?
            .count() as u64;
        let rss_kib = rss_kib(pid).unwrap_or(0);
        let info = stats.command("show info").await?;
        let Some(tasks) = field(&info, "Tasks:") else {
            return fail(format!("`show info` has no Tasks line:\n{info}"));
        };
        Ok(Footprint {
            fds,
            tasks,
            rss_kib,
        })
    }

    /// What stands above `before` by more than [`TOLERANCE`] (plus a small absolute slack,
    /// so that a handful of descriptors is not 10% of a handful), one phrase each.
    pub fn above(&self, before: &Footprint) -> Vec<String> {
        let over = |now: u64, then: u64, slack: u64| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let allowed = (then as f64 * (1.0 + TOLERANCE)) as u64 + slack;
            now > allowed
        };
        let mut out = Vec::new();
        if over(self.fds, before.fds, 2) {
            out.push(format!(
                "{} descriptors open, {} before",
                self.fds, before.fds
            ));
        }
        if over(self.tasks, before.tasks, 2) {
            out.push(format!("{} tasks, {} before", self.tasks, before.tasks));
        }
        if over(self.rss_kib, before.rss_kib, 1024) {
            out.push(format!(
                "{} KiB resident, {} KiB before",
                self.rss_kib, before.rss_kib
            ));
        }
        out
    }
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} descriptors, {} tasks, {} KiB resident",
            self.fds, self.tasks, self.rss_kib
        )
    }
}

/// Requests through the balancer at `addr` before the first reading, so that it reads a
/// process that has served as the run will make it serve (connections pooled to every server,
/// buffers allocated for as many clients at once as the run's peak, which the allocator keeps
/// for reuse): API calls and HLS playlists from [`WARM_UP_CLIENTS`] clients at once.
pub async fn warm_up(addr: &str) -> Result<()> {
    let clients: Vec<_> = (0..WARM_UP_CLIENTS)
        .map(|client| {
            let addr = addr.to_owned();
            tokio::spawn(async move {
                for round in 0..WARM_UP_ROUNDS {
                    crate::http::get(&addr, "/api/v1/me", &[]).await?;
                    let track = client * WARM_UP_ROUNDS + round;
                    crate::http::get(&addr, &format!("/stream/{track}/index.m3u8"), &[]).await?;
                }
                Ok::<(), crate::Error>(())
            })
        })
        .collect();
    for client in clients {
        client
            .await
            .map_err(|e| crate::Error::Message(format!("warm-up client: {e}")))??;
    }
    Ok(())
}

/// Waits until the balancer serves no client connection (`show info` `CurrConns`: the
/// warm-up's have closed), so that a reading counts no client's descriptor.
pub async fn idle(stats: &StatsSocket) -> Result<()> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let info = stats.command("show info").await?;
        match field(&info, "CurrConns:") {
            Some(0) => return Ok(()),
            Some(n) if Instant::now() > deadline => {
                return fail(format!(
                    "{n} client connections still open after the warm-up"
                ));
            }
            None => return fail(format!("`show info` has no CurrConns line:\n{info}")),
            Some(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Clients of [`warm_up`] at once: the busy virtual users of the shipped scenarios' peak.
const WARM_UP_CLIENTS: usize = 64;
/// Rounds of each [`warm_up`] client.
const WARM_UP_ROUNDS: usize = 10;

/// The most resident memory a process held, sampled every 250 ms from now until a deadline
/// (the run's first fault, or its end when it has none).
pub struct CalmPeak {
    peak: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl CalmPeak {
    /// Starts sampling `pid` for `calm`.
    pub fn watch(pid: u32, calm: Duration) -> CalmPeak {
        let peak = Arc::new(AtomicU64::new(0));
        let seen = peak.clone();
        let sampler = tokio::spawn(async move {
            let end = Instant::now() + calm;
            while Instant::now() < end {
                if let Some(rss) = rss_kib(pid) {
                    seen.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        CalmPeak { peak, sampler }
    }

    /// The most seen, in KiB (0 if nothing could be read).
    pub fn kib(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }
}

impl Drop for CalmPeak {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

impl Footprint {
    /// This footprint with its memory raised to `peak_kib` if that is more: the baseline
    /// memory returns to after a load ([`CalmPeak`]).
    #[must_use]
    pub fn with_rss_at_least(self, peak_kib: u64) -> Footprint {
        Footprint {
            rss_kib: self.rss_kib.max(peak_kib),
            ..self
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    field(&status, "VmRSS:")
}

/// The number after `name` on its line of `text` (`VmRSS:  1234 kB`, `Tasks: 12`).
fn field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Waits until the serving process's footprint is back within bounds of `before` and every
/// replaced process has exited; the footprint it settled at, or what stayed behind.
pub async fn settle(topology: &Topology, before: &Footprint) -> Result<Footprint> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let Some(pid) = topology.lb_pid() else {
            return fail("veza-lb is not running");
        };
        let now = Footprint::read(pid, &topology.stats()).await?;
        let mut left = now.above(before);
        for replaced in topology.replaced_running() {
            left.push(format!(
                "pid {replaced}, replaced by an upgrade, still runs"
            ));
        }
        if left.is_empty() {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return fail(format!(
                "left behind {}s after the run: {} (before: {before}; now: {now})",
                SETTLE.as_secs(),
                left.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_read_from_proc_and_show_info() {
        assert_eq!(field("Name:\tx\nVmRSS:\t  5120 kB\n", "VmRSS:"), Some(5120));
        assert_eq!(
            field("Pid: 3\nTasks: 12\nRun_queue: 0\n", "Tasks:"),
            Some(12)
        );
        assert_eq!(field("Tasks:\n", "Tasks:"), None);
    }

    #[test]
    fn only_what_grew_past_the_tolerance_is_named() {
        let before = Footprint {
            fds: 40,
            tasks: 20,
            rss_kib: 20_000,
        };
        let settled = Footprint {
            fds: 46,
            tasks: 24,
            rss_kib: 22_900,
        };
        assert!(settled.above(&before).is_empty(), "within 10% plus slack");
        let warm = before.with_rss_at_least(30_000);
        assert_eq!(warm.rss_kib, 30_000, "the calm peak raises the baseline");
        assert_eq!(
            warm.with_rss_at_least(1).rss_kib,
            30_000,
            "and never lowers it"
        );
        let leaked = Footprint {
            fds: 80,
            tasks: 25,
            rss_kib: 40_000,
        };
        assert_eq!(
            leaked.above(&before),
            [
                "80 descriptors open, 40 before",
                "25 tasks, 20 before",
                "40000 KiB resident, 20000 KiB before"
            ]
        );
    }
}
