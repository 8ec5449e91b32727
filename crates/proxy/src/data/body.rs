//! The body the proxy answers clients with, and the access log written when it ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h1::{Decoder, Framing};
use hyper::body::{Body, Frame, SizeHint};

use crate::counters::{Counters, Total};
use crate::data::accesslog::AccessLog;
use crate::data::framed::{self, Decoded};
use crate::data::passed::PassedFields;
use crate::data::queue::Served;
use crate::data::termination::Termination;
use crate::data::timeout::{BodyError, Idle, Side};
use crate::data::tunnel::Tunnel;
use crate::data::upstream::{ServerConn, Upstream};

/// A response body: the server's, streamed through, or one the proxy made itself.
pub struct ProxyBody {
    kind: Kind,
    /// Counter sets that `bout` is added to (frontend, pool, server).
    counters: Option<[Arc<Counters>; 3]>,
    log: Option<Box<AccessLog>>,
}

// One per response, moved once into hyper: boxing the large variant would cost an allocation
// per request to save a copy of a few hundred bytes.
#[allow(clippy::large_enum_variant)]
enum Kind {
    Full(Option<Bytes>),
    Upstream(Idle<ServerBody>),
    /// The server switched protocols: no body, a tunnel for the session to run once the
    /// `101` head is written.
    Tunnel(Option<Box<Tunnel>>),
}

impl ProxyBody {
    /// A complete body made by the proxy.
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full(Some(bytes.into())),
            counters: None,
            log: None,
        }
    }

    /// An empty body.
    pub(crate) fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A server's body, streamed through.
    pub(crate) fn upstream(body: Idle<ServerBody>) -> Self {
        Self {
            kind: Kind::Upstream(body),
            counters: None,
            log: None,
        }
    }

    /// The answer to an upgrade: the tunnel the client's connection becomes.
    pub(crate) fn tunnel(tunnel: Box<Tunnel>) -> Self {
        Self {
            kind: Kind::Tunnel(Some(tunnel)),
            counters: None,
            log: None,
        }
    }

    /// The tunnel this body stands for, if it answers an upgrade.
    pub(crate) fn take_tunnel(&mut self) -> Option<Box<Tunnel>> {
        match &mut self.kind {
            Kind::Tunnel(t) => t.take(),
            _ => None,
        }
    }

    /// The server's connection this answer came from, while the body streams.
    fn server_conn(&mut self) -> Option<&mut ServerConn> {
        match &mut self.kind {
            Kind::Upstream(body) => body.get_mut().conn.as_deref_mut(),
            Kind::Tunnel(_) | Kind::Full(_) => None,
        }
    }

    /// The server's fields that go with this answer's head, passed on as received (none for
    /// an answer the proxy made; an upgrade's are in its tunnel's connection).
    pub(crate) fn server_fields(&self) -> Option<&PassedFields> {
        match &self.kind {
            Kind::Upstream(body) => body.get_ref().conn.as_deref()?.passed.as_ref(),
            Kind::Tunnel(_) | Kind::Full(_) => None,
        }
    }

    /// Appends the server's passed fields to `map` (for a client hyper writes to).
    pub(crate) fn merge_server_fields(&mut self, map: &mut http::HeaderMap) {
        if let Some(conn) = self.server_conn()
            && let Some(passed) = conn.passed.take()
        {
            conn.head.fields = passed.into_map(map);
        }
    }

    /// Once the head is written: gives the answer's field map back to the server connection
    /// it was read from, emptied, and lets the passed fields go (their list goes back to the
    /// connection's head), so that the connection's next answer reuses their allocations
    /// and nothing keeps the head's bytes.
    pub(crate) fn head_written(&mut self, mut map: http::HeaderMap) {
        if let Some(conn) = self.server_conn() {
            conn.forget_passed();
            map.clear();
            conn.fields = map;
        }
    }

    /// Counts bytes sent into these counter sets, and writes `log` when the body ends.
    pub(crate) fn with_accounting(
        mut self,
        counters: [Arc<Counters>; 3],
        log: Option<Box<AccessLog>>,
    ) -> Self {
        self.counters = Some(counters);
        self.log = log;
        self
    }

    fn count(&mut self, n: usize) {
        for c in self.counters.iter().flatten() {
            c.add(Total::BytesOut, n as u64);
        }
        if let Some(log) = &mut self.log {
            log.bytes += n as u64;
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let polled = match &mut this.kind {
            Kind::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .filter(|b| !b.is_empty())
                    .map(|b| Ok(Frame::data(b))),
            ),
            Kind::Upstream(body) => Pin::new(body).poll_frame(cx),
            Kind::Tunnel(_) => Poll::Ready(None),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len();
                    this.count(n);
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(log) = &mut this.log {
                    // Lower case: the server timed out rather than failed (HAProxy's `sD`).
                    log.termination = if BodyError::is_idle(e, Side::Server) {
                        Termination::SERVER_TIMEOUT_DATA
                    } else {
                        Termination::SERVER_ABORT_DATA
                    };
                }
                for c in this.counters.iter().flatten() {
                    c.add(Total::ServerAborts, 1);
                }
            }
            Poll::Ready(None) => {
                if let Some(log) = &mut this.log {
                    log.completed = true;
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(bytes) => bytes.as_ref().is_none_or(Bytes::is_empty),
            Kind::Upstream(body) => body.is_end_stream(),
            Kind::Tunnel(_) => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(body) => body.size_hint(),
            Kind::Tunnel(_) => SizeHint::with_exact(0),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        if let Some(mut tunnel) = self.take_tunnel() {
            // The 101 never reached the client.
            tunnel.log.termination = Termination::CLIENT_ABORT_DATA;
            tunnel.log.finish();
        }
        let Some(mut log) = self.log.take() else {
            return;
        };
        let ended = log.completed || self.is_end_stream();
        if !ended && log.termination.is_normal() {
            // The client went away before the body was sent in full.
            log.termination = Termination::CLIENT_ABORT_DATA;
            for c in self.counters.iter().flatten() {
                c.add(Total::ClientAborts, 1);
            }
        }
        log.finish();
    }
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody").finish_non_exhaustive()
    }
}

