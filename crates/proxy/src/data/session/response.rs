//! Writing an answer to an HTTP/1 client: the head from the response's fields, the framing
//! the client can read (the server's length, a known length, chunked, or until close for an
//! HTTP/1.0 client), and the body as it streams in. A head and the body bytes that are
//! already there leave in one write; a large body frame leaves next to what precedes it in
//! one vectored write, without a copy.

use std::io::IoSlice;
use std::pin::Pin;
use std::task::Poll;

use bytes::Bytes;
use h1::RequestHead;
use h1::encode;
use http::header::{self, HeaderMap};
use http::{Response, StatusCode};
use hyper::body::Body;
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use super::Conn;
use crate::data::body::ProxyBody;
use crate::data::frontend::ListenerContext;
use crate::data::passed::PassedFields;
use crate::data::request_body::ClientStream;
use crate::data::tunnel::Tunnel;

/// Body frames up to this size are copied next to the head or chunk line before them;
/// larger ones are written from where they are.
const COPY_MAX: usize = 8 * 1024;
/// Buffered answer bytes are written once they reach this, even if more are ready.
const FLUSH_AT: usize = 64 * 1024;

/// What the request said about the exchange, kept from its head.
#[derive(Debug, Clone, Copy)]
pub(super) struct Exchange {
    /// A `HEAD` request: the answer has no body, whatever its fields say.
    head_request: bool,
    /// `1` for an HTTP/1.1 client, `0` for HTTP/1.0.
    minor: u8,
    /// The client wants the connection kept.
    keep_alive: bool,
    /// `Expect: 100-continue` in HTTP/1.1.
    pub(super) expects_continue: bool,
}

impl Exchange {
    /// For an answer to a head that could not be read: closes after it.
    pub(super) const CLOSE: Self = Self {
        head_request: false,
        minor: 1,
        keep_alive: false,
        expects_continue: false,
    };

    pub(super) fn of(head: &RequestHead, buf: &[u8]) -> Self {
        let expects_continue = head.minor == 1
            && head
                .values(buf, b"expect")
                .any(|v| v.eq_ignore_ascii_case(b"100-continue"));
        Self {
            head_request: head.method(buf) == b"HEAD",
            minor: head.minor,
            keep_alive: head.connection.keep_alive,
            expects_continue,
        }
    }

    /// The same exchange, closing after its answer (standby, a drain).
    pub(super) fn closing(self) -> Self {
        Self {
            keep_alive: false,
            ..self
        }
    }
}

/// What the connection does after an answer.
pub(super) enum Outcome {
    /// Read the next request.
    KeepAlive,
    Close,
    /// The server switched protocols: the connection is a tunnel now.
    Tunnel(Box<Tunnel>),
}

/// How the answer's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304, a tunnel's 101).
    None,
    /// By the `Content-Length` already in the fields (the server's).
    Fields,
    /// By a `Content-Length` the proxy adds: the body's length is known.
    Length(u64),
    Chunked,
    /// By the end of the connection (an HTTP/1.0 client, length unknown).
    UntilClose,
}

impl Framing {
    /// How the answer to `exchange` with this status, fields and body is delimited.
    fn of(
        exchange: Exchange,
        parts: &http::response::Parts,
        passed: Option<&PassedFields>,
        body: &ProxyBody,
        tunnel: bool,
    ) -> Self {
        let status = parts.status;
        if tunnel
            || exchange.head_request
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            Self::None
        } else if passed.is_some_and(PassedFields::has_content_length)
            || parts.headers.contains_key(header::CONTENT_LENGTH)
        {
            Self::Fields
        } else if let Some(n) = body.size_hint().exact() {
            Self::Length(n)
        } else if exchange.minor == 0 {
            Self::UntilClose
        } else {
            Self::Chunked
        }
    }
}

