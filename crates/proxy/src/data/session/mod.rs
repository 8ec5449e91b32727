//! An HTTP/1.1 client connection, served on the `h1` codec: the request task owns the
//! socket and its buffers, parses each request head in place, lends the socket to the
//! request's body while the request is forwarded, then writes the answer
//! ([`response`]). No task, channel or timer per request: the connection's one timer
//! ([`Deadline`]) bounds every wait on the client.
//!
//! The session is HAProxy's "HTTP/1 mux" for one client: it refuses a head the codec cannot
//! frame unambiguously before anything is routed (400, 414, 431), answers 408 to a head that
//! does not arrive within `timeout_http_request` (under TLS too), keeps the connection alive
//! as the client asks and the exchange allows, and turns into a tunnel when a server switches
//! protocols. In standby and when the frontend drains, the next answer closes the connection
//! (`Connection: close`) and an idle one is closed only at the end of the drain window, never
//! under a request its client may be sending.

mod response;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use h1::{Decoder, HeadError, Limits, Parse, RequestHead};
use http::request::Parts;
use http::{Method, Request, StatusCode, Uri, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::data::accesslog::RequestLine;
use crate::data::deadline::{Deadline, Elapsed};
use crate::data::forward::{self, ClientContext, Refusal};
use crate::data::framed::{self, READ_BUFFER};
use crate::data::frontend::{self, ListenerContext};
use crate::data::headers;
use crate::data::passed::PassedFields;
use crate::data::request_body::{ClientStream, H1Body, RequestBody};
use crate::data::tunnel::{self, Tunnel};

use response::{Exchange, Outcome};

/// Limits on a client's request head: HAProxy's `tune.bufsize` for the head, and a bound on
/// the target and the number of fields.
const REQUEST_LIMITS: Limits = Limits {
    max_head: headers::MAX_HEAD,
    max_uri: headers::MAX_URI_LEN,
    max_fields: 100,
};

/// Serves HTTP/1.1 on one client connection until it closes, times out, has answered its
/// last request of a drain (or stayed idle through the drain window), or the proxy stops; or
/// until a server switches protocols, when it returns the tunnel the connection became, for
/// the caller to run ([`Upgraded::run`]) on a task of its own: a tunnel needs a fraction of
/// the state an HTTP/1 exchange does, and may live for hours.
pub(crate) async fn serve<S: ClientStream>(
    io: S,
    client: Arc<ClientContext>,
    ctx: &ListenerContext,
) -> Option<Upgraded<S>> {
    let mut conn = Conn {
        io,
        read: BytesMut::with_capacity(READ_BUFFER),
        write: Vec::with_capacity(1024),
        head: RequestHead::default(),
        decoder: Decoder::new(h1::Framing::Empty),
        request: Request::new(()).into_parts().0,
        passed: None,
        deadline: Deadline::new(),
    };
    let end = tokio::select! {
        end = conn.serve_requests(&client, ctx) => end,
        () = ctx.hard_stop.tripped() => return None,
    };
    match end {
        End::Close => {
            let _ = conn
                .deadline
                .now_or_by(|| Instant::now() + LINGER, conn.io.shutdown())
                .await;
        }
        End::Linger => conn.linger().await,
        End::Tunnel(tunnel) => {
            // What the client sent after its upgrade request belongs to the new protocol.
            let early = conn.shed_for_tunnel();
            return Some(Upgraded {
                io: conn.io,
                tunnel,
                early,
            });
        }
    }
    None
}

/// A client connection that became a tunnel.
pub(crate) struct Upgraded<S> {
    io: S,
    tunnel: Box<Tunnel>,
    /// What the client sent after its upgrade request.
    early: Vec<u8>,
}

impl<S: ClientStream> Upgraded<S> {
    /// Carries the tunnel until either side ends it.
    pub(crate) async fn run(mut self) {
        tunnel::run(self.tunnel, &mut self.io, &self.early).await;
    }
}

/// How long a closing connection keeps reading what the client still sends, so that the
/// answer is not destroyed by a reset (a socket closed with unread input sends RST).
const LINGER: Duration = Duration::from_secs(1);
/// How much it reads at most meanwhile.
const LINGER_BYTES: usize = 1024 * 1024;

/// How a connection's requests ended.
enum End {
    /// Close now.
    Close,
    /// The client may still be sending (a refused head, an unread body): stop writing, and
    /// read and discard until it closes too, within bounds.
    Linger,
    /// The server switched protocols: the connection is a tunnel now.
    Tunnel(Box<Tunnel>),
}

/// A connection's view of standby (which a drain enters).
struct Drain<'w, D> {
    /// The wait on standby, for the connection's whole life.
    wait: Pin<&'w mut D>,
    /// How long an idle connection is kept once the drain starts ([`ListenerContext`]).
    window: Duration,
    /// Set when the drain was seen: an idle connection closes then.
    close_idle_by: Option<Instant>,
}

