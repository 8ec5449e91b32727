//! What clients saw between two instants of a run, read from the per-second buckets: each
//! fault's window (from the fault to the next one, or the end) and the calm before the first
//! fault, the baseline a window's latency is held against. A window covers whole seconds: the
//! second a fault happens in belongs to its window.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::record::{Bucket, Recording};
use crate::scenario::{FlowKind, Scenario};

/// One window's requests, failures and latency.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    /// Start, seconds after the start of the run.
    pub from_s: f64,
    /// End, seconds after the start of the run.
    pub to_s: f64,
    /// Requests that ended in the window.
    pub requests: u64,
    /// Failed HTTP requests a client could have sent again (all but POST and PATCH).
    pub failed_idempotent: u64,
    /// Failed POSTs and PATCHes.
    pub failed_non_idempotent: u64,
    /// WebSocket sessions lost: handshakes refused, sessions closed or broken.
    pub websockets_lost: u64,
    /// Failures per flow, by kind: `websocket: ws-closed 3` says which sessions were lost and
    /// how.
    pub failed_by_flow: BTreeMap<String, BTreeMap<String, u64>>,
    /// The 99th percentile of latency, in milliseconds (`None` without requests).
    pub p99_ms: Option<f64>,
}

impl Window {
    /// The window from `from_s` to `to_s` of `recording`, flows named by `scenario`.
    pub fn of(scenario: &Scenario, recording: &Recording, from_s: f64, to_s: f64) -> Window {
        // Windows that follow each other share no second: the second a fault happens in is
        // its window's, the next fault's second the next window's. The run's last window
        // ends with its last second.
        let first = seconds_index(from_s);
        let end = seconds_index(to_s).max(first + 1);
        let mut latency = None::<hdrhistogram::Histogram<u64>>;
        let mut window = Window {
            from_s,
            to_s,
            requests: 0,
            failed_idempotent: 0,
            failed_non_idempotent: 0,
            websockets_lost: 0,
            failed_by_flow: BTreeMap::new(),
            p99_ms: None,
        };
        for (flow, seconds) in scenario.flows.iter().zip(&recording.seconds) {
            let websocket = matches!(flow.kind, FlowKind::WebSocket { .. });
            for bucket in seconds.get(first..end.min(seconds.len())).unwrap_or(&[]) {
                window.add(&flow.name, websocket, bucket);
                match &mut latency {
                    Some(h) => {
                        let _ = h.add(&bucket.latency);
                    }
                    None => latency = Some(bucket.latency.clone()),
                }
            }
        }
        window.p99_ms = latency
            .filter(|h| !h.is_empty())
            .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0);
        window
    }

    fn add(&mut self, flow: &str, websocket: bool, bucket: &Bucket) {
        self.requests += bucket.requests;
        let failed: u64 = bucket.errors.values().sum();
        if websocket {
            self.websockets_lost += failed;
        } else {
            self.failed_non_idempotent += bucket.failed_non_idempotent;
            self.failed_idempotent += failed - bucket.failed_non_idempotent;
        }
        if failed > 0 {
            let kinds = self.failed_by_flow.entry(flow.to_owned()).or_default();
            for (kind, n) in &bucket.errors {
                *kinds.entry(kind.as_str().to_owned()).or_default() += n;
            }
        }
    }

    /// Failures in the window, one phrase per flow (`api: io 2; websocket: ws-closed 3`), or
    /// `none`.
    pub fn failures(&self) -> String {
        if self.failed_by_flow.is_empty() {
            return "none".to_owned();
        }
        let flows: Vec<String> = (self.failed_by_flow.iter())
            .map(|(flow, kinds)| {
                let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
                format!("{flow}: {}", kinds.join(", "))
            })
            .collect();
        flows.join("; ")
    }
}

fn seconds_index(s: f64) -> usize {
    if s <= 0.0 {
        0
    } else {
        // Truncation is the point: the second an instant falls in.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let index = s as usize;
        index
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::record::{ErrorKind, Sample};

    fn scenario() -> Scenario {
        Scenario::parse(
            "name = \"t\"\nduration = \"10s\"\n[load]\nexecutor = \"vus\"\nstages = [{ duration = \
             \"1s\", target = 1 }]\n[[flow]]\nname = \"api\"\nkind = \"api\"\nsteps = [{ path = \
             \"/\" }]\n[[flow]]\nname = \"ws\"\nkind = \"websocket\"\n",
            None,
        )
        .expect("valid scenario")
    }

    fn sample(flow: usize, at_ms: u64, error: Option<ErrorKind>, idempotent: bool) -> Sample {
        Sample {
            flow,
            at: Duration::from_millis(at_ms),
            latency: Duration::from_millis(at_ms / 100 + 1),
            error,
            idempotent,
        }
    }

    #[test]
    fn a_window_counts_its_seconds_failures_apart_and_by_flow() {
        let mut recording = Recording::new(2);
        for sample in [
            sample(0, 500, None, true),
            sample(0, 2_100, Some(ErrorKind::Io), false),
            sample(0, 2_200, Some(ErrorKind::Timeout), true),
            sample(1, 3_900, Some(ErrorKind::WsClosed), true),
            sample(0, 4_000, None, true),
        ] {
            recording.record(&sample);
        }
        recording.finish(Duration::from_secs(5));
        let calm = Window::of(&scenario(), &recording, 0.0, 2.0);
        assert_eq!((calm.requests, calm.failed_idempotent), (1, 0));
        assert_eq!(calm.failures(), "none");

        let fault = Window::of(&scenario(), &recording, 2.4, 4.2);
        assert_eq!(
            fault.requests, 3,
            "seconds 2 and 3, whole; second 4 is the next's"
        );
        assert_eq!(fault.failed_non_idempotent, 1);
        assert_eq!(fault.failed_idempotent, 1);
        assert_eq!(
            fault.websockets_lost, 1,
            "a WebSocket session is not a request"
        );
        assert_eq!(fault.failures(), "api: io 1, timeout 1; ws: ws-closed 1");
        // The slowest of the window's latencies (40 ms), within the buckets' 2 figures.
        let p99 = fault.p99_ms.expect("a p99");
        assert!((39.0..=41.0).contains(&p99), "{p99}");

        let late = Window::of(&scenario(), &recording, 9.0, 12.0);
        assert_eq!(late.requests, 0, "past the recording");
        assert_eq!(late.p99_ms, None);
    }
}
