//! The verdict of a run and its JSON summary (`summary.json`, one object per run, kept by
//! CI as history): totals, latency percentiles, errors by kind, every threshold checked.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::Totals;
use crate::run::Run;
use crate::scenario::FaultAction;
use crate::threshold::{Observed, Threshold, Verdict};
use crate::window::Window;

/// The summary file's layout version; bumped when a field changes meaning.
pub const VERSION: u32 = 1;

/// Latency percentiles of a flow, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Highest.
    pub max: f64,
    /// Mean.
    pub avg: f64,
}

/// One flow's (or all flows') results.
#[derive(Debug, Clone, Serialize)]
pub struct FlowSummary {
    /// The flow's name (`all` for every flow together).
    pub name: String,
    /// `api`, `websocket`, `hls` (or `all`).
    pub kind: String,
    /// Requests (WebSocket: handshakes and echoes) that ended.
    pub requests: u64,
    /// Failed ones.
    pub errors: u64,
    /// Failed, percent of all.
    pub error_percent: f64,
    /// Requests per second over the run.
    pub rate: f64,
    /// Latency percentiles (all zero without requests).
    pub latency_ms: Latency,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Each threshold, checked.
    pub thresholds: Vec<Verdict>,
}

impl FlowSummary {
    fn of(name: &str, kind: &str, totals: &Totals, thresholds: &[Threshold]) -> FlowSummary {
        let ms = |v: Option<f64>| v.unwrap_or(0.0);
        FlowSummary {
            name: name.to_owned(),
            kind: kind.to_owned(),
            requests: totals.requests,
            errors: totals.error_count(),
            error_percent: ms(totals.error_percent()),
            rate: totals.rate(),
            latency_ms: Latency {
                p50: ms(totals.percentile_ms(50.0)),
                p90: ms(totals.percentile_ms(90.0)),
                p95: ms(totals.percentile_ms(95.0)),
                p99: ms(totals.percentile_ms(99.0)),
                max: ms(totals.max_ms()),
                avg: ms(totals.avg_ms()),
            },
            errors_by_kind: totals
                .errors
                .iter()
                .map(|(k, n)| (k.as_str().to_owned(), *n))
                .collect(),
            thresholds: thresholds.iter().map(|t| t.check(totals)).collect(),
        }
    }
}

/// A fault as applied.
#[derive(Debug, Clone, Serialize)]
pub struct FaultSummary {
    /// Seconds after the start.
    pub at_s: f64,
    /// `stop`, `start`, `hang`, `resume`, `delay`, `heal`, `upgrade` or `reload`.
    pub action: String,
    /// The server.
    pub server: String,
    /// A delay's milliseconds, each way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// A loss's share of packets dropped each way, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_percent: Option<u8>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// For a stop: the window in which traffic must have left the server, seconds after
    /// the start (from [`SETTLE`] after the stop to the server's start or the end).
    pub window_s: Option<(f64, f64)>,
    /// Sessions each server of the stopped server's pools received in that window.
    pub sessions_in_window: Vec<ServerSummary>,
    /// For a stop, when measured: the stopped server got no session in the window and
    /// another server of its pool did.
    pub traffic_moved: Option<bool>,
    /// What clients saw from this fault to the next one (or the end of the run).
    pub clients: Window,
}

/// Time a stopped server is given to be marked DOWN before it must receive nothing (health
/// checks: `fall` × `interval`, 3 × 1 s on the demo topology, plus a margin).
pub const SETTLE: f64 = 5.0;

/// How traffic behaved after `stop` (the fault at `index`): the window, the sessions per
/// server of its pools, whether traffic moved off it.
fn traffic_after_stop(
    run: &Run,
    index: usize,
) -> (Option<(f64, f64)>, Vec<ServerSummary>, Option<bool>) {
    let stop = &run.faults[index];
    if stop.fault.action != FaultAction::Stop || stop.error.is_some() {
        return (None, Vec::new(), None);
    }
    let end = run.faults[index + 1..]
        .iter()
        .find(|e| e.fault.server == stop.fault.server && e.fault.action == FaultAction::Start)
        .map_or(run.elapsed.as_secs_f64(), |e| e.at);
    let window = (stop.at + SETTLE, end);
    let suffix = format!("/{}", stop.fault.server);
    let Some(traffic) = run.servers.as_ref() else {
        return (Some(window), Vec::new(), None);
    };
    let Some(sessions) = traffic.sessions_between(window.0, window.1) else {
        return (Some(window), Vec::new(), None);
    };
    let pools: Vec<&str> = sessions
        .iter()
        .filter_map(|(name, _)| name.strip_suffix(&suffix))
        .collect();
    let in_pools: Vec<ServerSummary> = sessions
        .iter()
        .filter(|(name, _)| pools.iter().any(|p| name.starts_with(&format!("{p}/"))))
        .map(|(server, sessions)| ServerSummary {
            server: server.clone(),
            sessions: *sessions,
        })
        .collect();
    let stopped: f64 = in_pools
        .iter()
        .filter(|s| s.server.ends_with(&suffix))
        .map(|s| s.sessions)
        .sum();
    let others: f64 = in_pools
        .iter()
        .filter(|s| !s.server.ends_with(&suffix))
        .map(|s| s.sessions)
        .sum();
    let moved = (!pools.is_empty()).then_some(stopped == 0.0 && others > 0.0);
    (Some(window), in_pools, moved)
}

