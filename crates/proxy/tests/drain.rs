//! How a drain (graceful stop, binary upgrade) and standby (before an LB pair's address
//! moves) end each kind of client connection without losing a request the client may already
//! be sending:
//!
//! - HTTP/1: an idle keep-alive connection stays open; its next request is answered with
//!   `Connection: close`; one that stays idle is closed at the end of `drain_window`, without a
//!   word (HAProxy's `idle-close-on-response`).
//! - HTTP/2: GOAWAY the graceful way (RFC 9113, 6.8): first with the largest stream id and a
//!   PING, then, once the PING comes back, with the last stream the server saw; a stream the
//!   client opened in between is served. Read frame by frame, as the client's wire shows it.
//! - TLS: the connection ends with `close_notify`, not a bare TCP close.

mod support;

use std::time::Duration;

use support::{Lb, backend};
use testkit::WAIT;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use veza_demo_backend::Kind;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// The next answer on a keep-alive connection, which must come.
async fn next_answer<S: AsyncRead + Unpin>(stream: &mut S) -> testkit::http::Response {
    testkit::http::next_response(stream)
        .await
        .expect("an answer")
        .expect("an answer before the connection closed")
}

/// Waits until `addr` refuses connections: the listening socket is closed, the drain begun.
async fn refused(addr: std::net::SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reads to the end: `Ok(0)` with nothing read is a clean end (over TLS: `close_notify`).
async fn end<S: AsyncRead + Unpin>(stream: &mut S) -> (std::io::Result<usize>, Vec<u8>) {
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("closed in time");
    (read, rest)
}

#[tokio::test]
async fn an_idle_http1_connection_gets_its_next_request_answered_then_closed() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(support::api_config(&[&a], "drain_window = \"800ms\"", "")).await;
    let addr = lb.addr;
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    for stream in [&mut busy, &mut idle] {
        stream.write_all(REQUEST).await.expect("write");
        let answer = next_answer(stream).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("connection"), None, "kept alive");
    }
    let stopped = tokio::spawn(lb.proxy.shutdown());
    refused(addr).await;

    busy.write_all(REQUEST).await.expect("write");
    let answer = next_answer(&mut busy).await;
    assert_eq!(
        answer.status, 200,
        "the request sent during the drain is served"
    );
    assert_eq!(answer.header("connection"), Some("close"));
    let (read, rest) = end(&mut busy).await;
    assert!(matches!(read, Ok(0)) && rest.is_empty(), "closed after it");

    let (read, rest) = end(&mut idle).await;
    assert!(
        matches!(read, Ok(0)) && rest.is_empty(),
        "the idle connection is closed without a word: {read:?} {rest:?}"
    );
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("the stop ends")
        .expect("stop task");
}

/// Standby (`set standby on|off`): what a drain does to connections, while the listener
/// still accepts, until standby ends.
#[tokio::test]
async fn standby_closes_connections_after_their_next_answer_while_still_accepting() {
    let a = backend("api-1", Kind::Api).await;
    let global = "drain_window = \"800ms\"\nstats_socket = \"127.0.0.1:0\"\n\
                  stats_socket_level = \"admin\"";
    let lb = Lb::start(support::api_config(&[&a], global, "")).await;
    let (addr, stats) = (lb.addr, lb.proxy.stats_addr().expect("stats socket"));
    let mut busy = TcpStream::connect(addr).await.expect("connect");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    for stream in [&mut busy, &mut idle] {
        stream.write_all(REQUEST).await.expect("write");
        assert_eq!(next_answer(stream).await.header("connection"), None);
    }
    let answer = testkit::runtime_api::ctl(stats, "set standby on").await;
    assert!(answer.starts_with("Standby: on."), "{answer}");

    busy.write_all(REQUEST).await.expect("write");
    let answer = next_answer(&mut busy).await;
    assert_eq!(answer.status, 200, "served in standby");
    assert_eq!(answer.header("connection"), Some("close"));
    assert!(matches!(end(&mut busy).await, (Ok(0), rest) if rest.is_empty()));
    // Still accepting: a new connection is served once, then closed.
    let mut fresh = TcpStream::connect(addr)
        .await
        .expect("standby still accepts");
    fresh.write_all(REQUEST).await.expect("write");
    let answer = next_answer(&mut fresh).await;
    assert_eq!(
        (answer.status, answer.header("connection")),
        (200, Some("close"))
    );
    // The idle one closes without a word once the drain window has passed.
    let (read, rest) = end(&mut idle).await;
    assert!(
        matches!(read, Ok(0)) && rest.is_empty(),
        "{read:?} {rest:?}"
    );
    assert!(
        testkit::runtime_api::ctl(stats, "show standby")
            .await
            .starts_with("Standby: on.")
    );

    let answer = testkit::runtime_api::ctl(stats, "set standby off").await;
    assert!(answer.starts_with("Standby: off."), "{answer}");
    let mut after = TcpStream::connect(addr).await.expect("connect");
    for _ in 0..2 {
        after.write_all(REQUEST).await.expect("write");
        let answer = next_answer(&mut after).await;
        assert_eq!(
            (answer.status, answer.header("connection")),
            (200, None),
            "kept alive"
        );
    }
    let usage = testkit::runtime_api::ctl(stats, "set standby maybe").await;
    assert_eq!(usage.trim(), "Usage: set standby on|off");
}

