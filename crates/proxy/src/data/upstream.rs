//! Connections to one server: connecting, the keep-alive idle pool, and the kill switch that
//! `shutdown-sessions` pulls when the server is marked DOWN.
//!
//! A connection ([`ServerConn`]) is owned by the request using it, from checkout to the end
//! of its response body, then parked again: no task per connection, no channel between the
//! request and the socket. A request touches nothing shared but its loop's idle pool, a bounded
//! lock-free queue.
//!
//! The kill switch costs nothing per request. It is a [`Wire`] (swapped for a fresh one at
//! every `shutdown-sessions`) plus the server's live connections by descriptor, which every
//! connection joins when it is opened and leaves before its socket closes: pulling the switch
//! trips the wire and shuts each live socket down, so whatever waits on one (a response
//! head, a body) wakes with its end and, seeing its wire tripped, knows it was killed. This
//! is HAProxy's `srv_shutdown_streams` without a list walk on the request path.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError}; // tidy: lock per connection, never per request
use std::time::Duration;

use crate::data::tripwire::{Tripwire, Wire};
use arc_swap::ArcSwap;
use bytes::BytesMut;
use crossbeam_queue::ArrayQueue;
use nix::time::{ClockId, clock_gettime};
use tokio::net::TcpStream;

use crate::counters::Counters;
use crate::data::deadline::Deadline;
use crate::data::framed::READ_BUFFER;
use crate::data::loops;
use crate::data::passed::PassedFields;
use crate::data::queue::Slots;
use crate::data::request_body::RequestBody;
use crate::data::timeout::Idle;

/// The body of a request sent to a server: the client's body as it streams in, read from
/// the client connection `'c`.
pub(crate) type UpstreamBody<'c> = Idle<RequestBody<'c>>;

/// Idle connections kept per server and event loop.
const MAX_IDLE: usize = 128;
/// An idle connection older than this is closed instead of reused: servers drop idle
/// keep-alive connections on their own schedule, and reusing one they are closing costs a
/// retry.
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// Why a connection could not be established.
#[derive(Debug)]
pub(crate) enum ConnectError {
    /// `timeout_connect` elapsed (HAProxy's `sC` termination).
    Timeout,
    /// Refused, reset, unreachable.
    Io(std::io::Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Timeout => f.write_str("connect timeout"),
            Self::Io(e) => write!(f, "connect failed: {e}"),
        }
    }
}

/// One HTTP/1.1 connection to a server, with its buffers.
#[derive(Debug)]
pub(crate) struct ServerConn {
    /// Its place among the server's live connections. Declared before `stream` so that it
    /// drops first: the descriptor leaves the set before it is closed (and maybe reused).
    pub(crate) live: Membership,
    pub(crate) stream: TcpStream,
    /// Bytes read from the server and not consumed yet.
    pub(crate) read: BytesMut,
    /// The request head being written; kept so its allocation serves every request.
    pub(crate) write: Vec<u8>,
    /// The last response head parsed; kept so its field list serves every response.
    pub(crate) head: h1::ResponseHead,
    /// The field map answers are given to the client in, handed back empty once written, so
    /// its allocations serve every response.
    pub(crate) fields: http::HeaderMap,
    /// The current answer's fields passed on as received, from its head until the head is
    /// written to the client (then its list goes back to `head`).
    pub(crate) passed: Option<PassedFields>,
    /// The timer of every wait for a response (`timeout_server`); lent to the request that
    /// uses the connection (so `None` only meanwhile).
    pub(crate) deadline: Option<Deadline>,
}

impl ServerConn {
    /// Boxed: a connection lives across many requests (parked between them), and each
    /// request moves it through several futures; a pointer moves cheaper than its buffers'
    /// headers.
    fn new(stream: TcpStream, live: Membership) -> Box<Self> {
        Box::new(Self {
            live,
            stream,
            read: BytesMut::with_capacity(READ_BUFFER),
            write: Vec::with_capacity(1024),
            head: h1::ResponseHead::default(),
            fields: http::HeaderMap::new(),
            passed: None,
            deadline: Some(Deadline::new()),
        })
    }