/// Sessions a backend server received during the run (from the metrics endpoint).
#[derive(Debug, Clone, Serialize)]
pub struct ServerSummary {
    /// `pool/server`.
    pub server: String,
    /// Sessions.
    pub sessions: f64,
}

/// One run's summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// Who was under test.
    pub label: String,
    /// The target's authority.
    pub target: String,
    /// Start, Unix seconds.
    pub started_unix: u64,
    /// Seconds the run lasted.
    pub duration_s: f64,
    /// `arrival-rate` or `vus`.
    pub executor: String,
    /// Highest target (iterations/s or users).
    pub peak_target: f64,
    /// Iterations started.
    pub iterations: u64,
    /// Iterations not started for lack of a free virtual user.
    pub dropped_iterations: u64,
    /// Per flow.
    pub flows: Vec<FlowSummary>,
    /// All flows together, with the scenario's global thresholds.
    pub all: FlowSummary,
    /// Faults applied.
    pub faults: Vec<FaultSummary>,
    /// Traffic per backend server (empty without a metrics endpoint).
    pub servers: Vec<ServerSummary>,
    /// What clients saw before the first fault, when there are faults: the calm baseline of
    /// each fault's window.
    pub baseline: Option<Window>,
    /// Failed non-idempotent requests, each named (`12.3s api: io`), at most
    /// [`crate::record::NAMED_FAILURES`].
    pub non_idempotent_failures: Vec<String>,
    /// Every threshold held and every fault could be applied.
    pub passed: bool,
    /// What failed, one sentence each, naming the flow.
    pub failures: Vec<String>,
}

impl Summary {
    /// The calm baseline's p99, if there was a calm before the faults.
    pub fn baseline_p99(&self) -> Option<f64> {
        self.baseline.as_ref().and_then(|b| b.p99_ms)
    }

    /// Every flow, then all flows together: the rows of the report's tables.
    pub fn rows(&self) -> Vec<&FlowSummary> {
        self.flows.iter().chain([&self.all]).collect()
    }

