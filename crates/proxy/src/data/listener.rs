//! Listeners: accept connections, terminate TLS on HTTPS ones, and serve HTTP/1.1 (or HTTP/2
//! when a TLS client negotiates `h2`) on them with hyper, each request going through
//! [`crate::data::forward`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::convert::Infallible;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::counters::{Counters, SessionGuard};
use crate::data::body::ProxyBody;
use crate::data::client_io::{ClientIo, HeadTimeout};
use crate::data::forward::{self, ClientContext};
use crate::data::headers;
use crate::data::passive::PassiveReports;
use crate::data::routing::FrontendView;
use crate::tls::{HttpsPolicy, TlsFrontend};

/// What a listener's connections share.
#[derive(Clone, Debug)]
pub(crate) struct ListenerContext {
    pub(crate) view: Arc<ArcSwap<FrontendView>>,
    pub(crate) passive: PassiveReports,
    pub(crate) client_timeout: Duration,
    pub(crate) process: Arc<Counters>,
    /// Set on HTTPS listeners: the frontend's TLS settings and certificates.
    pub(crate) tls: Option<Arc<TlsFrontend>>,
    /// Redirect to HTTPS and HSTS, as the frontend's current configuration says.
    pub(crate) https: Arc<ArcSwap<HttpsPolicy>>,
    /// Stop accepting and finish in-flight requests.
    pub(crate) drain: CancellationToken,
    /// Close everything still open.
    pub(crate) hard_stop: CancellationToken,
    pub(crate) tracker: TaskTracker,
}

/// Accepts on `listener` until `stop` (this listener closing) or the drain token.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    ctx: ListenerContext,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.cancelled() => return,
            () = ctx.drain.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx = ctx.clone();
                ctx.tracker.clone().spawn(serve_client(stream, peer, ctx));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on a full fd table.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_client(stream: TcpStream, peer: SocketAddr, ctx: ListenerContext) {
    let _ = stream.set_nodelay(true);
    let view = ctx.view.load();
    let _session = SessionGuard::start([ctx.process.clone(), view.counters.clone()]);
    drop(view);
    let client = Arc::new(ClientContext {
        frontend: ctx.view.clone(),
        passive: ctx.passive.clone(),
        peer,
        tls: ctx.tls.is_some(),
        forwarding: headers::Forwarding::new(peer, ctx.tls.is_some()),
        hard_stop: ctx.hard_stop.clone(),
        process: ctx.process.clone(),
        tracker: ctx.tracker.clone(),
    });
    let Some(tls) = &ctx.tls else {
        let head_timeout = HeadTimeout::default();
        let io = ClientIo::new(stream, &head_timeout);
        return serve_http1(TokioIo::new(io), client, &ctx, Some(&head_timeout)).await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
    let handshake = tokio::time::timeout(ctx.client_timeout, acceptor.accept(stream));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tls.counters.failed();
                return tracing::debug!("TLS handshake with {peer} failed: {e}");
            }
            Err(_) => {
                tls.counters.failed();
                return tracing::debug!("TLS handshake with {peer} timed out");
            }
        },
        () = ctx.drain.cancelled() => return,
    };
    let _open = tls.counters.handshake(stream.get_ref().1);
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_http2(TokioIo::new(stream), client, &ctx).await;
    } else {
        // Under TLS a canned plain-text 408 cannot be written: a stalled head just closes.
        serve_http1(TokioIo::new(stream), client, &ctx, None).await;
    }
}

/// [`forward::handle`] behind the frontend's HTTPS policy: plain requests are redirected when
/// `redirect_http` is on, HTTPS responses get `Strict-Transport-Security` when `hsts` is set.
fn service(
    client: Arc<ClientContext>,
    https: Arc<ArcSwap<HttpsPolicy>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: Request<Incoming>| {
        let client = client.clone();
        let policy = https.load_full();
        async move {
            if !client.tls
                && let Some(resp) = redirect(&client, &policy, &req)
            {
                return Ok(resp);
            }
            let mut resp = forward::handle(client.clone(), req).await?;
            if let (true, Some(hsts)) = (client.tls, &policy.hsts) {
                resp.headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            Ok(resp)
        }
    })
}

/// `redirect_http`: a permanent redirect to the same URL over HTTPS (308 keeps the method
/// and body, unlike 301). Requests without a host are left to [`forward`] to refuse.
fn redirect(
    client: &ClientContext,
    policy: &HttpsPolicy,
    req: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    policy.redirect_port?;
    let host = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = policy.location(host, pq)?;
    let counters = client.frontend.load().counters.clone();
    Counters::add(&counters.requests, 1);
    counters.response(StatusCode::PERMANENT_REDIRECT.as_u16());
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    Some(resp)
}

/// Serves HTTP/2 on one TLS client connection; each stream is one request through
/// [`forward`], sent to the server as HTTP/1.1.
async fn serve_http2<I>(io: I, client: Arc<ClientContext>, ctx: &ListenerContext)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(headers::MAX_HEAD as u32)
        // Pings find clients that vanished without closing.
        .keep_alive_interval(ctx.client_timeout)
        .keep_alive_timeout(ctx.client_timeout);
    let conn = builder.serve_connection(io, service(client, ctx.https.clone()));
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP/2 client connection: {e}");
            }
        }
        () = ctx.drain.cancelled() => {
            // GOAWAY: streams in flight finish, no new ones start.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = ctx.hard_stop.cancelled() => {}
            }
        }
    }
}

/// Serves HTTP/1.1 on one client connection until it closes or a stop asks it to.
pub(crate) async fn serve_http1<I>(
    io: I,
    client: Arc<ClientContext>,
    ctx: &ListenerContext,
    head_timeout: Option<&HeadTimeout>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.client_timeout)
        .keep_alive(true)
        .max_buf_size(headers::MAX_HEAD);
    let conn = builder
        .serve_connection(io, service(client, ctx.https.clone()))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                if e.is_timeout() && let Some(flag) = head_timeout {
                    // The socket answers 408 when `conn` drops it, if a request was half read.
                    flag.fire();
                }
                tracing::debug!("client connection: {e}");
            }
        }
        () = ctx.drain.cancelled() => {
            // Answer what is in flight, then close instead of keeping the connection alive.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = ctx.hard_stop.cancelled() => {}
            }
        }
    }
}
