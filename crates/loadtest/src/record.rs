//! What the run measured: every request's outcome goes into per-flow totals (an HDR
//! histogram of latencies, errors by kind) and into one-second buckets for the charts.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::threshold::Observed;

/// Latencies are recorded in microseconds, from 1 µs to this (beyond: clamped).
const HIGHEST_US: u64 = 120_000_000;

/// Why a request (or WebSocket exchange) failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorKind {
    /// The TCP connection was refused or could not be made.
    Connect,
    /// No complete answer within the scenario's timeout.
    Timeout,
    /// The connection broke mid-request (reset, closed early).
    Io,
    /// A response that is not HTTP, or not what the flow expects (an empty segment).
    Protocol,
    /// A 4xx status.
    Status4xx,
    /// A 5xx status.
    Status5xx,
    /// The WebSocket handshake was refused.
    WsHandshake,
    /// The WebSocket closed before the session's end (its server died, or was shut).
    WsClosed,
    /// The echo did not match what was sent.
    WsMismatch,
}

impl ErrorKind {
    /// Every kind, in report order.
    pub const ALL: [ErrorKind; 9] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Io,
        ErrorKind::Protocol,
        ErrorKind::Status4xx,
        ErrorKind::Status5xx,
        ErrorKind::WsHandshake,
        ErrorKind::WsClosed,
        ErrorKind::WsMismatch,
    ];

    /// Its name in the report and the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Io => "io",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Status4xx => "status-4xx",
            ErrorKind::Status5xx => "status-5xx",
            ErrorKind::WsHandshake => "ws-handshake",
            ErrorKind::WsClosed => "ws-closed",
            ErrorKind::WsMismatch => "ws-mismatch",
        }
    }

    /// The kind for an HTTP status, or `None` for a success.
    pub fn of_status(status: u16) -> Option<ErrorKind> {
        match status {
            500.. => Some(ErrorKind::Status5xx),
            400..=499 => Some(ErrorKind::Status4xx),
            100..=399 => None,
            _ => Some(ErrorKind::Protocol),
        }
    }
}

/// One request's outcome.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Index of the flow in the scenario.
    pub flow: usize,
    /// When it ended, after the start of the run.
    pub at: Duration,
    /// How long it took.
    pub latency: Duration,
    /// `None` for a success.
    pub error: Option<ErrorKind>,
    /// Whether a client may send it again (not a POST or PATCH).
    pub idempotent: bool,
}

fn histogram(significant_figures: u8) -> Histogram<u64> {
    // The bounds are constants within hdrhistogram's limits.
    Histogram::new_with_bounds(1, HIGHEST_US, significant_figures)
        .unwrap_or_else(|_| unreachable!("valid histogram bounds"))
}

/// Everything measured for one flow (or all of them).
#[derive(Debug, Clone)]
pub struct Totals {
    /// Requests that ended.
    pub requests: u64,
    /// Failed ones, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Failed requests that were not idempotent (POST, PATCH), among `errors`.
    pub failed_non_idempotent: u64,
    /// Latencies of all requests, failed ones included (a timeout is slow).
    pub latency: Histogram<u64>,
    /// Seconds the run lasted, for rates.
    pub seconds: f64,
}

impl Totals {
    fn new() -> Totals {
        Totals {
            requests: 0,
            errors: BTreeMap::new(),
            failed_non_idempotent: 0,
            latency: histogram(3),
            seconds: 0.0,
        }
    }

    fn record(&mut self, sample: &Sample) {
        self.requests += 1;
        if let Some(kind) = sample.error {
            *self.errors.entry(kind).or_default() += 1;
            self.failed_non_idempotent += u64::from(!sample.idempotent);
        }
        let _ = self.latency.record(micros(sample.latency));
    }

    /// Failed requests a client could have sent again (idempotent ones).
    pub fn failed_idempotent(&self) -> u64 {
        self.error_count() - self.failed_non_idempotent
    }

