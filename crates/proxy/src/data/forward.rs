//! One request, in the steps of HAProxy's stream: check the request, route it to a pool, pick
//! a server, try it (connect, send, await the head; `attempt`), retry or redispatch on
//! failure, respond (headers rewritten, body streamed back or a tunnel opened), and log.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::body::Body;
use lb_core::{
    ClientCookie, CookieSeen, Loads, Pick, PickReason, PickRequest, ServerId, StickyCookie,
};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::counters::{Counters, SessionGuard, Total};
use crate::data::accesslog::{AccessLog, RequestLine};
use crate::data::attempt::{Answer, AttemptError, NoResponse, Outgoing, attempt};
use crate::data::body::{ProxyBody, ServerBody};
use crate::data::headers;
use crate::data::passed::PassedFields;
use crate::data::passive::{PassiveReports, TrafficReport};
use crate::data::queue::{Served, record_wait, try_serve};
use crate::data::ratelimit::Verdict;
use crate::data::request_body::RequestBody;
use crate::data::routing::{FrontendView, PoolSlot, PoolView};
use crate::data::termination::Termination;
use crate::data::timeout::{BodyError, ClientBodyFailure, Idle, Side};
use crate::data::tripwire::Tripwire;
use crate::data::tunnel;
use crate::data::upstream::{Upstream, UpstreamBody};

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
    pub(crate) hard_stop: Tripwire,
    /// Process-wide counters (the access log's `actconn`).
    pub(crate) process: Arc<Counters>,
    /// What a graceful stop waits for.
    pub(crate) tracker: TaskTracker,
}

/// Handles one request from a client: its head (`parts`, rewritten for the server in place:
/// the caller keeps it, and an HTTP/1 session reuses its allocations for the next request;
/// for an HTTP/1 request, `passed` holds the fields that are not in `parts`, forwarded as
/// received) and its body. An HTTP/1 request's head was already checked by the `h1` codec when it was
/// parsed; an HTTP/2 request's is checked here. `frontend` is the snapshot the request keeps
/// from start to end (the caller took it to answer what the frontend answers itself).
pub(crate) async fn handle<'c>(
    ctx: &ClientContext,
    frontend: Arc<FrontendView>,
    parts: &'c mut Parts,
    passed: Option<&'c PassedFields>,
    body: RequestBody<'c>,
) -> Response<ProxyBody> {
    let started = Instant::now();
    frontend.counters.add(Total::Requests, 1);
    let request_line = RequestLine::of(parts);
    let checked = match body {
        RequestBody::H1(_) => headers::check_method(&parts.method),
        RequestBody::H2(_) => {
            headers::check_request(parts, headers::MAX_URI_LEN, headers::MAX_HEAD)
        }
    };
    if let Err((status, why)) = checked {
        let refusal = Refusal::refused(status, why);
        return refuse(ctx, &frontend, started, request_line, refusal);
    }
    let source = ctx.peer.ip();
    let denied =
        frontend
            .rate_limits(parts.uri.path())
            .find_map(|table| match table.check(source) {
                Verdict::Allow => None,
                Verdict::Deny { retry_after } => Some(retry_after),
            });
    if let Some(retry_after) = denied {
        let refusal = Refusal::rate_limited(retry_after);
        return refuse(ctx, &frontend, started, request_line, refusal);
    }
    let stream = Stream::route(ctx, frontend, parts, passed, body, started, request_line);
    stream.run(ctx).await
}

/// Why the frontend refuses a request before routing it, and how it answers and logs that.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    /// The sentence of the error page.
    pub(crate) why: &'static str,
    pub(crate) termination: Termination,
    /// Denied by a rate limit (`dreq`, with `Retry-After` in seconds) rather than a request
    /// error (`ereq`).
    pub(crate) retry_after: Option<u64>,
}

impl Refusal {
    /// A request the proxy will not forward (`PR`).
    pub(crate) fn refused(status: StatusCode, why: &'static str) -> Self {
        Self {
            status,
            why,
            termination: Termination::REFUSED,
            retry_after: None,
        }
    }

