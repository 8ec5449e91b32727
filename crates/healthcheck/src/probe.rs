//! One check of one server: a fresh connection, one request, one verdict.

use std::error::Error as _;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use lb_core::{CheckResult, CheckStatus};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};

use crate::Error;

/// The `User-Agent` of every check request, so backends can tell checks from traffic.
pub const CHECK_USER_AGENT: &str = "veza-lb-healthcheck";

/// An HTTP check: what to request and which answers mean healthy (a pool's `health`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCheck {
    /// Request method, `GET` unless configured otherwise.
    pub method: Method,
    /// Request target in origin form, such as `/api/v1/health`.
    pub path: String,
    /// `Host` header; `None` sends the server's address (`127.0.0.1:18081`).
    pub host: Option<String>,
    /// The whole check, connection included, must finish within this.
    pub timeout: Duration,
    /// Status codes that mean healthy. Empty means HAProxy's default: any 2xx or 3xx.
    pub expect_status: Vec<u16>,
}

impl HttpCheck {
    /// `GET path`, expecting 200 within 2 seconds (the proxy's defaults).
    #[must_use]
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            host: None,
            timeout: Duration::from_secs(2),
            expect_status: vec![200],
        }
    }

    /// The same check with another `Host` header.
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The same check with another timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same check, expecting one of `statuses` (empty: any 2xx or 3xx).
    #[must_use]
    pub fn expecting(mut self, statuses: impl Into<Vec<u16>>) -> Self {
        self.expect_status = statuses.into();
        self
    }

    /// Whether a response with status `code` means healthy.
    #[must_use]
    pub fn accepts(&self, code: u16) -> bool {
        if self.expect_status.is_empty() {
            (200..400).contains(&code)
        } else {
            self.expect_status.contains(&code)
        }
    }

    /// Checks that the request can be sent: a path in origin form and a valid host.
    ///
    /// [`probe`] reports an invalid check as [`CheckStatus::SocketError`] without touching the
    /// network, so callers should validate configuration up front with this.
    pub fn validate(&self) -> Result<(), Error> {
        let path_ok = self.path.starts_with('/') && self.path.parse::<PathAndQuery>().is_ok();
        if !path_ok {
            return Err(Error::InvalidPath {
                path: self.path.clone(),
            });
        }
        if let Some(host) = &self.host
            && host.parse::<Authority>().is_err()
        {
            return Err(Error::InvalidHost { host: host.clone() });
        }
        Ok(())
    }

    fn request(&self, addr: SocketAddr) -> Result<Request<Empty<Bytes>>, Error> {
        self.validate()?;
        let host = match &self.host {
            Some(host) => HeaderValue::try_from(host.as_str()),
            // SocketAddr's Display brackets IPv6 addresses, as a Host header needs.
            None => HeaderValue::try_from(addr.to_string()),
        }
        .map_err(|_| Error::InvalidHost {
            host: self.host.clone().unwrap_or_default(),
        })?;
        Request::builder()
            .method(self.method.clone())
            .uri(self.path.as_str())
            .header(HOST, host)
            .header(USER_AGENT, CHECK_USER_AGENT)
            // One check, one connection, as HAProxy does: nothing is left open between checks.
            .header(CONNECTION, "close")
            .body(Empty::new())
            .map_err(|_| Error::InvalidPath {
                path: self.path.clone(),
            })
    }
}

/// What to check on a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Only open a TCP connection (HAProxy's plain `check`): for dependencies that do not speak
    /// HTTP, such as a database. Passes as [`CheckStatus::L4Ok`].
    Tcp {
        /// The connection must be established within this.
        timeout: Duration,
    },
    /// An HTTP request on a fresh connection.
    Http(HttpCheck),
}

impl Check {
    /// How long one check may take.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        match self {
            Self::Tcp { timeout } => *timeout,
            Self::Http(http) => http.timeout,
        }
    }

    /// Runs one check against `addr`.
    pub async fn run(&self, addr: SocketAddr) -> Outcome {
        match self {
            Self::Tcp { timeout } => tcp_outcome(addr, *timeout).await,
            Self::Http(http) => http_outcome(addr, http).await,
        }
    }
}

impl From<HttpCheck> for Check {
    fn from(http: HttpCheck) -> Self {
        Self::Http(http)
    }
}

/// A check's result plus HAProxy's free-form `info` (`Connection refused`,
/// `Service Unavailable`, a parse error), for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What lb-core's state machine consumes.
    pub result: CheckResult,
    /// Details for humans; `None` when there is nothing to add (timeouts).
    pub info: Option<String>,
}