/// One client connection and the buffers its requests reuse.
struct Conn<S> {
    io: S,
    /// Bytes read from the client and not consumed yet (pipelined requests stay here).
    read: BytesMut,
    /// The answer's head (and small bodies) being written.
    write: Vec<u8>,
    /// The last request head parsed; its field list serves every request.
    head: RequestHead,
    /// The current request's body framing.
    decoder: Decoder,
    /// The current request's head as `http` parts, rewritten in place for the server: the
    /// fields the proxy reads or rewrites.
    request: Parts,
    /// The current request's other fields, passed on as received; its list is the head's
    /// field list, lent.
    passed: Option<PassedFields>,
    /// The timer of every wait on the client: a head, a write, a shutdown.
    deadline: Deadline,
}

/// How waiting for a request head ended.
enum HeadRead {
    /// A complete head is parsed in [`Conn::head`].
    Complete,
    /// The connection closed, or stayed idle past the timeout or the drain window.
    Closed,
    /// The head cannot be accepted (or did not arrive in time): answer this and close.
    Refused(Refusal),
}

impl<S: ClientStream> Conn<S> {
    /// Serves requests until the connection ends; returns the tunnel the last answer opened.
    async fn serve_requests(&mut self, client: &ClientContext, ctx: &ListenerContext) -> End {
        // One wait on standby (which a drain enters) for the connection's whole life: it
        // registers once, not once per request.
        let closing = ctx.standby.wire();
        let wait = closing.tripped();
        let mut drain = Drain {
            wait: pin!(wait),
            window: ctx.drain_window,
            close_idle_by: None,
        };
        loop {
            let exchange = match self.read_head(ctx.head_timeout, &mut drain).await {
                HeadRead::Complete => Exchange::of(&self.head, &self.read),
                HeadRead::Closed => return End::Close,
                HeadRead::Refused(refusal) => {
                    let resp = refuse(client, refusal);
                    self.respond(resp, Exchange::CLOSE, ctx).await;
                    return End::Linger;
                }
            };
            let resp = match self.request(exchange.expects_continue) {
                Ok((parts, passed, body)) => {
                    let policy = ctx.https.load_full();
                    frontend::answer(client, &policy, parts, Some(passed), body).await
                }
                Err(why) => refuse(client, Refusal::refused(StatusCode::BAD_REQUEST, why)),
            };
            // In standby (a drain), the answer says `Connection: close`.
            let exchange = if closing.is_tripped() {
                exchange.closing()
            } else {
                exchange
            };
            let outcome = self.respond(resp, exchange, ctx).await;
            self.forget_request();
            match outcome {
                Outcome::KeepAlive => {}
                Outcome::Close if self.read.is_empty() && self.decoder.is_done() => {
                    return End::Close;
                }
                Outcome::Close => return End::Linger,
                Outcome::Tunnel(tunnel) => return End::Tunnel(tunnel),
            }
        }
    }

