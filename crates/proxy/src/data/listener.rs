//! Listeners: accept connections, terminate TLS on HTTPS ones, and serve them: HTTP/1.1 with
//! the `h1` codec ([`crate::data::session`]), HTTP/2 (when a TLS client negotiates `h2`) with
//! hyper, each request going through [`crate::data::frontend::answer`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::counters::SessionGuard;
use crate::data::admission::Slot;
use crate::data::body::ProxyBody;
use crate::data::forward::ClientContext;
use crate::data::frontend::{self, ListenerContext};
use crate::data::headers;
use crate::data::loops::Placed;
use crate::data::request_body::{ClientStream, RequestBody};
use crate::data::session;
use crate::data::tripwire::Tripwire;
use crate::tls::{HttpsPolicy, TlsFrontend};

/// Accepts on `listener` until `stop` (this listener closing) or the drain token, while the
/// connection limit allows: at `maxconn`, or out of descriptors, the listener pauses and the
/// excess waits in the kernel's backlog.
///
/// `here` is the index of the event loop it runs on: a connection stays there unless that
/// loop serves more than its share ([`crate::data::loops`]).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    here: usize,
    ctx: ListenerContext,
    stop: Tripwire,
) {
    loop {
        let slot = match ctx.admission.try_admit() {
            Some(slot) => slot,
            None => {
                if ctx.admission.overloaded() {
                    tracing::warn!(
                        "{} connections open, the maxconn limit: not accepting new ones until \
                         some close (they wait in the kernel's backlog)",
                        ctx.admission.max()
                    );
                }
                tokio::select! {
                    slot = ctx.admission.wait_for_slot(Duration::from_secs(1)) => match slot {
                        Some(slot) => slot,
                        None => continue,
                    },
                    () = stop.tripped() => return,
                    () = ctx.drain.tripped() => return,
                }
            }
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = stop.tripped() => return,
            () = ctx.drain.tripped() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let placed = ctx.loops.place(here);
                if placed.index() == here {
                    let ctx = ctx.clone();
                    ctx.tracker
                        .clone()
                        .spawn(serve_client(stream, peer, ctx, (slot, placed)));
                } else {
                    hand_over(stream, peer, &ctx, (slot, placed));
                }
            }
            Err(e) if out_of_descriptors(&e) => {
                drop(slot);
                if ctx.admission.overloaded() {
                    tracing::warn!(
                        "accept failed: {e}: not accepting new connections until descriptors \
                         free up (raise LimitNOFILE= or lower maxconn)"
                    );
                }
                // Descriptors free up as server connections close too, which wakes no one.
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    () = stop.tripped() => return,
                    () = ctx.drain.tripped() => return,
                }
            }
            // A client that reset before being accepted, and the like: not ours to report.
            Err(e) => tracing::debug!("accept failed: {e}"),
        }
    }
}

/// Serves a connection on another event loop: the socket leaves this loop's reactor and
/// joins the other's, so its I/O never crosses threads.
fn hand_over(stream: TcpStream, peer: SocketAddr, ctx: &ListenerContext, held: (Slot, Placed)) {
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => return tracing::debug!("cannot move a connection between loops: {e}"),
    };
    let there = ctx.loops.handle(&held.1).clone();
    let tracker = ctx.tracker.clone();
    let ctx = ctx.clone();
    there.spawn(tracker.track_future(async move {
        match TcpStream::from_std(stream) {
            Ok(stream) => serve_client(stream, peer, ctx, held).await,
            Err(e) => tracing::debug!("cannot move a connection between loops: {e}"),
        }
    }));
}

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`: the process or system has no room for another
/// connection right now.
fn out_of_descriptors(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().is_some_and(|code| {
        [Errno::EMFILE, Errno::ENFILE, Errno::ENOBUFS, Errno::ENOMEM]
            .iter()
            .any(|&errno| errno as i32 == code)
    })
}

/// `place`: the connection's place under `maxconn` and on its event loop, for its lifetime
/// (a tunnel's included).
async fn serve_client(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: ListenerContext,
    place: (Slot, Placed),
) {
    let _ = stream.set_nodelay(true);
    let view = ctx.view.load();
    let session = SessionGuard::start([ctx.process.clone(), view.counters.clone()]);
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
    let held = (place, session);
    match &ctx.tls {
        None => {
            if let Some(upgraded) = session::serve(stream, client, &ctx).await {
                run_tunnel(&ctx, upgraded, held);
            }
        }
        // Boxed: a TLS connection's states (handshake, rustls' session, HTTP/2) are several
        // times a plain one's, and every plain connection's task would be sized for them.
        Some(tls) => Box::pin(serve_tls(stream, client, &ctx, tls)).await,
    }
}

/// Runs a connection's tunnel on a task of its own, which keeps the connection's place
/// (`held`: `maxconn`, event loop, session counts) and is tracked for a graceful stop; the
/// connection's own task, sized for HTTP exchanges, ends.
fn run_tunnel<S, H>(ctx: &ListenerContext, upgraded: session::Upgraded<S>, held: H)
where
    S: ClientStream + 'static,
    H: Send + 'static,
{
    ctx.tracker.spawn(async move {
        upgraded.run().await;
        drop(held);
    });
}

/// Serves a connection of a TLS listener: the handshake, then HTTP/2 or HTTP/1.1 as ALPN
/// says. A tunnel runs here, counted among the listener's TLS connections to its end.
async fn serve_tls(
    stream: TcpStream,
    client: Arc<ClientContext>,
    ctx: &ListenerContext,
    tls: &TlsFrontend,
) {
    let peer = client.peer;
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
        // Not the drain: this connection was accepted, and its client is about to send a
        // request on it; it gets its answer (with `Connection: close`, or HTTP/2's GOAWAY).
        () = ctx.hard_stop.tripped() => return,
    };
    let _open = tls.counters.handshake(stream.get_ref().1);
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_http2(TokioIo::new(stream), client, ctx).await;
    } else if let Some(upgraded) = session::serve(stream, client, ctx).await {
        upgraded.run().await;
    }
}

/// The hyper service of an HTTP/2 connection: each stream is one request through
/// [`frontend::answer`].
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
            let (mut parts, body) = req.into_parts();
            let resp =
                frontend::answer(&client, &policy, &mut parts, None, RequestBody::H2(body)).await;
            // hyper writes the map: the fields passed on as received join it.
            let (mut head, mut body) = resp.into_parts();
            body.merge_server_fields(&mut head.headers);
            Ok(Response::from_parts(head, body))
        }
    })
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
    let closing = ctx.standby.wire();
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("HTTP/2 client connection: {e}");
            }
        }
        () = closing.tripped() => {
            // Standby or a drain: GOAWAY; streams in flight finish, no new ones start.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = ctx.hard_stop.tripped() => {}
            }
        }
    }
}
