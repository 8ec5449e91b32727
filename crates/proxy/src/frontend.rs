//! Listeners: accept connections and serve HTTP/1.1 on them with hyper, each request going
//! through [`crate::forward`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::control::ControlHandle;
use crate::counters::{Counters, SessionGuard};
use crate::forward::{self, ClientContext};
use crate::routing::FrontendView;

/// Largest request head accepted (431 beyond).
pub(crate) const MAX_HEAD: usize = 64 * 1024;

/// Binds a listening socket the way a proxy wants it: `SO_REUSEADDR` (restart while old
/// connections linger in TIME_WAIT) and a deep backlog.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// What a listener's connections share.
#[derive(Clone, Debug)]
pub(crate) struct ListenerContext {
    pub(crate) view: Arc<ArcSwap<FrontendView>>,
    pub(crate) control: ControlHandle,
    pub(crate) client_timeout: Duration,
    pub(crate) process: Arc<Counters>,
    pub(crate) tls: bool,
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
        control: ctx.control.clone(),
        peer,
        tls: ctx.tls,
        hard_stop: ctx.hard_stop.clone(),
    });
    serve_http1(TokioIo::new(stream), client, &ctx).await;
}

/// Serves HTTP/1.1 on one client connection until it closes or a stop asks it to.
pub(crate) async fn serve_http1<I>(io: I, client: Arc<ClientContext>, ctx: &ListenerContext)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.client_timeout)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD);
    let conn = builder
        .serve_connection(io, forward::service(client))
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
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
