//! `GET /metrics`: the Prometheus text format, named and labelled like HAProxy's built-in
//! exporter so its dashboards and alerts work unchanged.
//!
//! Series HAProxy also exports keep its names (`haproxy_process_*`, `haproxy_frontend_*`,
//! `haproxy_backend_*`, `haproxy_server_*`, labels `proxy`, `server`, `state`, `code`);
//! series of our own use the `veza_lb_` prefix: the response-latency histograms HAProxy does
//! not have (it exports averages only).
//!
//! [`render`] is pure: a snapshot in, text out.

use std::fmt::Write as _;

use lb_core::{AdminState, CheckStatus};

use super::csv::{check_code, server_weight, usable};
use super::info::ProcessInfo;
use super::{FrontendStats, PoolStats, ServerStats, StatsSnapshot};
use crate::counters::{Counters, Histogram, LATENCY_BUCKETS_MS, Total};

/// HAProxy's `state` label values of `haproxy_server_status`.
const SERVER_STATES: [&str; 5] = ["DOWN", "UP", "MAINT", "DRAIN", "NOLB"];

/// HAProxy's `state` label values of `haproxy_server_check_status`.
const CHECK_STATES: [&str; 16] = [
    "HANA", "SOCKERR", "L4OK", "L4TOUT", "L4CON", "L6OK", "L6TOUT", "L6RSP", "L7TOUT", "L7RSP",
    "L7OK", "L7OKC", "L7STS", "PROCERR", "PROCTOUT", "PROCOK",
];

const CODES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// A family read from a counter set: name suffix, type, help, value.
type CounterSeries = (&'static str, Kind, &'static str, fn(&Counters) -> u64);

/// Series every frontend, backend and server exports alike.
const SESSION_SERIES: [CounterSeries; 5] = [
    (
        "current_sessions",
        Kind::Gauge,
        "Number of current sessions on the frontend, backend or server",
        |c| Counters::get(&c.cur_sessions),
    ),
    (
        "max_sessions",
        Kind::Gauge,
        "Highest value of current sessions encountered since process started",
        |c| Counters::get(&c.max_sessions),
    ),
    (
        "sessions_total",
        Kind::Counter,
        "Total number of sessions since process started",
        |c| c.total(Total::Sessions),
    ),
    (
        "bytes_in_total",
        Kind::Counter,
        "Total number of request bytes since process started",
        |c| c.total(Total::BytesIn),
    ),
    (
        "bytes_out_total",
        Kind::Counter,
        "Total number of response bytes since process started",
        |c| c.total(Total::BytesOut),
    ),
];
/// A family of durations read from a counter set: name suffix, help, seconds.
type TimeSeries = (&'static str, &'static str, fn(&Counters) -> f64);

#[derive(Clone, Copy)]
enum Kind {
    Gauge,
    Counter,
}

/// The text being written.
struct Exposition(String);

impl Exposition {
    fn family<I>(&mut self, name: &str, kind: Kind, help: &str, samples: I)
    where
        I: IntoIterator<Item = (String, f64)>,
    {
        let kind = match kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }

    fn histogram<I>(&mut self, name: &str, help: &str, series: I)
    where
        I: IntoIterator<Item = (String, Histogram)>,
    {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (labels, h) in series {
            // `labels` is `{a="b"}`: bucket labels go inside the braces.
            let inner = labels.trim_start_matches('{').trim_end_matches('}');
            let sep = if inner.is_empty() { "" } else { "," };
            let counts = h.counts();
            let mut cumulative = 0;
            for (i, n) in counts.iter().enumerate() {
                cumulative += n;
                let le = LATENCY_BUCKETS_MS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |ms| (*ms as f64 / 1000.0).to_string());
                let _ = writeln!(
                    self.0,
                    "{name}_bucket{{{inner}{sep}le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(self.0, "{name}_sum{labels} {}", h.sum().as_secs_f64());
            let _ = writeln!(self.0, "{name}_count{labels} {cumulative}");
        }
    }
}

/// `{k="v",...}` with Prometheus escaping.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(k);
        out.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

fn n(v: u64) -> f64 {
    v as f64
}

fn secs(v: std::time::Duration) -> f64 {
    v.as_secs_f64()
}

/// `lastsess` in seconds, -1 before the first session.
fn last_session(c: &Counters, now_unix: u64) -> f64 {
    match Counters::get(&c.last_session_unix) {
        0 => -1.0,
        at => n(now_unix.saturating_sub(at)),
    }
}

/// The server's `state` label: its status string without the `2/3` progress, `no check`
/// being UP.
fn server_state(s: &ServerStats) -> &'static str {
    match s.admin {
        AdminState::Maint => "MAINT",
        AdminState::Drain if s.up => "DRAIN",
        _ if s.up => "UP",
        _ => "DOWN",
    }
}