impl Outcome {
    /// HAProxy's wording of this outcome, as in [`describe`] but with `info`.
    #[must_use]
    pub fn describe(&self) -> String {
        describe_with_info(&self.result, self.info.as_deref())
    }
}

/// HAProxy's wording of a check result, as its logs print it after `reason: `:
/// `Layer7 wrong status, code: 503, check duration: 2ms`.
#[must_use]
pub fn describe(result: &CheckResult) -> String {
    describe_with_info(result, None)
}

fn describe_with_info(result: &CheckResult, info: Option<&str>) -> String {
    let mut line = result.status.description().to_owned();
    // Writing to a String cannot fail.
    if let Some(code) = result.code {
        let _ = write!(line, ", code: {code}");
    }
    if let Some(info) = info {
        let _ = write!(line, ", info: \"{info}\"");
    }
    let _ = write!(line, ", check duration: {}ms", result.duration.as_millis());
    line
}

/// One HTTP check of `addr`, on a fresh connection closed afterwards.
///
/// The connection must be established and the response head received within
/// `check.timeout`: [`CheckStatus::L4Timeout`] or [`CheckStatus::L7Timeout`] otherwise. A
/// refused or reset connection is [`CheckStatus::L4Connect`]; a local failure (no socket, no
/// free port, an invalid check) is [`CheckStatus::SocketError`]; an answer that is not HTTP is
/// [`CheckStatus::L7Response`]; a status outside `expect_status` is
/// [`CheckStatus::L7Status`]. The body is never read: the connection is closed as soon as
/// the response head is in, so a server still sending a body may see a reset.
pub async fn probe(addr: SocketAddr, check: &HttpCheck) -> CheckResult {
    http_outcome(addr, check).await.result
}

/// One TCP connect to `addr` within `timeout`: [`CheckStatus::L4Ok`] when it is accepted.
pub async fn probe_tcp(addr: SocketAddr, timeout: Duration) -> CheckResult {
    tcp_outcome(addr, timeout).await.result
}

/// The verdict before the duration is known.
struct Verdict {
    status: CheckStatus,
    code: Option<u16>,
    info: Option<String>,
}

impl Verdict {
    fn new(status: CheckStatus, info: Option<String>) -> Self {
        Self {
            status,
            code: None,
            info,
        }
    }

    fn finish(self, started: Instant) -> Outcome {
        Outcome {
            result: CheckResult {
                status: self.status,
                code: self.code,
                duration: started.elapsed(),
            },
            info: self.info,
        }
    }
}

async fn tcp_outcome(addr: SocketAddr, timeout: Duration) -> Outcome {
    let started = Instant::now();
    let verdict = match connect(addr, started + timeout).await {
        Ok(_stream) => Verdict::new(CheckStatus::L4Ok, None),
        Err(failed) => failed,
    };
    verdict.finish(started)
}

async fn http_outcome(addr: SocketAddr, check: &HttpCheck) -> Outcome {
    let started = Instant::now();
    let deadline = started + check.timeout;
    let verdict = match check.request(addr) {
        Err(e) => Verdict::new(CheckStatus::SocketError, Some(e.to_string())),
        Ok(request) => match connect(addr, deadline).await {
            Err(failed) => failed,
            Ok(stream) => match timeout_at(deadline, exchange(stream, request)).await {
                Err(_) => Verdict::new(CheckStatus::L7Timeout, None),
                Ok(Err(e)) => Verdict::new(response_error_status(&e), Some(hyper_info(&e))),
                Ok(Ok(status)) => Verdict {
                    status: if check.accepts(status.as_u16()) {
                        CheckStatus::L7Ok
                    } else {
                        CheckStatus::L7Status
                    },
                    code: Some(status.as_u16()),
                    info: status.canonical_reason().map(str::to_owned),
                },
            },
        },
    };
    verdict.finish(started)
}

async fn connect(addr: SocketAddr, deadline: Instant) -> Result<TcpStream, Verdict> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| Verdict::new(CheckStatus::SocketError, Some(io_info(&e))))?;
    match timeout_at(deadline, socket.connect(addr)).await {
        Err(_) => Err(Verdict::new(CheckStatus::L4Timeout, None)),
        Ok(Err(e)) => Err(Verdict::new(connect_error_status(&e), Some(io_info(&e)))),
        Ok(Ok(stream)) => Ok(stream),
    }
}

