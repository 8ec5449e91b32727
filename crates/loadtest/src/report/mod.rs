//! The HTML report: one self-contained file (styles inline, charts as inline SVG, no script,
//! nothing fetched), rendered with askama from the runs. With several runs (veza-lb and
//! HAProxy on the same scenario) every chart appears once per run, side by side, on a shared
//! scale.

pub mod chart;

use std::collections::BTreeSet;

use askama::Template;

use crate::record::{Bucket, ErrorKind};
use crate::run::Run;
use crate::summary::Summary;
use chart::{LineChart, Marker, Series};

/// One row of charts: the same chart for each run.
pub struct ChartRow {
    /// What the row shows.
    pub title: String,
    /// One SVG per run, in run order.
    pub svgs: Vec<String>,
    /// Said under the row (what the data is, or why it is missing).
    pub note: String,
}

/// The report page.
#[derive(Template)]
#[template(path = "report.html")]
pub struct Report {
    /// The scenario's name.
    pub scenario: String,
    /// Its description.
    pub description: String,
    /// One summary per run.
    pub runs: Vec<Summary>,
    /// The chart rows.
    pub rows: Vec<ChartRow>,
    /// The first run passed.
    pub passed: bool,
}

impl Report {
    /// The report of `runs` (the system under test first), with their summaries.
    pub fn new(runs: &[Run], summaries: Vec<Summary>) -> Report {
        let first = runs.first();
        Report {
            scenario: first.map(|r| r.scenario.name.clone()).unwrap_or_default(),
            description: first
                .map(|r| r.scenario.description.clone())
                .unwrap_or_default(),
            passed: summaries.first().is_some_and(|s| s.passed),
            runs: summaries,
            rows: chart_rows(runs),
        }
    }

    /// The page, or askama's error.
    pub fn html(&self) -> Result<String, askama::Error> {
        self.render()
    }
}

/// The x of a one-second bucket: its end.
fn x_of(second: usize) -> f64 {
    second as f64 + 1.0
}

fn markers(run: &Run) -> Vec<Marker> {
    run.faults
        .iter()
        .map(|e| Marker {
            x: e.at,
            label: e.fault.label(),
        })
        .collect()
}

/// A run and its per-second buckets of all flows together, merged once for every chart.
struct Charted<'a> {
    run: &'a Run,
    all: Vec<Bucket>,
}

impl<'a> Charted<'a> {
    fn new(run: &'a Run) -> Self {
        Self {
            run,
            all: run.recording.all_seconds(),
        }
    }

    /// A chart of this run, titled `what: label`.
    fn chart(&self, what: &str, unit: &str, series: Vec<Series>) -> LineChart {
        LineChart {
            title: format!("{what}: {}", self.run.label),
            unit: unit.to_owned(),
            x_max: self.run.scenario.duration.as_secs_f64(),
            y_max: 0.0,
            series,
            markers: markers(self.run),
        }
    }

    /// One series per flow: `name(flow)`, `value(bucket)` each second.
    fn per_flow(
        &self,
        name: impl Fn(&str) -> String,
        value: impl Fn(&Bucket) -> Option<f64>,
    ) -> Vec<Series> {
        self.run
            .scenario
            .flows
            .iter()
            .zip(&self.run.recording.seconds)
            .map(|(flow, buckets)| Series::new(name(&flow.name), per_second(buckets, &value)))
            .collect()
    }
}

fn throughput(c: &Charted<'_>) -> LineChart {
    let requests = |b: &Bucket| Some(b.requests as f64);
    let mut series = c.per_flow(str::to_owned, requests);
    series.push(Series::new("all", per_second(&c.all, requests)));
    c.chart("Requests per second", "req/s", series)
}

fn latency(c: &Charted<'_>) -> LineChart {
    let series = [50.0, 95.0, 99.0]
        .into_iter()
        .map(|p| {
            Series::new(
                format!("p{p} all flows"),
                per_second(&c.all, |b| b.percentile_ms(p)),
            )
        })
        .collect();
    c.chart("Latency percentiles", "ms", series)
}

