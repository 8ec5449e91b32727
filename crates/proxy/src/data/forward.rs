//! The request path: route, pick, connect, retry, forward, and stream the answer back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Empty};
use hyper::body::{Body, Incoming};
use lb_core::{ClientCookie, CookieSeen, PickReason, PickRequest, ServerId};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::counters::{Counters, SessionGuard};
use crate::data::accesslog::{AccessLog, RequestLine};
use crate::data::body::ProxyBody;
use crate::data::headers;
use crate::data::passive::{PassiveReports, TrafficReport};
use crate::data::routing::{FrontendView, PoolSlot};
use crate::data::timeout::{BodyError, Idle, Side};
use crate::data::tunnel;
use crate::data::upstream::{Conn, ConnectError, Upstream, UpstreamBody};

/// Longest request target accepted (414 beyond).
pub(crate) const MAX_URI_LEN: usize = 8 * 1024;

/// What every request on one client connection shares.
#[derive(Debug)]
pub(crate) struct ClientContext {
    pub(crate) frontend: Arc<ArcSwap<FrontendView>>,
    pub(crate) passive: PassiveReports,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
    /// `X-Forwarded-For` and `Forwarded` values for this client, built once.
    pub(crate) forwarding: headers::Forwarding,
    /// Cancelled when tunnels must close (graceful stop after `shutdown_grace`).
    pub(crate) hard_stop: CancellationToken,
    /// Process-wide counters (the access log's `actconn`).
    pub(crate) process: Arc<Counters>,
    /// What a graceful stop waits for.
    pub(crate) tracker: TaskTracker,
}

/// The sticky cookie as the request carried it, owned so it outlives header rewriting.
enum RequestCookie {
    Absent,
    Invalid,
    Value(String),
}

impl RequestCookie {
    fn as_client(&self) -> ClientCookie<'_> {
        match self {
            Self::Absent => ClientCookie::Absent,
            Self::Invalid => ClientCookie::Invalid,
            Self::Value(v) => ClientCookie::Value(v),
        }
    }
}

/// Why an attempt on a server failed.
enum AttemptError {
    /// Connection could not be made: always retryable.
    Connect(ConnectError),
    /// A pooled connection turned out closed before the request was written: retry
    /// for free, on a fresh connection.
    StaleReused(Box<Request<UpstreamBody>>),
    /// The request was (maybe) sent, no response came: retryable if idempotent.
    NoResponse(hyper::Error),
    /// The server's sessions were shut down while waiting for the response.
    Killed,
    /// `timeout_server` elapsed before the response headers.
    Timeout,
}

