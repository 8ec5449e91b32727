//! Pass/fail criteria, written as k6 writes them: `p95 < 50ms`, `avg <= 20ms`, `max < 1s`,
//! `errors < 0.1%`, `rate > 100/s`; and `failed_idempotent < 1`, a count of failed requests a
//! client could have sent again (what a change or fault must never cost). A failed threshold
//! makes the run exit non-zero.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency percentile (`p50`, `p99.9`).
    Percentile(f64),
    /// Mean latency.
    Avg,
    /// Highest latency.
    Max,
    /// Failed requests as a share of all.
    Errors,
    /// Requests per second over the whole run.
    Rate,
    /// Failed idempotent requests (not POST or PATCH), a count.
    FailedIdempotent,
}

/// How the observed value must compare with the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
}

impl Comparison {
    fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => observed < limit,
            Comparison::LessOrEqual => observed <= limit,
            Comparison::Greater => observed > limit,
            Comparison::GreaterOrEqual => observed >= limit,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
        }
    }
}

/// One criterion: `metric comparison limit`. Latencies are held in milliseconds, error rates
/// as percentages, rates per second.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// What is measured.
    pub metric: Metric,
    /// How it must compare.
    pub comparison: Comparison,
    /// The limit, in the metric's unit (ms, %, /s).
    pub limit: f64,
    text: String,
}

/// What a flow's (or all flows') run measured, in the units thresholds use.
pub trait Observed {
    /// Latency at `percentile` (0-100), in milliseconds; `None` without any request.
    fn percentile_ms(&self, percentile: f64) -> Option<f64>;
    /// Mean latency in milliseconds.
    fn avg_ms(&self) -> Option<f64>;
    /// Highest latency in milliseconds.
    fn max_ms(&self) -> Option<f64>;
    /// Failed requests, percent of all.
    fn error_percent(&self) -> Option<f64>;
    /// Requests per second.
    fn rate(&self) -> f64;
    /// Failed idempotent requests; `None` without any request.
    fn failed_idempotent(&self) -> Option<u64>;
}

/// A threshold checked against a run.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// The threshold as written.
    pub threshold: String,
    /// What was measured, with its unit (`"p95 = 12.3ms"`).
    pub observed: String,
    /// Whether it held.
    pub passed: bool,
}

impl Threshold {
    /// Checks the threshold. With no requests at all, latency and error thresholds fail: a
    /// flow that never ran proves nothing.
    pub fn check(&self, observed: &dyn Observed) -> Verdict {
        let (value, unit) = match self.metric {
            Metric::Percentile(p) => (observed.percentile_ms(p), "ms"),
            Metric::Avg => (observed.avg_ms(), "ms"),
            Metric::Max => (observed.max_ms(), "ms"),
            Metric::Errors => (observed.error_percent(), "%"),
            Metric::Rate => (Some(observed.rate()), "/s"),
            #[allow(clippy::cast_precision_loss)] // counts far below 2^52
            Metric::FailedIdempotent => (observed.failed_idempotent().map(|n| n as f64), ""),
        };
        let name = self.metric_name();
        match value {
            Some(value) => Verdict {
                threshold: self.text.clone(),
                observed: if self.metric == Metric::FailedIdempotent {
                    format!("{name} = {value}")
                } else {
                    format!("{name} = {}{unit}", round(value))
                },
                passed: self.comparison.holds(value, self.limit),
            },
            None => Verdict {
                threshold: self.text.clone(),
                observed: format!("{name}: no requests"),
                passed: false,
            },
        }
    }

    fn metric_name(&self) -> String {
        match self.metric {
            Metric::Percentile(p) => format!("p{p}"),
            Metric::Avg => "avg".into(),
            Metric::Max => "max".into(),
            Metric::Errors => "errors".into(),
            Metric::Rate => "rate".into(),
            Metric::FailedIdempotent => "failed_idempotent".into(),
        }
    }
}

