//! A plain client socket that can still answer `408 Request Timeout` when hyper gives up on a
//! request head.
//!
//! hyper's `header_read_timeout` ends the connection with an error and writes nothing, but
//! HAProxy answers a client that started a request and stalled with a 408 (`timeout
//! http-request`), which tells the client why and lets it retry. The connection owns the
//! socket until it is dropped, so this wrapper writes the 408 then, in `Drop`, best effort and
//! without blocking, when the connection ended on a header timeout while a request was half
//! received: some bytes read since the last answer written. A keep-alive connection that
//! simply stayed idle (nothing read since the last answer) is closed silently, as HAProxy
//! closes on `timeout http-keep-alive`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

const REQUEST_TIMEOUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\n\
content-type: text/html\r\ncache-control: no-cache\r\nconnection: close\r\ncontent-length: 102\r\n\r\n\
<html><body><h1>408 Request Timeout</h1>\nThe client took too long to send its request.\n</body></html>\n";

/// A client TCP stream that answers 408 on drop when [`HeadTimeout::fire`] was called while a
/// request was half received.
#[derive(Debug)]
pub(crate) struct ClientIo {
    stream: TcpStream,
    read_since_write: bool,
    timed_out: Arc<AtomicBool>,
}

/// The flag the serving code raises when hyper reports a header timeout.
#[derive(Debug, Clone, Default)]
pub(crate) struct HeadTimeout(Arc<AtomicBool>);

impl HeadTimeout {
    pub(crate) fn fire(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl ClientIo {
    pub(crate) fn new(stream: TcpStream, timeout: &HeadTimeout) -> Self {
        Self {
            stream,
            read_since_write: false,
            timed_out: timeout.0.clone(),
        }
    }
}

impl Drop for ClientIo {
    fn drop(&mut self) {
        if self.read_since_write && self.timed_out.load(Ordering::Relaxed) {
            // Best effort: the socket buffer of a connection that sent us nothing for a
            // while has room for 200 bytes; if it has not, the client gets the close alone.
            let _ = self.stream.try_write(REQUEST_TIMEOUT);
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.read_since_write = true;
        }
        polled
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = false;
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.read_since_write = false;
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canned_answer_is_well_framed() {
        let text = std::str::from_utf8(REQUEST_TIMEOUT).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.starts_with("HTTP/1.1 408 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