    /// A request head that did not arrive in time (`cR`, 408).
    pub(crate) fn timed_out() -> Self {
        Self {
            status: StatusCode::REQUEST_TIMEOUT,
            why: "The client took too long to send its request.",
            termination: Termination::CLIENT_TIMEOUT_REQUEST,
            retry_after: None,
        }
    }

    /// A request over its source's rate limit (429, `PR`), which may come back after
    /// `retry_after` seconds.
    pub(crate) fn rate_limited(retry_after: u64) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            why: "Too many requests from this address: slow down.",
            termination: Termination::REFUSED,
            retry_after: Some(retry_after),
        }
    }
}

/// A request the frontend refuses before routing (bad framing, URI too long, a head that
/// timed out...), logged as HAProxy logs it: `frontend/<NOSRV>`.
pub(crate) fn refuse(
    ctx: &ClientContext,
    frontend: &FrontendView,
    started: Instant,
    request: RequestLine,
    refusal: Refusal,
) -> Response<ProxyBody> {
    let Refusal {
        status,
        why,
        termination,
        retry_after,
    } = refusal;
    let counters = &frontend.counters;
    let mut resp = error_response(status, why);
    match retry_after {
        Some(seconds) => {
            counters.add(Total::DeniedRequests, 1);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        None => counters.add(Total::RequestErrors, 1),
    }
    counters.response(status.as_u16());
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
        termination,
        cookie: *b"--",
        retries: 0,
        request,
        completed: true,
        timed: [None, None],
        conns: [
            Counters::get(&ctx.process.cur_sessions),
            Counters::get(&counters.cur_sessions),
            0,
            0,
        ],
        queue_ms: 0,
        queues: [0, 0],
        in_flight: None,
    }
    .finish();
    resp
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

/// A server the router chose, before it is admitted.
struct Choice {
    pick: Pick,
    upstream: Arc<Upstream>,
}

/// The server a try goes to.
struct Target {
    id: ServerId,
    upstream: Arc<Upstream>,
    set_cookie: bool,
}

/// What failing on a server leads to.
enum Next {
    /// Try again (the same server, or another with redispatch).
    Retry,
    /// Give up and answer this status, with this explanation.
    GiveUp(StatusCode, &'static str),
}

/// One routed request on its way through its pool: HAProxy's stream. `'c` is the client
/// connection an HTTP/1 request body is read from.
struct Stream<'c> {
    frontend: Arc<Counters>,
    pool: Arc<PoolSlot>,
    /// The pool's snapshot at routing: its settings and sticky cookie serve the whole
    /// request (held, not copied: a cookie's name is a `String`).
    view: Arc<PoolView>,
    cookie: RequestCookie,
    key: Option<Vec<u8>>,
    /// The client asked to switch protocols (HTTP/1.1 `Upgrade`).
    client_upgrade: bool,
    /// The request head as the servers get it.
    parts: &'c mut Parts,
    /// The fields of an HTTP/1 request forwarded as received (not in `parts`).
    passed: Option<&'c PassedFields>,
    /// The client's body, until a try starts sending it.
    body: Option<UpstreamBody<'c>>,
    /// A request the server may already have received can be sent again (idempotent and
    /// bodiless, with `retry_idempotent`).
    resendable: bool,
    log: Box<AccessLog>,
    /// Servers already failed on (excluded from redispatch).
    tried: Vec<ServerId>,
    retries_left: u32,
    /// A pooled connection turned out stale: the next try opens a fresh one.
    fresh_only: bool,
}

impl<'c> Stream<'c> {
    /// Routes `req` to a pool, takes what routing needs from it (cookie, hash key) before the
    /// headers are rewritten, and prepares the request for the server.
    fn route(
        ctx: &ClientContext,
        frontend: Arc<FrontendView>,
        parts: &'c mut Parts,
        passed: Option<&'c PassedFields>,
        body: RequestBody<'c>,
        started: Instant,
        request_line: RequestLine,
    ) -> Self {
        let pool = frontend.route(parts.uri.path()).clone();
        let view = pool.view.load_full();
        let settings = &view.settings;
        let sticky = view.router.sticky();
        let cookie = request_cookie(sticky, &parts.headers);
        let key: Option<Vec<u8>> = view.router.hash_key().and_then(|rule| {
            let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            rule.extract(pq, |name| match parts.headers.get(name) {
                Some(v) => Some(v.as_bytes()),
                None => passed?.get(name.as_bytes()),
            })
            .map(<[u8]>::to_vec)
        });

        let upgrade = headers::upgrade_protocol(&parts.headers);
        let h1 = matches!(body, RequestBody::H1(_));
        let client_upgrade = upgrade.is_some() && h1;
        headers::prepare_upstream_request(parts, passed, &ctx.forwarding, upgrade.as_ref());
        if let Some(s) = sticky.filter(|s| s.indirect) {
            headers::strip_cookie(&mut parts.headers, s);
        }
        // HTTP/1.1 to every server, in origin form.
        parts.version = Version::HTTP_11;
        if let Some(pq) = parts.uri.path_and_query().cloned() {
            parts.uri = pq.into();
        }
        let bodiless = body.is_end_stream();
        let resendable = settings.retry_idempotent && bodiless && is_idempotent(&parts.method);
        let body = (!bodiless).then(|| Idle::new(body, Side::Client, settings.timeouts.client));
        let log = Box::new(AccessLog {
            client: ctx.peer,
            frontend: frontend.name.clone(),
            pool: pool.name.clone(),
            server: None,
            started,
            connect_ms: None,
            response_ms: None,
            status: 0,
            bytes: 0,
            termination: Termination::NORMAL,
            cookie: [b'-', b'-'],
            retries: 0,
            request: request_line,
            completed: false,
            timed: [Some(frontend.counters.clone()), Some(pool.counters.clone())],
            conns: [0; 4],
            queue_ms: 0,
            queues: [0, 0],
            // An HTTP/1 request (its body, its tunnel) lives in its connection's task, which
            // a graceful stop already waits for; an HTTP/2 stream runs in a task of hyper's,
            // which may outlive its connection's.
            in_flight: (!h1).then(|| ctx.tracker.token()),
        });
        pool.counters.add(Total::Requests, 1);
        Stream {
            frontend: frontend.counters.clone(),
            retries_left: settings.retries,
            pool,
            view,
            cookie,
            key,
            client_upgrade,
            parts,
            passed,
            body,
            resendable,
            log,
            tried: Vec::new(),
            fresh_only: false,
        }
    }

    /// Picks, tries, and retries until a server answers or there is nothing left to try.
    async fn run(mut self, ctx: &ClientContext) -> Response<ProxyBody> {
        loop {
            let Some(choice) = self.choose() else {
                return self.unavailable(ctx, Termination::NO_SERVER);
            };
            let Some((choice, served)) = self.admit(choice).await else {
                return self.unavailable(ctx, Termination::QUEUE_TIMEOUT);
            };
            let target = self.record(choice);
            let counters = [target.upstream.counters.clone(), self.pool.counters.clone()];
            let session = SessionGuard::start(counters);
            target.upstream.counters.add(Total::Requests, 1);
            let tried = attempt(
                &target.upstream,
                Outgoing {
                    parts: self.parts,
                    passed: self.passed,
                    forwarding: &ctx.forwarding,
                },
                &mut self.body,
                &self.view.settings.timeouts,
                self.fresh_only,
                &mut self.log,
            );
            match tried.await {
                Ok(answer) => return self.respond(ctx, target, answer, session, served),
                Err(error) => {
                    drop((session, served));
                    if let Next::GiveUp(status, why) = self.on_failure(ctx, &target, error) {
                        return self.local_error(status, why);
                    }
                }
            }
        }
    }

    /// Asks the pool's current snapshot for a server.
    fn choose(&self) -> Option<Choice> {
        choose(
            &self.pool,
            self.excluded(),
            self.key.as_deref(),
            self.cookie.as_client(),
        )
    }

    /// Servers a redispatch must avoid: those the request failed on.
    fn excluded(&self) -> &[ServerId] {
        if self.view.settings.redispatch {
            &self.tried
        } else {
            &[]
        }
    }

    /// Takes a slot on the chosen server, waiting for one (up to `timeout_queue`) when it is
    /// at its `maxconn`: in the server's queue when the request is bound to it (sticky
    /// cookie, hash key), else in the pool's, for whichever server frees one first. `None`:
    /// the wait timed out.
    async fn admit(&mut self, choice: Choice) -> Option<(Choice, Served)> {
        if let Some(served) = try_serve(&choice.upstream, &self.pool.queue) {
            if matches!(served, Served::Slot { .. }) {
                let counters: [&Counters; 2] = [&self.pool.counters, &choice.upstream.counters];
                record_wait(counters, Duration::ZERO);
            }
            return Some((choice, served));
        }
        let pool_queue = self.pool.queue.clone();
        let since = Instant::now();
        let deadline = since + self.view.settings.timeouts.queue;
        let first = choice.upstream.clone();
        let bound = matches!(
            choice.pick.reason,
            PickReason::Sticky | PickReason::Hashed { .. }
        );
        let admitted = if bound {
            let upstream = choice.upstream.clone();
            let queue = &upstream.limit.queue;
            let counters = &upstream.counters;
            let served = queue
                .wait(deadline, Some(counters), || {
                    try_serve(&upstream, &pool_queue)
                })
                .await;
            served.map(|served| (choice, served))
        } else {
            let (pool, exclude) = (&self.pool, self.excluded());
            let (key, cookie) = (self.key.as_deref(), self.cookie.as_client());
            pool_queue
                .wait(deadline, Some(&self.pool.counters), || {
                    let choice = choose(pool, exclude, key, cookie)?;
                    let served = try_serve(&choice.upstream, &pool_queue)?;
                    Some((choice, served))
                })
                .await
        };
        let waited = since.elapsed();
        self.log.queue_ms = waited.as_millis() as u64;
        let server = admitted
            .as_ref()
            .map_or(&first, |(choice, _)| &choice.upstream);
        self.log.queues = [server.limit.queue.current(), pool_queue.current()];
        if let Some((choice, _)) = &admitted {
            record_wait([&self.pool.counters, &choice.upstream.counters], waited);
        }
        admitted
    }

    /// Records the pick: balancing counters, the log's server and cookie flags.
    fn record(&mut self, choice: Choice) -> Target {
        let Choice { pick, upstream } = choice;
        if pick.reason == PickReason::Redispatched {
            self.pool.counters.add(Total::Redispatches, 1);
        }
        upstream.counters.add(Total::Selected, 1);
        self.pool.counters.add(Total::Selected, 1);
        self.log.server = Some(upstream.name.clone());
        self.log.cookie = [
            pick.cookie.flag() as u8,
            if pick.set_cookie {
                b'I'
            } else if pick.cookie == CookieSeen::NotApplicable {
                b'-'
            } else {
                b'N'
            },
        ];
        Target {
            id: pick.server,
            upstream,
            set_cookie: pick.set_cookie,
        }
    }

    /// Counts and logs a failed try, and says whether to try again.
    fn on_failure(&mut self, ctx: &ClientContext, target: &Target, error: AttemptError) -> Next {
        let upstream = &target.upstream;
        let pool = &self.pool.counters;
        let retryable = match error {
            AttemptError::StaleReused => {
                // Free: nothing reached the server. Not counted as a retry.
                self.fresh_only = true;
                return Next::Retry;
            }
            AttemptError::Connect(e) => {
                tracing::debug!(server = %upstream.name, "{e}");
                upstream.counters.add(Total::ConnectErrors, 1);
                pool.add(Total::ConnectErrors, 1);
                report_traffic(&ctx.passive, &self.pool, target.id, false);
                self.log.termination = Termination::NO_SERVER;
                true
            }
            AttemptError::NoResponse(NoResponse::ClientBody(e)) => {
                return self.client_body_failed(&e);
            }
            AttemptError::NoResponse(e) => {
                tracing::debug!(server = %upstream.name, "no response: {e}");
                upstream.counters.add(Total::ResponseErrors, 1);
                pool.add(Total::ResponseErrors, 1);
                self.log.termination = Termination::SERVER_NO_HEADERS;
                self.resendable
            }
            AttemptError::Killed => {
                self.log.termination = Termination::DOWN_HEADERS;
                self.resendable
            }
            AttemptError::Timeout => {
                upstream.counters.add(Total::ResponseErrors, 1);
                pool.add(Total::ResponseErrors, 1);
                self.log.termination = Termination::SERVER_TIMEOUT_HEADERS;
                self.log.conns = self.conns(ctx, Some(upstream));
                return Next::GiveUp(
                    StatusCode::GATEWAY_TIMEOUT,
                    "The server didn't respond in time.",
                );
            }
        };
        if !retryable || self.retries_left == 0 {
            self.log.conns = self.conns(ctx, Some(upstream));
            return self.give_up();
        }
        self.retries_left -= 1;
        self.log.retries += 1;
        upstream.counters.add(Total::Retries, 1);
        pool.add(Total::Retries, 1);
        self.tried.push(target.id);
        Next::Retry
    }

    /// The client's body broke while it was being sent: not the server's fault, and
    /// nothing to retry.
    fn client_body_failed(&mut self, error: &BodyError) -> Next {
        self.frontend.add(Total::RequestErrors, 1);
        if BodyError::is_idle(error, Side::Client) {
            self.log.termination = Termination::CLIENT_TIMEOUT_DATA;
            return Next::GiveUp(
                StatusCode::REQUEST_TIMEOUT,
                "The client took too long to send its request.",
            );
        }
        if BodyError::client_failure(error) == Some(ClientBodyFailure::Malformed) {
            self.log.termination = Termination::REFUSED_BODY;
            return Next::GiveUp(
                StatusCode::BAD_REQUEST,
                "The request body's framing is invalid.",
            );
        }
        self.log.termination = Termination::CLIENT_ABORT_DATA;
        self.frontend.add(Total::ClientAborts, 1);
        Next::GiveUp(
            StatusCode::BAD_REQUEST,
            "The client closed before the end of its request.",
        )
    }

    /// The answer once retries are exhausted, by how the last try failed.
    fn give_up(&self) -> Next {
        if self.log.termination == Termination::NO_SERVER {
            Next::GiveUp(
                StatusCode::SERVICE_UNAVAILABLE,
                "No server is available to handle this request.",
            )
        } else {
            Next::GiveUp(
                StatusCode::BAD_GATEWAY,
                "The server returned an invalid or incomplete response.",
            )
        }
    }

    /// A server answered: count and log it, rewrite its headers, and stream its body back
    /// (or open a tunnel when it switched protocols).
    fn respond(
        mut self,
        ctx: &ClientContext,
        target: Target,
        answer: Answer,
        session: SessionGuard<2>,
        served: Served,
    ) -> Response<ProxyBody> {
        let Answer {
            response: mut resp,
            conn,
            framing,
            keep_alive,
        } = answer;
        let upstream = target.upstream;
        // A retry that succeeded ends normally, whatever the failed tries set.
        self.log.termination = Termination::NORMAL;
        self.log.conns = self.conns(ctx, Some(&upstream));
        if self.fresh_only || !self.tried.is_empty() {
            report_traffic(&ctx.passive, &self.pool, target.id, true);
        }
        let waited = self.log.started.elapsed();
        self.log.response_ms = Some(waited.as_millis() as u64);
        for c in [&self.pool.counters, &upstream.counters] {
            c.response_time.add(waited);
            c.observe_response(waited);
        }
        let status = resp.status();
        self.log.status = status.as_u16();
        // The stream ends here: its counter sets move on to the body (or tunnel).
        let counters = [
            self.frontend,
            self.pool.counters.clone(),
            upstream.counters.clone(),
        ];
        for c in &counters {
            c.response(status.as_u16());
        }
        let upgraded = status == StatusCode::SWITCHING_PROTOCOLS && self.client_upgrade;
        headers::prepare_client_response(resp.headers_mut(), upgraded);
        if let (true, Some(sticky)) = (target.set_cookie, self.view.router.sticky()) {
            if let Ok(v) = HeaderValue::from_str(&sticky.set_cookie(&upstream.name)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            if sticky.nocache {
                headers::mark_private(resp.headers_mut());
            }
        }
        if upgraded {
            self.log.request = self.log.request.detached();
            // The tunnel keeps its server slot, unless tunnels do not count against maxconn.
            let served = self.view.settings.maxconn_counts_tunnels.then_some(served);
            let tunnel = Box::new(tunnel::Tunnel {
                server: conn,
                counters,
                idle_timeout: self.view.settings.timeouts.tunnel,
                hard_stop: ctx.hard_stop.clone(),
                session,
                served,
                log: self.log,
            });
            // The session writes the 101 head, then runs the tunnel on its connection.
            return Response::from_parts(resp.into_parts().0, ProxyBody::tunnel(tunnel));
        }
        drop(session);
        let (parts, ()) = resp.into_parts();
        let body = ServerBody::new(conn, framing, keep_alive, upstream, served);
        let body = Idle::new(body, Side::Server, self.view.settings.timeouts.server);
        let body = ProxyBody::upstream(body).with_accounting(counters, Some(self.log));
        Response::from_parts(parts, body)
    }

    /// The access log's `actconn/feconn/beconn/srv_conn`: client connections to the process
    /// and to the frontend, requests in flight in the pool and on the server (this one
    /// included).
    fn conns(&self, ctx: &ClientContext, server: Option<&Upstream>) -> [u64; 4] {
        [
            Counters::get(&ctx.process.cur_sessions),
            Counters::get(&self.frontend.cur_sessions),
            Counters::get(&self.pool.counters.cur_sessions),
            server.map_or(0, |s| Counters::get(&s.counters.cur_sessions)),
        ]
    }

    /// 503: no server to try, or none freed a slot within `timeout_queue`.
    fn unavailable(mut self, ctx: &ClientContext, termination: Termination) -> Response<ProxyBody> {
        self.log.termination = termination;
        self.log.conns = self.conns(ctx, None);
        self.local_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "No server is available to handle this request.",
        )
    }

    /// An answer made by the proxy itself (no server answered), logged right away.
    fn local_error(mut self, status: StatusCode, why: &'static str) -> Response<ProxyBody> {
        let log = &mut self.log;
        log.status = status.as_u16();
        self.frontend.response(status.as_u16());
        self.pool.counters.response(status.as_u16());
        let resp = error_response(status, why);
        log.bytes = resp.body().size_hint().exact().unwrap_or(0);
        log.completed = true;
        log.finish();
        resp
    }
}

/// Asks `pool`'s current snapshot for a server, with the servers' load when the pool limits
/// or balances it (`maxconn`, `hash_balance_factor`).
fn choose(
    pool: &PoolSlot,
    exclude: &[ServerId],
    key: Option<&[u8]>,
    cookie: ClientCookie<'_>,
) -> Option<Choice> {
    let view = pool.view.load();
    let in_flight = |id: ServerId| view.in_flight(id);
    let maxconn = |id: ServerId| view.upstream(id).limit.maxconn();
    let pick = view.router.pick(&PickRequest {
        key,
        cookie,
        exclude,
        loads: view.load_aware.then(|| Loads::new(&in_flight, &maxconn)),
    })?;
    let upstream = view.upstream(pick.server).clone();
    Some(Choice { pick, upstream })
}

/// The sticky cookie a request carries, if the pool has one.
fn request_cookie(sticky: Option<&StickyCookie>, fields: &http::HeaderMap) -> RequestCookie {
    let Some(sticky) = sticky else {
        return RequestCookie::Absent;
    };
    let values = fields.get_all(header::COOKIE);
    match sticky.find(values.iter().map(HeaderValue::as_bytes)) {
        ClientCookie::Absent => RequestCookie::Absent,
        ClientCookie::Invalid => RequestCookie::Invalid,
        ClientCookie::Value(v) => RequestCookie::Value(v.to_owned()),
    }
}

fn report_traffic(passive: &PassiveReports, pool: &PoolSlot, server: ServerId, connected: bool) {
    passive.report(TrafficReport {
        pool: pool.id,
        server,
        connected,
    });
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
