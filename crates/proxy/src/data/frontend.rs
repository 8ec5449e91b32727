//! What a frontend's connections share ([`ListenerContext`]), and what a frontend answers
//! around forwarding a request: `monitor_uri`, answered here; the HTTPS policy
//! (`redirect_http` for plain requests, `Strict-Transport-Security` on HTTPS answers).

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Response, StatusCode};
use tokio_util::task::TaskTracker;

use crate::counters::{Counters, Total};
use crate::data::admission::Admission;
use crate::data::body::ProxyBody;
use crate::data::forward::{self, ClientContext};
use crate::data::passed::PassedFields;
use crate::data::passive::PassiveReports;
use crate::data::request_body::RequestBody;
use crate::data::routing::FrontendView;
use crate::data::standby::Standby;
use crate::data::tripwire::Tripwire;
use crate::tls::{HttpsPolicy, TlsFrontend};

/// What a listener's connections share.
#[derive(Clone, Debug)]
pub(crate) struct ListenerContext {
    pub(crate) view: Arc<ArcSwap<FrontendView>>,
    pub(crate) passive: PassiveReports,
    /// Inactivity of a client: TLS handshake, writing answers, HTTP/2 pings.
    pub(crate) client_timeout: Duration,
    /// Receiving a complete request head (`timeout_http_request`; 408 beyond).
    pub(crate) head_timeout: Duration,
    pub(crate) process: Arc<Counters>,
    /// Set on HTTPS listeners: the frontend's TLS settings and certificates.
    pub(crate) tls: Option<Arc<TlsFrontend>>,
    /// Redirect to HTTPS and HSTS, as the frontend's current configuration says.
    pub(crate) https: Arc<ArcSwap<HttpsPolicy>>,
    /// Stop accepting (the drain; connections close through [`Standby`], which the drain
    /// enters).
    pub(crate) drain: Tripwire,
    /// Close connections gracefully: after their next answer, idle ones after `drain_window`.
    pub(crate) standby: Arc<Standby>,
    /// How long a closing connection that is idle waits for its client's next request
    /// (`drain_window`, at most half of `shutdown_grace`) before it closes.
    pub(crate) drain_window: Duration,
    /// Close everything still open.
    pub(crate) hard_stop: Tripwire,
    pub(crate) tracker: TaskTracker,
    /// The process-wide connection limit.
    pub(crate) admission: Arc<Admission>,
    /// The event loops connections are spread over.
    pub(crate) loops: Arc<crate::data::loops::EventLoops>,
}

/// [`forward::handle`] behind the frontend's own answers: `monitor_uri` is answered 200 here;
/// plain requests are redirected when `redirect_http` is on, HTTPS responses get
/// `Strict-Transport-Security` when `hsts` is set. `passed`: an HTTP/1 request's fields that
/// are not in `parts` (passed on as received).
pub(crate) async fn answer<'c>(
    client: &ClientContext,
    policy: &HttpsPolicy,
    parts: &'c mut Parts,
    passed: Option<&'c PassedFields>,
    body: RequestBody<'c>,
) -> Response<ProxyBody> {
    // One snapshot of the frontend for the whole request, its own answers included.
    let frontend = client.frontend.load_full();
    if let Some(resp) = monitor(&frontend, parts) {
        return resp;
    }
    if !client.tls
        && let Some(resp) = redirect(&frontend, policy, parts, passed)
    {
        return resp;
    }
    let mut resp = forward::handle(client, frontend, parts, passed, body).await;
    if let (true, Some(hsts)) = (client.tls, &policy.hsts) {
        resp.headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    resp
}

/// `monitor_uri`: 200 from the frontend itself, whatever the servers' state (as HAProxy's
/// `monitor-uri`), counted as a frontend request; the request body, if any, is not read.
fn monitor(frontend: &FrontendView, req: &Parts) -> Option<Response<ProxyBody>> {
    let uri = frontend.monitor_uri.as_deref()?;
    if req.uri.path() != uri {
        return None;
    }
    count_own_answer(frontend, StatusCode::OK);
    const READY: &str = "veza-lb: ready\n";
    let mut resp = Response::new(ProxyBody::full(bytes::Bytes::from_static(READY.as_bytes())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(READY.len()));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Some(resp)
}

/// A request the frontend answered itself, counted as the frontend's.
fn count_own_answer(frontend: &FrontendView, status: StatusCode) {
    frontend.counters.add(Total::Requests, 1);
    frontend.counters.response(status.as_u16());
}

/// `redirect_http`: a permanent redirect to the same URL over HTTPS (308 keeps the method
/// and body, unlike 301). Requests without a host are left to [`forward`] to refuse.
fn redirect(
    frontend: &FrontendView,
    policy: &HttpsPolicy,
    req: &Parts,
    passed: Option<&PassedFields>,
) -> Option<Response<ProxyBody>> {
    policy.redirect_port?;
    let host = match req.headers.get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => match passed.and_then(|p| p.get(b"host")) {
            Some(h) => std::str::from_utf8(h).ok()?,
            None => req.uri.authority()?.as_str(),
        },
    };
    let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = policy.location(host, pq)?;
    count_own_answer(frontend, StatusCode::PERMANENT_REDIRECT);
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(resp)
}
