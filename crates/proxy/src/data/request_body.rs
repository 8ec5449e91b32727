//! A request's body as [`crate::data::forward`] reads it: read straight from the HTTP/1
//! client connection that the session lends for the request's lifetime (decoded with the
//! `h1` codec, no task or channel in between), or an HTTP/2 stream's body from hyper.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use h1::Decoder;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::data::framed::{self, Decoded};

/// What a client connection is: plain TCP or TLS.
pub(crate) trait ClientStream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> ClientStream for S {}

/// The interim answer to `Expect: 100-continue`, sent when the body is first needed.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// A request body.
pub(crate) enum RequestBody<'c> {
    /// Read from the HTTP/1 connection the request came on.
    H1(H1Body<'c>),
    /// An HTTP/2 stream's body.
    H2(Incoming),
}

/// An HTTP/1 request body: the connection's socket, its read buffer (which may already hold
/// the start of the body) and the body's decoder, borrowed from the session until the
/// request is answered. The session reads the decoder afterwards to know whether the body
/// was read to its end (or the connection cannot carry another request).
pub(crate) struct H1Body<'c> {
    io: &'c mut dyn ClientStream,
    read: &'c mut BytesMut,
    decoder: &'c mut Decoder,
    /// Bytes of [`CONTINUE`] still to write, plus one for its flush (0: none owed).
    continue_left: usize,
}

impl<'c> H1Body<'c> {
    pub(crate) fn new(
        io: &'c mut dyn ClientStream,
        read: &'c mut BytesMut,
        decoder: &'c mut Decoder,
        expects_continue: bool,
    ) -> Self {
        Self {
            io,
            read,
            decoder,
            continue_left: if expects_continue {
                CONTINUE.len() + 1
            } else {
                0
            },
        }
    }

    /// Writes what is left of the `100 Continue` answer; only owed while the client has sent
    /// nothing of its body yet.
    fn poll_continue(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.continue_left == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.continue_left == CONTINUE.len() + 1 && !self.read.is_empty() {
            // The client sent its body without waiting: no interim answer is owed.
            self.continue_left = 0;
            return Poll::Ready(Ok(()));
        }
        // `continue_left` counts the bytes to write, then 1 for the flush (under TLS the
        // answer waits in a record until flushed).
        while self.continue_left > 1 {
            let from = CONTINUE.len() + 1 - self.continue_left;
            match std::task::ready!(Pin::new(&mut *self.io).poll_write(cx, &CONTINUE[from..])) {
                Ok(0) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => self.continue_left -= n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        std::task::ready!(Pin::new(&mut *self.io).poll_flush(cx))?;
        self.continue_left = 0;
        Poll::Ready(Ok(()))
    }
}

impl Body for H1Body<'_> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        loop {
            match framed::decode(this.decoder, this.read)? {
                Decoded::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Decoded::End => return Poll::Ready(None),
                Decoded::More => {}
            }
            std::task::ready!(this.poll_continue(cx))?;
            framed::make_room(this.read);
            match std::task::ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut *this.io),
                cx,
                this.read
            )) {
                Ok(0) => {
                    // The client closed before the end of its body.
                    return Poll::Ready(match this.decoder.finish() {
                        Ok(()) => None,
                        Err(_) => Some(Err(std::io::ErrorKind::UnexpectedEof.into())),
                    });
                }
                Ok(_) => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }
}

impl Body for RequestBody<'_> {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            Self::H1(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Self::H2(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::H1(body) => body.is_end_stream(),
            Self::H2(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::H1(body) if body.is_end_stream() => SizeHint::with_exact(0),
            Self::H1(_) => SizeHint::default(),
            Self::H2(body) => body.size_hint(),
        }
    }
}
