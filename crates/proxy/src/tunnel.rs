//! Upgraded connections (WebSocket and any other `Upgrade`): a byte tunnel between client
//! and server, closed on `timeout_tunnel` of silence, when the server's sessions are shut
//! down, or when a graceful stop runs out of grace.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::accesslog::AccessLog;
use crate::counters::{Counters, SessionGuard};
use crate::upstream::Upstream;

/// Everything a tunnel needs once both sides have switched protocols.
pub(crate) struct Tunnel {
    pub(crate) client: OnUpgrade,
    pub(crate) server: OnUpgrade,
    pub(crate) upstream: Arc<Upstream>,
    /// Frontend, pool and server counters.
    pub(crate) counters: [Arc<Counters>; 3],
    pub(crate) idle_timeout: Duration,
    pub(crate) hard_stop: CancellationToken,
    /// Keeps the tunnel counted in `scur` of its server and pool.
    pub(crate) session: SessionGuard<2>,
    pub(crate) log: Box<AccessLog>,
}

/// Runs the tunnel in its own task.
pub(crate) fn spawn(t: Tunnel) {
    tokio::spawn(run(t));
}

async fn run(mut t: Tunnel) {
    let killed = t.upstream.sessions();
    let (client, server) = match tokio::try_join!(t.client, t.server) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!("upgrade failed: {e}");
            t.log.termination = *b"SD";
            t.log.finish();
            return;
        }
    };
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Activity::new(TokioIo::new(client), epoch, last.clone());
    let mut server = Activity::new(TokioIo::new(server), epoch, last.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    let idle = idle_watch(epoch, last, t.idle_timeout);
    let outcome = tokio::select! {
        r = copy => match r {
            Ok((up, down)) => {
                for c in &t.counters {
                    Counters::add(&c.bytes_in, up);
                    Counters::add(&c.bytes_out, down);
                }
                t.log.bytes += down;
                *b"--"
            }
            Err(_) => *b"SD",
        },
        // HAProxy's 'D': killed because the server went DOWN (shutdown-sessions).
        () = killed.cancelled() => *b"DD",
        () = idle => *b"cD",
        () = t.hard_stop.cancelled() => *b"KD",
    };
    t.log.termination = outcome;
    t.log.completed = true;
    t.log.finish();
    drop(t.session);
}

async fn idle_watch(epoch: Instant, last: Arc<AtomicU64>, timeout: Duration) {
    loop {
        let last_ms = last.load(Relaxed);
        let deadline = epoch + Duration::from_millis(last_ms) + timeout;
        tokio::time::sleep_until(deadline).await;
        if last.load(Relaxed) == last_ms {
            return;
        }
    }
}

/// Records the time of the last byte read, for the idle timeout.
struct Activity<S> {
    inner: S,
    epoch: Instant,
    last: Arc<AtomicU64>,
}

impl<S> Activity<S> {
    fn new(inner: S, epoch: Instant, last: Arc<AtomicU64>) -> Self {
        Self { inner, epoch, last }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let ms = self.epoch.elapsed().as_millis() as u64;
            self.last.store(ms, Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