/// A frontend `veza` with a TLS listener (`lb.test`) in front of `server`.
async fn tls_lb(
    server: std::net::SocketAddr,
    ca: &testkit::tls::TestCa,
) -> (proxy::Proxy, std::net::SocketAddr) {
    let leaf = ca.leaf("lb", &["lb.test"], testkit::tls::Key::Ecdsa);
    let text = format!(
        "[global]\nshutdown_grace = \"5s\"\ndrain_window = \"1s\"\n[[frontend]]\nname = \"veza\"\n\
         bind = [\"127.0.0.1:0\"]\ndefault_pool = \"api\"\n\
         tls = {{ bind = [\"127.0.0.1:0\"], cert = \"{}\", key = \"{}\" }}\n[pool.api]\n\
         servers = [{{ name = \"api-1\", addr = \"{server}\" }}]\n",
        leaf.cert.display(),
        leaf.key.display()
    );
    let config = proxy::config::Config::parse(&text, "test.toml").expect("valid config");
    let proxy = proxy::Proxy::start(config).await.expect("proxy starts");
    let tls = proxy.tls_addrs("veza")[0];
    (proxy, tls)
}

async fn tls_connect(
    ca: &testkit::tls::TestCa,
    addr: std::net::SocketAddr,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("lb.test").expect("name");
    let tls = tokio_rustls::TlsConnector::from(ca.client(&[alpn], None))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}

/// A backend, a proxy with a TLS listener in front of it, and a client connected to that
/// listener with ALPN `alpn`.
struct TlsClient {
    _backend: veza_demo_backend::RunningBackend,
    proxy: proxy::Proxy,
    addr: std::net::SocketAddr,
    stream: tokio_rustls::client::TlsStream<TcpStream>,
}

impl TlsClient {
    async fn connect(alpn: &[u8]) -> TlsClient {
        let backend = backend("api-1", Kind::Api).await;
        let ca = testkit::tls::TestCa::new();
        let (proxy, addr) = tls_lb(backend.addr(), &ca).await;
        let stream = tls_connect(&ca, addr, alpn).await;
        TlsClient {
            _backend: backend,
            proxy,
            addr,
            stream,
        }
    }
}

#[tokio::test]
async fn an_http1_connection_over_tls_ends_with_close_notify() {
    let TlsClient {
        _backend,
        proxy,
        addr,
        stream: mut tls,
    } = TlsClient::connect(b"http/1.1").await;
    tls.write_all(REQUEST).await.expect("write");
    assert_eq!(next_answer(&mut tls).await.status, 200);
    let stopped = tokio::spawn(proxy.shutdown());
    refused(addr).await;
    tls.write_all(REQUEST).await.expect("write");
    let answer = next_answer(&mut tls).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("connection"), Some("close"));
    // rustls reports a TCP close without close_notify as an error (UnexpectedEof).
    let (read, rest) = end(&mut tls).await;
    assert!(
        matches!(read, Ok(0)) && rest.is_empty(),
        "{read:?} {rest:?}"
    );
    stopped.await.expect("stop task");
}