/// Sends the request and waits for the response head only; dropping the response (and the
/// connection with it) discards the body unread.
async fn exchange(
    stream: TcpStream,
    request: Request<Empty<Bytes>>,
) -> Result<StatusCode, hyper::Error> {
    // Small requests: don't let Nagle hold the request back waiting for an ACK.
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    let mut conn = pin!(conn);
    let mut response = pin!(sender.send_request(request));
    let response = tokio::select! {
        biased;
        response = &mut response => response?,
        ended = &mut conn => {
            ended?;
            // The connection closed cleanly without an answer: the pending request now
            // resolves with hyper's reason.
            response.await?
        }
    };
    Ok(response.status())
}

/// Local resource problems are HAProxy's SOCKERR; everything else the peer or the network did
/// to the connection attempt is L4CON.
fn connect_error_status(e: &io::Error) -> CheckStatus {
    match e.kind() {
        io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::AddrInUse
        | io::ErrorKind::OutOfMemory
        | io::ErrorKind::PermissionDenied => CheckStatus::SocketError,
        _ => CheckStatus::L4Connect,
    }
}

/// A reset once connected is still a layer 4 problem for HAProxy; anything else hyper
/// rejects (garbage, an empty answer, a truncated head) is an invalid layer 7 response.
fn response_error_status(e: &hyper::Error) -> CheckStatus {
    match io_source(e).map(io::Error::kind) {
        Some(
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe,
        ) => CheckStatus::L4Connect,
        _ => CheckStatus::L7Response,
    }
}

fn io_source(e: &hyper::Error) -> Option<&io::Error> {
    let mut source = e.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

fn hyper_info(e: &hyper::Error) -> String {
    io_source(e).map_or_else(|| e.to_string(), io_info)
}

/// HAProxy prints `strerror()`; drop Rust's ` (os error 111)` suffix to match.
fn io_info(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(end) => text[..end].to_owned(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_matches_haproxy_wording() {
        let r = CheckResult::failed(
            CheckStatus::L7Status,
            Some(503),
            Duration::from_micros(2500),
        );
        assert_eq!(
            describe(&r),
            "Layer7 wrong status, code: 503, check duration: 2ms"
        );
        let outcome = Outcome {
            result: r,
            info: Some("Service Unavailable".into()),
        };
        assert_eq!(
            outcome.describe(),
            "Layer7 wrong status, code: 503, info: \"Service Unavailable\", check duration: 2ms"
        );
        let refused = CheckResult::failed(CheckStatus::L4Connect, None, Duration::ZERO);
        assert_eq!(
            describe(&refused),
            "Layer4 connection problem, check duration: 0ms"
        );
    }

    #[test]
    fn empty_expect_status_means_2xx_or_3xx() {
        let check = HttpCheck::get("/").expecting([]);
        assert!(check.accepts(200) && check.accepts(204) && check.accepts(302));
        assert!(!check.accepts(199) && !check.accepts(404) && !check.accepts(503));
        let check = HttpCheck::get("/").expecting([200, 404]);
        assert!(check.accepts(404) && !check.accepts(204));
    }

    #[test]
    fn validate_rejects_unsendable_requests() {
        assert!(HttpCheck::get("/health?deep=1").validate().is_ok());
        assert!(HttpCheck::get("/").with_host("api.veza").validate().is_ok());
        assert!(matches!(
            HttpCheck::get("health").validate(),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            HttpCheck::get("/a b").validate(),
            Err(Error::InvalidPath { .. })
        ));
        assert!(matches!(
            HttpCheck::get("/").with_host("bad host").validate(),
            Err(Error::InvalidHost { .. })
        ));
    }

    #[test]
    fn connect_errors_map_to_haproxy_statuses() {
        let status = |kind| connect_error_status(&io::Error::from(kind));
        assert_eq!(
            status(io::ErrorKind::ConnectionRefused),
            CheckStatus::L4Connect
        );
        assert_eq!(
            status(io::ErrorKind::ConnectionReset),
            CheckStatus::L4Connect
        );
        assert_eq!(
            status(io::ErrorKind::HostUnreachable),
            CheckStatus::L4Connect
        );
        assert_eq!(
            status(io::ErrorKind::AddrNotAvailable),
            CheckStatus::SocketError
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn io_info_reads_like_strerror() {
        let e = io::Error::from_raw_os_error(111);
        assert_eq!(io_info(&e), "Connection refused");
    }
}