/// Handles one request from a client.
pub(crate) async fn handle(
    ctx: Arc<ClientContext>,
    mut req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let frontend = ctx.frontend.load_full();
    let fe_counters = frontend.counters.clone();
    Counters::add(&fe_counters.requests, 1);
    let request_line = RequestLine::of(&req);

    if let Err((status, why)) =
        headers::check_request(&req, MAX_URI_LEN, crate::data::listener::MAX_HEAD)
    {
        Counters::add(&fe_counters.req_errors, 1);
        fe_counters.response(status.as_u16());
        let resp = error_response(status, why);
        // As HAProxy logs a request its frontend refused: `frontend/<NOSRV>`, `PR`.
        AccessLog {
            client: ctx.peer,
            frontend: frontend.name.clone(),
            pool: frontend.name.clone(),
            server: None,
            started,
            connect_ms: None,
            response_ms: None,
            status: status.as_u16(),
            bytes: resp.body().size_hint().exact().unwrap_or(0),
            termination: *b"PR",
            cookie: *b"--",
            retries: 0,
            request: request_line,
            completed: true,
            timed: [None, None],
            conns: [
                Counters::get(&ctx.process.cur_sessions),
                Counters::get(&fe_counters.cur_sessions),
                0,
                0,
            ],
            in_flight: None,
        }
        .finish();
        return Ok(resp);
    }

    let pool = frontend.route(req.uri().path()).clone();
    let view = pool.view.load_full();
    let settings = view.settings.clone();
    let sticky = view.router.sticky().cloned();

    // Routing inputs, owned: the headers they come from are rewritten below.
    let cookie = match &sticky {
        None => RequestCookie::Absent,
        Some(s) => match s.find(
            req.headers()
                .get_all(header::COOKIE)
                .iter()
                .map(HeaderValue::as_bytes),
        ) {
            ClientCookie::Absent => RequestCookie::Absent,
            ClientCookie::Invalid => RequestCookie::Invalid,
            ClientCookie::Value(v) => RequestCookie::Value(v.to_owned()),
        },
    };
    let key: Option<Vec<u8>> = view.router.hash_key().and_then(|rule| {
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        rule.extract(pq, |name| {
            req.headers().get(name).map(HeaderValue::as_bytes)
        })
        .map(<[u8]>::to_vec)
    });
    drop(view);

    let upgrade = headers::upgrade_protocol(req.headers());
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    headers::prepare_upstream_request(&mut parts, &ctx.forwarding, upgrade.as_ref());
    if let Some(s) = sticky.as_ref().filter(|s| s.indirect) {
        headers::strip_cookie(&mut parts.headers, s);
    }
    // HTTP/1.1 to every server, in origin form.
    parts.version = Version::HTTP_11;
    if let Some(pq) = parts.uri.path_and_query().cloned() {
        parts.uri = pq.into();
    }

    let bodiless = body.is_end_stream();
    let retryable = settings.retry_idempotent && bodiless && is_idempotent(&parts.method);
    // Kept only when a retry may need to resend a request the server already received.
    let spare = retryable.then(|| clone_parts(&parts));
    let mut request = Some(Request::from_parts(
        parts,
        if bodiless {
            Either::Right(Empty::new())
        } else {
            Either::Left(Idle::new(body, Side::Client, settings.timeouts.client))
        },
    ));

    let mut log = Box::new(AccessLog {
        client: ctx.peer,
        frontend: frontend.name.clone(),
        pool: pool.name.clone(),
        server: None,
        started,
        connect_ms: None,
        response_ms: None,
        status: 0,
        bytes: 0,
        termination: *b"--",
        cookie: [b'-', b'-'],
        retries: 0,
        request: request_line,
        completed: false,
        timed: [Some(fe_counters.clone()), Some(pool.counters.clone())],
        conns: [0; 4],
        in_flight: Some(ctx.tracker.token()),
    });
    Counters::add(&pool.counters.requests, 1);

    let mut tried: Vec<ServerId> = Vec::new();
    let mut retries_left = settings.retries;
    let mut fresh_only = false;
    loop {
        let view = pool.view.load_full();
        let exclude: &[ServerId] = if settings.redispatch { &tried } else { &[] };
        let pick = view.router.pick(&PickRequest {
            key: key.as_deref(),
            cookie: cookie.as_client(),
            exclude,
        });
        let Some(pick) = pick else {
            log.termination = *b"SC";
            log.conns = conns(&ctx, &fe_counters, &pool, None);
            return Ok(local_error(
                &pool,
                &fe_counters,
                log,
                StatusCode::SERVICE_UNAVAILABLE,
                "No server is available to handle this request.",
            ));
        };
        if pick.reason == PickReason::Redispatched {
            Counters::add(&pool.counters.redispatches, 1);
        }
        let upstream = view.upstream(pick.server).clone();
        Counters::add(&upstream.counters.lb_selected, 1);
        Counters::add(&pool.counters.lb_selected, 1);
        log.server = Some(upstream.name.clone());
        log.cookie = [
            pick.cookie.flag() as u8,
            if pick.set_cookie {
                b'I'
            } else if pick.cookie == CookieSeen::NotApplicable {
                b'-'
            } else {
                b'N'
            },
        ];
        let session = SessionGuard::start([upstream.counters.clone(), pool.counters.clone()]);
        Counters::add(&upstream.counters.requests, 1);

        let Some(req) = request.take() else {
            // Only reachable if a retry lost the request, which `spare` prevents.
            return Ok(local_error(
                &pool,
                &fe_counters,
                log,
                StatusCode::BAD_GATEWAY,
                "The request could not be retried.",
            ));
        };
        let attempt = attempt(&upstream, req, &settings.timeouts, fresh_only, &mut log).await;
        match attempt {
            Ok((resp, sender)) => {
                // A retry that succeeded ends normally, whatever the failed attempts set.
                log.termination = *b"--";
                log.conns = conns(&ctx, &fe_counters, &pool, Some(&upstream));
                if fresh_only || !tried.is_empty() {
                    report_traffic(&ctx.passive, &pool, pick.server, true);
                }
                let waited = started.elapsed();
                log.response_ms = Some(waited.as_millis() as u64);
                for c in [&pool.counters, &upstream.counters] {
                    c.response_time.add(waited);
                    c.response_latency.observe(waited);
                }
                return Ok(respond(
                    &ctx,
                    resp,
                    sender,
                    upstream,
                    &pool,
                    &fe_counters,
                    log,
                    pick.set_cookie,
                    sticky.as_ref(),
                    client_upgrade,
                    session,
                    &settings.timeouts,
                ));
            }
            Err(error) => {
                drop(session);
                let (again, counted) = match error {
                    AttemptError::StaleReused(req) => {
                        request = Some(*req);
                        fresh_only = true;
                        (true, false)
                    }
                    AttemptError::Connect(e) => {
                        tracing::debug!(server = %upstream.name, "{e}");
                        Counters::add(&upstream.counters.conn_errors, 1);
                        Counters::add(&pool.counters.conn_errors, 1);
                        report_traffic(&ctx.passive, &pool, pick.server, false);
                        log.termination = *b"SC";
                        (true, true)
                    }
                    AttemptError::NoResponse(e) if BodyError::is_idle(&e, Side::Client) => {
                        // The client stopped sending its body: not the server's fault.
                        Counters::add(&fe_counters.req_errors, 1);
                        log.termination = *b"cD";
                        return Ok(local_error(
                            &pool,
                            &fe_counters,
                            log,
                            StatusCode::REQUEST_TIMEOUT,
                            "The client took too long to send its request.",
                        ));
                    }
                    AttemptError::NoResponse(e) => {
                        tracing::debug!(server = %upstream.name, "no response: {e}");
                        Counters::add(&upstream.counters.resp_errors, 1);
                        Counters::add(&pool.counters.resp_errors, 1);
                        log.termination = *b"SH";
                        (spare.is_some(), true)
                    }
                    AttemptError::Killed => {
                        log.termination = *b"DH";
                        (spare.is_some(), true)
                    }
                    AttemptError::Timeout => {
                        Counters::add(&upstream.counters.resp_errors, 1);
                        Counters::add(&pool.counters.resp_errors, 1);
                        log.termination = *b"sH";
                        log.conns = conns(&ctx, &fe_counters, &pool, Some(&upstream));
                        return Ok(local_error(
                            &pool,
                            &fe_counters,
                            log,
                            StatusCode::GATEWAY_TIMEOUT,
                            "The server didn't respond in time.",
                        ));
                    }
                };
                if counted {
                    if !again || retries_left == 0 {
                        log.conns = conns(&ctx, &fe_counters, &pool, Some(&upstream));
                        let (status, why) = match log.termination {
                            [b'S', b'C'] => (
                                StatusCode::SERVICE_UNAVAILABLE,
                                "No server is available to handle this request.",
                            ),
                            _ => (
                                StatusCode::BAD_GATEWAY,
                                "The server returned an invalid or incomplete response.",
                            ),
                        };
                        return Ok(local_error(&pool, &fe_counters, log, status, why));
                    }
                    retries_left -= 1;
                    log.retries += 1;
                    Counters::add(&upstream.counters.retries, 1);
                    Counters::add(&pool.counters.retries, 1);
                    tried.push(pick.server);
                    if request.is_none() {
                        request = spare.as_ref().map(|p| {
                            Request::from_parts(clone_parts(p), Either::Right(Empty::new()))
                        });
                    }
                }
            }
        }
    }
}

