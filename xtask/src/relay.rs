//! A TCP relay in front of one server, whose link can be slowed: the `delay` fault of the
//! loopback topology. This kernel has no netem, so the delay is added in user space: every
//! chunk read from one side is written to the other `delay` after it was read, reading going
//! on meanwhile, so the relay adds latency (each way) without capping throughput, as a long
//! link does. With no delay it only copies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::{Error, Result};

/// A relay listening on its own loopback port; dropping it closes every relayed connection.
#[derive(Debug)]
pub struct Relay {
    /// Where the balancer reaches the server through the relay.
    pub addr: SocketAddr,
    delay_us: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// A relay to `server` on a free loopback port.
    pub async fn start(server: SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(Error::io("cannot bind a relay"))?;
        let addr = listener
            .local_addr()
            .map_err(Error::io("cannot read the relay's address"))?;
        let delay_us = Arc::new(AtomicU64::new(0));
        let delay = delay_us.clone();
        let task = tokio::spawn(async move {
            // Aborting the accept loop drops the set, which aborts every connection.
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        connections.spawn(relay(client, server, delay.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Relay {
            addr,
            delay_us,
            task,
        })
    }

    /// Delays every chunk from now on by `delay`, each way (zero: none).
    pub fn set_delay(&self, delay: Duration) {
        let us = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delay_us.store(us, Ordering::Relaxed);
    }
}

/// One connection: the server is connected to when the client is, then both directions are
/// relayed until either side ends (a reset or an error on one side closes both).
async fn relay(client: TcpStream, server: SocketAddr, delay: Arc<AtomicU64>) {
    let Ok(upstream) = TcpStream::connect(server).await else {
        // The client sees the refusal as a close before any byte, as it would see a dead
        // server's reset.
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = upstream.into_split();
    tokio::select! {
        () = direction(client_read, server_write, delay.clone()) => {}
        () = direction(server_read, client_write, delay) => {}
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; at `from`'s end, `to`
/// is shut down for writing once what was read has been written.
async fn direction(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Arc<AtomicU64>,
) {
    // Bounded: a slow reader holds the writer back, and with it the reads.
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(64);
    let reader = async move {
        loop {
            let mut buf = vec![0u8; 16 * 1024];
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf.truncate(n);
                    let due = Instant::now() + Duration::from_micros(delay.load(Ordering::Relaxed));
                    if tx.send((due, buf)).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on loopback.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn round_trip(relay: &Relay) -> Duration {
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
        let start = std::time::Instant::now();
        s.write_all(b"ping").await.unwrap();
        let mut back = [0u8; 4];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"ping");
        start.elapsed()
    }

    #[tokio::test]
    async fn relays_and_delays_each_way_until_healed() {
        // Bounds far from the delays, so a busy machine does not move a result across them.
        let relay = Relay::start(echo().await).await.unwrap();
        relay.set_delay(Duration::from_millis(400));
        let slow = round_trip(&relay).await;
        assert!(
            slow >= Duration::from_millis(800),
            "400 ms each way: {slow:?}"
        );
        relay.set_delay(Duration::ZERO);
        let healed = round_trip(&relay).await;
        assert!(healed < Duration::from_millis(400), "no delay: {healed:?}");
    }

    #[tokio::test]
    async fn a_delay_adds_latency_without_capping_throughput() {
        let relay = Relay::start(echo().await).await.unwrap();
        relay.set_delay(Duration::from_millis(100));
        let mut s = TcpStream::connect(relay.addr).await.unwrap();
        // Ten chunks, each delayed 100 ms each way.
        let start = std::time::Instant::now();
        let (mut r, mut w) = s.split();
        let write = async {
            for _ in 0..10 {
                w.write_all(&[7u8; 1000]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let read = async {
            let mut back = vec![0u8; 10_000];
            r.read_exact(&mut back).await.unwrap();
        };
        tokio::join!(write, read);
        // One round trip (200 ms) plus the writes' spacing; one per chunk would be 2 s.
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_millis(1500),
            "{took:?}"
        );
    }
}