fn round(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "{text:?} is not a threshold like \"p95 < 50ms\", \"avg <= 20ms\", \"errors < 0.1%\" or \"rate > 100/s\""
            )
        };
        let (at, comparison, width) = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .into_iter()
        .find_map(|(op, c)| text.find(op).map(|at| (at, c, op.len())))
        .ok_or_else(usage)?;
        let name = text[..at].trim();
        let value = text[at + width..].trim();
        let metric = match name {
            "avg" => Metric::Avg,
            "max" => Metric::Max,
            "errors" => Metric::Errors,
            "rate" => Metric::Rate,
            "failed_idempotent" => Metric::FailedIdempotent,
            _ => {
                let p: f64 = name
                    .strip_prefix('p')
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(usage)?;
                if !(p > 0.0 && p <= 100.0) {
                    return Err(format!("{text:?}: a percentile is between p0 and p100"));
                }
                Metric::Percentile(p)
            }
        };
        let limit = match metric {
            Metric::Percentile(_) | Metric::Avg | Metric::Max => {
                crate::scenario::parse_duration(value)
                    .map(|d: Duration| d.as_secs_f64() * 1000.0)
                    .map_err(|e| format!("{text:?}: {e}"))?
            }
            Metric::Errors => value
                .strip_suffix('%')
                .and_then(|v| v.trim().parse().ok())
                .filter(|v: &f64| (0.0..=100.0).contains(v))
                .ok_or_else(|| format!("{text:?}: errors are a percentage like 0.1%"))?,
            Metric::Rate => value
                .strip_suffix("/s")
                .and_then(|v| v.trim().parse().ok())
                .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| format!("{text:?}: a rate is per second, like 100/s"))?,
            Metric::FailedIdempotent => value
                .parse::<u64>()
                .map(|n| n as f64)
                .map_err(|_| format!("{text:?}: failed_idempotent is a count, like 1"))?,
        };
        Ok(Threshold {
            metric,
            comparison,
            limit,
            text: format!("{name} {} {value}", comparison.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed {
        requests: bool,
    }

    impl Observed for Fixed {
        fn percentile_ms(&self, p: f64) -> Option<f64> {
            self.requests.then_some(p / 2.0)
        }
        fn avg_ms(&self) -> Option<f64> {
            self.requests.then_some(10.0)
        }
        fn max_ms(&self) -> Option<f64> {
            self.requests.then_some(100.0)
        }
        fn error_percent(&self) -> Option<f64> {
            self.requests.then_some(0.5)
        }
        fn rate(&self) -> f64 {
            if self.requests { 250.0 } else { 0.0 }
        }
        fn failed_idempotent(&self) -> Option<u64> {
            self.requests.then_some(2)
        }
    }

    fn check(text: &str) -> Verdict {
        text.parse::<Threshold>()
            .unwrap()
            .check(&Fixed { requests: true })
    }

    #[test]
    fn parses_k6_style_expressions() {
        let t: Threshold = "p99.9<=1.5s".parse().unwrap();
        assert_eq!(t.metric, Metric::Percentile(99.9));
        assert_eq!(t.comparison, Comparison::LessOrEqual);
        assert_eq!(t.limit, 1500.0);
        assert_eq!(t.to_string(), "p99.9 <= 1.5s");
        let t: Threshold = "errors < 0.1%".parse().unwrap();
        assert_eq!((t.metric, t.limit), (Metric::Errors, 0.1));
        let t: Threshold = "rate >= 20/s".parse().unwrap();
        assert_eq!((t.metric, t.limit), (Metric::Rate, 20.0));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for bad in [
            "p95",
            "p95 < 50",
            "p0 < 5ms",
            "p101 < 5ms",
            "errors < 5",
            "errors < 120%",
            "rate > fast",
            "latency < 5ms",
            "avg < 10%",
            "failed_idempotent < 1.5",
            "failed_idempotent < 1%",
        ] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn checks_against_observations() {
        assert!(check("p95 < 50ms").passed);
        assert!(!check("p95 < 47ms").passed);
        assert_eq!(check("p95 < 47ms").observed, "p95 = 47.50ms");
        assert!(check("avg <= 10ms").passed);
        assert!(!check("avg < 10ms").passed);
        assert!(!check("max < 100ms").passed);
        assert!(check("errors < 1%").passed);
        assert!(!check("errors < 0.1%").passed);
        assert!(check("rate > 200/s").passed);
        assert!(!check("rate >= 300/s").passed);
        assert!(check("failed_idempotent < 3").passed);
        assert!(!check("failed_idempotent < 1").passed);
        assert_eq!(
            check("failed_idempotent < 1").observed,
            "failed_idempotent = 2"
        );
    }

    #[test]
    fn a_flow_without_requests_fails_latency_thresholds() {
        let t: Threshold = "p95 < 1s".parse().unwrap();
        let verdict = t.check(&Fixed { requests: false });
        assert!(!verdict.passed);
        assert_eq!(verdict.observed, "p95: no requests");
    }
}