    /// Failed requests.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    fn merge(&mut self, other: &Totals) {
        self.requests += other.requests;
        for (kind, n) in &other.errors {
            *self.errors.entry(*kind).or_default() += n;
        }
        self.failed_non_idempotent += other.failed_non_idempotent;
        let _ = self.latency.add(&other.latency);
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, HIGHEST_US)
}

impl Observed for Totals {
    fn failed_idempotent(&self) -> Option<u64> {
        (self.requests > 0).then(|| self.failed_idempotent())
    }

    fn percentile_ms(&self, percentile: f64) -> Option<f64> {
        (self.requests > 0)
            .then(|| self.latency.value_at_quantile(percentile / 100.0) as f64 / 1000.0)
    }

    fn avg_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency.mean() / 1000.0)
    }

    fn max_ms(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.latency.max() as f64 / 1000.0)
    }

    fn error_percent(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.error_count() as f64 * 100.0 / self.requests as f64)
    }

    fn rate(&self) -> f64 {
        if self.seconds > 0.0 {
            self.requests as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// One second of one flow.
#[derive(Debug, Clone)]
pub struct Bucket {
    /// Requests that ended in this second.
    pub requests: u64,
    /// Failed ones, by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Failed ones that were not idempotent (POST, PATCH).
    pub failed_non_idempotent: u64,
    /// Their latencies (2 significant figures: enough for a chart).
    pub latency: Histogram<u64>,
}

impl Bucket {
    fn new() -> Bucket {
        Bucket {
            requests: 0,
            errors: BTreeMap::new(),
            failed_non_idempotent: 0,
            latency: histogram(2),
        }
    }

    /// Latency at `percentile` in milliseconds, if any request ended in this second.
    pub fn percentile_ms(&self, percentile: f64) -> Option<f64> {
        (self.requests > 0)
            .then(|| self.latency.value_at_quantile(percentile / 100.0) as f64 / 1000.0)
    }
}

/// The recorder: totals per flow and per-second buckets per flow.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Per flow, in scenario order.
    pub flows: Vec<Totals>,
    /// Per flow, one bucket per second of the run.
    pub seconds: Vec<Vec<Bucket>>,
    /// Iterations started.
    pub iterations: u64,
    /// Iterations the arrival-rate executor could not start (no free virtual user).
    pub dropped_iterations: u64,
    /// Virtual users busy, sampled once a second.
    pub active_vus: Vec<u64>,
    /// The first failed non-idempotent requests, each named (at most [`NAMED_FAILURES`]).
    pub non_idempotent_failures: Vec<NamedFailure>,
}

/// How many failed non-idempotent requests a recording names one by one.
pub const NAMED_FAILURES: usize = 100;

/// A failed request, named: when it ended, its flow, how it failed.
#[derive(Debug, Clone, Copy)]
pub struct NamedFailure {
    /// When it ended, after the start of the run.
    pub at: Duration,
    /// Index of the flow in the scenario.
    pub flow: usize,
    /// How it failed.
    pub kind: ErrorKind,
}

impl Recording {
    /// An empty recording for `flows` flows.
    pub fn new(flows: usize) -> Recording {
        Recording {
            flows: (0..flows).map(|_| Totals::new()).collect(),
            seconds: vec![Vec::new(); flows],
            iterations: 0,
            dropped_iterations: 0,
            active_vus: Vec::new(),
            non_idempotent_failures: Vec::new(),
        }
    }

    /// Adds one sample (a sample naming no known flow is ignored).
    pub fn record(&mut self, sample: &Sample) {
        let (Some(totals), Some(seconds)) = (
            self.flows.get_mut(sample.flow),
            self.seconds.get_mut(sample.flow),
        ) else {
            return;
        };
        totals.record(sample);
        let second = usize::try_from(sample.at.as_secs()).unwrap_or(usize::MAX);
        if second >= seconds.len() {
            // Bounded: the run's length plus its drain time.
            if second > 24 * 3600 {
                return;
            }
            seconds.resize_with(second + 1, Bucket::new);
        }
        let bucket = &mut seconds[second];
        bucket.requests += 1;
        if let Some(kind) = sample.error {
            *bucket.errors.entry(kind).or_default() += 1;
            bucket.failed_non_idempotent += u64::from(!sample.idempotent);
            if !sample.idempotent && self.non_idempotent_failures.len() < NAMED_FAILURES {
                self.non_idempotent_failures.push(NamedFailure {
                    at: sample.at,
                    flow: sample.flow,
                    kind,
                });
            }
        }
        let _ = bucket.latency.record(micros(sample.latency));
    }

    /// Sets how long the run lasted, for rates.
    pub fn finish(&mut self, elapsed: Duration) {
        for totals in &mut self.flows {
            totals.seconds = elapsed.as_secs_f64();
        }
        let len = self.seconds.iter().map(Vec::len).max().unwrap_or(0);
        for seconds in &mut self.seconds {
            seconds.resize_with(len, Bucket::new);
        }
    }

    /// All flows together.
    pub fn all(&self) -> Totals {
        let mut all = Totals::new();
        for totals in &self.flows {
            all.merge(totals);
            all.seconds = totals.seconds;
        }
        all
    }

    /// Per second, every flow merged.
    pub fn all_seconds(&self) -> Vec<Bucket> {
        let len = self.seconds.iter().map(Vec::len).max().unwrap_or(0);
        (0..len)
            .map(|i| {
                let mut merged = Bucket::new();
                for bucket in self.seconds.iter().filter_map(|s| s.get(i)) {
                    merged.requests += bucket.requests;
                    for (kind, n) in &bucket.errors {
                        *merged.errors.entry(*kind).or_default() += n;
                    }
                    let _ = merged.latency.add(&bucket.latency);
                }
                merged
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(flow: usize, at_ms: u64, latency_ms: u64, error: Option<ErrorKind>) -> Sample {
        Sample {
            flow,
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(latency_ms),
            error,
            idempotent: true,
        }
    }

    #[test]
    fn totals_and_buckets_agree() {
        let mut r = Recording::new(2);
        for i in 0..100 {
            r.record(&sample(0, i * 30, 1 + i % 10, None));
        }
        r.record(&sample(1, 2500, 40, Some(ErrorKind::Status5xx)));
        r.record(&sample(1, 2600, 5, None));
        r.record(&sample(7, 2600, 5, None));
        r.finish(Duration::from_secs(3));
        assert_eq!(r.flows[0].requests, 100);
        assert_eq!(r.flows[1].error_count(), 1);
        assert_eq!(r.flows[1].error_percent(), Some(50.0));
        let per_second: u64 = r.seconds[0].iter().map(|b| b.requests).sum();
        assert_eq!(per_second, 100);
        assert_eq!(r.seconds[1].len(), r.seconds[0].len());
        assert_eq!(r.seconds[1][2].errors[&ErrorKind::Status5xx], 1);
        let all = r.all();
        assert_eq!(all.requests, 102);
        assert!((all.rate() - 34.0).abs() < 1e-9);
        // Three significant figures: 40 ms reads back within 0.1%.
        assert!((all.max_ms().unwrap() - 40.0).abs() < 0.05);
        let merged = r.all_seconds();
        assert_eq!(merged.iter().map(|b| b.requests).sum::<u64>(), 102);
        let p50 = r.flows[0].percentile_ms(50.0).unwrap();
        assert!((5.0..=6.0).contains(&p50), "{p50}");
    }

    #[test]
    fn status_codes_map_to_error_kinds() {
        assert_eq!(ErrorKind::of_status(200), None);
        assert_eq!(ErrorKind::of_status(302), None);
        assert_eq!(ErrorKind::of_status(404), Some(ErrorKind::Status4xx));
        assert_eq!(ErrorKind::of_status(503), Some(ErrorKind::Status5xx));
        assert_eq!(ErrorKind::of_status(42), Some(ErrorKind::Protocol));
    }
}