    /// Keeps only what a tunnel needs (the socket, and its place in the live set): the HTTP
    /// buffers and the timer are freed, as an idle WebSocket must cost little; returns what the server sent
    /// past its `101` head.
    pub(crate) fn shed_for_tunnel(&mut self) -> BytesMut {
        self.write = Vec::new();
        self.head = h1::ResponseHead::default();
        self.fields = http::HeaderMap::new();
        self.passed = None;
        self.deadline = None;
        std::mem::take(&mut self.read)
    }

    /// The current answer's passed fields, written: their list goes back to the head for
    /// the next answer, and the head's bytes are let go.
    pub(crate) fn forget_passed(&mut self) {
        if let Some(passed) = self.passed.take() {
            self.head.fields = passed.into_list();
        }
    }

    /// Whether `shutdown-sessions` closed it (its server's wire at its opening has tripped).
    pub(crate) fn is_killed(&self) -> bool {
        self.live.wire.is_tripped()
    }

    /// Whether the server has not closed it meanwhile: nothing to read (one non-blocking
    /// `read`, no wait). Data or end of stream on an idle connection both mean it is unusable.
    fn is_open(&self) -> bool {
        let mut probe = [0_u8; 1];
        matches!(
            self.stream.try_read(&mut probe),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

/// A server's open connections, by descriptor. Its lock is taken when a connection opens or
/// closes and by `shutdown-sessions`, never by a request on a connection already open; it is
/// what makes shutting a descriptor down safe (one that left the set may be closed and its
/// number reused).
#[derive(Debug, Default)]
struct Live(Mutex<slab::Slab<RawFd>>); // tidy: lock per connection, never per request

impl Live {
    fn lock(&self) -> std::sync::MutexGuard<'_, slab::Slab<RawFd>> {
        // The set stays consistent whatever panicked while holding it.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A connection's entry in its server's [`Live`] set, and the kill switch that was current
/// when it opened. Leaving the set is what dropping it does.
#[derive(Debug)]
pub(crate) struct Membership {
    live: Arc<Live>,
    key: usize,
    pub(crate) wire: Tripwire,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.live.lock().remove(self.key);
    }
}

struct Parked {
    conn: Box<ServerConn>,
    /// When it was parked, by [`coarse_now`].
    since: Duration,
}

/// The monotonic clock to the kernel's tick (`CLOCK_MONOTONIC_COARSE`, a few milliseconds):
/// a read of the vDSO's page with no TSC read, which is all the idle pool's 30-second bound
/// needs. A connection is parked and checked out on every keep-alive request.
fn coarse_now() -> Duration {
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE).map_or(Duration::ZERO, Duration::from)
}

/// The runtime side of one server: address, idle pool, kill switch and counters. Lives as
/// long as the server is configured; shared by every request routed to it.
pub(crate) struct Upstream {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) counters: Arc<Counters>,
    /// Idle connections, one pool per event loop: a socket is registered with the reactor of
    /// the loop that opened it, and a request on another loop would have its readiness
    /// relayed across threads (and wait on the other loop's turn).
    idle: Box<[ArrayQueue<Parked>]>,
    sessions: ArcSwap<Wire>,
    live: Arc<Live>,
    /// `maxconn`, the requests served now, and the server's queue.
    pub(crate) limit: Slots,
    /// Out of service (removed, or moved to another address): a connection whose request
    /// ends is closed, not parked.
    retired: AtomicBool,
}

impl Upstream {
    pub(crate) fn new(name: String, addr: SocketAddr, maxconn: Option<u32>) -> Self {
        Self {
            name: name.into(),
            addr,
            counters: Arc::default(),
            idle: (0..loops::count())
                .map(|_| ArrayQueue::new(MAX_IDLE))
                .collect(),
            sessions: ArcSwap::from_pointee(Wire::default()),
            live: Arc::default(),
            limit: Slots::new(maxconn),
            retired: AtomicBool::new(false),
        }
    }

    /// The same server at a new address (its name resolved elsewhere, or a reload moved it):
    /// a new connection pool and kill switch, the same counters.
    #[must_use]
    pub(crate) fn moved(&self, addr: SocketAddr, maxconn: Option<u32>) -> Self {
        Self {
            counters: self.counters.clone(),
            ..Self::new(self.name.to_string(), addr, maxconn)
        }
    }

