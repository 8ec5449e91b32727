//! What the runtime API and metrics read: consistent reports of the proxy's state, and the
//! once-a-second ticker that turns counter totals into rates and measures `Idle_pct`.

use std::fs;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::counters::{Counters, Total};
use crate::observe::ProxyHandle;
use crate::stats::info::ProcessInfo;
use crate::stats::{FrontendStats, StatsSnapshot};
use crate::tls::TlsCounters;

/// What the runtime API and metrics read: the proxy's handle, plus what the ticker measures.
#[derive(Debug)]
pub(crate) struct StatsSource {
    pub(crate) handle: ProxyHandle,
    stopping: CancellationToken,
    idle_pct: AtomicU8,
    /// The event loops serving traffic, the first also running the control task.
    loops: Vec<Handle>,
}

/// One consistent reading of everything the renderers print.
pub(crate) struct Report {
    pub(crate) frontends: Vec<FrontendStats>,
    pub(crate) snapshot: StatsSnapshot,
    pub(crate) now_unix: u64,
}

impl StatsSource {
    /// The source for `handle`, with its once-a-second ticker running until `stop`; `loops`
    /// serve traffic (the capacity `Idle_pct` is measured against, the tasks counted).
    pub(crate) fn start(
        handle: &ProxyHandle,
        stop: &CancellationToken,
        loops: Vec<Handle>,
    ) -> Arc<Self> {
        let source = Arc::new(StatsSource {
            handle: handle.clone(),
            stopping: stop.clone(),
            idle_pct: AtomicU8::new(100),
            loops,
        });
        tokio::spawn(tick(source.clone(), stop.clone()));
        source
    }

    /// Takes a snapshot; `None` when the proxy is stopping.
    pub(crate) async fn report(&self) -> Option<Report> {
        let (frontends, snapshot) = self.handle.stats().await?;
        Some(Report {
            frontends,
            snapshot,
            now_unix: now_unix(),
        })
    }

    /// `show info` and the `haproxy_process_*` metrics.
    pub(crate) fn process_info(&self, report: &Report) -> ProcessInfo {
        let process = &self.handle.process;
        let sum = |get: fn(&Counters) -> u64| -> u64 {
            report.frontends.iter().map(|f| get(&f.counters)).sum()
        };
        let tls_sum = |get: fn(&TlsCounters) -> u64| -> u64 {
            report
                .frontends
                .iter()
                .filter_map(|f| f.tls.as_deref())
                .map(get)
                .sum()
        };
        ProcessInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            release_date: option_env!("VEZA_LB_RELEASE_DATE")
                .unwrap_or("-")
                .to_owned(),
            threads: self.loops.len(),
            pid: std::process::id(),
            uptime: report.snapshot.uptime,
            start_unix: self
                .handle
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            current_connections: Counters::get(&process.cur_sessions),
            total_connections: process.total(Total::Sessions),
            total_requests: sum(|c| c.total(Total::Requests)),
            connection_rate: process.session_rate.per_second(),
            max_connection_rate: process.session_rate.max(),
            idle_pct: self.idle_pct.load(Relaxed),
            node: fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_default(),
            stopping: self.stopping.is_cancelled(),
            total_bytes_out: sum(|c| c.total(Total::BytesOut)),
            current_tls_connections: tls_sum(|t| TlsCounters::get(&t.current)),
            total_tls_connections: tls_sum(|t| TlsCounters::get(&t.sessions)),
            open_files_limit: crate::listen::open_files_limit(),
            maxconn: self.handle.admission.max(),
            tasks: self
                .loops
                .iter()
                .map(|l| l.metrics().num_alive_tasks() as u64)
                .sum(),
            run_queue: self
                .loops
                .iter()
                .map(|l| l.metrics().global_queue_depth() as u64)
                .sum(),
        }
    }
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Once per second: turns every counter set's totals into rates, and measures `Idle_pct`.
/// The hot path never pays for rates.
async fn tick(source: Arc<StatsSource>, stop: CancellationToken) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last = Instant::now();
    let mut cpu = cpu_ticks();
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => return,
        }
        let Some((frontends, snapshot)) = source.handle.stats().await else {
            return;
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(last);
        last = now;
        let unix = now_unix();
        source.handle.process.tick(elapsed, unix);
        for fe in &frontends {
            fe.counters.tick(elapsed, unix);
        }
        for pool in &snapshot.pools {
            pool.counters.tick(elapsed, unix);
            for server in &pool.servers {
                server.counters.tick(elapsed, unix);
            }
        }
        let now_cpu = cpu_ticks();
        if let (Some(before), Some(after)) = (cpu, now_cpu) {
            // Linux reports CPU time in USER_HZ, 100 per second on every supported target.
            let busy = after.saturating_sub(before) as f64 / 100.0;
            let capacity = elapsed.as_secs_f64() * source.loops.len().max(1) as f64;
            let idle = 100.0 - 100.0 * busy / capacity.max(f64::EPSILON);
            source.idle_pct.store(idle.clamp(0.0, 100.0) as u8, Relaxed);
        }
        cpu = now_cpu;
    }
}

/// User plus system CPU time of this process, in clock ticks (Linux `/proc/self/stat`).
fn cpu_ticks() -> Option<u64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may itself contain spaces and parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