/// Renders every metric. `now_unix` (seconds since the Unix epoch) dates
/// `*_last_session_seconds`.
#[must_use]
pub fn render(
    frontends: &[FrontendStats],
    snapshot: &StatsSnapshot,
    process: &ProcessInfo,
    now_unix: u64,
) -> String {
    let mut out = Exposition(String::with_capacity(16 * 1024));
    process_metrics(&mut out, process);
    frontend_metrics(&mut out, frontends);
    let pools = &snapshot.pools;
    let servers: Vec<(&PoolStats, &ServerStats)> = pools
        .iter()
        .flat_map(|p| p.servers.iter().map(move |s| (p, s)))
        .collect();
    let bl = |p: &PoolStats| labels(&[("proxy", &p.name)]);
    let sl = |p: &PoolStats, s: &ServerStats| labels(&[("proxy", &p.name), ("server", &s.name)]);

    // What backends and servers both export, from their counters.
    let upstream: [CounterSeries; 10] = [
        (
            "max_queue",
            Kind::Gauge,
            "Highest value of queued connections encountered since process started",
            |c| Counters::get(&c.max_queued),
        ),
        (
            "connection_errors_total",
            Kind::Counter,
            "Total number of failed connections to server since the worker process started",
            |c| c.total(Total::ConnectErrors),
        ),
        (
            "response_errors_total",
            Kind::Counter,
            "Total number of invalid responses since the worker process started",
            |c| c.total(Total::ResponseErrors),
        ),
        (
            "retry_warnings_total",
            Kind::Counter,
            "Total number of server connection retries since the worker process started",
            |c| c.total(Total::Retries),
        ),
        (
            "redispatch_warnings_total",
            Kind::Counter,
            "Total number of server redispatches due to connection failures since the worker process started",
            |c| c.total(Total::Redispatches),
        ),
        (
            "loadbalanced_total",
            Kind::Counter,
            "Total number of requests routed by load balancing since the worker process started (ignores queue pop and stickiness)",
            |c| c.total(Total::Selected),
        ),
        (
            "max_session_rate",
            Kind::Gauge,
            "Highest value of sessions per second observed since the worker process started",
            |c| c.session_rate.max(),
        ),
        (
            "http_requests_total",
            Kind::Counter,
            "Total number of HTTP requests processed by this object since the worker process started",
            |c| c.total(Total::Requests),
        ),
        (
            "client_aborts_total",
            Kind::Counter,
            "Total number of requests or connections aborted by the client since the worker process started",
            |c| c.total(Total::ClientAborts),
        ),
        (
            "server_aborts_total",
            Kind::Counter,
            "Total number of requests or connections aborted by the server since the worker process started",
            |c| c.total(Total::ServerAborts),
        ),
    ];
    let times: [TimeSeries; 8] = [
        (
            "queue_time_average_seconds",
            "Avg. queue time for last 1024 successful connections.",
            |c| secs(c.queue_time.average()),
        ),
        (
            "max_queue_time_seconds",
            "Maximum observed time spent in the queue",
            |c| secs(c.queue_time.max()),
        ),
        (
            "connect_time_average_seconds",
            "Avg. connect time for last 1024 successful connections.",
            |c| secs(c.connect_time.average()),
        ),
        (
            "response_time_average_seconds",
            "Avg. response time for last 1024 successful connections.",
            |c| secs(c.response_time.average()),
        ),
        (
            "total_time_average_seconds",
            "Avg. total time for last 1024 successful connections.",
            |c| secs(c.total_time.average()),
        ),
        (
            "max_connect_time_seconds",
            "Maximum observed time spent waiting for a connection to complete",
            |c| secs(c.connect_time.max()),
        ),
        (
            "max_response_time_seconds",
            "Maximum observed time spent waiting for a server response",
            |c| secs(c.response_time.max()),
        ),
        (
            "max_total_time_seconds",
            "Maximum observed total request+response time (request+queue+connect+response+processing)",
            |c| secs(c.total_time.max()),
        ),
    ];

    for &(suffix, kind, help, get) in SESSION_SERIES.iter().chain(&upstream) {
        out.family(
            &format!("haproxy_backend_{suffix}"),
            kind,
            help,
            pools.iter().map(|p| (bl(p), n(get(&p.counters)))),
        );
    }
    for (suffix, help, get) in times {
        out.family(
            &format!("haproxy_backend_{suffix}"),
            Kind::Gauge,
            help,
            pools.iter().map(|p| (bl(p), get(&p.counters))),
        );
    }
    out.family(
        "haproxy_backend_last_session_seconds",
        Kind::Gauge,
        "How long ago some traffic was seen on this object on this worker process, in seconds",
        pools
            .iter()
            .map(|p| (bl(p), last_session(&p.counters, now_unix))),
    );
    out.family(
        "haproxy_backend_current_queue",
        Kind::Gauge,
        "Number of current queued connections",
        pools.iter().map(|p| (bl(p), f64::from(p.queued))),
    );
    out.family(
        "haproxy_backend_status",
        Kind::Gauge,
        "Current status of the service, per state label value.",
        pools.iter().flat_map(|p| {
            ["DOWN", "UP"].into_iter().map(move |state| {
                let on = (state == "UP") == p.up;
                (
                    labels(&[("proxy", &p.name), ("state", state)]),
                    n(u64::from(on)),
                )
            })
        }),
    );
    out.family(
        "haproxy_backend_weight",
        Kind::Gauge,
        "Server's effective weight, or sum of active servers' effective weights for a backend",
        pools.iter().map(|p| {
            (
                bl(p),
                f64::from(
                    p.servers
                        .iter()
                        .filter(|s| usable(s))
                        .map(server_weight)
                        .sum::<u32>(),
                ),
            )
        }),
    );
    out.family(
        "haproxy_backend_uweight",
        Kind::Gauge,
        "Server's user weight, or sum of active servers' user weights for a backend",
        pools.iter().map(|p| {
            (
                bl(p),
                f64::from(
                    p.servers
                        .iter()
                        .filter(|s| usable(s))
                        .map(|s| u32::from(s.weight))
                        .sum::<u32>(),
                ),
            )
        }),
    );
    out.family(
        "haproxy_backend_active_servers",
        Kind::Gauge,
        "Total number of active UP servers with a non-zero weight",
        pools
            .iter()
            .map(|p| (bl(p), p.servers.iter().filter(|s| usable(s)).count() as f64)),
    );
    out.family(
        "haproxy_backend_backup_servers",
        Kind::Gauge,
        "Total number of backup UP servers with a non-zero weight",
        pools.iter().map(|p| (bl(p), 0.0)),
    );
    out.family("haproxy_backend_check_up_down_total", Kind::Counter, "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started", pools.iter().map(|p| (bl(p), n(p.chkdown))));
    out.family(
        "haproxy_backend_check_last_change_seconds",
        Kind::Gauge,
        "How long ago the last server state changed, in seconds",
        pools.iter().map(|p| (bl(p), n(p.last_change.as_secs()))),
    );
    out.family(
        "haproxy_backend_downtime_seconds_total",
        Kind::Counter,
        "Total time spent in DOWN state, for server or backend",
        pools.iter().map(|p| (bl(p), n(p.downtime.as_secs()))),
    );
    out.family("haproxy_backend_http_responses_total", Kind::Counter, "Total number of HTTP responses with status 100-199 returned by this object since the worker process started", CODES.iter().enumerate().flat_map(|(i, code)| pools.iter().map(move |p| (labels(&[("proxy", &p.name), ("code", code)]), n(p.counters.total(Total::RESPONSES[i]))))));

    for &(suffix, kind, help, get) in SESSION_SERIES.iter().chain(&upstream) {
        out.family(
            &format!("haproxy_server_{suffix}"),
            kind,
            help,
            servers.iter().map(|(p, s)| (sl(p, s), n(get(&s.counters)))),
        );
    }
    for (suffix, help, get) in times {
        out.family(
            &format!("haproxy_server_{suffix}"),
            Kind::Gauge,
            help,
            servers.iter().map(|(p, s)| (sl(p, s), get(&s.counters))),
        );
    }
    out.family(
        "haproxy_server_last_session_seconds",
        Kind::Gauge,
        "How long ago some traffic was seen on this object on this worker process, in seconds",
        servers
            .iter()
            .map(|(p, s)| (sl(p, s), last_session(&s.counters, now_unix))),
    );
    out.family(
        "haproxy_server_status",
        Kind::Gauge,
        "Current status of the service, per state label value.",
        servers.iter().flat_map(|(p, s)| {
            let current = server_state(s);
            SERVER_STATES.into_iter().map(move |state| {
                (
                    labels(&[("proxy", &p.name), ("server", &s.name), ("state", state)]),
                    n(u64::from(state == current)),
                )
            })
        }),
    );
    out.family(
        "haproxy_server_weight",
        Kind::Gauge,
        "Server's effective weight, or sum of active servers' effective weights for a backend",
        servers
            .iter()
            .map(|(p, s)| (sl(p, s), f64::from(server_weight(s)))),
    );
    out.family(
        "haproxy_server_uweight",
        Kind::Gauge,
        "Server's user weight, or sum of active servers' user weights for a backend",
        servers.iter().map(|(p, s)| (sl(p, s), f64::from(s.weight))),
    );
    out.family(
        "haproxy_server_current_queue",
        Kind::Gauge,
        "Number of current queued connections",
        servers.iter().map(|(p, s)| (sl(p, s), f64::from(s.queued))),
    );
    out.family(
        "haproxy_server_limit_sessions",
        Kind::Gauge,
        "Configured session limit (maxconn)",
        servers
            .iter()
            .filter_map(|(p, s)| Some((sl(p, s), f64::from(s.maxconn?)))),
    );
    out.family("haproxy_server_current_throttle", Kind::Gauge, "Throttling ratio applied to a server's maxconn and weight during the slowstart period (0 to 100%)", servers.iter().filter_map(|(p, s)| Some((sl(p, s), f64::from(s.throttle?)))));
    out.family(
        "haproxy_server_check_last_change_seconds",
        Kind::Gauge,
        "How long ago the last server state changed, in seconds",
        servers
            .iter()
            .map(|(p, s)| (sl(p, s), n(s.last_change.as_secs()))),
    );
    let checked: Vec<_> = servers.iter().filter(|(_, s)| s.checked).collect();
    out.family("haproxy_server_check_failures_total", Kind::Counter, "Total number of failed individual health checks per server/backend, since the worker process started", checked.iter().map(|(p, s)| (sl(p, s), n(s.chkfail))));
    out.family("haproxy_server_check_up_down_total", Kind::Counter, "Total number of failed checks causing UP to DOWN server transitions, per server/backend, since the worker process started", checked.iter().map(|(p, s)| (sl(p, s), n(s.chkdown))));
    out.family(
        "haproxy_server_downtime_seconds_total",
        Kind::Counter,
        "Total time spent in DOWN state, for server or backend",
        checked
            .iter()
            .map(|(p, s)| (sl(p, s), n(s.downtime.as_secs()))),
    );
    out.family(
        "haproxy_server_check_status",
        Kind::Gauge,
        "Status of last health check, per state label value.",
        checked.iter().flat_map(|(p, s)| {
            let current = s.last_check.map(|c| match c.status {
                CheckStatus::L7Ok => "L7OK",
                other => other.code(),
            });
            CHECK_STATES.into_iter().map(move |state| {
                (
                    labels(&[("proxy", &p.name), ("server", &s.name), ("state", state)]),
                    n(u64::from(current == Some(state))),
                )
            })
        }),
    );
    out.family(
        "haproxy_server_check_code",
        Kind::Gauge,
        "layer5-7 code, if available of the last health check.",
        checked.iter().map(|(p, s)| {
            (
                sl(p, s),
                f64::from(s.last_check.as_ref().and_then(check_code).unwrap_or(0)),
            )
        }),
    );
    out.family(
        "haproxy_server_check_duration_seconds",
        Kind::Gauge,
        "Total duration of the latest server health check, in seconds.",
        checked
            .iter()
            .filter_map(|(p, s)| Some((sl(p, s), s.last_check?.duration.as_secs_f64()))),
    );
    out.family("haproxy_server_http_responses_total", Kind::Counter, "Total number of HTTP responses with status 100-199 returned by this object since the worker process started", CODES.iter().enumerate().flat_map(|(i, code)| servers.iter().map(move |(p, s)| (labels(&[("proxy", &p.name), ("server", &s.name), ("code", code)]), n(s.counters.total(Total::RESPONSES[i]))))));

    out.histogram(
        "veza_lb_backend_response_latency_seconds",
        "Time from receiving a request to receiving the response head from a server, per pool.",
        pools.iter().map(|p| (bl(p), p.counters.response_latency())),
    );
    out.histogram(
        "veza_lb_server_response_latency_seconds",
        "Time from receiving a request to receiving the response head from a server, per server.",
        servers
            .iter()
            .map(|(p, s)| (sl(p, s), s.counters.response_latency())),
    );
    out.0
}