    /// Half-closes, then discards what the client still sends until it closes, for at most
    /// [`LINGER`] and [`LINGER_BYTES`].
    async fn linger(&mut self) {
        let deadline = Instant::now() + LINGER;
        if tokio::time::timeout_at(deadline, self.io.shutdown())
            .await
            .is_err()
        {
            return;
        }
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            self.read.clear();
            self.read.reserve(READ_BUFFER);
            match tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.read)).await {
                Ok(Ok(n)) if n > 0 => discarded += n,
                _ => return,
            }
        }
    }

    /// Reads until a request head is complete. The timeout runs from the end of the last
    /// answer: a head that started and stalled gets 408, an idle keep-alive connection is
    /// closed without a word (HAProxy's `timeout http-request` and `http-keep-alive`).
    ///
    /// Once the frontend drains, an idle connection is not closed at once: its client may be
    /// sending the next request at this very moment, and would see the connection close under
    /// it. It is kept for `drain_window`, so that a request arriving meanwhile is answered
    /// (with `Connection: close`), and closed only if none comes (HAProxy's
    /// `idle-close-on-response`).
    async fn read_head<D: Future<Output = ()>>(
        &mut self,
        timeout: Duration,
        drain: &mut Drain<'_, D>,
    ) -> HeadRead {
        let mut deadline = None;
        loop {
            if !self.read.is_empty() {
                match self.head.parse(&self.read, &REQUEST_LIMITS) {
                    Ok(Parse::Complete) => return HeadRead::Complete,
                    Ok(Parse::Partial) => {}
                    Err(e) => return HeadRead::Refused(Refusal::refused(status_of(e), e.reason())),
                }
            }
            framed::make_room(&mut self.read);
            let idle = self.read.is_empty();
            let close_idle_by = drain.close_idle_by.filter(|_| idle);
            let by = || {
                let at = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                close_idle_by.map_or(at, |by| by.min(at))
            };
            let read = self
                .deadline
                .now_or_by(by, self.io.read_buf(&mut self.read));
            let read = tokio::select! {
                r = read => r,
                // Polled until it completes, never after: the window starts once.
                () = drain.wait.as_mut(), if idle && drain.close_idle_by.is_none() => {
                    drain.close_idle_by = Some(Instant::now() + drain.window);
                    continue;
                }
            };
            match read {
                Ok(Ok(0) | Err(_)) => return HeadRead::Closed,
                Ok(Ok(_)) => {}
                Err(Elapsed) if idle => return HeadRead::Closed,
                Err(Elapsed) => return HeadRead::Refused(Refusal::timed_out()),
            }
        }
    }

    /// The parsed head as the request's `http` parts (reusing the connection's: the field
    /// map keeps its allocations from one request to the next) with the fields the proxy
    /// reads or rewrites, the fields passed on as received, both sharing the head's bytes,
    /// and a body that reads from this connection.
    fn request(
        &mut self,
        expects_continue: bool,
    ) -> Result<(&mut Parts, &PassedFields, RequestBody<'_>), &'static str> {
        let head = &mut self.head;
        let bytes = self.read.split_to(head.len).freeze();
        let parts = &mut self.request;
        parts.method = Method::from_bytes(head.method(&bytes)).map_err(|_| "Invalid method.")?;
        parts.uri = Uri::from_maybe_shared(bytes.slice_ref(head.target(&bytes)))
            .map_err(|_| "Invalid request target.")?;
        parts.version = if head.minor == 1 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        };
        self.decoder = Decoder::new(head.framing);
        // Room for the forwarding fields the proxy adds (`X-Forwarded-For`,
        // `X-Forwarded-Proto`, `Forwarded`) and the few it rewrites: a map that grew would
        // allocate.
        parts.headers.reserve(8);
        let passed = self
            .passed
            .insert(PassedFields::of_request(head, bytes, &mut parts.headers));
        let body = H1Body::new(
            &mut self.io,
            &mut self.read,
            &mut self.decoder,
            expects_continue,
        );
        Ok((parts, passed, RequestBody::H1(body)))
    }

    /// Frees the HTTP buffers of a connection that becomes a tunnel (an idle WebSocket must
    /// cost little); returns what the client sent past its upgrade request.
    fn shed_for_tunnel(&mut self) -> Vec<u8> {
        let early = self.read.to_vec();
        self.read = BytesMut::new();
        self.write = Vec::new();
        self.head = RequestHead::default();
        self.request = Request::new(()).into_parts().0;
        self.passed = None;
        early
    }

    /// Forgets the last request's head, keeping the allocations: nothing may keep the read
    /// buffer's bytes alive once the answer is written, or the next read would need a new
    /// buffer.
    fn forget_request(&mut self) {
        if let Some(passed) = self.passed.take() {
            self.head.fields = passed.into_list();
        }
        let parts = &mut self.request;
        parts.headers.clear();
        parts.uri = Uri::from_static("/");
        parts.extensions.clear();
    }
}

/// A request head refused before routing, answered and logged by the frontend.
fn refuse(
    client: &ClientContext,
    refusal: Refusal,
) -> http::Response<crate::data::body::ProxyBody> {
    let frontend = client.frontend.load();
    frontend.counters.add(crate::counters::Total::Requests, 1);
    forward::refuse(client, &frontend, Instant::now(), RequestLine::Bad, refusal)
}

fn status_of(e: HeadError) -> StatusCode {
    StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST)
}