/// One try on one server: a connection (pooled unless `fresh_only`), the request, the
/// response head.
async fn attempt(
    upstream: &Arc<Upstream>,
    req: Request<UpstreamBody>,
    timeouts: &crate::config::Timeouts,
    fresh_only: bool,
    log: &mut AccessLog,
) -> Result<
    (
        Response<Incoming>,
        hyper::client::conn::http1::SendRequest<UpstreamBody>,
    ),
    AttemptError,
> {
    let pooled = if fresh_only {
        None
    } else {
        upstream.checkout().await
    };
    let Conn { mut sender, reused } = match pooled {
        Some(conn) => conn,
        None => {
            let t = Instant::now();
            let conn = upstream
                .connect(timeouts.connect)
                .await
                .map_err(AttemptError::Connect)?;
            upstream.counters.connect_time.add(t.elapsed());
            log.connect_ms = Some(t.elapsed().as_millis() as u64);
            conn
        }
    };
    if log.connect_ms.is_none() {
        log.connect_ms = Some(0);
    }
    let killed = upstream.sessions();
    let sent = tokio::select! {
        // A shutdown also breaks the request's connection, which readies the send with an
        // error in the same instant: checking the kill first names the real cause.
        biased;
        () = killed.cancelled() => return Err(AttemptError::Killed),
        r = tokio::time::timeout(timeouts.server, sender.try_send_request(req)) => r,
    };
    match sent {
        Err(_) => Err(AttemptError::Timeout),
        Ok(Ok(resp)) => Ok((resp, sender)),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) if reused => Err(AttemptError::StaleReused(Box::new(req))),
            // Nothing was written: as safe to retry as a failed connect.
            Some(_) => Err(AttemptError::Connect(ConnectError::Handshake(
                e.into_error(),
            ))),
            None => Err(AttemptError::NoResponse(e.into_error())),
        },
    }
}

