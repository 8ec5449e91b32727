//! The body the proxy answers clients with, and the access log written when it ends.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;

use crate::counters::Counters;
use crate::data::accesslog::AccessLog;
use crate::data::termination::Termination;
use crate::data::timeout::{BodyError, Idle, Side};
use crate::data::upstream::{Upstream, UpstreamBody};

/// A response body: the server's, streamed through, or one the proxy made itself.
pub struct ProxyBody {
    kind: Kind,
    /// Counter sets that `bout` is added to (frontend, pool, server).
    counters: Option<[Arc<Counters>; 3]>,
    log: Option<Box<AccessLog>>,
}

enum Kind {
    Full(Option<Bytes>),
    Upstream {
        body: Idle<Incoming>,
        /// Returned to the server's idle pool once the body has been read to its end.
        sender: Option<SendRequest<UpstreamBody>>,
        upstream: Arc<Upstream>,
    },
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
    pub(crate) fn upstream(
        body: Idle<Incoming>,
        sender: SendRequest<UpstreamBody>,
        upstream: Arc<Upstream>,
    ) -> Self {
        Self {
            kind: Kind::Upstream {
                body,
                sender: Some(sender),
                upstream,
            },
            counters: None,
            log: None,
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

    /// Returns the server connection to its idle pool: only once the body was read to its
    /// end, when the connection is ready for the next request.
    fn release_connection(&mut self) {
        if let Kind::Upstream {
            sender, upstream, ..
        } = &mut self.kind
            && let Some(sender) = sender.take()
        {
            upstream.checkin(sender);
        }
    }

    fn count(&mut self, n: usize) {
        for c in self.counters.iter().flatten() {
            Counters::add(&c.bytes_out, n as u64);
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
            Kind::Upstream { body, .. } => Pin::new(body).poll_frame(cx),
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
                    Counters::add(&c.server_aborts, 1);
                }
            }
            Poll::Ready(None) => {
                this.release_connection();
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
            Kind::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream { body, .. } => body.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        let Some(mut log) = self.log.take() else {
            return;
        };
        let ended = log.completed || self.is_end_stream();
        if !ended && log.termination.is_normal() {
            // The client went away before the body was sent in full.
            log.termination = Termination::CLIENT_ABORT_DATA;
            for c in self.counters.iter().flatten() {
                Counters::add(&c.client_aborts, 1);
            }
        }
        if ended {
            self.release_connection();
        }
        log.finish();
    }
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody").finish_non_exhaustive()
    }
}
