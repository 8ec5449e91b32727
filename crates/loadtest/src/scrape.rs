//! Traffic per backend server, read from the load balancer's Prometheus endpoint during the
//! run: `haproxy_server_sessions_total{proxy,server}`, which veza-lb and HAProxy's exporter
//! both export, sampled once a second and turned into sessions per second.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::client::{Client, Target};

/// The counter read.
pub const SERIES: &str = "haproxy_server_sessions_total";

/// The samples of [`SERIES`] in a Prometheus text exposition: `(proxy, server, value)`.
/// Lines that do not parse are skipped.
pub fn server_sessions(exposition: &str) -> Vec<(String, String, f64)> {
    exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(SERIES)?.strip_prefix('{')?;
            let (labels, value) = rest.rsplit_once('}')?;
            let value: f64 = value.split_whitespace().next()?.parse().ok()?;
            let labels = parse_labels(labels)?;
            let get = |name: &str| {
                labels
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
            };
            Some((get("proxy")?, get("server")?, value))
        })
        .collect()
}

/// `a="x",b="y\"z"` into pairs; `None` when malformed.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        let (name, after) = rest.split_once('=')?;
        let mut chars = after.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.push((name.trim().to_owned(), value));
        rest = after[end + 2..].trim_start_matches(',').trim();
    }
    Some(out)
}

/// Sessions per second per server over the run.
#[derive(Debug, Clone, Default)]
pub struct ServerTraffic {
    /// `pool/server`, in first-seen order.
    pub servers: Vec<String>,
    /// `(seconds since the start, counter per server)`; a server missing from a scrape
    /// holds its last value.
    pub samples: Vec<(f64, Vec<f64>)>,
    /// Scrapes that failed (the endpoint down or slow).
    pub failed_scrapes: u64,
}

impl ServerTraffic {
    pub(crate) fn add(&mut self, at: f64, exposition: &str) {
        let mut row = self
            .samples
            .last()
            .map(|(_, r)| r.clone())
            .unwrap_or_default();
        for (proxy, server, value) in server_sessions(exposition) {
            let name = format!("{proxy}/{server}");
            let index = match self.servers.iter().position(|s| *s == name) {
                Some(i) => i,
                None => {
                    self.servers.push(name);
                    self.servers.len() - 1
                }
            };
            if row.len() <= index {
                row.resize(index + 1, value);
            }
            row[index] = value;
        }
        self.samples.push((at, row));
    }

    /// Per server: `(seconds since start, sessions/s)` between consecutive scrapes. A
    /// counter that went down (a restart) counts from zero.
    pub fn rates(&self) -> Vec<Vec<(f64, f64)>> {
        (0..self.servers.len())
            .map(|i| {
                self.samples
                    .windows(2)
                    .filter_map(|pair| {
                        let ((t0, r0), (t1, r1)) = (&pair[0], &pair[1]);
                        let (Some(&v0), Some(&v1)) = (r0.get(i), r1.get(i)) else {
                            return None;
                        };
                        let dt = t1 - t0;
                        let delta = if v1 >= v0 { v1 - v0 } else { v1 };
                        (dt > 0.0).then(|| (*t1, delta / dt))
                    })
                    .collect()
            })
            .collect()
    }

    /// Sessions per server between the first scrape at or after `from` and the last at or
    /// before `to` (seconds since the start); `None` without two such scrapes.
    pub fn sessions_between(&self, from: f64, to: f64) -> Option<Vec<(String, f64)>> {
        let first = self.samples.iter().position(|(t, _)| *t >= from)?;
        let last = self.samples.iter().rposition(|(t, _)| *t <= to)?;
        if last <= first {
            return None;
        }
        Some(
            self.servers
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    // Summed step by step, so a restarted counter is counted from zero.
                    let sum = self.samples[first..=last]
                        .windows(2)
                        .map(|w| {
                            let (a, b) = (w[0].1.get(i), w[1].1.get(i));
                            match (a, b) {
                                (Some(a), Some(b)) if b >= a => b - a,
                                (_, Some(b)) => *b,
                                _ => 0.0,
                            }
                        })
                        .sum();
                    (name.clone(), sum)
                })
                .collect(),
        )
    }

    /// Sessions per server over the run (last minus first scrape).
    pub fn totals(&self) -> Vec<(String, f64)> {
        let first = self
            .samples
            .first()
            .map(|(_, r)| r.as_slice())
            .unwrap_or_default();
        let last = self
            .samples
            .last()
            .map(|(_, r)| r.as_slice())
            .unwrap_or_default();
        self.servers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let end = last.get(i).copied().unwrap_or(0.0);
                let begin = first.get(i).copied().unwrap_or(0.0);
                (name.clone(), (end - begin).max(0.0))
            })
            .collect()
    }
}

/// Scrapes `path` on `target` every second until `until`.
pub async fn scrape(target: Target, path: String, start: Instant, until: Instant) -> ServerTraffic {
    let mut traffic = ServerTraffic::default();
    let mut client = Client::new(target, Duration::from_secs(2));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = Instant::now();
        match client.send("GET", &path, Bytes::new()).await {
            Ok(response) if response.status == 200 => {
                let text = String::from_utf8_lossy(&response.body);
                traffic.add(now.duration_since(start).as_secs_f64(), &text);
            }
            _ => traffic.failed_scrapes += 1,
        }
        if now >= until {
            return traffic;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = r#"# HELP haproxy_server_sessions_total Total number of sessions
# TYPE haproxy_server_sessions_total counter
haproxy_server_sessions_total{proxy="api_pool",server="backend-api-1"} 10
haproxy_server_sessions_total{proxy="api_pool",server="odd \"name\""} 4
haproxy_server_sessions_total_other{proxy="x",server="y"} 1
haproxy_server_sessions_total{proxy="broken} 3
haproxy_backend_sessions_total{proxy="api_pool"} 14
"#;

    #[test]
    fn reads_server_sessions_only() {
        assert_eq!(
            server_sessions(EXPOSITION),
            [
                ("api_pool".into(), "backend-api-1".into(), 10.0),
                ("api_pool".into(), "odd \"name\"".into(), 4.0),
            ]
        );
    }

    #[test]
    fn rates_follow_counters_and_survive_restarts() {
        let mut traffic = ServerTraffic::default();
        let line = |a: u32, b: u32| {
            format!(
                "{SERIES}{{proxy=\"p\",server=\"a\"}} {a}\n{SERIES}{{proxy=\"p\",server=\"b\"}} {b}\n"
            )
        };
        traffic.add(1.0, &line(0, 0));
        traffic.add(2.0, &line(50, 50));
        traffic.add(4.0, &line(50, 250));
        traffic.add(5.0, &line(20, 300));
        assert_eq!(traffic.servers, ["p/a", "p/b"]);
        let rates = traffic.rates();
        assert_eq!(rates[0], [(2.0, 50.0), (4.0, 0.0), (5.0, 20.0)]);
        assert_eq!(rates[1], [(2.0, 50.0), (4.0, 100.0), (5.0, 50.0)]);
        assert_eq!(
            traffic.totals(),
            [("p/a".into(), 20.0), ("p/b".into(), 300.0)]
        );
        assert_eq!(
            traffic.sessions_between(1.5, 5.0).unwrap(),
            [("p/a".into(), 20.0), ("p/b".into(), 250.0)]
        );
        assert!(traffic.sessions_between(4.5, 4.9).is_none());
    }
}