#[allow(clippy::too_many_arguments)]
fn respond(
    ctx: &ClientContext,
    mut resp: Response<Incoming>,
    sender: hyper::client::conn::http1::SendRequest<UpstreamBody>,
    upstream: Arc<Upstream>,
    pool: &PoolSlot,
    fe_counters: &Arc<Counters>,
    mut log: Box<AccessLog>,
    set_cookie: bool,
    sticky: Option<&lb_core::StickyCookie>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    session: SessionGuard<2>,
    timeouts: &crate::config::Timeouts,
) -> Response<ProxyBody> {
    let status = resp.status();
    log.status = status.as_u16();
    for c in [fe_counters, &pool.counters, &upstream.counters] {
        c.response(status.as_u16());
    }
    let upgraded = status == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some();
    headers::prepare_client_response(resp.headers_mut(), upgraded);
    if let (true, Some(sticky)) = (set_cookie, sticky) {
        if let Ok(v) = HeaderValue::from_str(&sticky.set_cookie(&upstream.name)) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
        if sticky.nocache {
            headers::mark_private(resp.headers_mut());
        }
    }
    if upgraded {
        log.request = log.request.detached();
        let server_upgrade = hyper::upgrade::on(&mut resp);
        let (parts, _) = resp.into_parts();
        if let Some(client_upgrade) = client_upgrade {
            tunnel::spawn(tunnel::Tunnel {
                client: client_upgrade,
                server: server_upgrade,
                upstream: upstream.clone(),
                counters: [
                    fe_counters.clone(),
                    pool.counters.clone(),
                    upstream.counters.clone(),
                ],
                idle_timeout: timeouts.tunnel,
                hard_stop: ctx.hard_stop.clone(),
                session,
                log,
            });
        }
        return Response::from_parts(parts, ProxyBody::empty());
    }
    drop(session);
    let (parts, body) = resp.into_parts();
    let body = Idle::new(body, Side::Server, timeouts.server);
    let body = ProxyBody::upstream(body, sender, upstream.clone()).with_accounting(
        [
            fe_counters.clone(),
            pool.counters.clone(),
            upstream.counters.clone(),
        ],
        Some(log),
    );
    Response::from_parts(parts, body)
}

/// The access log's `actconn/feconn/beconn/srv_conn`: client connections to the process and
/// to the frontend, requests in flight in the pool and on the server (this one included).
fn conns(
    ctx: &ClientContext,
    frontend: &Counters,
    pool: &PoolSlot,
    server: Option<&Upstream>,
) -> [u64; 4] {
    [
        Counters::get(&ctx.process.cur_sessions),
        Counters::get(&frontend.cur_sessions),
        Counters::get(&pool.counters.cur_sessions),
        server.map_or(0, |s| Counters::get(&s.counters.cur_sessions)),
    ]
}

fn report_traffic(passive: &PassiveReports, pool: &PoolSlot, server: ServerId, connected: bool) {
    passive.report(TrafficReport {
        pool: pool.id,
        server,
        connected,
    });
}

/// An answer made by the proxy itself (no server answered), logged right away.
fn local_error(
    pool: &PoolSlot,
    fe_counters: &Counters,
    mut log: Box<AccessLog>,
    status: StatusCode,
    why: &'static str,
) -> Response<ProxyBody> {
    log.status = status.as_u16();
    fe_counters.response(status.as_u16());
    pool.counters.response(status.as_u16());
    let resp = error_response(status, why);
    log.bytes = resp.body().size_hint().exact().unwrap_or(0);
    log.completed = true;
    log.finish();
    resp
}

/// A short HTML error page, as HAProxy sends them.
pub(crate) fn error_response(status: StatusCode, why: &str) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "<html><body><h1>{} {reason}</h1>\n{why}\n</body></html>\n",
        status.as_u16()
    );
    let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if status.is_client_error() {
        // The request may have been mis-framed: do not read another one from this connection.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn clone_parts(parts: &Parts) -> Parts {
    let mut req = Request::new(());
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = parts.uri.clone();
    *req.version_mut() = parts.version;
    *req.headers_mut() = parts.headers.clone();
    req.into_parts().0
}