fn latency_by_flow(c: &Charted<'_>) -> LineChart {
    let series = c.per_flow(|name| format!("p95 {name}"), |b| b.percentile_ms(95.0));
    c.chart("p95 latency by flow", "ms", series)
}

fn errors(c: &Charted<'_>) -> LineChart {
    let kinds: BTreeSet<ErrorKind> = c
        .all
        .iter()
        .flat_map(|b| b.errors.keys().copied())
        .collect();
    let mut series: Vec<Series> = kinds
        .into_iter()
        .map(|kind| Series {
            // One colour per kind, the same in every run's chart.
            color: ErrorKind::ALL.iter().position(|k| *k == kind),
            ..Series::new(
                kind.as_str(),
                per_second(&c.all, |b| {
                    Some(b.errors.get(&kind).copied().unwrap_or(0) as f64)
                }),
            )
        })
        .collect();
    if series.is_empty() {
        series.push(Series::new("no errors", per_second(&c.all, |_| Some(0.0))));
    }
    c.chart("Errors per second by kind", "errors/s", series)
}

fn servers(c: &Charted<'_>) -> Option<LineChart> {
    let traffic = c.run.servers.as_ref().filter(|t| t.samples.len() > 1)?;
    let series = traffic
        .servers
        .iter()
        .zip(traffic.rates())
        .map(|(name, points)| Series::new(name.clone(), points))
        .collect();
    Some(c.chart("Traffic per backend server", "sessions/s", series))
}

fn busy(c: &Charted<'_>) -> LineChart {
    let points = c
        .run
        .recording
        .active_vus
        .iter()
        .enumerate()
        .map(|(i, n)| (x_of(i), *n as f64))
        .collect();
    c.chart(
        "Busy virtual users",
        "users",
        vec![Series::new("busy virtual users", points)],
    )
}

fn per_second(buckets: &[Bucket], value: impl Fn(&Bucket) -> Option<f64>) -> Vec<(f64, f64)> {
    buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| value(b).map(|v| (x_of(i), v)))
        .collect()
}

/// A row of one chart per run, all on the highest run's scale.
fn row(title: &str, note: &str, mut charts: Vec<LineChart>) -> ChartRow {
    let top = charts.iter().map(LineChart::data_y_max).fold(0.0, f64::max);
    ChartRow {
        title: title.to_owned(),
        svgs: charts
            .iter_mut()
            .map(|c| {
                c.y_max = top;
                c.svg()
            })
            .collect(),
        note: note.to_owned(),
    }
}

fn chart_rows(runs: &[Run]) -> Vec<ChartRow> {
    let charted: Vec<Charted<'_>> = runs.iter().map(Charted::new).collect();
    let each = |f: fn(&Charted<'_>) -> LineChart| charted.iter().map(f).collect::<Vec<_>>();
    let mut rows = vec![
        row(
            "Requests per second",
            "Requests (WebSocket: handshakes and echoes) ended per second, per flow.",
            each(throughput),
        ),
        row(
            "Latency",
            "Percentiles of every request ended in each second; failed requests included.",
            each(latency),
        ),
        row("p95 latency by flow", "", each(latency_by_flow)),
        row(
            "Errors",
            "connect: refused; timeout: no answer in time; io: connection broken; ws-closed: a WebSocket ended by the other side.",
            each(errors),
        ),
    ];
    let traffic: Vec<LineChart> = charted.iter().filter_map(servers).collect();
    if traffic.len() == runs.len() {
        rows.push(row(
            "Traffic per backend server",
            "Sessions per second each server received, from the load balancer's haproxy_server_sessions_total.",
            traffic,
        ));
    } else {
        rows.push(ChartRow {
            title: "Traffic per backend server".into(),
            svgs: Vec::new(),
            note: "Not measured: no metrics endpoint was scraped (give one with --metrics).".into(),
        });
    }
    rows.push(row("Busy virtual users", "", each(busy)));
    rows
}
