//! One access-log line per request, in HAProxy's HTTP log layout.
//!
//! ```text
//! 127.0.0.1:51234 veza api_pool/backend-api-1 0/0/1/2/3 200 118 - - --NI 1/1/0/0/0 0/0 "GET /api/v1/health HTTP/1.1"
//! ```
//!
//! Fields: client address, frontend, pool/server (`<NOSRV>` when none was picked), timers
//! `Tq/Tw/Tc/Tr/Tt` in milliseconds (`-1` when a phase never happened), status, bytes sent to
//! the client, two unused captures, the termination state (2 characters: who ended the
//! session and in which phase, `--` when it ended normally) followed by the sticky cookie
//! flags (what the request carried: `N`one, `I`nvalid, `D`own, `V`alid; whether the response
//! set one: `I`nserted, `-`), connection counts `actconn/feconn/beconn/srv_conn/retries`,
//! queues `srv_queue/backend_queue` (requests still waiting in the server's and the pool's
//! queue when this one left its queue, for a server at its `maxconn`), and the request line.
//! `Tw` is the time spent in that queue. Lines go to the
//! `access` tracing target at INFO.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::counters::Counters;
use crate::data::termination::Termination;

/// One request's log record, completed as the request progresses and written on drop of its
/// response body (or right away when there is no body to stream).
#[derive(Debug)]
pub(crate) struct AccessLog {
    pub(crate) client: SocketAddr,
    pub(crate) frontend: Arc<str>,
    pub(crate) pool: Arc<str>,
    pub(crate) server: Option<Arc<str>>,
    pub(crate) started: Instant,
    pub(crate) connect_ms: Option<u64>,
    pub(crate) response_ms: Option<u64>,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) termination: Termination,
    pub(crate) cookie: [u8; 2],
    pub(crate) retries: u32,
    pub(crate) request: RequestLine,
    pub(crate) completed: bool,
    /// Counter sets whose `ttime` average this request feeds.
    pub(crate) timed: [Option<Arc<Counters>>; 2],
    pub(crate) conns: [u64; 4],
    /// `Tw`: milliseconds spent waiting for a server's `maxconn`.
    pub(crate) queue_ms: u64,
    /// `srv_queue/backend_queue`.
    pub(crate) queues: [u32; 2],
    /// Counts an HTTP/2 request as in flight for a graceful stop until its line is written:
    /// its stream runs in a task of hyper's, which may outlive the connection's task a stop
    /// waits for. An HTTP/1 request, its body and its tunnel live in the connection's task.
    pub(crate) in_flight: Option<TaskTrackerToken>,
}

/// The request line, kept as cheap clones of the parsed parts and formatted only when a
/// log line is actually written.
#[derive(Debug, Clone)]
pub(crate) enum RequestLine {
    Parsed {
        method: http::Method,
        target: Option<http::uri::PathAndQuery>,
        version: http::Version,
    },
    /// A request head that could not be parsed: HAProxy's `<BADREQ>`.
    Bad,
}

impl RequestLine {
    pub(crate) fn of(req: &http::request::Parts) -> Self {
        Self::Parsed {
            method: req.method.clone(),
            target: req.uri.path_and_query().cloned(),
            version: req.version,
        }
    }
}

impl RequestLine {
    /// The same line, owning its bytes. Parsed fields are slices of the connection's read
    /// buffer, so a record that lives as long as a tunnel would otherwise keep that whole
    /// buffer (8 KiB and more) alive for hours.
    pub(crate) fn detached(&self) -> Self {
        let Self::Parsed {
            method,
            target,
            version,
        } = self
        else {
            return Self::Bad;
        };
        let target = target.as_ref().and_then(|t| {
            http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::copy_from_slice(
                t.as_str().as_bytes(),
            ))
            .ok()
        });
        Self::Parsed {
            method: method.clone(),
            target,
            version: *version,
        }
    }
}

impl std::fmt::Display for RequestLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Parsed {
                method,
                target,
                version,
            } => {
                let target = target.as_ref().map_or("/", |t| t.as_str());
                write!(f, "{method} {target} {version:?}")
            }
            Self::Bad => f.write_str("<BADREQ>"),
        }
    }
}

impl AccessLog {
    /// Writes the line and records the total time.
    pub(crate) fn finish(&mut self) {
        let total = self.started.elapsed();
        for c in self.timed.iter().flatten() {
            c.total_time.add(total);
        }
        if tracing::enabled!(target: "access", tracing::Level::INFO) {
            tracing::info!(target: "access", "{}", self.line(total.as_millis() as u64));
        }
        self.in_flight = None;
    }

    pub(crate) fn line(&self, total_ms: u64) -> String {
        let ms = |v: Option<u64>| v.map_or_else(|| "-1".to_owned(), |v| v.to_string());
        let [actconn, feconn, beconn, srvconn] = self.conns;
        let [srv_queue, backend_queue] = self.queues;
        format!(
            "{} {} {}/{} 0/{}/{}/{}/{} {} {} - - {}{} {actconn}/{feconn}/{beconn}/{srvconn}/{} \
             {srv_queue}/{backend_queue} \"{}\"",
            self.client,
            self.frontend,
            self.pool,
            self.server.as_deref().unwrap_or("<NOSRV>"),
            self.queue_ms,
            ms(self.connect_ms),
            ms(self.response_ms),
            total_ms,
            self.status,
            self.bytes,
            self.termination,
            String::from_utf8_lossy(&self.cookie),
            self.retries,
            self.request,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn line_layout() {
        let log = AccessLog {
            client: "127.0.0.1:5000".parse().expect("addr"),
            frontend: "veza".into(),
            pool: "api_pool".into(),
            server: Some("backend-api-1".into()),
            started: Instant::now(),
            connect_ms: Some(1),
            response_ms: Some(2),
            status: 200,
            bytes: 118,
            termination: Termination::NORMAL,
            cookie: *b"NI",
            retries: 1,
            request: RequestLine::of(
                &http::Request::get("/x")
                    .body(())
                    .expect("request")
                    .into_parts()
                    .0,
            ),
            completed: true,
            timed: [None, None],
            conns: [1, 1, 0, 0],
            queue_ms: 0,
            queues: [0, 0],
            in_flight: None,
        };
        assert_eq!(
            log.line(3),
            "127.0.0.1:5000 veza api_pool/backend-api-1 0/0/1/2/3 200 118 - - --NI 1/1/0/0/1 0/0 \"GET /x HTTP/1.1\""
        );
    }
}