/// HTTP/2 frame types this test reads or writes (RFC 9113, 6).
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;

/// One frame: type, flags, stream, payload.
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

async fn write_frame<S: AsyncWrite + Unpin>(
    s: &mut S,
    kind: u8,
    flags: u8,
    stream: u32,
    payload: &[u8],
) {
    let len = u32::try_from(payload.len()).expect("small frame");
    let mut frame = len.to_be_bytes()[1..].to_vec();
    frame.extend([kind, flags]);
    frame.extend(stream.to_be_bytes());
    frame.extend_from_slice(payload);
    s.write_all(&frame).await.expect("write frame");
    s.flush().await.expect("flush");
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> Frame {
    let mut head = [0u8; 9];
    tokio::time::timeout(WAIT, s.read_exact(&mut head))
        .await
        .expect("a frame in time")
        .expect("read frame head");
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let mut payload = vec![0; len];
    s.read_exact(&mut payload)
        .await
        .expect("read frame payload");
    Frame {
        kind: head[3],
        flags: head[4],
        stream: u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff,
        payload,
    }
}

/// A GOAWAY's last stream id and error code.
fn goaway(frame: &Frame) -> (u32, u32) {
    let p = &frame.payload;
    (
        u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    )
}

#[tokio::test]
async fn http2_gets_two_goaways_and_a_stream_opened_between_them_is_served() {
    let TlsClient {
        _backend,
        proxy,
        stream: mut h2,
        ..
    } = TlsClient::connect(b"h2").await;
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .expect("preface");
    write_frame(&mut h2, SETTINGS, 0, 0, &[]).await;
    // The server's SETTINGS, acknowledged; its other frames until then do not matter.
    loop {
        let frame = read_frame(&mut h2).await;
        if frame.kind == SETTINGS && frame.flags & ACK == 0 {
            write_frame(&mut h2, SETTINGS, ACK, 0, &[]).await;
            break;
        }
    }

    let stopped = tokio::spawn(proxy.shutdown());
    let mut first_goaway = None;
    let ping = loop {
        let frame = read_frame(&mut h2).await;
        match frame.kind {
            GOAWAY => first_goaway = Some(goaway(&frame)),
            PING if frame.flags & ACK == 0 && first_goaway.is_some() => break frame.payload,
            _ => {}
        }
    };
    assert_eq!(
        first_goaway,
        Some((0x7fff_ffff, 0)),
        "the first GOAWAY names the largest stream id, NO_ERROR"
    );

    // A request the client sent before it could see the GOAWAY: GET https://lb.test/ in
    // HPACK (static indexes for :method GET, :scheme https, :path /; :authority literal).
    let mut block = vec![0x82, 0x87, 0x84, 0x41, 7];
    block.extend_from_slice(b"lb.test");
    write_frame(&mut h2, HEADERS, END_HEADERS | END_STREAM, 1, &block).await;
    write_frame(&mut h2, PING, ACK, 0, &ping).await;

    let mut last_goaway = None;
    let mut status = None;
    let mut ended = false;
    while !(ended && last_goaway.is_some()) {
        let frame = read_frame(&mut h2).await;
        match (frame.kind, frame.stream) {
            (GOAWAY, 0) => last_goaway = Some(goaway(&frame)),
            (HEADERS, 1) => {
                // `:status: 200` is the static table's index 8.
                status = frame.payload.first().copied();
                ended |= frame.flags & END_STREAM != 0;
            }
            (DATA, 1) => ended |= frame.flags & END_STREAM != 0,
            _ => {}
        }
    }
    assert_eq!(status, Some(0x88), "stream 1 answered 200");
    assert_eq!(
        last_goaway,
        Some((1, 0)),
        "the second GOAWAY names stream 1, the last the server saw"
    );
    let (read, _) = end(&mut h2).await;
    assert!(matches!(read, Ok(0)), "ends with close_notify: {read:?}");
    stopped.await.expect("stop task");
}
