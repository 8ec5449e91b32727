//! The client side of HTTP/1.1 as veza-lb speaks it on the `h1` codec: persistent
//! connections, pipelining, HTTP/1.0 clients, `Expect: 100-continue`, `HEAD`, and the framing
//! of answers whose server gave no length. Each test reads answers off one connection with
//! the codec itself, so a framing mistake shows as a desynchronized stream.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use h1::{Decoder, Limits, Parse, ResponseHead};
use support::{Lb, backend, config, one_server_config, scripted_server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use veza_demo_backend::Kind;

const WAIT: Duration = Duration::from_secs(5);

/// One answer read off a persistent connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that reads answers one at a time, leaving what follows buffered.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Self {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    async fn fill(&mut self) -> usize {
        tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
            .await
            .expect("the proxy answers in time")
            .expect("read")
    }

    /// Reads one answer; `head_request` says it has no body whatever its fields say.
    async fn answer(&mut self, head_request: bool) -> Answer {
        let mut head = ResponseHead::default();
        loop {
            match head.parse(&self.buf, head_request, &Limits::default()) {
                Ok(Parse::Complete) => break,
                Ok(Parse::Partial) => assert!(self.fill().await > 0, "closed before a head"),
                Err(e) => panic!("invalid answer head: {e:?}: {:?}", self.buf),
            }
        }
        let raw = self.buf.split_to(head.len);
        let fields = head
            .fields
            .iter()
            .map(|f| {
                let text = |s: h1::Span| String::from_utf8_lossy(s.of(&raw)).into_owned();
                (text(f.name), text(f.value))
            })
            .collect();
        let mut decoder = Decoder::new(head.framing);
        let mut body = Vec::new();
        while !decoder.is_done() {
            if self.buf.is_empty() && self.fill().await == 0 {
                decoder
                    .finish()
                    .expect("a body may only end with the connection if unframed");
                break;
            }
            let step = decoder.decode(&self.buf).expect("valid body framing");
            body.extend_from_slice(&self.buf[step.data.clone()]);
            let _ = self.buf.split_to(step.consumed);
        }
        Answer {
            status: head.status,
            fields,
            body,
        }
    }

    /// Whether the proxy closes the connection (nothing more buffered or arriving).
    async fn closed(&mut self) -> bool {
        self.buf.is_empty() && self.fill().await == 0
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_the_connection_stays_open() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "")).await;
    let mut c = Client::connect(lb.addr).await;
    c.send(
        b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n\
          POST /two HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
          GET /three HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    for (path, body) in [("/one", ""), ("/two", " body-bytes=3"), ("/three", "")] {
        let r = c.answer(false).await;
        assert_eq!(r.status, 200);
        assert!(
            r.text().contains(&format!("path={path} ")) && r.text().contains(body),
            "{path}: {}",
            r.text()
        );
    }
    c.send(b"GET /four HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.answer(false).await.text().contains("path=/four "));
}

#[tokio::test]
async fn http_1_0_clients_close_unless_they_ask_to_keep_alive() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "")).await;

    let mut c = Client::connect(lb.addr).await;
    c.send(b"GET /old HTTP/1.0\r\n\r\n").await;
    let r = c.answer(false).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("path=/old "));
    assert!(c.closed().await, "HTTP/1.0 without keep-alive closes");

    let mut c = Client::connect(lb.addr).await;
    for _ in 0..2 {
        c.send(b"GET /kept HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await;
        let r = c.answer(false).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.field("connection"), Some("keep-alive"));
        assert!(
            r.field("content-length").is_some(),
            "1.0 cannot read chunks"
        );
    }
}

#[tokio::test]
async fn expect_100_continue_gets_the_interim_answer_before_the_body_is_sent() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "")).await;
    let mut c = Client::connect(lb.addr).await;
    c.send(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .await;
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    while c.buf.len() < interim.len() {
        assert!(c.fill().await > 0, "closed");
    }
    assert_eq!(&c.buf[..interim.len()], interim);
    let _ = c.buf.split_to(interim.len());
    c.send(b"hello").await;
    let r = c.answer(false).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("body-bytes=5"), "{}", r.text());
}