/// A server's response body, read from the connection the request owns and decoded with the
/// `h1` codec. At its end the connection goes back to the server's idle pool (when the server
/// keeps it alive and nothing was left over); a body dropped early closes it.
pub(crate) struct ServerBody {
    conn: Option<Box<ServerConn>>,
    decoder: Decoder,
    framing: Framing,
    keep_alive: bool,
    upstream: Arc<Upstream>,
    /// The request's `maxconn` slot on the server, given back when the body ends (or is
    /// dropped: the client went away).
    served: Option<Served>,
}

impl ServerBody {
    pub(crate) fn new(
        conn: Box<ServerConn>,
        framing: Framing,
        keep_alive: bool,
        upstream: Arc<Upstream>,
        served: Served,
    ) -> Self {
        Self {
            conn: Some(conn),
            decoder: Decoder::new(framing),
            framing,
            keep_alive,
            upstream,
            served: Some(served),
        }
    }

    /// Parks the connection if the body is complete and the server keeps it alive; the
    /// server's slot is free again.
    fn release(&mut self) {
        if self.decoder.is_done() {
            self.served = None;
        }
        if self.decoder.is_done()
            && self.keep_alive
            && let Some(conn) = self.conn.take()
        {
            self.upstream.checkin(conn);
        }
    }
}

fn shut() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the server's sessions were shut down",
    )
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // `shutdown-sessions` shut the socket down (waking a wait for more below).
            if conn.is_killed() {
                this.conn = None;
                return Poll::Ready(Some(Err(shut())));
            }
            match framed::decode(&mut this.decoder, &mut conn.read)? {
                Decoded::Data(data) => {
                    if this.decoder.is_done() {
                        this.release();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Decoded::End => {
                    this.release();
                    return Poll::Ready(None);
                }
                Decoded::More => {}
            }
            framed::make_room(&mut conn.read);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.stream), cx, &mut conn.read) {
                Poll::Ready(Ok(0)) => {
                    this.conn = None;
                    return match this.decoder.finish() {
                        Ok(()) => Poll::Ready(None),
                        Err(e) => Poll::Ready(Some(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            e.reason(),
                        )))),
                    };
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Empty => SizeHint::with_exact(0),
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Chunked | Framing::UntilClose => SizeHint::default(),
        }
    }
}

impl Drop for ServerBody {
    fn drop(&mut self) {
        // hyper stops polling a body that says it has ended: park the connection here then.
        self.release();
    }
}