    /// A tripwire tripped when this server's sessions are shut down: the one current now,
    /// which every connection opened from now on keeps.
    pub(crate) fn sessions(&self) -> Tripwire {
        Tripwire::of(self.sessions.load_full())
    }

    /// Closes every connection, in-flight request and tunnel to this server
    /// (`on-marked-down shutdown-sessions`); connections made afterwards are unaffected.
    /// How many connections were open (idle ones included).
    pub(crate) fn shutdown_sessions(&self) -> usize {
        // Under the live set's lock, as joining is: a connection opening meanwhile either
        // joined before (old wire, shut down here) or joins after (new wire, spared).
        let live = self.live.lock();
        let old = self.sessions.swap(Arc::new(Wire::default()));
        // Tripped first: whoever wakes from the shutdown below must see why.
        old.trip();
        let mut open = 0;
        for (_, &fd) in live.iter() {
            // Wakes any read or write on it with its end. A descriptor is in the set only
            // while its socket is open (it leaves before it closes, under this lock).
            let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
            open += 1;
        }
        // Released first: closing an idle connection takes it out of the set.
        drop(live);
        self.close_idle();
        open
    }

    /// Takes the server out of service (removed, or moved to another address): its idle
    /// connections close now, and so does each busy one when its request ends. Requests under
    /// way finish.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.close_idle();
    }

    /// Back in service (a reload brought the retired server back): it parks connections
    /// again.
    pub(crate) fn reinstate(&self) {
        self.retired.store(false, Ordering::Relaxed);
    }

    /// Closes idle connections only (graceful stop, removed servers).
    pub(crate) fn close_idle(&self) {
        for idle in &self.idle {
            while idle.pop().is_some() {}
        }
    }

    /// The idle pool of the caller's event loop.
    fn idle_here(&self) -> &ArrayQueue<Parked> {
        &self.idle[loops::current() % self.idle.len()]
    }

    /// An idle connection that is still open, if any.
    pub(crate) fn checkout(&self) -> Option<Box<ServerConn>> {
        loop {
            let idle = self.idle_here().pop()?;
            let age = coarse_now().saturating_sub(idle.since);
            if age <= MAX_IDLE_AGE && idle.conn.is_open() {
                return Some(idle.conn);
            }
        }
    }

    /// Parks a connection whose response was read completely, with nothing left over.
    pub(crate) fn checkin(&self, mut conn: Box<ServerConn>) {
        if !conn.read.is_empty() || self.retired.load(Ordering::Relaxed) {
            return;
        }
        // Keep one buffer's worth: a response that grew it does not pin the memory.
        if conn.read.capacity() > 4 * READ_BUFFER {
            conn.read = BytesMut::with_capacity(READ_BUFFER);
        }
        if let Some(deadline) = &mut conn.deadline {
            deadline.forget_waker();
        }
        // A full pool drops (closes) the connection.
        let _ = self.idle_here().push(Parked {
            conn,
            since: coarse_now(),
        });
    }