fn process_metrics(out: &mut Exposition, info: &ProcessInfo) {
    let none = String::new;
    let gauges: [(&str, &str, f64); 12] = [
        (
            "nbthread",
            "Number of started threads (global.nbthread)",
            info.threads as f64,
        ),
        (
            "nbproc",
            "Number of started worker processes (historical, always 1)",
            1.0,
        ),
        (
            "relative_process_id",
            "Relative worker process number (1)",
            1.0,
        ),
        (
            "uptime_seconds",
            "How long ago this worker process was started (seconds)",
            n(info.uptime.as_secs()),
        ),
        (
            "start_time_seconds",
            "Start time in seconds",
            n(info.start_unix),
        ),
        (
            "max_connections",
            "Maximum number of concurrent connections (maxconn)",
            n(info.maxconn),
        ),
        (
            "max_fds",
            "Maximum number of open file descriptors (ulimit -n)",
            n(info.open_files_limit),
        ),
        (
            "current_connections",
            "Current number of connections on this worker process",
            n(info.current_connections),
        ),
        (
            "current_connection_rate",
            "Number of front connections created on this worker process over the last second",
            n(info.connection_rate),
        ),
        (
            "max_connection_rate",
            "Highest number of connections per second reached by this worker process since started",
            n(info.max_connection_rate),
        ),
        (
            "idle_time_percent",
            "Percentage of last second spent waiting in the poller (0..100)",
            f64::from(info.idle_pct),
        ),
        (
            "stopping",
            "Non zero means stopping in progress",
            n(u64::from(info.stopping)),
        ),
    ];
    for (suffix, help, value) in gauges {
        out.family(
            &format!("haproxy_process_{suffix}"),
            Kind::Gauge,
            help,
            [(none(), value)],
        );
    }
    let counters: [(&str, &str, u64); 3] = [
        (
            "connections_total",
            "Total number of connections on this worker process since started",
            info.total_connections,
        ),
        (
            "requests_total",
            "Total number of requests on this worker process since started",
            info.total_requests,
        ),
        (
            "bytes_out_total",
            "Total number of bytes emitted by current worker process since started",
            info.total_bytes_out,
        ),
    ];
    for (suffix, help, value) in counters {
        out.family(
            &format!("haproxy_process_{suffix}"),
            Kind::Counter,
            help,
            [(none(), n(value))],
        );
    }
    out.family(
        "haproxy_process_build_info",
        Kind::Gauge,
        "Build info",
        [(labels(&[("version", &info.version)]), 1.0)],
    );
}