impl<S: ClientStream> Conn<S> {
    /// Writes `resp` for `exchange`; says whether the connection can carry another request.
    pub(super) async fn respond(
        &mut self,
        resp: Response<ProxyBody>,
        exchange: Exchange,
        ctx: &ListenerContext,
    ) -> Outcome {
        let (parts, mut body) = resp.into_parts();
        let tunnel = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
            body.take_tunnel()
        } else {
            None
        };
        // The server's fields passed on as received: in its connection, which an upgrade's
        // tunnel holds.
        let passed = match &tunnel {
            Some(t) => t.server.passed.as_ref(),
            None => body.server_fields(),
        };
        let framing = Framing::of(exchange, &parts, passed, &body, tunnel.is_some());
        // The connection carries another request only if this one's body was read to its
        // end, the answer's end is not the connection's, and nobody asked to close.
        let close = tunnel.is_none()
            && (!exchange.keep_alive
                || !self.decoder.is_done()
                || framing == Framing::UntilClose
                || asks_close(&parts.headers));
        self.write_head(&parts, passed, framing, close, exchange.minor);
        body.head_written(parts.headers);
        let written = if framing == Framing::None {
            let head = std::mem::take(&mut self.write);
            let r = self.write_all(&head, ctx).await;
            self.write = head;
            r.is_ok()
        } else {
            self.write_body(&mut body, framing == Framing::Chunked, ctx)
                .await
        };
        // The access log line is written as the body goes.
        drop(body);
        match tunnel {
            Some(t) if written => Outcome::Tunnel(t),
            _ if written && !close => Outcome::KeepAlive,
            _ => Outcome::Close,
        }
    }

    /// Status line, fields (the server's passed on as received, then the map's), and the
    /// framing and persistence fields this exchange needs.
    fn write_head(
        &mut self,
        parts: &http::response::Parts,
        passed: Option<&PassedFields>,
        framing: Framing,
        close: bool,
        minor: u8,
    ) {
        let out = &mut self.write;
        out.clear();
        let reason = parts.status.canonical_reason().unwrap_or("");
        encode::status_line(out, parts.status.as_u16(), reason.as_bytes());
        if let Some(passed) = passed {
            passed.encode(out);
        }
        for (name, value) in &parts.headers {
            encode::field(out, name.as_str().as_bytes(), value.as_bytes());
        }
        match framing {
            Framing::Length(n) => {
                let mut digits = [0_u8; 20];
                encode::field(out, b"content-length", decimal(n, &mut digits));
            }
            Framing::Chunked => encode::field(out, b"transfer-encoding", b"chunked"),
            Framing::None | Framing::Fields | Framing::UntilClose => {}
        }
        if close && !parts.headers.contains_key(header::CONNECTION) {
            encode::field(out, b"connection", b"close");
        } else if !close && minor == 0 {
            encode::field(out, b"connection", b"keep-alive");
        }
        encode::end_head(out);
    }

    /// Streams the body after the head already in the write buffer: frames that are ready
    /// are gathered, and the buffer is written when the body has to wait, ends, or grows
    /// large. Returns whether it all reached the client (a server failing mid-body, or a
    /// client that stops reading, close the connection).
    async fn write_body(
        &mut self,
        body: &mut ProxyBody,
        chunked: bool,
        ctx: &ListenerContext,
    ) -> bool {
        let mut out = std::mem::take(&mut self.write);
        let mut line = [0_u8; 18];
        let ok = loop {
            let ready = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx)));
            let frame = match ready.await {
                Poll::Ready(frame) => frame,
                Poll::Pending => {
                    if self.write_all(&out, ctx).await.is_err() {
                        break false;
                    }
                    out.clear();
                    std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
                }
            };
            let data = match frame {
                None => {
                    if chunked {
                        out.extend_from_slice(encode::LAST_CHUNK);
                    }
                    break self.write_all(&out, ctx).await.is_ok();
                }
                Some(Err(_)) => {
                    // What arrived is delivered; the close tells the client the rest never will.
                    let _ = self.write_all(&out, ctx).await;
                    break false;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if !data.is_empty() => data,
                    _ => continue,
                },
            };
            if chunked {
                out.extend_from_slice(encode::chunk_size_line(data.len() as u64, &mut line));
            }
            if data.len() <= COPY_MAX {
                out.extend_from_slice(&data);
            } else {
                if self.write_pair(&out, &data, ctx).await.is_err() {
                    break false;
                }
                out.clear();
            }
            if chunked {
                out.extend_from_slice(encode::CRLF);
            }
            if out.len() >= FLUSH_AT {
                if self.write_all(&out, ctx).await.is_err() {
                    break false;
                }
                out.clear();
            }
        };
        out.clear();
        self.write = out;
        ok
    }

    /// Writes `buf` whole and flushes (TLS keeps records until then), failing after
    /// `timeout_client` without progress.
    async fn write_all(&mut self, mut buf: &[u8], ctx: &ListenerContext) -> std::io::Result<()> {
        while !buf.is_empty() {
            let n = self.write_some(&[IoSlice::new(buf)], ctx).await?;
            buf = &buf[n..];
        }
        self.flush(ctx).await
    }

    async fn flush(&mut self, ctx: &ListenerContext) -> std::io::Result<()> {
        let timeout = ctx.client_timeout;
        match self
            .deadline
            .now_or_by(|| Instant::now() + timeout, self.io.flush())
            .await
        {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }

    /// Writes `a` then `b`, vectored.
    async fn write_pair(
        &mut self,
        a: &[u8],
        b: &Bytes,
        ctx: &ListenerContext,
    ) -> std::io::Result<()> {
        let (mut a, mut b) = (a, &b[..]);
        while !a.is_empty() || !b.is_empty() {
            let n = self
                .write_some(&[IoSlice::new(a), IoSlice::new(b)], ctx)
                .await?;
            if n < a.len() {
                a = &a[n..];
            } else {
                b = &b[n - a.len()..];
                a = &[];
            }
        }
        self.flush(ctx).await
    }

    /// One write (`send` for one buffer, `writev` for more: the kernel's vectored path costs
    /// more per call); a timer is armed only when the socket cannot take bytes at once.
    async fn write_some(
        &mut self,
        bufs: &[IoSlice<'_>],
        ctx: &ListenerContext,
    ) -> std::io::Result<usize> {
        let timeout = ctx.client_timeout;
        let by = || Instant::now() + timeout;
        let written = match bufs {
            [one] => self.deadline.now_or_by(by, self.io.write(one)).await,
            _ => {
                self.deadline
                    .now_or_by(by, self.io.write_vectored(bufs))
                    .await
            }
        };
        match written {
            Ok(Ok(0)) => Err(std::io::ErrorKind::WriteZero.into()),
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        }
    }
}

/// Whether the answer's own fields close the connection (the proxy's error pages do).
fn asks_close(h: &HeaderMap) -> bool {
    h.get_all(header::CONNECTION)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

/// `n` in decimal, without allocating.
fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