    /// Opens a new connection, within `timeout`.
    pub(crate) async fn connect(&self, timeout: Duration) -> Result<Box<ServerConn>, ConnectError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(self.addr)).await {
            Err(_) => return Err(ConnectError::Timeout),
            Ok(Err(e)) => return Err(ConnectError::Io(e)),
            Ok(Ok(s)) => s,
        };
        // Small writes (headers) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let live = self.join(&stream);
        Ok(ServerConn::new(stream, live))
    }

    /// Enters a new connection in the live set, under the kill switch current now.
    fn join(&self, stream: &TcpStream) -> Membership {
        let mut live = self.live.lock();
        let wire = self.sessions();
        let key = live.insert(stream.as_raw_fd());
        drop(live);
        Membership {
            live: self.live.clone(),
            key,
            wire,
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn pair(upstream: &Upstream) -> (Box<ServerConn>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connecting = TcpStream::connect(addr);
        let (client, accepted) = tokio::join!(connecting, listener.accept());
        let client = client.unwrap();
        let live = upstream.join(&client);
        (ServerConn::new(client, live), accepted.unwrap().0)
    }

    #[tokio::test]
    async fn checkout_skips_connections_the_server_closed_or_wrote_to() {
        let up = Upstream::new("s".into(), "127.0.0.1:1".parse().unwrap(), None);
        let (open, _server_a) = pair(&up).await;
        let (closed, server_b) = pair(&up).await;
        let (chatty, mut server_c) = pair(&up).await;
        drop(server_b);
        server_c.write_all(b"unexpected").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        up.checkin(closed);
        up.checkin(chatty);
        up.checkin(open);
        let got = up.checkout().expect("the open one");
        assert!(got.is_open());
        assert!(up.checkout().is_none(), "the others were dropped");
    }

    #[tokio::test]
    async fn a_retired_server_parks_nothing_until_reinstated() {
        let up = Upstream::new("s".into(), "127.0.0.1:1".parse().unwrap(), None);
        let (parked, _a) = pair(&up).await;
        up.checkin(parked);
        up.retire();
        assert!(up.checkout().is_none(), "idle connections close at once");
        let (ended, _b) = pair(&up).await;
        up.checkin(ended);
        assert!(
            up.checkout().is_none(),
            "a request that ends closes its connection"
        );
        assert_eq!(up.shutdown_sessions(), 0, "nothing left open to it");
        up.reinstate();
        let (again, _c) = pair(&up).await;
        up.checkin(again);
        assert!(up.checkout().is_some(), "back in service, it parks again");
    }

    #[tokio::test]
    async fn leftovers_and_shutdown_empty_the_pool() {
        let up = Upstream::new("s".into(), "127.0.0.1:1".parse().unwrap(), None);
        let (mut dirty, _a) = pair(&up).await;
        dirty.read.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        up.checkin(dirty);
        assert!(
            up.checkout().is_none(),
            "a connection with unread bytes is not parked"
        );
        let (clean, _b) = pair(&up).await;
        up.checkin(clean);
        let token = up.sessions();
        up.shutdown_sessions();
        assert!(token.is_tripped());
        assert!(!up.sessions().is_tripped());
        assert!(up.checkout().is_none());
    }

    #[tokio::test]
    async fn a_loop_reuses_only_the_connections_it_opened() {
        // A second loop on a thread of its own (the loop count is process-wide; every other
        // test runs on loop 0, which stays correct).
        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let there = other.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            other.block_on(async {
                let _ = stopped.await;
            });
        });
        let _loops = loops::EventLoops::new([tokio::runtime::Handle::current(), there.clone()]);
        let up = Arc::new(Upstream::new(
            "s".into(),
            "127.0.0.1:1".parse().unwrap(),
            None,
        ));
        let (conn, _server) = pair(&up).await;
        up.checkin(conn);
        let elsewhere = there.spawn({
            let up = up.clone();
            async move { up.checkout().is_none() }
        });
        assert!(
            elsewhere.await.unwrap(),
            "loop 1 never gets a socket registered with loop 0's reactor"
        );
        assert!(up.checkout().is_some(), "loop 0 gets its own back");
        let _ = stop.send(());
        thread.join().unwrap();
    }

    #[tokio::test]
    async fn shutdown_wakes_a_read_on_a_connection_in_use_and_spares_later_ones() {
        use tokio::io::AsyncReadExt;
        let up = Upstream::new("s".into(), "127.0.0.1:1".parse().unwrap(), None);
        let (mut busy, _server) = pair(&up).await;
        let reading = tokio::spawn(async move {
            let mut buf = [0_u8; 16];
            let n = busy.stream.read(&mut buf).await;
            (n.map_err(|e| e.kind()), busy.is_killed())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!reading.is_finished(), "the server has said nothing yet");
        up.shutdown_sessions();
        let (read, killed) = tokio::time::timeout(Duration::from_secs(1), reading)
            .await
            .expect("the shutdown wakes the read")
            .unwrap();
        assert_eq!(read, Ok(0), "the read sees the end of the stream");
        assert!(killed, "and knows why");
        let (later, _server2) = pair(&up).await;
        assert!(
            !later.is_killed(),
            "a connection opened after the kill is not"
        );
        assert_eq!(up.live.lock().len(), 1, "the killed one left the live set");
        drop(later);
        assert!(up.live.lock().is_empty());
    }
}
