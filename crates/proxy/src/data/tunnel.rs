//! Upgraded connections (WebSocket and any other `Upgrade`): a byte tunnel between client
//! and server, closed on `timeout_tunnel` of silence, when the server's sessions are shut
//! down, or when a graceful stop runs out of grace.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;

use crate::counters::{Counters, SessionGuard, Total};
use crate::data::accesslog::AccessLog;
use crate::data::queue::Served;
use crate::data::termination::Termination;
use crate::data::tripwire::Tripwire;
use crate::data::upstream::ServerConn;

/// Everything a tunnel needs once both sides have switched protocols.
pub(crate) struct Tunnel {
    /// The server's connection, switched; its read buffer holds whatever the server sent
    /// after its `101` head.
    pub(crate) server: Box<ServerConn>,
    /// Frontend, pool and server counters.
    pub(crate) counters: [Arc<Counters>; 3],
    pub(crate) idle_timeout: Duration,
    pub(crate) hard_stop: Tripwire,
    /// Keeps the tunnel counted in `scur` of its server and pool.
    pub(crate) session: SessionGuard<2>,
    /// Its server's `maxconn` slot, while tunnels count against it.
    pub(crate) served: Option<Served>,
    pub(crate) log: Box<AccessLog>,
}

/// Runs the tunnel on the client's connection, once the `101` head was written to it.
/// `client_early` is what the client sent after its upgrade request: it goes to the server
/// first.
pub(crate) async fn run<C>(t: Box<Tunnel>, mut client: C, client_early: &[u8])
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mut t = *t;
    // The kill switch current when the server's connection opened: `shutdown-sessions`
    // shuts that socket down, and the wire tells the tunnel to close the client's side too.
    let killed = t.server.live.wire.clone();
    // The connection stays in its server's live set until the tunnel ends.
    let early = t.server.shed_for_tunnel();
    let server = &mut t.server.stream;
    if !client_early.is_empty() {
        if server.write_all(client_early).await.is_err() {
            t.log.termination = Termination::SERVER_ABORT_DATA;
            t.log.finish();
            return;
        }
        for c in &t.counters {
            c.add(Total::BytesIn, client_early.len() as u64);
        }
    }
    // What the server sent right after its 101 (a WebSocket greeting) goes first.
    if !early.is_empty() {
        if client.write_all(&early).await.is_err() {
            t.log.termination = Termination::CLIENT_ABORT_DATA;
            t.log.finish();
            return;
        }
        t.log.bytes += early.len() as u64;
        for c in &t.counters {
            c.add(Total::BytesOut, early.len() as u64);
        }
    }
    drop(early);
    let epoch = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let client = Activity::new(client, epoch, last.clone());
    let server = Activity::new(server, epoch, last.clone());
    let (client_rx, client_tx) = tokio::io::split(client);
    let (server_rx, server_tx) = tokio::io::split(server);
    let copy = async { tokio::try_join!(pump(client_rx, server_tx), pump(server_rx, client_tx)) };
    let idle = idle_watch(epoch, last, t.idle_timeout);
    let outcome = tokio::select! {
        r = copy => match r {
            Ok((up, down)) => {
                for c in &t.counters {
                    c.add(Total::BytesIn, up);
                    c.add(Total::BytesOut, down);
                }
                t.log.bytes += down;
                Termination::NORMAL
            }
            Err(_) => Termination::SERVER_ABORT_DATA,
        },
        // HAProxy's 'D': killed because the server went DOWN (shutdown-sessions).
        () = killed.tripped() => Termination::DOWN_DATA,
        () = idle => Termination::CLIENT_TIMEOUT_DATA,
        () = t.hard_stop.tripped() => Termination::KILLED_DATA,
    };
    t.log.termination = outcome;
    t.log.completed = true;
    t.log.finish();
    drop((t.session, t.served));
}

/// Bytes a direction reads into before it knows a burst is under way.
const IDLE_BUFFER: usize = 512;
/// Buffer used while data flows faster than [`IDLE_BUFFER`] at a time.
const BURST_BUFFER: usize = 16 * 1024;

/// Copies one direction until end of stream, then shuts the writer down; returns the bytes
/// copied.
///
/// Most tunnels (WebSockets) are idle most of the time, so what a tunnel holds while idle is
/// what 10k of them cost: reads go into a small inline buffer, and only a read that fills it
/// takes a large heap buffer, released again as soon as a read comes back short. A generic
/// bidirectional copy keeps two 8 KiB buffers per tunnel for its whole life instead.
async fn pump<R, W>(mut from: R, mut to: W) -> std::io::Result<u64>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut small = [0_u8; IDLE_BUFFER];
    let mut burst: Vec<u8> = Vec::new();
    let mut total = 0_u64;
    loop {
        let (n, full) = if burst.is_empty() {
            let n = from.read(&mut small).await?;
            to.write_all(&small[..n]).await?;
            (n, n == small.len())
        } else {
            let n = from.read(&mut burst).await?;
            to.write_all(&burst[..n]).await?;
            (n, n == burst.len())
        };
        if n == 0 {
            to.shutdown().await?;
            return Ok(total);
        }
        total += n as u64;
        match (full, burst.is_empty()) {
            (true, true) => burst = vec![0; BURST_BUFFER],
            (false, false) => burst = Vec::new(),
            _ => {}
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pump_copies_bursts_and_trickles_exactly_and_propagates_end_of_stream() {
        let (mut source, pump_in) = tokio::io::duplex(64 * 1024);
        let (pump_out, mut sink) = tokio::io::duplex(64 * 1024);
        let copy = tokio::spawn(pump(pump_in, pump_out));

        let burst: Vec<u8> = (0..200_000_u32).map(|i| (i % 251) as u8).collect();
        let writer = tokio::spawn(async move {
            source.write_all(&burst).await.expect("write burst");
            for i in 0..50_u8 {
                source.write_all(&[i; 3]).await.expect("write trickle");
                tokio::task::yield_now().await;
            }
            source.shutdown().await.expect("shutdown");
        });
        let mut received = Vec::new();
        sink.read_to_end(&mut received).await.expect("read to end");
        writer.await.expect("writer");

        let expected: Vec<u8> = (0..200_000_u32)
            .map(|i| (i % 251) as u8)
            .chain((0..50_u8).flat_map(|i| [i; 3]))
            .collect();
        assert_eq!(received.len(), expected.len());
        assert!(received == expected, "bytes differ");
        assert_eq!(
            copy.await.expect("pump task").expect("pump"),
            expected.len() as u64
        );
    }
}
