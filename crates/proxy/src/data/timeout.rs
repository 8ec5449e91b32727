//! Inactivity timeouts on streamed bodies.
//!
//! HAProxy's `timeout client` and `timeout server` bound inactivity at any point of a
//! transfer, not only while waiting for headers: a client that stops sending its upload, or a
//! server that stops mid-response, must not hold a connection forever. [`Idle`] wraps a body
//! and fails it once no frame has arrived for the timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Which side of the proxy a body comes from, for the error and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A request body from a client (`timeout_client`).
    Client,
    /// A response body from a server (`timeout_server`).
    Server,
}

/// Why a streamed body stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// No data for longer than the side's timeout.
    #[error("the {0:?} sent nothing for longer than its timeout")]
    Idle(Side),
    /// The underlying body failed: the side closed early, or sent malformed framing.
    #[error("the {0:?}'s body failed: {1}")]
    Inner(Side, #[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How a client's request body failed, when it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBodyFailure {
    /// Malformed framing (a bad chunk size, extension or line ending): answered 400.
    Malformed,
    /// The client closed or reset before the end of its body.
    Aborted,
}

impl BodyError {
    /// Whether `error`, or any error it wraps, is the client's request body failing (other
    /// than by its idle timeout), and how.
    pub fn client_failure(error: &(dyn std::error::Error + 'static)) -> Option<ClientBodyFailure> {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(BodyError::Inner(Side::Client, inner)) = e.downcast_ref::<BodyError>() {
                let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(inner.as_ref());
                while let Some(c) = cause {
                    let invalid = c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                        // hyper's chunked decoder says InvalidInput or InvalidData.
                        matches!(
                            io.kind(),
                            std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
                        )
                    });
                    let parse = c
                        .downcast_ref::<hyper::Error>()
                        .is_some_and(hyper::Error::is_parse);
                    if invalid || parse {
                        return Some(ClientBodyFailure::Malformed);
                    }
                    cause = c.source();
                }
                return Some(ClientBodyFailure::Aborted);
            }
            next = e.source();
        }
        None
    }

    /// Whether `error`, or any error it wraps, is an idle timeout on `side`.
    pub fn is_idle(error: &(dyn std::error::Error + 'static), side: Side) -> bool {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(BodyError::Idle(s)) = e.downcast_ref::<BodyError>() {
                return *s == side;
            }
            next = e.source();
        }
        false
    }
}

/// A body that fails with [`BodyError::Idle`] after `timeout` without a frame.
///
/// The timer is only armed once the body has to wait: a body whose frames are ready costs no
/// timer at all.
#[derive(Debug)]
pub(crate) struct Idle<B> {
    inner: B,
    side: Side,
    timeout: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> Idle<B> {
    pub(crate) fn get_ref(&self) -> &B {
        &self.inner
    }

    pub(crate) fn get_mut(&mut self) -> &mut B {
        &mut self.inner
    }

    pub(crate) fn new(inner: B, side: Side, timeout: Duration) -> Self {
        Self {
            inner,
            side,
            timeout,
            timer: None,
        }
    }
}

impl<B> Body for Idle<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(timer) = &mut this.timer {
                    timer.as_mut().reset(Instant::now() + this.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                Poll::Ready(Some(Err(BodyError::Inner(this.side, e.into()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(BodyError::Idle(this.side)))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    type Frames = StreamBody<
        futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::io::Error>>>,
    >;

    fn ready(chunks: &[&'static str]) -> Frames {
        let frames: Vec<_> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test(start_paused = true)]
    async fn ready_bodies_pass_through_untimed() {
        let mut body = Idle::new(ready(&["a", "b"]), Side::Server, Duration::from_millis(10));
        let collected = (&mut body).collect().await.expect("no timeout").to_bytes();
        assert_eq!(collected, "ab");
        assert!(
            body.timer.is_none(),
            "no timer armed for a body that never waited"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_fails_after_the_timeout_and_activity_resets_it() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(4);
        let stream = StreamBody::new(tokio_stream_adapter(rx));
        let mut body = Idle::new(stream, Side::Client, Duration::from_secs(5));
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
            // Then silence, with the sender kept alive: the body stalls.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(tx);
        });
        let started = Instant::now();
        for _ in 0..3 {
            let frame = body.frame().await.expect("a frame").expect("not timed out");
            assert_eq!(frame.into_data().expect("data"), "x");
        }
        let err = body
            .frame()
            .await
            .expect("an outcome")
            .expect_err("timed out");
        assert!(BodyError::is_idle(&err, Side::Client));
        assert!(!BodyError::is_idle(&err, Side::Server));
        // 3 frames 4 s apart never hit the 5 s timeout; then 5 s of silence did.
        assert_eq!(started.elapsed(), Duration::from_secs(17));
    }

    fn tokio_stream_adapter<T>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures_util::Stream<Item = T> + Unpin {
        Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
    }
}