    /// Checks `run`'s thresholds and summarises it.
    pub fn of(run: &Run) -> Summary {
        let scenario = &run.scenario;
        let flows: Vec<FlowSummary> = scenario
            .flows
            .iter()
            .zip(&run.recording.flows)
            .map(|(flow, totals)| {
                FlowSummary::of(&flow.name, flow.kind.as_str(), totals, &flow.thresholds)
            })
            .collect();
        let all = FlowSummary::of("all", "all", &run.recording.all(), &scenario.thresholds);
        let mut failures = Vec::new();
        for flow in flows.iter().chain(std::iter::once(&all)) {
            for verdict in flow.thresholds.iter().filter(|v| !v.passed) {
                failures.push(format!(
                    "flow {}: threshold `{}` failed ({})",
                    flow.name, verdict.threshold, verdict.observed
                ));
            }
        }
        // The last window keeps the run's last (partial) second.
        let end = run.elapsed.as_secs_f64().ceil();
        let faults: Vec<FaultSummary> = run
            .faults
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let (window_s, sessions_in_window, traffic_moved) = traffic_after_stop(run, i);
                let until = run.faults.get(i + 1).map_or(end, |next| next.at);
                FaultSummary {
                    clients: Window::of(scenario, &run.recording, e.at, until),
                    at_s: e.at,
                    action: e.fault.action.as_str().to_owned(),
                    server: e.fault.server.clone(),
                    delay_ms: e
                        .fault
                        .by
                        .map(|by| u64::try_from(by.as_millis()).unwrap_or(u64::MAX)),
                    loss_percent: e.fault.percent,
                    error: e.error.clone(),
                    window_s,
                    sessions_in_window,
                    traffic_moved,
                }
            })
            .collect();
        for fault in &faults {
            if let Some(error) = &fault.error {
                failures.push(format!(
                    "fault at {:.1}s: {} {} failed: {error}",
                    fault.at_s, fault.action, fault.server
                ));
            }
            if fault.traffic_moved == Some(false) {
                failures.push(format!(
                    "fault at {:.1}s: traffic did not move off {} to the rest of its pool",
                    fault.at_s, fault.server
                ));
            }
        }
        let baseline =
            (run.faults.first()).map(|first| Window::of(scenario, &run.recording, 0.0, first.at));
        let non_idempotent_failures = (run.recording.non_idempotent_failures.iter())
            .map(|f| {
                let flow = scenario
                    .flows
                    .get(f.flow)
                    .map_or("?", |flow| flow.name.as_str());
                format!("{:.1}s {flow}: {}", f.at.as_secs_f64(), f.kind.as_str())
            })
            .collect();
        let servers = run
            .servers
            .as_ref()
            .map(|s| {
                s.totals()
                    .into_iter()
                    .map(|(server, sessions)| ServerSummary { server, sessions })
                    .collect()
            })
            .unwrap_or_default();
        Summary {
            scenario: scenario.name.clone(),
            label: run.label.clone(),
            target: run.target.clone(),
            started_unix: run.started_unix,
            duration_s: run.elapsed.as_secs_f64(),
            executor: scenario.load.executor.as_str().to_owned(),
            peak_target: scenario.load.peak(),
            iterations: run.recording.iterations,
            dropped_iterations: run.recording.dropped_iterations,
            passed: failures.is_empty(),
            flows,
            all,
            faults,
            servers,
            baseline,
            non_idempotent_failures,
            failures,
        }
    }
}

impl Summary {
    /// A table for the terminal: one line per flow, then thresholds that failed and faults.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;

        let mut out = format!(
            "{} against {} ({}): {:.0}s, {} iterations, {} dropped\n",
            self.scenario,
            self.label,
            self.target,
            self.duration_s,
            self.iterations,
            self.dropped_iterations
        );
        let _ = writeln!(
            out,
            "  {:<12} {:>9} {:>8} {:>14} {:>8} {:>8} {:>8} {:>8}",
            "flow", "requests", "req/s", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms"
        );
        for flow in self.rows() {
            let _ = writeln!(
                out,
                "  {:<12} {:>9} {:>8.1} {:>6} ({:>5.2}%) {:>8.2} {:>8.2} {:>8.2} {:>8.1}",
                flow.name,
                flow.requests,
                flow.rate,
                flow.errors,
                flow.error_percent,
                flow.latency_ms.p50,
                flow.latency_ms.p95,
                flow.latency_ms.p99,
                flow.latency_ms.max
            );
        }
        for fault in &self.faults {
            let moved = match fault.traffic_moved {
                Some(true) => ", traffic moved to the rest of its pool",
                Some(false) => ", traffic did NOT move",
                None => "",
            };
            let amount = match (fault.delay_ms, fault.loss_percent) {
                (Some(ms), _) => format!(" by {ms}ms"),
                (None, Some(percent)) => format!(" {percent}%"),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  fault at {:.1}s: {} {}{amount}{}{moved}",
                fault.at_s,
                fault.action,
                fault.server,
                fault
                    .error
                    .as_deref()
                    .map(|e| format!(" failed: {e}"))
                    .unwrap_or_default()
            );
            let w = &fault.clients;
            let _ = writeln!(
                out,
                "    until {:.1}s: {} requests; failed: {} idempotent, {} POST/PATCH; {} WebSockets \
                 lost ({}); p99 {}",
                w.to_s,
                w.requests,
                w.failed_idempotent,
                w.failed_non_idempotent,
                w.websockets_lost,
                w.failures(),
                p99_against(w.p99_ms, self.baseline_p99()),
            );
        }
        for failure in &self.non_idempotent_failures {
            let _ = writeln!(out, "  failed non-idempotent request: {failure}");
        }
        let checked: usize = self.rows().iter().map(|f| f.thresholds.len()).sum();
        if self.passed {
            let _ = writeln!(out, "  PASSED: {checked} threshold(s) held");
        } else {
            for failure in &self.failures {
                let _ = writeln!(out, "  FAILED: {failure}");
            }
        }
        out
    }
}

