//! One try of a request on one server: a connection (pooled, or fresh when a pooled one
//! turned out stale), the request written, the response head awaited within
//! `timeout_server`, unless the server's sessions are shut meanwhile.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use tokio::time::Instant;

use crate::config::Timeouts;
use crate::data::accesslog::AccessLog;
use crate::data::upstream::{Conn, ConnectError, Upstream, UpstreamBody};

/// Why an attempt on a server failed.
pub(crate) enum AttemptError {
    /// Connection could not be made: always retryable.
    Connect(ConnectError),
    /// A pooled connection turned out closed before the request was written: retry
    /// for free, on a fresh connection.
    StaleReused(Box<Request<UpstreamBody>>),
    /// The request was (maybe) sent, no response came: retryable if idempotent.
    NoResponse(hyper::Error),
    /// The server's sessions were shut down while waiting for the response.
    Killed,
    /// `timeout_server` elapsed before the response headers.
    Timeout,
}

/// One try on one server: a connection (pooled unless `fresh_only`), the request, the
/// response head.
pub(crate) async fn attempt(
    upstream: &Arc<Upstream>,
    req: Request<UpstreamBody>,
    timeouts: &Timeouts,
    fresh_only: bool,
    log: &mut AccessLog,
) -> Result<(Response<Incoming>, SendRequest<UpstreamBody>), AttemptError> {
    let pooled = if fresh_only {
        None
    } else {
        upstream.checkout().await
    };
    let Conn { mut sender, reused } = match pooled {
        Some(conn) => conn,
        None => {
            let t = Instant::now();
            let conn = upstream
                .connect(timeouts.connect)
                .await
                .map_err(AttemptError::Connect)?;
            upstream.counters.connect_time.add(t.elapsed());
            log.connect_ms = Some(t.elapsed().as_millis() as u64);
            conn
        }
    };
    if log.connect_ms.is_none() {
        log.connect_ms = Some(0);
    }
    let killed = upstream.sessions();
    let sent = tokio::select! {
        // A shutdown also breaks the request's connection, which readies the send with an
        // error in the same instant: checking the kill first names the real cause.
        biased;
        () = killed.cancelled() => return Err(AttemptError::Killed),
        r = tokio::time::timeout(timeouts.server, sender.try_send_request(req)) => r,
    };
    match sent {
        Err(_) => Err(AttemptError::Timeout),
        Ok(Ok(resp)) => Ok((resp, sender)),
        Ok(Err(mut e)) => match e.take_message() {
            Some(req) if reused => Err(AttemptError::StaleReused(Box::new(req))),
            // Nothing was written: as safe to retry as a failed connect.
            Some(_) => Err(AttemptError::Connect(ConnectError::Handshake(
                e.into_error(),
            ))),
            None => Err(AttemptError::NoResponse(e.into_error())),
        },
    }
}