#[tokio::test]
async fn head_answers_have_no_body_and_keep_the_connection() {
    let a = backend("api-1", Kind::Api).await;
    let lb = Lb::start(config(&[&a], &[], "")).await;
    let mut c = Client::connect(lb.addr).await;
    c.send(b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\nGET /g HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let head = c.answer(true).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let get = c.answer(false).await;
    assert!(get.text().contains("path=/g "), "{}", get.text());
}

#[tokio::test]
async fn an_unframed_server_answer_is_chunked_for_1_1_and_close_delimited_for_1_0() {
    // A server that answers every request with a body delimited by its close (no length).
    let addr = scripted_server(b"HTTP/1.1 200 OK\r\n\r\nuntil-close", Duration::ZERO).await;
    let lb = Lb::start(one_server_config("raw", addr, "")).await;

    let mut c = Client::connect(lb.addr).await;
    for _ in 0..2 {
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let r = c.answer(false).await;
        assert_eq!(r.field("transfer-encoding"), Some("chunked"));
        assert_eq!(r.body, b"until-close");
    }

    let mut c = Client::connect(lb.addr).await;
    c.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .await;
    let r = c.answer(false).await;
    assert_eq!(r.field("transfer-encoding"), None);
    assert_eq!(r.field("connection"), Some("close"));
    assert_eq!(r.body, b"until-close");
    assert!(c.closed().await);
}

/// A server that records the head and body of each request it reads (one per connection,
/// framed by its Content-Length) and answers it `204`.
async fn recording_server() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0_u8; 4096];
                loop {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            let _ = tx.send(text);
                            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                            buf.drain(..end + 4 + length);
                            continue;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// The next request the recording server saw.
async fn recorded(seen: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("in time")
        .expect("recorded")
}

#[tokio::test]
async fn a_request_reaches_the_server_with_its_fields_as_received_and_the_proxys_rewrites() {
    let (addr, mut seen) = recording_server().await;
    let lb = Lb::start(one_server_config("rec", addr, "")).await;
    let mut c = Client::connect(lb.addr).await;
    // Absolute form (its authority equal to Host), a nominated field, a forwarding chain,
    // a name spelled oddly, a body framed by its length.
    c.send(
        b"POST http://lb.test/up?x=1 HTTP/1.1\r\nHost: lb.test\r\nConnection: keep-alive, X-Hop\r\n\
          X-Hop: secret\r\nX-cUsToM:  spaced value \r\nX-Forwarded-For: 192.0.2.9\r\n\
          X-Forwarded-Proto: https\r\nContent-Length: 2\r\n\r\nhi",
    )
    .await;
    assert_eq!(c.answer(false).await.status, 204);
    let head = recorded(&mut seen).await;
    let lines: Vec<&str> = head.split("\r\n").collect();
    assert_eq!(lines[0], "POST /up?x=1 HTTP/1.1", "origin form");
    let named = |name: &str| -> Vec<&str> {
        lines[1..]
            .iter()
            .filter_map(|l| l.split_once(": "))
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .collect()
    };
    assert_eq!(named("host"), ["lb.test"], "one Host: {head}");
    assert_eq!(named("x-custom"), ["spaced value"], "{head}");
    assert!(
        head.contains("X-cUsToM: "),
        "the name as the client spelled it: {head}"
    );
    assert!(
        named("x-hop").is_empty() && named("connection").is_empty(),
        "{head}"
    );
    assert_eq!(named("x-forwarded-for"), ["192.0.2.9, 127.0.0.1"], "{head}");
    assert_eq!(named("x-forwarded-proto"), ["http"], "{head}");
    assert_eq!(named("forwarded"), ["for=127.0.0.1;proto=http"], "{head}");
    assert_eq!(named("content-length"), ["2"], "{head}");
    assert!(named("transfer-encoding").is_empty(), "{head}");
    assert!(head.ends_with("\r\n\r\nhi"), "{head}");

    // Without a length the body goes chunked.
    c.send(b"POST /up HTTP/1.1\r\nHost: lb.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
        .await;
    assert_eq!(c.answer(false).await.status, 204);
    let head = recorded(&mut seen).await;
    assert!(
        head.to_ascii_lowercase()
            .contains("\r\ntransfer-encoding: chunked\r\n"),
        "{head}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
}