fn frontend_metrics(out: &mut Exposition, frontends: &[FrontendStats]) {
    let fl = |f: &FrontendStats| labels(&[("proxy", &f.name)]);
    let series: [CounterSeries; 6] = [
        (
            "requests_denied_total",
            Kind::Counter,
            "Total number of denied requests since process started",
            |c| c.total(Total::DeniedRequests),
        ),
        (
            "request_errors_total",
            Kind::Counter,
            "Total number of invalid requests since process started",
            |c| c.total(Total::RequestErrors),
        ),
        (
            "max_session_rate",
            Kind::Gauge,
            "Highest value of sessions per second observed since the worker process started",
            |c| c.session_rate.max(),
        ),
        (
            "http_requests_rate_max",
            Kind::Gauge,
            "Highest value of http requests observed since the worker process started",
            |c| c.request_rate.max(),
        ),
        (
            "http_requests_total",
            Kind::Counter,
            "Total number of HTTP requests processed by this object since the worker process started",
            |c| c.total(Total::Requests),
        ),
        (
            "connections_total",
            Kind::Counter,
            "Total number of new connections accepted on this frontend since the worker process started",
            |c| c.total(Total::Sessions),
        ),
    ];
    for &(suffix, kind, help, get) in SESSION_SERIES.iter().chain(&series) {
        out.family(
            &format!("haproxy_frontend_{suffix}"),
            kind,
            help,
            frontends.iter().map(|f| (fl(f), n(get(&f.counters)))),
        );
    }
    out.family(
        "haproxy_frontend_status",
        Kind::Gauge,
        "Current status of the service, per state label value.",
        frontends.iter().flat_map(|f| {
            [("DOWN", 0.0), ("UP", 1.0)]
                .into_iter()
                .map(|(state, v)| (labels(&[("proxy", &f.name), ("state", state)]), v))
        }),
    );
    out.family("haproxy_frontend_http_responses_total", Kind::Counter, "Total number of HTTP responses with status 100-199 returned by this object since the worker process started", CODES.iter().enumerate().flat_map(|(i, code)| frontends.iter().map(move |f| (labels(&[("proxy", &f.name), ("code", code)]), n(f.counters.total(Total::RESPONSES[i]))))));
}

#[cfg(test)]
mod tests;