/// `12.3ms (calm: 2.1ms)`: a window's p99 beside the baseline's.
pub fn p99_against(p99_ms: Option<f64>, baseline_ms: Option<f64>) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}ms"));
    format!("{} (calm: {})", ms(p99_ms), ms(baseline_ms))
}

/// `summary.json`: every run of one invocation (the system under test first, then any peer
/// it was compared with). `passed` is the first run's verdict: a peer's thresholds are
/// reported, not enforced.
#[derive(Debug, Clone, Serialize)]
pub struct SummaryFile {
    /// [`VERSION`].
    pub version: u32,
    /// The first run passed.
    pub passed: bool,
    /// Each run.
    pub runs: Vec<Summary>,
}

impl SummaryFile {
    /// The file for these runs.
    pub fn new(runs: Vec<Summary>) -> SummaryFile {
        SummaryFile {
            version: VERSION,
            passed: runs.first().is_some_and(|r| r.passed),
            runs,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::Recording;
    use crate::run::FaultEvent;
    use crate::scenario::{Fault, Scenario};
    use crate::scrape::{SERIES, ServerTraffic};

    const SCENARIO: &str = r#"
name = "t"
duration = "30s"
[load]
executor = "vus"
stages = [{ duration = "1s", target = 1 }]
[[flow]]
name = "api"
kind = "api"
steps = [{ path = "/" }]
[[fault]]
at = "5s"
stop = "api-1"
[[fault]]
at = "20s"
start = "api-1"
"#;

    /// A run whose scrapes say api-1 got `during` sessions per second between the stop and
    /// the start (other pools: stream-1 always busy).
    fn run(during: f64) -> Run {
        let scenario = Scenario::parse(SCENARIO, None).unwrap();
        let mut traffic = ServerTraffic::default();
        let (mut a1, mut a2, mut s1) = (0.0, 0.0, 0.0);
        for t in 0..=30 {
            let t = f64::from(t);
            // The scrape at t counts the second before it: (5, 20] is the stopped time.
            let stopped = t > 5.0 && t <= 20.0;
            a1 += if stopped { during } else { 10.0 };
            a2 += 10.0;
            s1 += 10.0;
            traffic.add(
                t,
                &format!(
                    "{SERIES}{{proxy=\"api\",server=\"api-1\"}} {a1}\n{SERIES}{{proxy=\"api\",server=\"api-2\"}} {a2}\n{SERIES}{{proxy=\"stream\",server=\"stream-1\"}} {s1}\n"
                ),
            );
        }
        let events = scenario
            .faults
            .iter()
            .map(|f: &Fault| FaultEvent {
                fault: f.clone(),
                at: f.at.as_secs_f64(),
                error: None,
            })
            .collect();
        let mut recording = Recording::new(1);
        recording.finish(Duration::from_secs(30));
        Run {
            scenario,
            label: "test".into(),
            target: "127.0.0.1:1".into(),
            started_unix: 0,
            elapsed: Duration::from_secs(30),
            recording,
            faults: events,
            servers: Some(traffic),
        }
    }

    #[test]
    fn traffic_must_leave_a_stopped_server_for_the_rest_of_its_pool() {
        let moved = Summary::of(&run(0.0));
        let stop = &moved.faults[0];
        assert_eq!(stop.window_s, Some((10.0, 20.0)));
        assert_eq!(stop.traffic_moved, Some(true));
        // Only the stopped server's pool is shown: api-1 none, api-2 ten a second.
        let shares: Vec<(&str, f64)> = stop
            .sessions_in_window
            .iter()
            .map(|s| (s.server.as_str(), s.sessions))
            .collect();
        assert_eq!(shares, [("api/api-1", 0.0), ("api/api-2", 100.0)]);
        assert_eq!(
            moved.faults[1].traffic_moved, None,
            "a start claims nothing"
        );

        let stuck = Summary::of(&run(1.0));
        assert_eq!(stuck.faults[0].traffic_moved, Some(false));
        assert!(!stuck.passed);
        assert_eq!(
            stuck.failures,
            ["fault at 5.0s: traffic did not move off api-1 to the rest of its pool"]
        );
    }

    #[test]
    fn a_flow_that_sent_nothing_fails_its_thresholds() {
        let mut run = run(0.0);
        run.scenario.flows[0].thresholds = vec!["p95 < 1s".parse().unwrap()];
        let summary = Summary::of(&run);
        assert!(!summary.passed);
        assert_eq!(
            summary.failures[0],
            "flow api: threshold `p95 < 1s` failed (p95: no requests)"
        );
    }
}
